"""A finished job's page in headless Chromium: history replays without side effects."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent, JobStatus
from tests.jobs.factories import bundled_model
from tests.web.conftest import login, needs_chromium

pytestmark = [pytest.mark.browser, needs_chromium, pytest.mark.django_db(transaction=True)]


def _finished_job(team, user) -> Job:
    """A succeeded job with the history a real run leaves (statuses, progress, metrics)."""
    job = Job.objects.create(
        team=team,
        created_by=user,
        type="finetune",
        base_model=bundled_model(team),
        status=JobStatus.SUCCEEDED,
        step=2,
        total_steps=2,
    )
    events = [
        ("status", {"status": "queued"}),
        ("status", {"status": "running", "attempts": 1, "device": "cpu"}),
        ("progress", {"step": 1, "total": 2, "loss": 0.9, "learning_rate": 1e-4}),
        ("progress", {"step": 2, "total": 2, "loss": 0.5, "learning_rate": 5e-5}),
        ("metrics", {"step": 2, "final": True, "eval_loss": 0.41, "eval_accuracy": 0.875}),
        ("status", {"status": "succeeded"}),
    ]
    for seq, (kind, data) in enumerate(events, start=1):
        JobEvent.objects.create(job=job, seq=seq, kind=kind, data=data)
    Job.objects.filter(pk=job.pk).update(last_seq=len(events))
    return job


def test_finished_job_page_stays_still_with_one_websocket(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    job = _finished_job(team, alice)
    login(page, base, "alice")
    sockets: list[str] = []
    loads: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("load", lambda: loads.append(page.url))
    page.goto(f"{base}/jobs/{job.pk}/")
    # The replayed history is drawn...
    page.wait_for_function("() => window.jobCharts.loss.data.datasets[0].data.length === 2")
    page.wait_for_timeout(10_000)
    # ...and nothing reloads: one page load, one socket, in ten seconds.
    assert len(loads) == 1, loads
    assert len(sockets) == 1, sockets
    assert page.inner_text("#status") == "succeeded"
    assert "[status] succeeded" in page.inner_text("#log")
