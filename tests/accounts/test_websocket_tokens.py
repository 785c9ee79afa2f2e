"""Scripts watch a job over a real websocket with `Authorization: Bearer`, scoped like pages."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from jobs.models import Job, JobEvent, JobStatus
from llmweb.accounts import services
from tests.factories import bundled_model, job_record

pytestmark = pytest.mark.django_db(transaction=True)


def _finished_job(team) -> Job:
    job = job_record(team=team, base_model=bundled_model(team), status=JobStatus.SUCCEEDED)
    for seq, status in enumerate(("queued", "running", "succeeded"), start=1):
        JobEvent.objects.create(job=job, seq=seq, kind="status", data={"status": status})
    Job.objects.filter(pk=job.pk).update(last_seq=3)
    return job


def _watch(url: str, headers: dict[str, str], n: int) -> list[dict]:
    async def run() -> list[dict]:
        async with websockets.connect(url, additional_headers=headers) as ws:
            return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]

    return asyncio.run(run())


def _refused(url: str, headers: dict[str, str]) -> int:
    """The close code of a denied socket (docs: 4401 who, 4403 origin, 4404 not yours)."""
    from websockets.exceptions import ConnectionClosed

    with pytest.raises(ConnectionClosed) as info:
        _watch(url, headers, 1)
    return info.value.rcvd.code


def test_a_script_with_a_bearer_token_watches_its_teams_job(live_server_proc, alice, bob, team):
    job = _finished_job(team)
    _, secret = services.api_token_create(user=bob, name="script")
    url = live_server_proc.url.replace("http", "ws") + f"/ws/jobs/{job.pk}/"
    # No Origin header, as a script sends none: the token alone authenticates.
    events = _watch(url, {"Authorization": f"Bearer {secret}"}, 4)
    assert events[0]["kind"] == "snapshot" and events[0]["data"]["status"] == "succeeded"
    assert [e["data"]["status"] for e in events[1:]] == ["queued", "running", "succeeded"]


def test_tokens_get_the_same_scoping_and_nothing_else(live_server_proc, alice, team, charlie):
    job = _finished_job(team)
    _, charlies = services.api_token_create(user=charlie, name="nosy")
    _, alices = services.api_token_create(user=alice, name="mine")
    url = live_server_proc.url.replace("http", "ws") + f"/ws/jobs/{job.pk}/"
    assert _refused(url, {"Authorization": f"Bearer {charlies}"}) == 4404  # not her team
    assert _refused(url, {"Authorization": "Bearer llmw_not-a-real-token"}) == 4401
    # A token in the query string is ignored (query strings end up in logs): without a
    # header this is neither a script nor a page of ours.
    assert _refused(f"{url}?token={alices}", {}) == 4403
    assert _refused(f"{url}?access_token={alices}", {}) == 4403
    assert _watch(url, {"Authorization": f"Bearer {alices}"}, 1)[0]["kind"] == "snapshot"
    services.api_token_revoke(token=alice.api_tokens.get())
    assert _refused(url, {"Authorization": f"Bearer {alices}"}) == 4401  # revoked
