"""A pytest plugin: skips are decided in one place, counted, and refused in CI.

A green run must mean the real paths ran. The only allowed skips are ``gpu`` tests on a
machine without CUDA and ``browser`` tests where Chromium is absent (a developer machine).
Every run ends with a "skips" section that says how many tests skipped and why; when the
``CI`` environment variable is set, any skip that is not a ``gpu`` test fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest

CHROMIUM = os.environ.get("LLMWEB_CHROMIUM", "/usr/bin/chromium")
SKIP_GPU = "gpu: CUDA is not available on this machine"
SKIP_BROWSER = f"browser: Chromium is not at {CHROMIUM}"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if i.get_closest_marker("gpu")]
    if gpu_items and not _cuda_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=SKIP_GPU))
    if not shutil.which(CHROMIUM):
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(pytest.mark.skip(reason=SKIP_BROWSER))


def _skips(terminalreporter) -> list[tuple[str, bool, str]]:
    """(nodeid, is a gpu test, reason) of every skipped test in this run."""
    out = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        out.append((report.nodeid, "gpu" in report.keywords, reason.removeprefix("Skipped: ")))
    return out


def _forbidden(terminalreporter) -> list[str]:
    if not os.environ.get("CI"):
        return []
    return [nodeid for nodeid, gpu, _ in _skips(terminalreporter) if not gpu]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skips = _skips(terminalreporter)
    terminalreporter.section("skips")
    terminalreporter.write_line(f"{len(skips)} tests skipped")
    for reason, n in Counter(reason for _, _, reason in skips).most_common():
        terminalreporter.write_line(f"  {n:4d} x {reason}")
    if forbidden := _forbidden(terminalreporter):
        terminalreporter.write_line(
            f"CI is set and {len(forbidden)} skipped tests are not gpu tests: the run fails.",
            red=True,
        )
        for nodeid in forbidden:
            terminalreporter.write_line(f"  {nodeid}", red=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and _forbidden(reporter) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
