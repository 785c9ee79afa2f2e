"""SIGKILL the worker mid-job: a new worker resumes the job from its last checkpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobEvent
from tests.factories import bundled_model, ready_dataset, sms_rows
from tests.support import JOB_TIMEOUT, Worker, wait_for, wait_job_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
QUEUE = "gpu-killtest"
STEPS = 16


@pytest.mark.timeout(600)  # two workers start, one job trains twice over, on a shared CPU
def test_killed_worker_job_resumes_from_checkpoint_on_a_new_worker(
    settings, api, alice, team, django_db_blocker
):
    # A queue of its own, so only the workers started here can take the job.
    settings.LLMWEB_TRAIN_QUEUE = QUEUE
    # The reaper looks every second, with a staleness window far longer than any lock wait
    # on a loaded SQLite, so the new worker's own heartbeats can never look stale.
    reaper = {"LLMWEB_HEARTBEAT_STALE_SECONDS": "120", "LLMWEB_REAPER_INTERVAL_SECONDS": "1"}
    first = Worker(queues=QUEUE).wait_ready()
    second = None
    try:
        sms = ready_dataset(team, "classification", sms_rows(200), name="sms")
        r = api(alice).post(
            "/api/v1/jobs/",
            {
                "base_model": bundled_model(team).id,
                "dataset": sms.id,
                "params": {"max_steps": STEPS, "batch_size": 8, "max_length": 48, "save_steps": 4},
            },
            format="json",
        )
        job_id = r.json()["id"]
        wait_for(
            lambda: (
                (j := Job.objects.get(pk=job_id)).checkpoint_step and j.step > j.checkpoint_step
            ),
            timeout=JOB_TIMEOUT,
            interval=0.05,
            what="a checkpoint and a step past it",
        )
        first.kill()
        killed = Job.objects.get(pk=job_id)
        assert killed.status == "running" and killed.step < STEPS
        ckpt = killed.checkpoint_step
        # The dead worker's last heartbeat, made as old as a dead worker's gets. Waiting out
        # a real window instead would be a race against the clock on a loaded machine.
        Job.objects.filter(pk=job_id, worker=killed.worker).update(
            heartbeat_at=timezone.now() - timedelta(hours=1)
        )

        # A fresh worker with beat: its reaper sees the stale heartbeat and queues the job again.
        second = Worker(queues=f"{QUEUE},default", beat=True, env=reaper).wait_ready()
        job = wait_job_status(job_id, timeout=2 * JOB_TIMEOUT)
        assert job.status == "succeeded", (job.error, second.output()[-3000:])
        assert job.attempts == 2 and job.step == STEPS and job.worker != killed.worker
        requeued = JobEvent.objects.filter(
            job=job, kind="log", data__message__startswith="worker lost"
        )
        assert requeued.count() == 1, "the reaper queued the job again once, for the dead worker"

        events = list(JobEvent.objects.filter(job=job).order_by("seq"))
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        resumed = [e for e in events if e.kind == "resumed"][-1]
        assert resumed.data["from_step"] >= ckpt
        after = [e.data["step"] for e in events if e.kind == "progress" and e.seq > resumed.seq]
        assert after == list(range(resumed.data["from_step"] + 1, STEPS + 1)), (
            "no gaps after the checkpoint"
        )
        before = [e.data["step"] for e in events if e.kind == "progress" and e.seq < resumed.seq]
        assert before[:ckpt] == list(range(1, ckpt + 1)), "events before the checkpoint are kept"
        assert (job.result_model.artifact_dir / "model.safetensors").exists()
    finally:
        first.stop()
        if second:
            second.stop()
