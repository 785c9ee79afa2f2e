from __future__ import annotations

from django.urls import path

from jobs import consumers

websocket_urlpatterns = [
    path("ws/hello/", consumers.HelloConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", consumers.JobProgressConsumer.as_asgi()),
    path("ws/playground/", consumers.PlaygroundConsumer.as_asgi()),
]
