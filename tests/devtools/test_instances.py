"""Two deployments on one Redis: each worker takes only its own instance's work."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from llmweb.core.instance import instance_name, redis_key_prefix
from llmweb.devtools.workers import worker_command
from tests.support import Worker, celery_app_for


def test_instance_is_derived_from_the_var_directory_unless_named(tmp_path):
    a = instance_name(tmp_path / "one" / "var", env={})
    b = instance_name(tmp_path / "two" / "var", env={})
    assert a != b and a.startswith("one-") and b.startswith("two-")
    assert instance_name(tmp_path / "one" / "var", env={}) == a
    assert instance_name(tmp_path, env={"LLMWEB_INSTANCE": "prod-eu"}) == "prod-eu"
    with pytest.raises(ValueError):
        instance_name(tmp_path, env={"LLMWEB_INSTANCE": "a b:c"})


def test_every_redis_name_carries_the_instance():
    prefix = redis_key_prefix(settings.LLMWEB_INSTANCE)
    assert settings.LLMWEB_INSTANCE == f"test{settings.TEST_RUN}"
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] == prefix
    assert settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS["global_keyprefix"] == prefix
    assert settings.LLMWEB_INSTANCE in settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    cmd = worker_command(role="gpu", queues=["gpu"], instance="blue", beat_schedule=Path("s"))
    assert cmd[cmd.index("-n") + 1] == "gpu.blue@%h" and "-B" in cmd


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_instances_on_one_redis_each_process_only_their_own_work():
    names = [f"{settings.LLMWEB_INSTANCE}-{x}-{uuid.uuid4().hex[:4]}" for x in "ab"]
    env = {"LLMWEB_PRELOAD": "0"}
    workers = [Worker(queues="default", env={**env, "LLMWEB_INSTANCE": n}) for n in names]
    apps = [celery_app_for(n) for n in names]
    try:
        for w in workers:
            w.wait_ready(timeout=120)
        # Control messages are namespaced too: each instance sees only its own worker.
        for app, w in zip(apps, workers, strict=True):
            assert set(app.control.inspect(timeout=1.0).ping() or {}) == {w.name}

        sent = {
            n: [app.send_task("llmweb.ping", queue="default") for _ in range(3)]
            for n, app in zip(names, apps, strict=True)
        }
        for results in sent.values():
            assert [r.get(timeout=60) for r in results] == ["pong"] * 3
        for n, w in zip(names, workers, strict=True):
            log = w.output()
            other = next(x for x in names if x != n)
            assert all(r.id in log for r in sent[n]), f"{w.name} missed its own tasks"
            assert not any(r.id in log for r in sent[other]), f"{w.name} took {other}'s tasks"

        # With B's worker gone, B's task waits in B's queue; A's worker leaves it alone.
        workers[1].stop()
        orphan = apps[1].send_task("llmweb.ping", queue="default")
        assert apps[0].send_task("llmweb.ping", queue="default").get(timeout=60) == "pong"
        time.sleep(1)
        assert orphan.state == "PENDING" and orphan.id not in workers[0].output()
        r = redis.Redis.from_url(settings.REDIS_URL)
        assert r.llen(f"{redis_key_prefix(names[1])}default") == 1
    finally:
        for w in workers:
            w.stop()
        for n in names:
            r = redis.Redis.from_url(settings.REDIS_URL)
            keys = list(r.scan_iter(f"{redis_key_prefix(n)}*"))
            if keys:
                r.delete(*keys)
