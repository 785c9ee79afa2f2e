"""The only caller of the channel layer's send side: job events and playground replies.

Job events go to the DB first, then to group ``job.<id>`` (``publish``); a playground
request's tokens go to its reply channel (``ReplyStream``, ``send_reply``).

Persist-then-publish means a client that joins the group and then reads history can miss
nothing: every event it sees live is already in the table. This module sits below the
services (they publish after commit); the worker-side reporter is ``jobs.reporting``.
"""

from __future__ import annotations

import asyncio
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


# --------------------------------------------------------------------------- replies
# Interactive generation answers one requester, not a group: the worker sends to the
# reply channel the request carried. A streamed reply goes through one event loop per
# worker process (the channel layer keeps Redis connections per loop; a loop per token
# would open a connection per token), batched: whatever tokens were decoded while the
# previous send was in flight go out as one message.

REPLY_TYPE = "playground.events"
HEARTBEAT_SECONDS = 1.0


def send_reply(channel: str, message: dict[str, Any]) -> bool:
    """Send one message to one channel (best effort); False when it could not be sent."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.send)(channel, message)
    except Exception:  # noqa: BLE001
        log.warning("could not reply to %s", channel, exc_info=True)
        return False
    return True


def cancel_channel(request_id: str) -> str:
    """The channel a Stop for ``request_id`` goes to; the worker serving it listens there."""
    return f"playground.cancel.{request_id}"


class _Bridge:
    """One asyncio loop in a daemon thread: the worker's only user of the channel layer."""

    _lock = threading.Lock()
    _instance: _Bridge | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="reply-bridge", daemon=True).start()

    @classmethod
    def get(cls) -> _Bridge:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


class ReplyStream:
    """The worker's side of a streamed reply: ordered, batched, with heartbeats and Stop.

    ``send`` never blocks the decoding thread. While no event is pending a heartbeat goes
    out every ``HEARTBEAT_SECONDS``, so the requester can tell a busy worker (loading a
    model) from a dead one. Any message on ``cancel_channel`` sets ``cancelled``, which
    the decoding loop reads before each step; so does a reply channel that is full
    (nobody is reading it any more).
    """

    def __init__(self, reply_channel: str, cancel_channel: str) -> None:
        self.reply_channel = reply_channel
        self.cancel_channel = cancel_channel
        self.cancelled = threading.Event()
        self.cancel_received_at: float | None = None  # wall clock, for the Stop benchmark
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._bridge = _Bridge.get()
        self._done = asyncio.run_coroutine_threadsafe(self._pump(), self._bridge.loop)

    def send(self, event: dict[str, Any]) -> None:
        self._bridge.loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued, then stop listening for Stop."""
        self._bridge.loop.call_soon_threadsafe(self._queue.put_nowait, None)
        try:
            self._done.result(timeout)
        except Exception:  # noqa: BLE001 - the requester is gone; nothing more to do
            log.warning("reply stream to %s ended badly", self.reply_channel, exc_info=True)

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _pump(self) -> None:
        from channels.exceptions import ChannelFull

        layer = get_channel_layer()
        listener = asyncio.ensure_future(self._listen(layer))
        try:
            finished = False
            while not finished:
                try:
                    first = await asyncio.wait_for(self._queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    first = {"type": "heartbeat"}
                batch = [first]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                finished = None in batch
                events = [e for e in batch if e is not None]
                if events:
                    await layer.send(self.reply_channel, {"type": REPLY_TYPE, "events": events})
        except ChannelFull:
            log.warning("reply channel %s is full: nobody reads it; stopping", self.reply_channel)
            self.cancelled.set()
        except Exception:  # noqa: BLE001 - Redis went away: nobody can read what we make
            log.warning("reply to %s failed; stopping", self.reply_channel, exc_info=True)
            self.cancelled.set()
        finally:
            listener.cancel()

    async def _listen(self, layer: Any) -> None:
        await layer.receive(self.cancel_channel)
        self.cancel_received_at = time.time()
        self.cancelled.set()
