"""The docker-compose settings pass Django's deployment checks; no secret on a command line."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose_env(tmp_path: Path) -> dict[str, str]:
    """The web service's environment as docker compose would expand it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    given = {"SECRET_KEY": secrets.token_urlsafe(50), "LLMWEB_ADMIN_PASSWORD": "x" * 20}

    def expand(value: str) -> str:
        def one(m: re.Match) -> str:
            name, op, default = m.group(1), m.group(2) or "", m.group(3) or ""
            if name in given:
                return given[name]
            assert op != ":?", f"{name} is required and not given"
            return default

        return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, str(value))

    env = {k: expand(v) for k, v in compose["services"]["web"]["environment"].items()}
    # Paths inside the container; this machine has no /data.
    env.update(LLMWEB_VAR_DIR=str(tmp_path / "var"), LLMWEB_STORAGE_DIR=str(tmp_path / "s"))
    return env


def test_manage_py_check_deploy_passes_with_the_compose_settings(tmp_path):
    keep = {"PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k in keep} | compose_env(tmp_path)
    r = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no issues" in r.stdout


def test_compose_puts_no_password_on_a_command_line():
    text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    for name, service in compose["services"].items():
        command = str(service.get("command", ""))
        assert "PASSWORD" not in command.upper(), name
    assert "8000:8000" not in text  # only the proxy reaches the app port
