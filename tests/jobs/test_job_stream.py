"""Live progress over a real websocket from a real ASGI server, fed by a real worker."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.conf import settings

from tests.jobs.factories import bundled_model, ready_dataset, sms_rows
from tests.jobs.test_job_lifecycle import wait_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _ws(live, client, user, job_id, after=0):
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    url = live.url.replace("http", "ws") + f"/ws/jobs/{job_id}/?after={after}"
    return websockets.connect(
        url, additional_headers={"Cookie": f"sessionid={cookie}", "Origin": live.url}
    )


async def _collect(conn, until, timeout=120.0):
    out = []
    async with conn as ws:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            out.append(msg)
            if until(msg, out):
                return out


def test_websocket_streams_steps_in_order_and_replays_history(
    worker, live_server_proc, client, api, alice, team, charlie
):
    sms = ready_dataset(team, "classification", sms_rows(96), name="sms")
    r = api(alice).post(
        "/api/v1/jobs/",
        {
            "base_model": bundled_model(team).id,
            "dataset": sms.id,
            "params": {"max_steps": 8, "batch_size": 8, "max_length": 48},
        },
        format="json",
    )
    job_id = r.json()["id"]

    def done(msg, _):
        return msg["kind"] == "status" and msg["data"]["status"] in (
            "succeeded",
            "failed",
            "cancelled",
        )

    live = asyncio.run(_collect(_ws(live_server_proc, client, alice, job_id), done))
    assert live[0]["kind"] == "snapshot"
    seqs = [m["seq"] for m in live[1:]]
    assert seqs == list(range(1, len(seqs) + 1)), "events arrive once each, in order, with no gap"
    steps = [m["data"]["step"] for m in live if m["kind"] == "progress"]
    assert steps == list(range(1, 9))
    assert all(
        "loss" in m["data"] and "learning_rate" in m["data"]
        for m in live
        if m["kind"] == "progress"
    )
    assert live[-1]["data"]["status"] == "succeeded"
    wait_status(job_id)

    # A reconnecting client that saw up to seq 5 gets exactly the rest from history.
    total = seqs[-1]
    replay = asyncio.run(
        _collect(
            _ws(live_server_proc, client, alice, job_id, after=5), lambda m, out: m["seq"] == total
        )
    )
    assert [m["seq"] for m in replay[1:]] == list(range(6, total + 1))

    # Another team's member is refused with close code 4404 (no such job for them).
    with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
        asyncio.run(_collect(_ws(live_server_proc, client, charlie, job_id), lambda m, o: True))
    assert info.value.rcvd.code == 4404
