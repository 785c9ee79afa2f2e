"""An ASGI layer in front of Django that refuses bodies before they are read.

Django's ASGI handler reads (and spools to disk) the whole request body before any view,
middleware, authentication or size check runs: a security probe sent an anonymous
200 MiB POST that was written to a temp file and then answered 401, and an upload
declaring 1.2 GiB got its 413 only after 300 MiB were written. This layer decides from
the headers alone, before it lets Django read a byte:

- a ``Content-Length`` over the limit is answered 413;
- a body of unknown length (chunked) is counted as it streams and cut off at the limit
  (Django sees a disconnect and stops; the client gets 413);
- a body over ``ANONYMOUS_MAX_BYTES`` (or of unknown length) from a client with neither a
  valid session nor a valid API token is answered 401. Log-in and sign-up forms are far
  below that size, so they pass.

The limit depends on what the body is: multipart (file uploads) may reach
``LLMWEB_MAX_UPLOAD_BYTES`` plus room for the form around the file; anything else
``DATA_UPLOAD_MAX_MEMORY_SIZE``, which Django would enforce anyway, only later. A proxy in
front should set the same upload limit (``client_max_body_size``).
"""

from __future__ import annotations

import json
import logging
from http.cookies import CookieError, SimpleCookie
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

log = logging.getLogger(__name__)

ANONYMOUS_MAX_BYTES = 64 * 1024
MULTIPART_OVERHEAD_BYTES = 1 << 20
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def body_limit(content_type: str) -> int:
    """The most bytes a request body of this type may have."""
    if content_type.lower().startswith("multipart/"):
        return int(settings.LLMWEB_MAX_UPLOAD_BYTES) + MULTIPART_OVERHEAD_BYTES
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _credentials_valid(session_key: str | None, authorization: str | None) -> bool:
    """A session that names a user, or a bearer token that matches an active user's token."""
    if authorization:
        parts = authorization.split()
        if len(parts) == 2 and parts[0].lower() in ("bearer", "token"):
            from llmweb.accounts.models import ApiToken

            if ApiToken.objects.filter(
                digest=ApiToken.digest_of(parts[1]), user__is_active=True
            ).exists():
                return True
    if session_key:
        from importlib import import_module

        from django.contrib.auth import SESSION_KEY

        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        try:
            return bool(store.get(SESSION_KEY))
        except Exception:  # noqa: BLE001 - a broken session is no session
            return False
    return False


async def _send_json(send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestBodyGuard:
    """Wraps the HTTP app (see the module docstring); websockets pass through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            return await self.app(scope, receive, send)
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or []:
            headers[name.lower()] = value
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        limit = body_limit(content_type)
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        declared: int | None = None
        if b"content-length" in headers:
            try:
                declared = int(headers[b"content-length"])
            except ValueError:
                return await _send_json(send, 400, "Content-Length is not a number.", [])
        if declared is not None and declared > limit:
            log.info("refused %s %s: %s bytes declared", scope["method"], scope["path"], declared)
            return await _send_json(send, 413, self._too_large(limit, declared), [])
        if chunked or (declared or 0) > ANONYMOUS_MAX_BYTES:
            if not await self._authenticated(headers):
                return await _send_json(
                    send,
                    401,
                    "Log in or send 'Authorization: Bearer <token>' before sending a body "
                    "this large; it was not read.",
                    [(b"www-authenticate", b'Bearer realm="api"')],
                )
        if not chunked:
            return await self.app(scope, receive, send)
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope, receive, send, limit: int) -> None:
        """Pass a body of unknown length through, cutting it off past ``limit``."""
        state = {"received": 0, "over": False, "started": False}

        async def counting_receive():
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)
        if state["over"] and not state["started"]:
            log.info("cut off a chunked body of %s at %s bytes", scope["path"], state["received"])
            await _send_json(send, 413, self._too_large(limit, None), [])

    @staticmethod
    def _too_large(limit: int, declared: int | None) -> str:
        size = f" ({declared / (1 << 20):,.1f} MiB)" if declared else ""
        return (
            f"The request body{size} is over the limit of {limit / (1 << 20):,.0f} MiB "
            "(LLMWEB_MAX_UPLOAD_BYTES for uploads); nothing was stored."
        )

    @staticmethod
    async def _authenticated(headers: dict[bytes, bytes]) -> bool:
        session_key = None
        if cookie := headers.get(b"cookie"):
            try:
                jar = SimpleCookie(cookie.decode("latin-1"))
            except CookieError:
                jar = SimpleCookie()
            if settings.SESSION_COOKIE_NAME in jar:
                session_key = jar[settings.SESSION_COOKIE_NAME].value
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        if not session_key and not authorization:
            return False
        return await database_sync_to_async(_credentials_valid)(session_key, authorization)
