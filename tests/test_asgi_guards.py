"""Guards in front of Django and Channels: bodies refused unread, websocket origins and denials."""

from __future__ import annotations

import asyncio
import socket

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from llmweb.accounts import services
from llmweb.asgi import application
from llmweb.asgi_limits import RequestBodyGuard
from llmweb.websocket_guard import origin_allowed


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 10) -> bytes:
    """Send a request line + headers (and maybe part of a body); return what comes back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def upload_head(length: int, extra: str = "") -> str:
    return (
        "POST /api/v1/datasets/ HTTP/1.1\nHost: 127.0.0.1\n"
        "Content-Type: multipart/form-data; boundary=b\n"
        f"Content-Length: {length}\n{extra}"
    )


@pytest.mark.django_db(transaction=True)
def test_big_bodies_are_refused_from_the_headers_without_reading_them(live_server_proc):
    _, secret = services.api_token_create(
        user=get_user_model().objects.create_user("up", password="x y z 123 456"), name="t"
    )
    # Anonymous, 200 MiB declared: 401 although not one byte of the body was sent.
    reply = raw_request(live_server_proc.url, upload_head(200 << 20))
    assert reply.startswith(b"HTTP/1.1 401") and b'"detail"' in reply
    # A forged token is no credential either.
    reply = raw_request(live_server_proc.url, upload_head(200 << 20, "Authorization: Bearer x\n"))
    assert reply.startswith(b"HTTP/1.1 401")
    # Authenticated, but declaring more than the upload limit: 413, body unread.
    reply = raw_request(
        live_server_proc.url, upload_head(3 << 30, f"Authorization: Bearer {secret}\n")
    )
    assert reply.startswith(b"HTTP/1.1 413") and b"limit" in reply
    # A small anonymous form (a log-in) still reaches Django, which answers it.
    reply = raw_request(
        live_server_proc.url,
        "POST /api/v1/teams/ HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
        "Content-Length: 2\n",
        b"{}",
    )
    assert reply.split(b" ")[1] in (b"401", b"403") and b'"detail"' in reply


@pytest.mark.django_db(transaction=True)
async def test_a_chunked_body_is_cut_off_at_the_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    user = await database_sync_to_async(get_user_model().objects.create_user)("c", password="p")
    _, secret = await database_sync_to_async(services.api_token_create)(user=user, name="t")
    seen = {"bytes": 0, "disconnected": False}

    async def inner(scope, receive, send):
        while True:  # what Django's handler does: read until the body ends or the client goes
            message = await receive()
            if message["type"] == "http.disconnect":
                seen["disconnected"] = True
                return
            seen["bytes"] += len(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [{"type": "http.request", "body": b"x" * 400, "more_body": True}] * 10
    queue = iter(chunks)

    async def receive():
        return next(queue)

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/teams/",
        "headers": [
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", f"Bearer {secret}".encode()),
        ],
    }
    await RequestBodyGuard(inner)(scope, receive, send)
    assert seen == {"bytes": 800, "disconnected": True}
    assert sent[0]["status"] == 413


@pytest.mark.parametrize(
    "origin, host, ok",
    [
        ("http://localhost:8000", "localhost:8000", True),
        ("http://localhost:9999", "localhost:8000", False),  # another port
        ("https://localhost:8000", "localhost:8000", False),  # another scheme
        ("http://evil.example:8000", "localhost:8000", False),  # another host
        ("http://localhost", "localhost:80", True),  # default port either way
        (None, "localhost:8000", False),
        ("null", "localhost:8000", False),
    ],
)
def test_websocket_origin_must_match_scheme_host_and_port(origin, host, ok):
    assert origin_allowed(origin, host_header=host, ws_scheme="ws") is ok


def test_trusted_origins_are_allowed_exactly(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://llm.example.org"]
    assert origin_allowed("https://llm.example.org", host_header="10.0.0.5:8000", ws_scheme="ws")
    assert not origin_allowed(
        "https://llm.example.org:8443", host_header="10.0.0.5:8000", ws_scheme="ws"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path, origin, code",
    [
        ("/ws/hello/", b"http://localhost:9999", 4403),
        ("/ws/hello/", b"http://localhost:8000", 4401),
        ("/ws/nowhere/", b"http://localhost:8000", 4404),
        ("/ws/jobs/99999999999999999999/", b"http://localhost:8000", 4404),
    ],
)
async def test_websocket_denials_are_close_codes(path, origin, code):
    comm = WebsocketCommunicator(
        application, path, headers=[(b"origin", origin), (b"host", b"localhost:8000")]
    )
    connected, _ = await comm.connect()
    assert connected
    assert await asyncio.wait_for(comm.receive_output(), 5) == {
        "type": "websocket.close",
        "code": code,
    }
