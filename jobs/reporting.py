"""The worker side of a job: the engine's Reporter, which writes events through the
services (which persist, then publish) on its own thread, heart-beats and polls cancel.

Every database write a running job makes (events, progress, heartbeat, its final status)
goes through ``db_retry`` here: a database restart, a dropped connection or a lock held
for a few seconds delays those writes; it loses none and fails no job. Redis is never on
this path's critical side: publishing is best effort (``jobs.publishing``), and the event
rows are what a reconnecting client replays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a write is retried before its error is let through. Longer than a database
# restart or failover takes, far shorter than the reaper's staleness window is long.
DB_RETRY_SECONDS = 60.0
DB_RETRY_MAX_DELAY = 5.0


def db_retry(call: Callable[[], T], *, what: str, budget: float = DB_RETRY_SECONDS) -> T:
    """Run ``call`` (one write and its reads), again after a lost or busy database.

    ``OperationalError``/``InterfaceError`` mean the connection is gone (a restart, a
    terminated backend) or the database was busy (SQLite's lock timeout). The thread's
    connection is closed so the next try opens a fresh one (Django never reconnects a
    connection by itself outside a request), then the call runs again after a growing
    pause, until ``budget`` seconds have passed. Inside a transaction a retry cannot
    help (the work before it is gone too), so the error goes up at once.
    """
    from django.db import InterfaceError, OperationalError, connection

    deadline = time.monotonic() + budget
    delay = 0.2
    while True:
        try:
            return call()
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database unavailable (%s); retrying in %.1fs", what, exc, delay)
            connection.close()
            time.sleep(delay)
            delay = min(delay * 2, DB_RETRY_MAX_DELAY)


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
        heartbeat_interval: float | None = None,
        row_interval: float = 1.0,
    ) -> None:
        from django.conf import settings

        self.job_id = job_id
        self.worker = worker
        self.poll_interval = poll_interval
        # Several beats fit in the reaper's staleness window, so one slow beat is not death.
        stale = float(settings.LLMWEB_HEARTBEAT_STALE_SECONDS)
        self.heartbeat_interval = heartbeat_interval or max(0.5, min(5.0, stale / 4))
        self.row_interval = row_interval
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._last_row = 0.0
        # Events are written by their own thread, in order, so a training step never waits
        # on the database or Redis (a GPU step can be shorter than one INSERT + publish).
        self._outbox: queue.Queue[tuple[str, dict[str, Any], bool] | None] = queue.Queue()
        self._writer = threading.Thread(
            target=self._write, name=f"job-{job_id}-events", daemon=True
        )
        self._thread = threading.Thread(
            target=self._beat, name=f"job-{job_id}-heartbeat", daemon=True
        )

    def __enter__(self) -> JobReporter:
        self._writer.start()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self._stop.set()
        self._thread.join(timeout=5)

    def flush(self) -> None:
        """Wait until every emitted event is persisted and published."""
        if self._writer.is_alive():
            self._outbox.put(None)
            self._writer.join()

    def _write(self) -> None:
        from django.db import connection

        from jobs import services

        _lower_priority()
        try:
            while (item := self._outbox.get()) is not None:
                kind, data, update_row = item
                try:
                    # The row update and the event are retried apart, so a retry after a
                    # dropped connection cannot append the same event twice.
                    if update_row:
                        db_retry(
                            lambda data=data: services.job_progress_update(
                                job_id=self.job_id, worker=self.worker, **data
                            ),
                            what=f"job {self.job_id} progress",
                        )
                    elif kind == "checkpoint":
                        step = int(data.get("step") or 0)
                        db_retry(
                            lambda step=step: services.job_checkpoint_update(
                                job_id=self.job_id, step=step
                            ),
                            what=f"job {self.job_id} checkpoint",
                        )
                    db_retry(
                        lambda kind=kind, data=data: services.job_event_append(
                            job_id=self.job_id, kind=kind, data=data, worker=self.worker
                        ),
                        what=f"job {self.job_id} {kind} event",
                    )
                except Exception:  # noqa: BLE001 - one lost event must not stop the stream
                    log.exception("job %s: could not record a %s event", self.job_id, kind)
        finally:
            connection.close()

    def _beat(self) -> None:
        from django.db import InterfaceError, OperationalError, connection

        from jobs import services

        last_beat = 0.0
        _lower_priority()
        try:
            while not self._stop.wait(self.poll_interval):
                now = time.monotonic()
                beat = now - last_beat >= self.heartbeat_interval
                try:
                    state = services.job_poll(
                        job_id=self.job_id, worker=self.worker, heartbeat=beat
                    )
                except (OperationalError, InterfaceError) as exc:
                    # The next poll tries again on a fresh connection: this thread must
                    # outlive a database restart, or the job would look dead to the reaper.
                    log.warning("job %s: heartbeat failed (%s)", self.job_id, exc)
                    connection.close()
                    continue
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
        update_row = False
        if kind == "progress":
            now = time.monotonic()
            # The row's progress columns are written at most every row_interval seconds.
            if now - self._last_row >= self.row_interval or data.get("step") == data.get("total"):
                self._last_row = now
                update_row = True
        self._outbox.put((kind, data, update_row))

    def should_stop(self) -> bool:
        return self._cancel.is_set() or self._lost.is_set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()


# Nice added to the reporter's threads: on a busy CPU the kernel runs the training thread
# first, and the event writer and heartbeat (light, I/O-bound) take what is left.
THREAD_NICE = 5


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: a thread is a task with its own
    nice value); elsewhere, or when not allowed, the thread keeps the process's."""
    import os

    try:
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + THREAD_NICE)
        )
    except (AttributeError, OSError):
        pass
