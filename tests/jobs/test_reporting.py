"""The worker-side reporter against the real database: heartbeats, cancel, a lost job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs import services
from jobs.models import Job, JobEvent
from jobs.reporting import JobReporter
from tests.factories import bundled_model, ready_dataset, sms_rows
from tests.support import submit_job, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
SLOW, FAST = "slow@host-a:1", "fast@host-b:2"


@pytest.fixture
def running(settings, api, alice, team) -> int:
    """A job claimed by the slow worker (nothing else will run it)."""
    settings.LLMWEB_TRAIN_QUEUE = "gpu-no-worker"
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    job_id = submit_job(api(alice), bundled_model(team), sms, max_steps=5)["id"]
    assert services.job_claim(job_id=job_id, worker=SLOW, device="cpu")
    return job_id


def _taken_over(job_id: int) -> None:
    """The reaper presumes the slow worker dead and another worker claims the job."""
    # A negative window: every heartbeat is stale, whatever the slow worker's beat thread did.
    assert services.job_requeue_stale(stale_after=timedelta(seconds=-60)) == [job_id]
    assert services.job_claim(job_id=job_id, worker=FAST, device="cpu")


def test_a_slow_worker_whose_job_was_taken_is_told_it_lost_it(running):
    with JobReporter(running, SLOW, poll_interval=0.1) as reporter:
        reporter.emit("progress", step=1, total=5, loss=1.0)
        reporter.flush()
        assert not reporter.should_stop()
        _taken_over(running)
        wait_for(reporter.should_stop, timeout=10, what="the slow worker to notice")
        assert reporter.lost
        reporter.emit("progress", step=4, total=5, loss=0.5)  # a late step of the slow worker
    job = Job.objects.get(pk=running)
    assert (job.status, job.worker, job.attempts) == ("running", FAST, 2)
    assert job.step != 4, "the lost worker's progress must not move the new attempt's row"
    assert services.job_poll(job_id=running, worker=SLOW, heartbeat=True) == "lost"
    assert services.job_poll(job_id=running, worker=FAST, heartbeat=True) == "run"


def test_a_lost_worker_adds_nothing_to_the_jobs_history(running):
    with JobReporter(running, SLOW, poll_interval=0.1) as reporter:
        _taken_over(running)
        wait_for(reporter.should_stop, timeout=10, what="the slow worker to notice")
        last = Job.objects.get(pk=running).last_seq
        reporter.emit("progress", step=4, total=5, loss=0.5)
    assert not JobEvent.objects.filter(job_id=running, seq__gt=last).exists()


def test_a_cancel_request_reaches_the_running_worker(running, api, alice):
    with JobReporter(running, SLOW, poll_interval=0.1) as reporter:
        r = api(alice).post(f"/api/v1/jobs/{running}/cancel/")
        assert r.status_code == 200 and r.json()["cancel_requested"]
        wait_for(reporter.should_stop, timeout=10, what="the worker to see the cancel")
        assert not reporter.lost
