"""CI cannot go green by skipping: the skip plugin and ``.ci/run`` refuse it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

SAMPLE = """
import pytest

@pytest.mark.gpu
def test_on_cuda():
    pytest.skip("CUDA is not available")

def test_plain():
    pass
"""
DATA_SKIP = """
def test_needs_data():
    import pytest
    pytest.skip("no sample data")
"""


def _pytest(tmp_path: Path, *, ci: bool, extra: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: cuda\n    browser: b\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE + extra)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DJANGO_SETTINGS_MODULE")}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.skips",
            "-p",
            "no:django",
            "-p",
            "no:cacheprovider",
        ]
        + ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_run_says_how_many_tests_skipped_and_why(tmp_path):
    out = _pytest(tmp_path, ci=False, extra=DATA_SKIP)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "2 tests skipped" in out.stdout
    assert "1 x no sample data" in out.stdout and "CUDA is not available" in out.stdout


def test_in_ci_a_skip_outside_gpu_tests_fails_the_run(tmp_path):
    out = _pytest(tmp_path, ci=True, extra=DATA_SKIP)
    assert out.returncode == pytest.ExitCode.TESTS_FAILED, out.stdout[-3000:]
    assert "1 skipped tests are not gpu tests" in out.stdout
    assert "test_sample.py::test_needs_data" in out.stdout


def test_in_ci_gpu_skips_alone_pass(tmp_path):
    out = _pytest(tmp_path, ci=True)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "1 tests skipped" in out.stdout


# --- .ci/run --------------------------------------------------------------------------------


def _ci_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    # apt-get that always fails, first on PATH: the script must not install anything here.
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CI")}
    base["PATH"] = f"{fake}:{base['PATH']}"
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / "run")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ci_fails_when_chromium_cannot_be_installed(tmp_path):
    out = _ci_run(tmp_path, LLMWEB_CHROMIUM=str(tmp_path / "no-chromium"))
    assert out.returncode != 0
    assert "[ci] FAIL: could not install chromium" in out.stderr


def test_ci_fails_when_the_database_is_not_postgresql(tmp_path):
    out = _ci_run(tmp_path, LLMWEB_CHROMIUM="/bin/true", DATABASE_URL="sqlite:///ci.sqlite3")
    assert out.returncode != 0
    assert "[ci] FAIL: DATABASE_URL must point at PostgreSQL" in out.stderr


def test_ci_fails_when_postgresql_does_not_answer(tmp_path):
    out = _ci_run(
        tmp_path, LLMWEB_CHROMIUM="/bin/true", DATABASE_URL="postgres://ci@127.0.0.1:1/llmweb"
    )
    assert out.returncode != 0
    assert "[ci] FAIL: PostgreSQL" in out.stderr
    assert "[llmweb]" not in out.stdout  # the test command never started


def test_ci_runs_exactly_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert script[-1] == "./dev.sh test"
    assert "./dev.sh test" in (ROOT / "README.md").read_text()
