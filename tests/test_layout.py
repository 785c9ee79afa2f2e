"""The test suite's own rules: it mirrors the code, and test modules share helpers one way."""

from __future__ import annotations

import ast

from tests.support import ROOT

TESTS = ROOT / "tests"
SHARED = {"tests.support", "tests.factories"}


def _imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def test_test_modules_import_only_support_and_factories_from_tests():
    offenders = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in TESTS.rglob("test_*.py")
        if (bad := {m for m in _imported_modules(path) if m.startswith("tests")} - SHARED)
    }
    assert offenders == {}, "import helpers from tests.support / tests.factories only"


def test_every_test_folder_mirrors_a_package():
    for folder in (p for p in TESTS.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        rel = folder.relative_to(TESTS)
        candidates = [ROOT / rel, ROOT / "llmweb" / rel]
        assert any((c / "__init__.py").is_file() for c in candidates), (
            f"tests/{rel.as_posix()} has no package to mirror"
        )


def test_factory_boy_is_not_a_dependency():
    # Plain functions in tests/factories.py build every row; a second way would drift.
    assert "factory-boy" not in (ROOT / "pyproject.toml").read_text()


def test_a_module_past_400_lines_says_why_at_its_top():
    """Long modules are allowed, but only with a reason a reviewer reads first."""
    long_without_reason = []
    for package in ("llmweb", "jobs"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            source = path.read_text(encoding="utf-8")
            if source.count("\n") <= 420:
                continue
            doc = ast.get_docstring(ast.parse(source)) or ""
            if "on purpose" not in doc:
                long_without_reason.append(str(path.relative_to(ROOT)))
    assert long_without_reason == [], "say why at the top ('... on purpose: ...') or split it"
