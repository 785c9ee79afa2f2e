"""A person starts a fine-tune from the form and watches the loss chart grow."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.factories import bundled_model, ready_dataset, sms_rows
from tests.support import browser_login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_start_job_from_form_and_watch_chart_grow(
    browser_page, live_server_proc, worker, alice, team
):
    page, base = browser_page, live_server_proc.url
    sms = ready_dataset(team, "classification", sms_rows(96), name="sms")
    model = bundled_model(team)
    browser_login(page, base, "alice")
    page.goto(base + "/jobs/new/")
    page.select_option("#id_base_model", str(model.id))
    page.select_option("#id_dataset", str(sms.id))
    page.fill("#id_p_max_steps", "8")
    page.fill("#id_p_batch_size", "8")
    page.fill("#id_p_max_length", "32")
    # The pre-flight estimate appears before launch.
    page.wait_for_function(
        "() => /Optimizer steps\\s+8\\b/.test(document.querySelector('#estimate').innerText)"
    )
    page.click("#launch")
    page.wait_for_url(f"{base}/jobs/*/")
    job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert Job.objects.get(pk=job_id).params["max_steps"] == 8

    points = "() => window.jobCharts.loss.data.datasets[0].data.length"
    page.wait_for_function(f"({points})() >= 2", timeout=120_000)
    first = page.evaluate(points)
    page.wait_for_function(f"({points})() >= {first + 2}", timeout=120_000)
    page.wait_for_selector("#status.succeeded", timeout=120_000)
    page.screenshot(path=str(live_server_proc.log.with_name("browser-job.png")), full_page=True)
    assert page.evaluate(points) == 8
    page.wait_for_selector("#result-link", timeout=20_000)
