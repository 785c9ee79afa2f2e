"""A person evaluates two models from the New-job form, compares them, and drills into
the samples of one confusion-matrix cell, in headless Chromium against the real stack."""

from __future__ import annotations

import re

import pytest

from jobs.models import Job
from llmweb.evaluations.models import Evaluation
from tests.factories import classifier_model, ready_dataset, sms_rows
from tests.support import browser_login, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_evaluate_two_models_compare_them_and_filter_samples_by_a_cell(
    browser_page, live_server_proc, worker, alice, team
):
    page, base = browser_page, live_server_proc.url
    sms = ready_dataset(team, "classification", sms_rows(60), name="sms")
    small = classifier_model(team, ["ham", "spam"], name="small", seed=1, hidden=16)
    large = classifier_model(team, ["spam", "ham"], name="large", seed=2, hidden=64)
    browser_login(page, base, "alice")

    page.goto(base + "/jobs/new/?type=evaluate")
    page.select_option("#id_type", "evaluate")
    page.select_option("#id_models", [str(small.pk), str(large.pk)])
    page.select_option("#id_dataset", str(sms.pk))
    page.fill("#id_p_max_length", "32")
    page.click("#job-form details summary")  # the timing knobs are advanced parameters
    page.fill("#id_p_latency_runs", "3")
    page.fill("#id_p_threads", "1")
    page.click("#launch")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    job = wait_for(
        lambda: (j := Job.objects.get(pk=job_id)).status in ("succeeded", "failed") and j,
        timeout=180,
        what="the evaluate job",
    )
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])

    page.goto(f"{base}/compare/?models={small.pk},{large.pk}&dataset={sms.pk}")
    rows = page.locator("#compare-table tr.compare-row")
    assert rows.count() == 2
    assert "small" in rows.nth(0).inner_text() and "large" in rows.nth(1).inner_text()
    assert page.locator("#compare-table td.best").count() >= 2
    assert page.locator("#scatter circle.point").count() == 2
    assert page.locator("#scatter circle.pareto").count() >= 1
    page.screenshot(path=str(live_server_proc.log.with_name("browser-compare.png")))

    evaluation = Evaluation.objects.get(job=job, model=small)
    page.click(f"#compare-table tr[data-evaluation='{evaluation.pk}'] a")
    page.wait_for_selector("#confusion")
    cells = page.locator("#confusion a.cell")
    target = next(i for i in range(cells.count()) if int(cells.nth(i).inner_text()) > 0)
    cell = cells.nth(target)
    true, pred, count = (
        cell.get_attribute("data-true"),
        cell.get_attribute("data-pred"),
        int(cell.inner_text()),
    )
    cell.click()
    page.wait_for_selector("#samples-filter")
    samples = page.locator("#samples-table tr.sample")
    assert samples.count() == min(count, 25)
    for i in range(samples.count()):
        assert samples.nth(i).get_attribute("data-true") == true
        assert samples.nth(i).get_attribute("data-pred") == pred
    assert page.locator("#confusion td.active").count() == 1
    page.click("#clear-filter")
    page.wait_for_function("!document.getElementById('samples-filter')")
    assert page.locator("#samples-table tr.sample").count() == min(evaluation.num_samples, 25)
