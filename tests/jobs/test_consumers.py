"""The job progress consumer in-process (Channels' communicator) on the real Redis layer.

Handshake refusals are checked by their close code, so a crash (which also refuses the
handshake) cannot pass for a refusal.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from jobs.models import Job
from jobs.publishing import job_group, publish
from llmweb.asgi import application
from tests.factories import bundled_model, job_history, ready_dataset, sms_rows
from tests.support import session_cookie, submit_job

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = b"http://localhost"


@pytest.fixture
def job(settings, api, alice, team) -> Job:
    settings.LLMWEB_TRAIN_QUEUE = "gpu-no-worker"  # the job stays queued: no worker reads this
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    body = submit_job(api(alice), bundled_model(team), sms, max_steps=1)
    return Job.objects.get(pk=body["id"])


def _communicator(job_id: int, cookie: str | None, *, after=0, origin: bytes = ORIGIN):
    headers = [(b"origin", origin)]
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/jobs/{job_id}/?after={after}", headers=headers)


async def _receive(comm, n: int) -> list[dict]:
    return [await comm.receive_json_from(timeout=20) for _ in range(n)]


def test_anonymous_is_refused_with_4401(job):
    async def scenario():
        return await _communicator(job.pk, None).connect()

    assert asyncio.run(scenario()) == (False, 4401)


def test_another_teams_member_is_refused_with_4404(job, client, charlie):
    cookie = session_cookie(client, charlie)

    async def scenario():
        return await _communicator(job.pk, cookie).connect()

    assert asyncio.run(scenario()) == (False, 4404)


def test_a_foreign_origin_is_refused_before_the_consumer_runs(job, client, alice):
    cookie = session_cookie(client, alice)

    async def scenario():
        foreign = await _communicator(job.pk, cookie, origin=b"http://evil.example").connect()
        own = _communicator(job.pk, cookie)
        ok = await own.connect()
        await own.disconnect()
        return foreign, ok

    (connected, _code), ok = asyncio.run(scenario())
    assert not connected
    assert ok == (True, None)  # the same person from the site's own origin gets in


def test_a_lost_publish_is_filled_from_the_database(job, client, alice):
    cookie = session_cookie(client, alice)
    start = job.last_seq

    async def scenario():
        comm = _communicator(job.pk, cookie)
        assert (await comm.connect())[0]
        snapshot, *history = await _receive(comm, 1 + start)
        # Three events are persisted; only the third is published (two publishes were lost).
        events = await database_sync_to_async(job_history)(job, 3)
        await sync_to_async(publish)(job_group(job.pk), events[-1].as_message())
        live = await _receive(comm, 3)
        nothing_more = await comm.receive_nothing(timeout=1)
        await comm.disconnect()
        return snapshot, history, live, nothing_more

    snapshot, history, live, nothing_more = asyncio.run(scenario())
    assert snapshot["kind"] == "snapshot" and [m["seq"] for m in history] == list(
        range(1, start + 1)
    )
    assert [m["seq"] for m in live] == [start + 1, start + 2, start + 3]
    assert [m["data"]["step"] for m in live] == [1, 2, 3]
    assert nothing_more, "each event is sent once"


def test_a_duplicate_publish_is_sent_once(job, client, alice):
    cookie = session_cookie(client, alice)
    start = job.last_seq

    async def scenario():
        comm = _communicator(job.pk, cookie, after=start)
        assert (await comm.connect())[0]
        await _receive(comm, 1)  # the snapshot
        (event,) = await database_sync_to_async(job_history)(job, 1)
        for _ in range(2):
            await sync_to_async(publish)(job_group(job.pk), event.as_message())
        got = await _receive(comm, 1)
        nothing_more = await comm.receive_nothing(timeout=1)
        await comm.disconnect()
        return got, nothing_more

    got, nothing_more = asyncio.run(scenario())
    assert [m["seq"] for m in got] == [start + 1] and nothing_more


def test_a_history_over_1000_events_is_replayed_whole_and_in_order(job, client, alice):
    cookie = session_cookie(client, alice)
    job_history(job, 2100)

    async def scenario():
        comm = _communicator(job.pk, cookie)
        assert (await comm.connect())[0]
        got = await _receive(comm, 1 + job.last_seq)
        nothing_more = await comm.receive_nothing(timeout=1)
        await comm.disconnect()
        return got, nothing_more

    got, nothing_more = asyncio.run(scenario())
    assert got[0]["kind"] == "snapshot"
    assert [m["seq"] for m in got[1:]] == list(range(1, job.last_seq + 1)) and nothing_more
