"""The real parts: a Celery worker process, Redis, the ASGI server, websockets, compose."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets
import yaml
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from llmweb.asgi import application
from llmweb.celery import app as celery_app
from llmweb.celery import ping
from llmweb.devtools.redis import redis_answers, start_embedded
from tests.support import session_cookie

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.django_db(transaction=True)
def test_real_worker_answers_ping_and_healthz_counts_it(worker, client):
    assert ping.delay().get(timeout=30) == "pong"
    body = client.get("/healthz").json()
    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["workers"] >= 1
    assert {"gpu", "inference", "default"} <= set(body["queues"])


def test_celery_is_configured_for_long_jobs():
    conf = celery_app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] >= 24 * 3600
    assert not conf.task_always_eager
    assert {q.name for q in conf.task_queues} == {"gpu", "inference", "default"}


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["redis"].startswith("error") and r.json()["database"] == "ok"


def test_embedded_redis_starts_and_stops():
    server = start_embedded()
    try:
        assert server.embedded and redis_answers(server.url)
    finally:
        server.stop()
    assert not redis_answers(server.url)


@pytest.mark.django_db(transaction=True)
async def test_websocket_accepts_a_session_user_and_refuses_anonymous(client):
    user = await database_sync_to_async(get_user_model().objects.create_user)(
        "wsuser", password="x y z 123 456"
    )
    cookie = await database_sync_to_async(session_cookie)(client, user)
    headers = [
        (b"cookie", f"sessionid={cookie}".encode()),
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
    ]
    comm = WebsocketCommunicator(application, "/ws/hello/", headers=headers)
    connected, _ = await comm.connect()
    assert connected
    assert await comm.receive_json_from() == {"type": "hello", "user": "wsuser"}
    await comm.disconnect()

    anon = WebsocketCommunicator(
        application,
        "/ws/hello/",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
    )
    # Denials are close codes the page can read (llmweb/websocket_guard.py), not HTTP 403.
    connected, _ = await anon.connect()
    assert connected
    assert await anon.receive_output() == {"type": "websocket.close", "code": 4401}


@pytest.mark.django_db(transaction=True)
def test_live_asgi_server_serves_http_and_authenticated_websockets(live_server_proc, client):
    user = get_user_model().objects.create_user("live", password="x y z 123 456")
    cookie = session_cookie(client, user)
    assert httpx.get(live_server_proc.url + "/healthz", timeout=10).json()["database"] == "ok"
    ws_url = live_server_proc.url.replace("http", "ws") + "/ws/hello/"

    async def talk():
        async with websockets.connect(
            ws_url,
            additional_headers={"Cookie": f"sessionid={cookie}", "Origin": live_server_proc.url},
        ) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send(json.dumps({"n": 1}))
            echo = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return hello, echo

    hello, echo = asyncio.run(talk())
    assert hello == {"type": "hello", "user": "live"} and echo == {"type": "echo", "data": {"n": 1}}

    async def anonymous():
        async with websockets.connect(
            ws_url, additional_headers={"Origin": live_server_proc.url}
        ) as ws:
            await ws.recv()

    # A denial reaches the browser as a close code, so the page knows to stop retrying.
    with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
        asyncio.run(anonymous())
    assert info.value.rcvd.code == 4401


def test_compose_file_matches_the_code():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker"} <= set(services)
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LLMWEB_STORAGE_DIR"} <= set(env)
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
        assert "redis://redis:6379" in env["REDIS_URL"]
    assert (
        "uvicorn" in services["web"]["command"]
        and "llmweb.asgi:application" in services["web"]["command"]
    )
    worker_cmd = services["worker"]["command"]
    assert worker_cmd.startswith("python -m llmweb.devtools.workers ") and "gpu" in worker_cmd
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    readme = (ROOT / "README.md").read_text()
    for env_name in services["web"]["environment"]:
        assert env_name in readme, f"{env_name} is not documented in README.md"
