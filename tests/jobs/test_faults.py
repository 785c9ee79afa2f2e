"""Faults against real processes while a job trains: Redis restarts, the database drops its
connections, the disk fills up. The job survives the first two and fails cleanly on the
third; nothing it wrote is lost, duplicated or left half-written."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from jobs.engine.callbacks import LOG_EVERY_STEP_UNTIL
from jobs.models import Job, JobEvent
from tests.factories import bundled_model, preset_model, ready_dataset, sms_rows
from tests.support import (
    FINISHED,
    JOB_TIMEOUT,
    LiveServer,
    Worker,
    broker_at,
    complete_checkpoints,
    database_files_size,
    database_outage,
    dedicated_redis,
    progress_steps,
    redis_stop,
    session_cookie,
    submit_job,
    wait_for,
    wait_job_status,
    ws_job_connect,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
QUEUE = "gpu-faulttest"
MiB = 1024 * 1024


def _submit(api, alice, team, **params) -> int:
    """A MiniLM classifier on SMS rows: real weights (~90 MB), slow steps."""
    sms = ready_dataset(team, "classification", sms_rows(100), name="sms")
    defaults = {"batch_size": 8, "max_length": 48}
    return submit_job(api(alice), bundled_model(team), sms, **{**defaults, **params})["id"]


def _submit_tiny(api, alice, team, **params) -> int:
    """A tiny GPT-2 on short lines: steps of milliseconds, so a run is cheap anywhere."""
    texts = [f"line {i}: the quick brown fox jumps over the lazy dog" for i in range(160)]
    model = preset_model(team, "gpt2", texts, name="tiny")
    data = ready_dataset(team, "causal-lm", [{"text": t} for t in texts], name="lines")
    defaults = {"batch_size": 4, "max_length": 24}
    return submit_job(api(alice), model, data, **{**defaults, **params})["id"]


def _step_reached(job_id: int, step: int) -> Job | None:
    job = Job.objects.get(pk=job_id)
    return job if job.step >= step else None


def _assert_dense_history(job: Job, steps: int) -> list[JobEvent]:
    events = list(JobEvent.objects.filter(job=job).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, job.last_seq + 1)), "no gap, no duplicate"
    logged = progress_steps(job.pk)
    # Every one of the first LOG_EVERY_STEP_UNTIL steps logs an event (the fault starts at
    # step 3, inside them), then the clock decides; the last step always logs.
    first = list(range(1, LOG_EVERY_STEP_UNTIL + 1))
    assert logged[: len(first)] == first and logged[-1] == steps, "every logged event kept"
    assert logged == sorted(set(logged)), "no step twice, in order"
    return events


async def _follow(live: LiveServer, cookie: str, job_id: int) -> tuple[list[dict], list[float]]:
    """What the page does (static/js/app.js ``stream``): read events; when the socket
    closes or cannot open, wait and reconnect with ``after`` = the last seq seen."""
    got: list[dict] = []
    opened: list[float] = []  # when each socket opened (monotonic)
    while True:
        after = got[-1]["seq"] if got else 0
        try:
            async with ws_job_connect(live, cookie, job_id, after=after) as ws:
                opened.append(time.monotonic())
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), JOB_TIMEOUT))
                    if msg["kind"] == "snapshot":
                        continue
                    got.append(msg)
                    if msg["kind"] == "status" and msg["data"]["status"] in FINISHED:
                        return got, opened
        except (ConnectionClosed, InvalidHandshake, OSError):
            await asyncio.sleep(0.5)


@pytest.mark.timeout(300)
def test_redis_restart_mid_job_loses_no_event_and_the_client_replays_the_gap(
    settings, client, api, alice, team
):
    settings.LLMWEB_TRAIN_QUEUE = QUEUE
    steps = 60  # long enough to outlast the fault's set-up on a loaded machine
    redis = [dedicated_redis()]
    url = redis[0].url
    worker = server = None
    outage: dict = {}
    try:
        with broker_at(url):
            worker = Worker(queues=QUEUE, env={"REDIS_URL": url}).wait_ready()
            server = LiveServer(env={"REDIS_URL": url})
            job_id = _submit_tiny(api, alice, team, max_steps=steps)
            cookie = session_cookie(client, alice)

            def restart() -> None:
                wait_for(lambda: _step_reached(job_id, 3), timeout=JOB_TIMEOUT, what="step 3")
                outage["seq_down"] = Job.objects.get(pk=job_id).last_seq
                down_at = time.monotonic()
                port = redis_stop(redis[0])
                wait_for(
                    lambda: Job.objects.get(pk=job_id).last_seq > outage["seq_down"] + 2,
                    timeout=60,
                    what="events recorded while Redis is down",
                )
                # Pacing, not part of the fault: the job must still be running when Redis
                # returns, however fast this machine trains a tiny model.
                worker.pause_pool()
                try:
                    wait_for(lambda: time.monotonic() - down_at >= 3, what="3 s of outage")
                    job = Job.objects.get(pk=job_id)
                    outage["seq_up"], outage["status_up"] = job.last_seq, job.status
                    redis[0] = dedicated_redis(port)
                    outage["up_at"] = time.monotonic()
                    outage["seconds"] = outage["up_at"] - down_at
                finally:
                    worker.resume_pool()

            async def scenario():
                reader = asyncio.ensure_future(_follow(server, cookie, job_id))
                await asyncio.to_thread(restart)
                return await reader

            seen, opened = asyncio.run(scenario())
            job = wait_job_status(job_id)
    finally:
        for part in (worker, server):
            if part:
                part.stop()
        redis[0].stop()

    assert outage["status_up"] == "running", "the job was still training when Redis came back"
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    assert job.attempts == 1, "the job went on in place; nothing was restarted"
    _assert_dense_history(job, steps)
    assert outage["seq_up"] > outage["seq_down"] + 2, "events were persisted while Redis was down"
    assert len(opened) >= 2, "the client lost its socket with Redis and reconnected"
    assert [m["seq"] for m in seen] == list(range(1, job.last_seq + 1)), (
        "the client got every event once, those from the outage included"
    )
    print(
        f"redis down {outage['seconds']:.1f}s; {outage['seq_up'] - outage['seq_down']} events "
        f"persisted meanwhile; client back {opened[-1] - outage['up_at']:.1f}s after Redis"
    )


@pytest.mark.timeout(300)
def test_database_outage_mid_job_delays_writes_and_loses_none(settings, api, alice, team):
    settings.LLMWEB_TRAIN_QUEUE = QUEUE
    steps = 60  # long enough to outlast the fault's set-up on a loaded machine
    # SQLite: a writer gives up on a held lock after 1 s (not 30), so the worker's writes
    # really fail during the outage and must be retried.
    worker = Worker(queues=QUEUE, env={"LLMWEB_SQLITE_TIMEOUT": "1"}).wait_ready()
    try:
        job_id = _submit_tiny(api, alice, team, max_steps=steps)
        wait_for(lambda: _step_reached(job_id, 3), timeout=JOB_TIMEOUT, what="step 3")
        started = time.monotonic()
        cut = database_outage(until=lambda: "database unavailable" in worker.output())
        lasted = time.monotonic() - started
        after = Job.objects.get(pk=job_id)
        # The heartbeat thread outlived the outage: it beats again within a few seconds.
        wait_for(
            lambda: (
                (j := Job.objects.get(pk=job_id)).heartbeat_at > after.heartbeat_at
                or j.status in FINISHED
            ),
            timeout=60,
            what="a heartbeat after the outage",
        )
        beat_again = time.monotonic() - started - lasted
        job = wait_job_status(job_id)
    finally:
        worker.stop()
    print(f"database out {lasted:.1f}s ({cut} cut); heartbeat {beat_again:.1f}s after it")
    assert cut >= 1 and lasted >= 3
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    assert job.attempts == 1 and job.step == steps
    _assert_dense_history(job, steps)


@pytest.mark.timeout(300)
def test_disk_full_at_a_checkpoint_fails_the_job_and_keeps_the_last_one(settings, api, alice, team):
    settings.LLMWEB_TRAIN_QUEUE = QUEUE
    worker = Worker(queues=QUEUE).wait_ready()
    try:
        job_id = _submit(api, alice, team, max_steps=60, save_steps=2, batch_size=4)
        job = wait_for(
            lambda: (j := Job.objects.get(pk=job_id)).checkpoint_step and j,
            timeout=JOB_TIMEOUT,
            interval=0.05,
            what="the first checkpoint",
        )
        first = f"checkpoint-{job.checkpoint_step}"
        assert complete_checkpoints(job.checkpoint_dir)[first]
        # Past the database files (they must still grow) and short of the model's weights
        # (MiniLM: ~90 MB), so the next checkpoint's first file is the one that fails.
        limit = max(32 * MiB, database_files_size() + 24 * MiB)
        assert worker.limit_file_size(limit) >= 2, "the worker and its pool child"
        capped_at = time.monotonic()
        job = wait_job_status(job_id)
        print(f"disk full: job failed {time.monotonic() - capped_at:.1f}s after the cap")
    finally:
        worker.stop()
    assert job.status == "failed", job.status
    assert job.error["code"] == "disk_full", job.error
    assert "disk is full" in job.error["message"]
    assert job.step < 60
    found = complete_checkpoints(job.checkpoint_dir)
    assert found and all(found.values()), f"no half-written checkpoint is left: {found}"
    assert first in found, "the checkpoint made before the disk filled is intact and loads"
