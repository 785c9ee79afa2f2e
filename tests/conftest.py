"""Personas (alice owns a team, bob is on it, charlie has no access) and real processes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from llmweb.accounts import services
from llmweb.accounts.models import Role
from tests.support import LiveServer, Worker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "llmweb" / "catalog" / "samples"


def shared_data(name: str) -> Path:
    """A sample file shipped with the app; a missing one is a broken checkout, not a skip."""
    path = SAMPLES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"sample data {name} is missing from {SAMPLES_DIR}")
    return path


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


def make_user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        username, f"{username}@example.com", "correct horse 42"
    )


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


def api_as(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api():
    return api_as


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
