"""A person starts a fine-tune from the form and watches the loss chart grow."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.factories import bundled_model, ready_dataset, sms_rows
from tests.support import browser_login, wait_job_status

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.mark.timeout(420)
def test_start_job_from_form_and_watch_chart_grow(
    browser_page, live_server_proc, worker, alice, team
):
    page, base = browser_page, live_server_proc.url
    sms = ready_dataset(team, "classification", sms_rows(96), name="sms")
    model = bundled_model(team)
    page.add_init_script(
        """window.__chartCounts = [];
        setInterval(() => {
          const n = window.jobCharts?.loss?.data?.datasets?.[0]?.data?.length;
          const seen = window.__chartCounts;
          if (n !== undefined && n !== seen[seen.length - 1]) seen.push(n);
        }, 50);"""
    )
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

    # Every 50 ms the page notes how many loss points the chart has: a fast job may finish
    # before the page opens (the chart then fills from history at once), a slow one grows.
    points = "() => window.jobCharts.loss.data.datasets[0].data.length"
    # The session's one worker may still be busy with an earlier test's upload: wait for the
    # job itself, with the same budget as every job wait.
    assert wait_job_status(job_id).status == "succeeded"
    page.wait_for_selector("#status.succeeded", timeout=30_000)
    page.wait_for_function(f"({points})() === 8", timeout=20_000)
    seen = page.evaluate("() => window.__chartCounts")
    assert seen == sorted(seen) and seen[-1] == 8, seen  # it only ever grows, to 8
    page.screenshot(path=str(live_server_proc.log.with_name("browser-job.png")), full_page=True)
    page.wait_for_selector("#result-link", timeout=20_000)
