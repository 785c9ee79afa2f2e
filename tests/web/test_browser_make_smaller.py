"""In headless Chromium: "Make it smaller" on a model page -> the New-job form, prefilled ->
the job runs on the real worker -> the new model's page shows the report's ratios."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_user, ready_dataset, sms_rows, tiny_classifier
from tests.support import browser_login

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True)
def test_make_it_smaller_leads_to_a_report_with_the_ratios(browser_page, live_server_proc, worker):
    from llmweb.accounts.services import user_signup_setup

    page = browser_page
    user = make_user("grace")
    team = user_signup_setup(user=user)
    rows = sms_rows(60)
    source = tiny_classifier(team, [r["text"] for r in rows], ["ham", "spam"], name="spam-clf")
    source.dataset = ready_dataset(team, "classification", rows, name="sms")
    source.save()
    base = live_server_proc.url
    browser_login(page, base, "grace")

    page.goto(f"{base}/models/{source.pk}/")
    page.click("#make-smaller a[data-kind=compress] button")
    page.wait_for_url(re.compile(r".*/jobs/new/\?type=compress.*"))
    assert page.input_value("select[name=type]") == "compress"
    assert page.input_value("select[name=source_model]") == str(source.pk)
    assert page.input_value("select[name=eval_dataset]") == str(source.dataset_id)
    page.evaluate("document.querySelectorAll('form details').forEach(d => { d.open = true; })")
    page.fill("input[name=p_eval_rows]", "8")
    page.fill("input[name=p_latency_repeats]", "1")
    page.click("#job-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    page.wait_for_selector("#result-link", timeout=180_000)
    page.click("#result-link")
    page.wait_for_selector("#model-report")
    report = page.inner_text("#model-report")
    assert "Compression report" in report and "×" in report
    size_ratio = page.inner_text("#report-table tr[data-key=size_ratio] td.ratio")
    assert float(size_ratio.rstrip("×")) < 0.5
    assert "quantized from" in page.inner_text("#lineage")


@pytest.mark.django_db(transaction=True)
def test_distill_then_quantize_starts_the_follow_up_and_links_the_two_jobs(
    browser_page, live_server_proc, worker
):
    from llmweb.accounts.services import user_signup_setup

    page = browser_page
    user = make_user("hedy")
    team = user_signup_setup(user=user)
    rows = sms_rows(60)
    teacher = tiny_classifier(team, [r["text"] for r in rows], ["ham", "spam"], name="teacher")
    teacher.dataset = ready_dataset(team, "classification", rows, name="sms")
    teacher.save()
    base = live_server_proc.url
    browser_login(page, base, "hedy")

    page.goto(f"{base}/models/{teacher.pk}/")
    page.click("#make-smaller a[data-kind=distill-compress] button")
    page.wait_for_url(re.compile(r".*/jobs/new/\?type=distill.*then=compress.*"))
    assert page.input_value("select[name=type]") == "distill"
    assert page.input_value("select[name=then]") == "compress"
    assert page.is_visible("input[name=then_p_eval_rows]")
    assert page.input_value("input[name=then_p_eval_rows]") == "500"  # compress's default
    assert page.input_value("select[name=then_in_eval_dataset]") == str(teacher.dataset_id)
    page.evaluate("document.querySelectorAll('form details').forEach(d => { d.open = true; })")
    for name, value in {"p_max_steps": "3", "p_batch_size": "8", "p_max_length": "32"}.items():
        page.fill(f"input[name={name}]", value)
    page.fill("input[name=p_eval_rows]", "16")
    page.fill("input[name=p_latency_repeats]", "1")
    page.fill("input[name=then_p_eval_rows]", "16")
    page.fill("input[name=then_p_latency_repeats]", "1")
    page.click("#job-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    assert "compress" in page.inner_text("#then")
    # The distill runs a few steps; once it succeeded the page links its follow-up.
    page.wait_for_selector("#follow-up-link", timeout=240_000)
    page.click("#follow-up-link")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    assert "Follows" in page.inner_text("#follows")
