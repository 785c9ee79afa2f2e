"""Live progress over a real websocket from a real ASGI server, fed by a real worker."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.factories import bundled_model, ready_dataset, sms_rows
from tests.support import (
    FINISHED,
    JOB_TIMEOUT,
    Worker,
    session_cookie,
    submit_job,
    wait_job_status,
    ws_job_connect,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
QUEUE = "gpu-streamtest"


async def _recv(ws, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def _finished(msg: dict) -> bool:
    return msg["kind"] == "status" and msg["data"]["status"] in FINISHED


def test_websocket_streams_steps_live_in_order_and_replays_history(
    settings, live_server_proc, client, api, alice, team
):
    # A queue of its own: the job cannot start until this test starts a worker for it, after
    # the socket is open and the history is read. So every later event can only come live.
    settings.LLMWEB_TRAIN_QUEUE = QUEUE
    sms = ready_dataset(team, "classification", sms_rows(96), name="sms")
    job_id = submit_job(
        api(alice), bundled_model(team), sms, max_steps=8, batch_size=8, max_length=48
    )["id"]
    cookie = session_cookie(client, alice)
    workers: list[Worker] = []

    async def watch():
        async with ws_job_connect(live_server_proc, cookie, job_id) as ws:
            snapshot = await _recv(ws)
            history = [await _recv(ws) for _ in range(snapshot["data"]["last_seq"])]
            assert snapshot["data"]["status"] == "queued"
            workers.append(await asyncio.to_thread(lambda: Worker(queues=QUEUE).wait_ready()))
            live = []
            while not live or not _finished(live[-1]):
                live.append(await _recv(ws, JOB_TIMEOUT))
            return snapshot, history, live

    try:
        snapshot, history, live = asyncio.run(watch())
    finally:
        for w in workers:
            w.stop()
    assert snapshot["kind"] == "snapshot"
    seqs = [m["seq"] for m in history + live]
    assert seqs == list(range(1, len(seqs) + 1)), "events arrive once each, in order, with no gap"
    # Every training event came over the live path, while the job was running.
    assert [m["data"]["step"] for m in live if m["kind"] == "progress"] == list(range(1, 9))
    assert not [m for m in history if m["kind"] == "progress"]
    statuses = [m["data"]["status"] for m in live if m["kind"] == "status"]
    assert statuses == ["running", "succeeded"]
    assert all(
        "loss" in m["data"] and "learning_rate" in m["data"]
        for m in live
        if m["kind"] == "progress"
    )
    job = wait_job_status(job_id)
    assert job.status == "succeeded" and job.last_seq == seqs[-1]

    # A reconnecting client that saw up to seq 5 gets exactly the rest from history.
    async def replay():
        async with ws_job_connect(live_server_proc, cookie, job_id, after=5) as ws:
            out = [await _recv(ws)]
            while out[-1]["seq"] != seqs[-1]:
                out.append(await _recv(ws))
            return out

    again = asyncio.run(replay())
    assert again[0]["kind"] == "snapshot"
    assert [m["seq"] for m in again[1:]] == list(range(6, seqs[-1] + 1))


def _close_code(live, cookie, job_id, **kw) -> int:
    async def attempt():
        async with ws_job_connect(live, cookie, job_id, **kw) as ws:
            await ws.recv()
            await ws.recv()

    with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
        asyncio.run(attempt())
    return info.value.rcvd.code


def test_refused_sockets_close_with_the_reason_not_an_error(
    settings, live_server_proc, client, api, alice, team, charlie
):
    settings.LLMWEB_TRAIN_QUEUE = "gpu-no-worker"
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    job_id = submit_job(api(alice), bundled_model(team), sms, max_steps=1)["id"]
    # Denials are close codes (docs/ARCHITECTURE.md): 4401 who are you, 4403 not from here,
    # 4404 no such job for you. A crash would be 1011.
    assert _close_code(live_server_proc, session_cookie(client, charlie), job_id) == 4404
    assert _close_code(live_server_proc, None, job_id) == 4401
    mine = session_cookie(client, alice)
    assert _close_code(live_server_proc, mine, job_id, origin="http://evil.example") == 4403
    assert _close_code(live_server_proc, mine, 10**9) == 4404  # no such job

    async def allowed():
        async with ws_job_connect(live_server_proc, mine, job_id) as ws:
            return await _recv(ws)

    assert asyncio.run(allowed())["data"]["id"] == job_id
