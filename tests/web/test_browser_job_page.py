"""A finished job's page in headless Chromium: history replays without side effects."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent, JobStatus
from tests.factories import bundled_model, job_record
from tests.support import browser_login as login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _finished_job(team, user) -> Job:
    """A succeeded job with the history a real run leaves (statuses, progress, metrics)."""
    job = job_record(team=team, base_model=bundled_model(team), status=JobStatus.SUCCEEDED)
    Job.objects.filter(pk=job.pk).update(created_by=user, step=2, total_steps=2)
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


def test_metrics_table_uses_one_name_per_metric_and_rounds(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    job = _finished_job(team, alice)
    JobEvent.objects.filter(job=job, kind="metrics").update(
        data={"step": 2, "final": True, "split": "test", "eval_loss": 0.41234567}
    )
    JobEvent.objects.create(
        job=job, seq=7, kind="metrics", data={"step": 1, "split": "validation", "loss": 0.5}
    )
    login(page, base, "alice")
    page.goto(f"{base}/jobs/{job.pk}/")
    page.wait_for_function("document.querySelectorAll('#metrics tbody tr').length === 2")
    rows = page.eval_on_selector_all(
        "#metrics tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert rows == [["2", "test", "loss", "0.4123"], ["1", "validation", "loss", "0.5000"]]


def test_model_page_rounds_metrics_and_draws_per_class_tables(
    browser_page, live_server_proc, alice, team
):
    from llmweb.catalog.models import RegisteredModel

    page, base = browser_page, live_server_proc.url
    model = RegisteredModel.objects.create(
        team=team,
        name="spam-filter",
        source="job",
        status="ready",
        task="classification",
        metrics={
            "eval_loss": 0.31234567,
            "accuracy": 0.8698828946051447,
            "macro_f1": 0.75,
            "per_class_f1": {"ham": 0.9312345, "spam": 0.61},
            "confusion_matrix": [[50, 2], [5, 13]],
            "labels": ["ham", "spam"],
            "split": "test",
            "train_runtime": 39.123,
            "global_step": 60,
        },
    )
    login(page, base, "alice")
    page.goto(f"{base}/models/{model.pk}/")
    text = page.inner_text("#model-metrics")
    assert "0.8699" in text and "0.8698828946051447" not in text
    assert "eval_loss" not in text and "loss\t0.3123" in text
    assert "39.1 s" in text
    assert "{" not in page.inner_text("main")
    assert page.eval_on_selector_all(
        "#per-class tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    ) == [["ham", "0.9312"], ["spam", "0.6100"]]
    assert page.eval_on_selector_all(
        "#confusion tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    ) == [["ham", "50", "2"], ["spam", "5", "13"]]
