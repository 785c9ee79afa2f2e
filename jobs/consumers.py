"""Websocket consumers. Access is checked in ``connect``; anonymous users are refused."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from jobs import selectors
from jobs.publishing import job_group


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
