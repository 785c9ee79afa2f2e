"""The only caller of ``group_send``: job events go to the DB first, then to group ``job.<id>``.

Persist-then-publish means a client that joins the group and then reads history can miss
nothing: every event it sees live is already in the table. This module sits below the
services (they publish after commit); the worker-side reporter is ``jobs.reporting``.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def job_group(job_id: int) -> str:
    return f"job.{job_id}"


def publish(group: str, message: dict[str, Any]) -> None:
    """Best effort: a Redis hiccup must not fail the job; clients re-read history on reconnect."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "stream.event", "event": message})
    except Exception:  # noqa: BLE001
        log.warning("could not publish to %s", group, exc_info=True)
