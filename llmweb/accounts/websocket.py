"""Who is on a websocket: the session for browsers, ``Authorization: Bearer`` for scripts.

A browser cannot put an Authorization header on a WebSocket handshake, so a request
that carries one is a script: it is authenticated by its API token alone and skips the
Origin check (which only protects cookie sessions from other sites). Everything else
goes through the session with the Origin check. A token is never read from the query
string: query strings end up in proxy and access logs. The consumers then scope every
object by membership exactly as the pages do.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser

from llmweb.accounts.selectors import api_token_lookup

KEYWORDS = (b"bearer", b"token")


def _user_for(header: bytes):
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() not in KEYWORDS:
        return AnonymousUser()
    try:
        secret = parts[1].decode("ascii")
    except UnicodeDecodeError:
        return AnonymousUser()
    token = api_token_lookup(secret=secret)
    return token.user if token is not None else AnonymousUser()


class WebsocketAuthMiddleware:
    """ASGI middleware: puts ``scope["user"]`` from a Bearer token or the session."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.browser = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope, receive, send):
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), None)
        if header is None:
            return await self.browser(scope, receive, send)
        user = await database_sync_to_async(_user_for)(header)
        return await self.inner({**scope, "user": user}, receive, send)
