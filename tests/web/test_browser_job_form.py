"""The job form and page say what is going on: errors beside their field, phases by name."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent, JobStatus
from tests.factories import bundled_model, job_record, ready_dataset, sms_rows
from tests.support import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_refused_submission_keeps_the_picks_and_names_the_problem_once(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    sms = ready_dataset(team, "classification", sms_rows(20), name="sms")
    browser_login(page, base, "alice")
    page.goto(base + "/jobs/new/")
    page.select_option("#id_base_model", str(bundled_model(team).pk))
    page.select_option("#id_dataset", str(sms.pk))
    page.fill("#id_p_learning_rate", "0")  # the server refuses it (must be above 0)
    page.click("#launch")
    page.wait_for_selector(".errorlist")
    errors = page.inner_text(".errorlist")
    assert "must be greater than 0" in errors
    assert "learning_rate" not in errors  # beside its field, the name is not repeated
    # The picks survive the round trip, and the estimate panel says what to fix.
    assert page.input_value("#id_dataset") == str(sms.pk)
    page.wait_for_function("document.getElementById('estimate-error').textContent !== ''")
    assert "Pick a model" not in page.inner_text("#estimate-panel")
    assert "(learning_rate)" not in page.inner_text("#estimate-error")
    assert not Job.objects.exists()


def test_after_the_training_loop_the_page_names_the_phase(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    job = job_record(team=team, base_model=bundled_model(team), status=JobStatus.RUNNING)
    events = [
        ("status", {"status": "running", "attempts": 1, "device": "cpu"}),
        ("progress", {"step": 2, "total": 2, "loss": 0.5, "eta_seconds": 0.0}),
        ("phase", {"name": "final evaluation", "done": 1, "total": 3}),
    ]
    for seq, (kind, data) in enumerate(events, start=1):
        JobEvent.objects.create(job=job, seq=seq, kind=kind, data=data)
    Job.objects.filter(pk=job.pk).update(last_seq=len(events), created_by=alice)
    browser_login(page, base, "alice")
    page.goto(f"{base}/jobs/{job.pk}/")
    page.wait_for_function("document.getElementById('eta').textContent.includes('evaluation')")
    assert page.inner_text("#eta") == "final evaluation 1/3"
    assert "0 s left" not in page.inner_text("#eta")


def test_the_slice_column_select_offers_the_chosen_datasets_extra_columns(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    by_domain = ready_dataset(team, "classification", sms_rows(20), name="by-domain")
    by_source = ready_dataset(team, "classification", sms_rows(20), name="by-source")
    for ds, column in ((by_domain, "domain"), (by_source, "source_site")):
        ds.stats = {"extra_columns": [{"name": column, "distinct": 2, "many_values": False}]}
        ds.save()
    browser_login(page, base, "alice")
    page.goto(base + "/jobs/new/")
    page.select_option("#id_type", "evaluate")
    page.click("#job-form details summary")  # slice_column is an advanced parameter
    options = "[...document.querySelectorAll('#id_p_slice_column option')].map(o => o.value)"
    assert page.evaluate(options) == [""]
    page.select_option("#id_dataset", str(by_domain.pk))
    assert page.evaluate(options) == ["", "domain"]
    page.select_option("#id_p_slice_column", "domain")
    page.select_option("#id_dataset", str(by_source.pk))
    assert page.evaluate(options) == ["", "source_site"]
    assert page.input_value("#id_p_slice_column") == ""  # not a column of this dataset


def test_the_time_budget_is_offered_beside_epochs_and_steps_and_sets_the_estimate(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    browser_login(page, base, "alice")
    page.goto(base + "/jobs/new/")
    budget = page.locator("label[for=id_p_max_minutes]")
    for kind, shown in (("distill", True), ("evaluate", False), ("finetune", True)):
        page.select_option("[data-kind-select]", kind)
        assert budget.is_visible() is shown, kind
    assert budget.inner_text().startswith("time budget (minutes)")

    # A 2-minute budget is what the estimate then says the job takes, on either device.
    page.select_option("#id_base_model", str(bundled_model(team).pk))
    page.select_option("#id_dataset", str(sms.pk))
    page.fill("#id_p_max_minutes", "2")
    page.wait_for_function("document.getElementById('estimate').textContent.includes('2 min')")
    assert "~2 min on CPU, ~2 min on a GPU" in page.inner_text("#estimate")

    # With max_steps as well, the server names the budget as the field to fix.
    page.fill("#id_p_max_steps", "10")
    page.click("#launch")
    page.wait_for_selector(".errorlist")
    assert "set one of them" in page.inner_text(".errorlist")
    assert not Job.objects.exists()
