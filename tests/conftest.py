"""Fixtures and run-wide hooks only; helpers live in ``support.py`` and ``factories.py``.

Personas: alice owns a team, bob is a member of it, charlie has no access (he owns his own).

Skips are accounted for. The only allowed skips are ``gpu`` tests on a machine without
CUDA and ``browser`` tests where Chromium is absent; the run prints how many tests skipped
and why, and when ``CI`` is set any skip that is not a ``gpu`` test fails the run.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from llmweb.accounts import services
from llmweb.accounts.models import Role
from tests import support
from tests.factories import make_user, tiny_preset_folder
from tests.support import LiveServer, Worker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --- skips: decided here, counted, and refused in CI ----------------------------------------

_SKIP_GPU = "gpu: CUDA is not available on this machine"
_SKIP_BROWSER = f"browser: Chromium is not at {support.CHROMIUM}"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if i.get_closest_marker("gpu")]
    if gpu_items and not _cuda_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=_SKIP_GPU))
    if not support.chromium_present():
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(pytest.mark.skip(reason=_SKIP_BROWSER))


def _skips(terminalreporter) -> list[tuple[str, bool, str]]:
    """(nodeid, is a gpu test, reason) of every skipped test in this run."""
    out = []
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        out.append((report.nodeid, "gpu" in report.keywords, reason))
    return out


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skips = _skips(terminalreporter)
    terminalreporter.section("skips")
    if not skips:
        terminalreporter.write_line("0 tests skipped")
        return
    terminalreporter.write_line(f"{len(skips)} tests skipped:")
    for reason, n in Counter(reason for _, _, reason in skips).most_common():
        terminalreporter.write_line(f"  {n:4d} x {reason}")
    forbidden = [nodeid for nodeid, gpu, _ in skips if not gpu]
    if os.environ.get("CI") and forbidden:
        terminalreporter.write_line(
            f"CI is set: {len(forbidden)} skipped tests are not gpu tests; failing the run:",
            red=True,
        )
        for nodeid in forbidden:
            terminalreporter.write_line(f"  {nodeid}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not os.environ.get("CI") or reporter is None:
        return
    if any(not gpu for _, gpu, _ in _skips(reporter)) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _wait_budget(request: pytest.FixtureRequest):
    """Waits in ``support`` end before this test's pytest-timeout, with a readable error."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else request.config.getini("timeout")
    support.set_test_deadline(time.monotonic() + float(limit) if limit else None)
    yield
    support.set_test_deadline(None)


# --- storage, personas, clients -------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _test_storage(tmp_path_factory):
    storage = Path(settings.VAR_DIR) / f"test-storage-{settings.TEST_RUN}"
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)
    settings.STORAGE_DIR = storage
    settings.MEDIA_ROOT = storage
    yield storage
    shutil.rmtree(storage, ignore_errors=True)


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def charlie(db):
    return make_user("charlie")


@pytest.fixture
def team(alice, bob):
    team = services.team_create(owner=alice, name="Alice's lab")
    services.team_invite(by=alice, team=team, username="bob", role=Role.MEMBER)
    return team


@pytest.fixture
def charlie_team(charlie):
    return services.team_create(owner=charlie, name="Charlie's lab")


@pytest.fixture
def api():
    """``api(user)``: a DRF client authenticated as ``user`` (None: anonymous)."""

    def api_as(user) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return api_as


# --- real processes -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker):
    """One real Celery worker process on every queue, shared by the session."""
    w = Worker()
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="session")
def live_server_proc(django_db_setup, django_db_blocker):
    """A real ASGI server process (uvicorn) serving HTTP and websockets on the test database."""
    server = LiveServer()
    yield server
    server.stop()


@pytest.fixture
def browser_page(live_server_proc):
    """A Playwright page in headless Debian Chromium."""
    # Playwright's sync API runs an event loop; the ORM must still work around it in tests.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=support.CHROMIUM, headless=True, args=support.CHROMIUM_ARGS
        )
        page = browser.new_page()
        page.set_default_timeout(30_000)
        yield page
        browser.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny GPT-2 preset folder (safetensors + tokenizer), built once per session."""
    return tiny_preset_folder(tmp_path_factory.mktemp("tiny") / "gpt2")
