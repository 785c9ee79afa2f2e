"""The only caller of ``group_send``: job events go to the DB first, then to group ``job.<id>``.

Persist-then-publish means a client that joins the group and then reads history can miss
nothing: every event it sees live is already in the table.
"""

from __future__ import annotations

import logging
import threading
import time
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


class JobReporter:
    """The engine's Reporter for a job run by this worker.

    Every event is appended (one INSERT) and published. The Job row's progress columns are
    written at most every ``row_interval`` seconds. A background thread heart-beats and
    reads ``cancel_requested`` every ``poll_interval`` seconds, so ``should_stop`` costs
    nothing per step and a cancel is seen within about one second.
    """

    def __init__(
        self,
        job_id: int,
        worker: str,
        *,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 5.0,
        row_interval: float = 1.0,
    ) -> None:
        self.job_id = job_id
        self.worker = worker
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.row_interval = row_interval
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._last_row = 0.0
        self._thread = threading.Thread(
            target=self._beat, name=f"job-{job_id}-heartbeat", daemon=True
        )

    def __enter__(self) -> JobReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        from django.db import connection

        from jobs import services

        last_beat = 0.0
        try:
            while not self._stop.wait(self.poll_interval):
                now = time.monotonic()
                beat = now - last_beat >= self.heartbeat_interval
                state = services.job_poll(job_id=self.job_id, worker=self.worker, heartbeat=beat)
                if beat:
                    last_beat = now
                if state == "cancel":
                    self._cancel.set()
                elif state == "lost":
                    # Another worker owns the job now (we were presumed dead): stop at once.
                    self._lost.set()
        finally:
            connection.close()

    def emit(self, kind: str, **data: Any) -> None:
        from jobs import services

        if kind == "progress":
            now = time.monotonic()
            if now - self._last_row >= self.row_interval or data.get("step") == data.get("total"):
                self._last_row = now
                services.job_progress_update(job_id=self.job_id, worker=self.worker, **data)
        if kind == "checkpoint":
            services.job_checkpoint_update(job_id=self.job_id, step=int(data.get("step") or 0))
        services.job_event_append(job_id=self.job_id, kind=kind, data=data)

    def should_stop(self) -> bool:
        return self._cancel.is_set() or self._lost.is_set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()
