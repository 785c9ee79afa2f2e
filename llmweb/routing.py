from __future__ import annotations

from django.urls import path, re_path

import llmweb.core.ids  # noqa: F401 - registers the <id:…> path converter first
from jobs import consumers
from llmweb.websocket_guard import NotFoundConsumer

websocket_urlpatterns = [
    path("ws/hello/", consumers.HelloConsumer.as_asgi()),
    path("ws/jobs/<id:job_id>/", consumers.JobProgressConsumer.as_asgi()),
    path("ws/playground/", consumers.PlaygroundConsumer.as_asgi()),
    # Last: any other path closes with 4404 (see llmweb/websocket_guard.py).
    re_path(r"", NotFoundConsumer.as_asgi()),
]
