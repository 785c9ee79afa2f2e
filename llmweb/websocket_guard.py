"""Websocket handshakes: the origin check, and denials the browser can read.

Origin. Channels' ``AllowedHostsOriginValidator`` compares only the host, so
``Origin: http://localhost:9999`` was accepted for a page served on port 8000: any page on
the same host could open a socket with the user's cookies. Here an origin must equal the
origin the socket was requested on (scheme, host and port of the ``Host`` header, with
``ws``/``wss`` standing for ``http``/``https``) and the host must be allowed; or it must
be listed exactly in ``CSRF_TRUSTED_ORIGINS`` (the setting for a proxy that terminates
TLS or serves another name). A handshake with no Origin but an ``Authorization: Bearer``
header is a script (a browser always sends Origin and cannot send that header); it passes
here and the token is checked like any API call.

Denials. A consumer that closes before accepting makes the server answer the handshake
with HTTP 403, and a browser reports every failed handshake as close code 1006, the same
as a network error, so the page could not tell "not allowed" from "try again" and
reconnected every second. We chose close codes: a denial is sent as accept + close with
an application code, which the page reads (``static/js/app.js`` stops on them):

- 4401: not logged in;
- 4403: origin refused;
- 4404: no such route, or no such object for this user.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, str] | None:
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS or not netloc:
        return None
    host, port = split_domain_port(netloc.lower())
    if not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def origin_allowed(origin: str | None, *, host_header: str | None, ws_scheme: str) -> bool:
    """True when ``origin`` is the socket's own origin (on an allowed host) or trusted."""
    if not origin:
        return False
    parts = urlsplit(origin)
    wanted = _origin_tuple(parts.scheme, parts.netloc)
    if wanted is None:
        return False
    trusted = {
        _origin_tuple(urlsplit(o).scheme, urlsplit(o).netloc)
        for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])
    }
    if wanted in trusted:
        return True
    if not host_header:
        return False
    own = _origin_tuple("https" if ws_scheme == "wss" else "http", host_header)
    if own is None or not validate_host(own[1], settings.ALLOWED_HOSTS):
        return False
    return own == wanted


class OriginCheck:
    """Refuse a websocket whose Origin is not this server's own (close 4403)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1") or None
        host = headers.get(b"host", b"").decode("latin-1") or None
        # A script authenticating with a Bearer token sends no Origin; browsers always do
        # and cannot set Authorization on a handshake, so this opens nothing to pages.
        script = origin is None and headers.get(b"authorization", b"")[:7].lower() == b"bearer "
        if (
            scope["type"] == "websocket"
            and not script
            and not origin_allowed(origin, host_header=host, ws_scheme=scope.get("scheme", "ws"))
        ):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN})
            return
        await self.app(scope, receive, send)


class CloseCodeDenials:
    """Turn a close before accept into accept + close(code), so the browser sees the code.

    The outermost websocket layer: it covers the consumers' 4401/4404 and the 4403 above.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        accepted = False

        async def wrapped_send(message):
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close" and not accepted:
                accepted = True
                await send({"type": "websocket.accept"})
                message = {"type": "websocket.close", "code": message.get("code") or 1000}
            await send(message)

        await self.app(scope, receive, wrapped_send)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """The last websocket route: an unknown path closes with 4404 instead of an error."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)
