"""GET /healthz: is the database up, is Redis up, how many workers answer, which queues."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; say why
        return f"error: {exc.__class__.__name__}"


def _redis() -> str:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"


def _workers() -> tuple[int, list[str]]:
    from llmweb.celery import app

    try:
        inspect = app.control.inspect(timeout=1.0)
        replies = inspect.ping() or {}
        active = inspect.active_queues() or {}
    except Exception:  # noqa: BLE001 - a broker hiccup means "no workers seen", not a 500
        return 0, []
    queues = sorted({q["name"] for qs in active.values() for q in qs})
    return len(replies), queues


def healthz(request):
    body: dict = {"database": _database(), "redis": _redis()}
    workers, queues = _workers() if body["redis"] == "ok" else (0, [])
    body.update(workers=workers, queues=queues)
    ok = body["database"] == "ok" and body["redis"] == "ok"
    return JsonResponse(body, status=200 if ok else 503)
