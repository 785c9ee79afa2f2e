"""The layer rules hold: import-linter contracts (pyproject.toml) and one runtime fact.

The contracts replace the per-package subprocess guards ("importing X loads no django"):
a contract sees every import, including the ones inside functions, so it fails the day
someone adds one, not the day a test happens to walk that path. What a contract cannot
say is what a process has loaded once it ran, so the web process's "no torch" stays a
runtime check.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]
HEAVY = ("torch", "transformers", "tokenizers", "datasets", "pandas", "pyarrow", "peft", "sklearn")


def lint_imports(*contract_ids: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe) if exe.exists() else "lint-imports", "--no-cache", "--no-logo"]
    for cid in contract_ids:
        cmd += ["--contract", cid]
    # lint-imports puts its working directory first on sys.path, so it reads this tree.
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_contract_has_an_id_and_a_name():
    assert all(c.get("id") and c.get("name") for c in CONTRACTS)


def test_import_contracts_hold():
    out = lint_imports(*[c["id"] for c in CONTRACTS])
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def _copy_tree(tmp_path: Path) -> Path:
    """The two packages and the contracts, in a scratch folder a test may break."""
    for package in ("llmweb", "jobs"):
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "migrations", "samples"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n\ndef _broken():\n    {line}\n")


def test_contracts_fail_on_a_forbidden_import(tmp_path):
    # The same contracts on a copy with three bad imports, each inside a function: the
    # kind of late import a subprocess guard would never notice.
    tree = _copy_tree(tmp_path)
    _append(tree / "jobs/engine/schemas.py", "from django.conf import settings  # noqa")
    _append(tree / "jobs/engine/data/split.py", "from jobs.engine.models import info  # noqa")
    _append(tree / "llmweb/catalog/services/common.py", "import llmweb.catalog.tasks  # noqa")
    out = lint_imports("engine-is-a-library", "engine-packages", "web-layers", cwd=tree)
    assert out.returncode == 1, out.stdout[-4000:]
    broken = [line for line in out.stdout.splitlines() if line.endswith(" BROKEN")]
    assert len(broken) == 3, out.stdout[-4000:]
    assert "jobs.engine.schemas -> django (" in out.stdout
    assert "jobs.engine.data.split -> jobs.engine.models.info" in out.stdout
    assert "llmweb.catalog.services.common -> llmweb.catalog.tasks" in out.stdout


def test_nothing_outside_the_engine_imports_its_private_names():
    # import-linter checks private modules (jobs.engine._x); private names it cannot see.
    offenders = []
    for path in [*ROOT.glob("llmweb/**/*.py"), *ROOT.glob("jobs/**/*.py")]:
        if path.is_relative_to(ROOT / "jobs/engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jobs.engine"):
                offenders += [
                    f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert offenders == []


def test_the_web_process_never_imports_torch():
    # Everything a web process loads: every page and API view, the task modules it sends
    # to, and the web-side model facts (file headers and arithmetic instead of torch).
    code = (
        "import sys, django; django.setup();"
        "import llmweb.asgi, llmweb.urls, llmweb.catalog.tasks, jobs.tasks;"
        "from jobs.engine.presets import list_presets; list_presets(with_param_counts=False);"
        "from llmweb.catalog.services.model_facts import bundled_model_info, preset_param_count_exact;"
        "bundled_model_info(); preset_param_count_exact('t5', 'base', 32128);"
        "from llmweb.catalog.services.models import _bundled_card; _bundled_card('all-MiniLM-L6-v2');"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="llmweb.settings")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.ImportFrom) and node.names[0].name == "*" and node.module:
            star = _module_file(node.module)  # re-exported names (a package's __init__)
            names |= _top_level_names(star) if star else set()
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING blocks, fallbacks
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    names.update((a.asname or a.name).split(".")[0] for a in sub.names)
                elif isinstance(sub, ast.FunctionDef | ast.ClassDef):
                    names.add(sub.name)
    return names


def test_every_project_import_names_a_module_and_a_name_that_exist():
    """Late imports inside functions run only when their path does (a worker, a benchmark);
    two branches that each looked fine once merged into an import of a deleted module.
    The contracts skip modules that do not exist, so this walks every import statically."""
    broken = []
    for package in ("jobs", "llmweb", "bench", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                elif isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                else:
                    continue
                for mod in mods:
                    if mod.split(".")[0] not in ("jobs", "llmweb", "bench", "tests"):
                        continue
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    target = _module_file(mod)
                    if target is None:
                        broken.append(f"{where}: no module {mod}")
                        continue
                    if isinstance(node, ast.ImportFrom) and target.name == "__init__.py":
                        defined = _top_level_names(target)
                        for alias in node.names:
                            sub = f"{mod}.{alias.name}"
                            if alias.name not in defined and _module_file(sub) is None:
                                broken.append(f"{where}: {mod} has no {alias.name}")
                    elif isinstance(node, ast.ImportFrom):
                        defined = _top_level_names(target)
                        broken += [
                            f"{where}: {mod} has no {a.name}"
                            for a in node.names
                            if a.name != "*" and a.name not in defined
                        ]
    assert broken == []
