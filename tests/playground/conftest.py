"""A live server and a threaded inference worker on a queue of their own.

The session ``worker`` also consumes ``inference``; the playground tests kill workers and
count what one worker did, so they get a private queue (``LLMWEB_INFERENCE_QUEUE``) that
only their worker reads, and a live server that sends there with a short stall timeout.
"""

from __future__ import annotations

import shutil

import pytest
from django.conf import settings

from llmweb.catalog.models import RegisteredModel
from tests.playground.support import long_gpt2, tiny_classifier
from tests.support import LiveServer, Worker

STALL_SECONDS = 3


@pytest.fixture(scope="module")
def inference_queue():
    return f"inference-{settings.TEST_RUN}"


@pytest.fixture(scope="module")
def playground_server(django_db_setup, inference_queue):
    server = LiveServer(
        env={
            "LLMWEB_INFERENCE_QUEUE": inference_queue,
            "LLMWEB_PLAYGROUND_STALL_SECONDS": str(STALL_SECONDS),
            "LLMWEB_PLAYGROUND_START_SECONDS": "30",
        }
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def inference_worker(django_db_setup, inference_queue):
    """The pool an inference worker runs: threads, so a model is loaded once per process."""
    w = Worker(queues=inference_queue, concurrency=2, pool="threads")
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("playground-models")
    return {"long": long_gpt2(root / "long"), "clf": tiny_classifier(root / "clf")}


def _register(team, folder, *, name: str, task: str) -> RegisteredModel:
    record = RegisteredModel.objects.create(
        team=team, name=name, source="upload", status="ready", task=task
    )
    shutil.copytree(folder, record.artifact_dir)
    return record


@pytest.fixture
def long_model(team, model_folders):
    return _register(team, model_folders["long"], name="longfox", task="causal-lm")


@pytest.fixture
def classifier(team, model_folders):
    return _register(team, model_folders["clf"], name="spamfox", task="classification")
