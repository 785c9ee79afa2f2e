"""Fixtures and run-wide hooks only; helpers live in ``support.py`` and ``factories.py``.

Personas: alice owns a team, bob is a member of it, charlie has no access (he owns his own).

Skips are decided and counted by the ``tests.skips`` plugin.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from llmweb.accounts import services
from llmweb.accounts.models import Role
from tests import support
from tests.factories import (
    long_gpt2_folder,
    make_user,
    ready_dataset,
    registered_folder,
    sms_rows,
    tiny_classifier,
    tiny_classifier_folder,
    tiny_preset_folder,
)
from tests.support import LiveServer, Worker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
pytest_plugins = ["tests.skips"]


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


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Each test starts with no log-in failures, throttle history or sign-up counts.

    That state lives in Redis under this session's prefix (the ``shared`` cache); only
    those keys are removed, never the database, which other runs share.
    """
    import redis

    prefix = settings.CACHES["shared"]["KEY_PREFIX"]
    client = redis.Redis.from_url(settings.CACHES["shared"]["LOCATION"])
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


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

    from tests.skips import CHROMIUM

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=support.CHROMIUM_ARGS
        )
        # Playwright's wait_for_function compiles its predicate with eval, which our CSP
        # forbids; test_browser_csp.py checks the pages under the real policy.
        page = browser.new_page(bypass_csp=True)
        page.set_default_timeout(30_000)
        yield page
        browser.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny GPT-2 preset folder (safetensors + tokenizer), built once per session."""
    return tiny_preset_folder(tmp_path_factory.mktemp("tiny") / "gpt2")


# --- playground: a live server and a threaded inference worker on a queue of their own ---
# The session ``worker`` also consumes ``inference``; the playground tests kill workers and
# count what one worker did, so they get a private queue (LLMWEB_INFERENCE_QUEUE) only
# their worker reads, and a server that sends there with a short stall timeout.


@pytest.fixture(scope="module")
def inference_queue():
    return f"inference-{settings.TEST_RUN}"


@pytest.fixture(scope="module")
def playground_server(django_db_setup, inference_queue):
    server = LiveServer(
        env={
            "LLMWEB_INFERENCE_QUEUE": inference_queue,
            "LLMWEB_PLAYGROUND_STALL_SECONDS": str(support.PLAYGROUND_STALL_SECONDS),
            "LLMWEB_PLAYGROUND_START_SECONDS": "30",
        }
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def inference_worker(django_db_setup, inference_queue):
    """The pool an inference worker runs (as the run command starts it): threads, so a model
    is loaded once per process and concurrent requests for it decode in one batch."""
    w = Worker(queues=inference_queue, concurrency=4, pool="threads", prefetch=False)
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="session")
def playground_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("playground-models")
    return {
        "long": long_gpt2_folder(root / "long"),
        "clf": tiny_classifier_folder(root / "clf"),
        "tiny": tiny_preset_folder(root / "tiny"),
        "t5": tiny_preset_folder(root / "t5", family="t5"),
    }


@pytest.fixture
def playground_page(playground_server):
    """A Playwright page for the playground server (CSP bypassed for wait_for_function, as
    in ``browser_page``; test_browser_csp.py loads /playground/ under the real policy)."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    from tests.skips import CHROMIUM

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=support.CHROMIUM_ARGS
        )
        page = browser.new_page(bypass_csp=True)
        page.set_default_timeout(30_000)
        yield page
        browser.close()


@pytest.fixture
def long_model(team, playground_folders):
    return registered_folder(team, playground_folders["long"], name="longfox", task="causal-lm")


@pytest.fixture
def classifier(team, playground_folders):
    return registered_folder(team, playground_folders["clf"], name="spamfox", task="classification")


@pytest.fixture
def teacher_and_data(team):
    """A tiny classifier teacher and the SMS rows it knows: what distill tests start from."""
    rows = sms_rows(60)
    teacher = tiny_classifier(team, [r["text"] for r in rows], ["ham", "spam"], name="teacher")
    return teacher, ready_dataset(team, "classification", rows, name="sms")
