"""Websocket consumers. Access is checked in ``connect``; anonymous users are refused."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http import Http404

from jobs import playground, selectors
from jobs.publishing import job_group
from llmweb.core.errors import DomainError


class HelloConsumer(AsyncJsonWebsocketConsumer):
    """Proves the socket is authenticated: greets the session user, echoes what it gets."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.accept()
        await self.send_json({"type": "hello", "user": user.username})

    async def receive_json(self, content, **kwargs):
        await self.send_json({"type": "echo", "data": content})


def _after(scope) -> int:
    try:
        return max(0, int(parse_qs(scope.get("query_string", b"").decode()).get("after", ["0"])[0]))
    except ValueError:
        return 0


class JobProgressConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/jobs/<id>/?after=SEQ``: history after SEQ from the database, then live events.

    The group is joined before history is read; the worker persists an event before it
    publishes it; so every event is either in the history or arrives live, and ``seq``
    de-duplicates the overlap.
    """

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        try:
            self.job = await database_sync_to_async(selectors.job_get_for_user)(
                user=user, job_id=job_id
            )
        except Http404:
            await self.close(code=4404)
            return
        self.group = job_group(self.job.pk)
        self.last_sent = _after(self.scope)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"seq": 0, "kind": "snapshot", "data": _snapshot(self.job)})
        while True:
            events = await database_sync_to_async(selectors.job_events_after)(
                job=self.job, after=self.last_sent
            )
            for event in events:
                await self.send_json(event.as_message())
                self.last_sent = event.seq
            if len(events) < 1000:
                break

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def stream_event(self, message):
        event = message["event"]
        if event["seq"] <= self.last_sent:
            return
        if event["seq"] > self.last_sent + 1:
            # A gap (a publish was lost): fill it from the database, which has everything.
            for missed in await database_sync_to_async(selectors.job_events_after)(
                job=self.job, after=self.last_sent
            ):
                if missed.seq >= event["seq"]:
                    break
                await self.send_json(missed.as_message())
                self.last_sent = missed.seq
        await self.send_json(event)
        self.last_sent = event["seq"]


def _snapshot(job) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "step": job.step,
        "total_steps": job.total_steps,
        "epoch": job.epoch,
        "device": job.device,
        "last_seq": job.last_seq,
    }


class PlaygroundConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/playground/``: interactive generation, several streams per socket (compare).

    Client → server: ``{"type": "generate", "id", "model", "mode", "prompt" | "messages",
    "params"}`` and ``{"type": "stop", "id"}`` (no id: stop all). Server → client: the
    worker's events (``queued``, ``started``, ``model``, ``token``, ``text``, ``done``,
    ``error``), each with the request's ``id``. Model access is checked per request
    through the catalog selectors (team scoping); the socket itself needs a session.
    """

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user = user
        self.streams: dict[str, asyncio.Task] = {}
        self.request_ids: dict[str, str] = {}
        await self.accept()
        await self.send_json(
            {"type": "hello", "max_streams": settings.LLMWEB_PLAYGROUND_MAX_STREAMS}
        )

    async def disconnect(self, code):
        # A closed socket cancels every generation it started (the stream's finally
        # sends the worker a Stop).
        for task in list(getattr(self, "streams", {}).values()):
            task.cancel()

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "generate":
            await self._generate(content)
        elif kind == "stop":
            await self._stop(content.get("id"))
        else:
            await self.send_json(
                {"type": "error", "code": "invalid", "message": f"Unknown type {kind!r}."}
            )

    async def _generate(self, content: dict[str, Any]) -> None:
        # The client's id labels events on this socket; the worker gets a fresh id, so one
        # client cannot guess (and Stop) another's request.
        rid = str(content.get("id") or uuid.uuid4().hex)[:64]
        if rid in self.streams:
            await self._refuse(rid, "invalid", "A request with this id is running.")
            return
        if len(self.streams) >= settings.LLMWEB_PLAYGROUND_MAX_STREAMS:
            await self._refuse(rid, "too_many", "Too many generations at once on this page.")
            return
        try:
            message = await database_sync_to_async(playground.playground_request)(
                user=self.user, data=content
            )
        except DomainError as e:
            await self._refuse(rid, e.code, e.message, param=e.param)
            return
        self.request_ids[rid] = message["request_id"]
        self.streams[rid] = asyncio.create_task(self._forward(rid, message))

    async def _refuse(self, rid: str, code: str, message: str, param: str | None = None):
        await self.send_json(
            {"type": "error", "id": rid, "code": code, "message": message, "param": param}
        )

    async def _forward(self, rid: str, message: dict[str, Any]) -> None:
        try:
            async with contextlib.aclosing(playground.playground_stream(message)) as events:
                async for event in events:
                    await self.send_json({**event, "id": rid})
        finally:
            self.streams.pop(rid, None)
            self.request_ids.pop(rid, None)

    async def _stop(self, rid: str | None) -> None:
        # Stop asks the worker and keeps relaying: its ``done`` (cancelled, with the count
        # of tokens it made) ends the stream, or the stall timeout says it died.
        for key in [rid] if rid else list(self.streams):
            if key in self.request_ids:
                await playground.playground_cancel(self.request_ids[key])
