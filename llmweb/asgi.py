"""ASGI entry: HTTP through Django, websockets through Channels (session or API token).

HTTP passes ``RequestBodyGuard`` first (limits and anonymous bodies refused before a byte
is read: llmweb/asgi_limits.py). Websockets pass the origin check and send denials as
close codes 4401/4403/4404 (llmweb/websocket_guard.py).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmweb.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from llmweb.accounts.websocket import WebsocketAuthMiddleware  # noqa: E402
from llmweb.asgi_limits import RequestBodyGuard  # noqa: E402
from llmweb.routing import websocket_urlpatterns  # noqa: E402
from llmweb.websocket_guard import CloseCodeDenials, OriginCheck  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": RequestBodyGuard(django_asgi_app),
        "websocket": CloseCodeDenials(
            OriginCheck(WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
