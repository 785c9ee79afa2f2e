"""A new user's first hour, end to end in headless Chromium on a fresh database.

Sign up → upload the tab-separated sample renamed .txt → quality report → new job → live
chart → the finished page stays still (one load, one websocket, ten seconds) → the model
page → "Run again with changes" → delete the first job.
"""

from __future__ import annotations

import re

import pytest

from jobs import services
from jobs.models import Job
from llmweb.catalog.models import RegisteredModel
from tests.support import shared_data, wait_job_status

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.timeout(900)
def test_a_new_user_walks_the_whole_path(browser_page, live_server_proc, worker):
    page, base = browser_page, live_server_proc.url
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete job #…?"

    # Sign up: a new person, not the admin, gets a team of their own.
    page.goto(base + "/accounts/signup/")
    page.fill("#id_username", "nora")
    page.fill("#id_email", "nora@example.com")
    page.fill("#id_password1", "a long passphrase 42")
    page.fill("#id_password2", "a long passphrase 42")
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))

    # The shipped SMS sample, renamed .txt: tab-separated, read by its content.
    sms = shared_data("SMSSpamCollection.tsv").read_bytes()
    page.goto(base + "/datasets/")
    page.click("#upload-link")
    page.set_input_files(
        "#id_file", files=[{"name": "sms.txt", "mimeType": "text/plain", "buffer": sms}]
    )
    page.wait_for_function("document.querySelector('select[name=map_label]')?.value === 'col_0'")
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"), timeout=90_000)
    dataset_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.wait_for_selector("#dataset-status[data-status=ready]", timeout=120_000)
    page.wait_for_function("window.labelChart && window.labelChart.data.labels.length === 2")
    assert page.inner_text("#total-rows") == "5574"

    # A fine-tune from the form, with the pre-flight estimate shown first.
    page.goto(f"{base}/jobs/new/?dataset={dataset_id}")
    bundled = RegisteredModel.objects.get(
        source="bundled", team__memberships__user__username="nora"
    )
    page.select_option("#id_base_model", str(bundled.pk))
    page.fill("#id_p_max_steps", "6")
    page.fill("#id_p_batch_size", "8")
    page.fill("#id_p_max_length", "32")
    page.wait_for_function(
        "() => /Optimizer steps\\s+6\\b/.test(document.querySelector('#estimate').innerText)"
    )
    page.click("#launch")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    first_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert wait_job_status(first_id, timeout=420).status == "succeeded"
    page.wait_for_function(
        "() => window.jobCharts.loss.data.datasets[0].data.length === 6", timeout=30_000
    )

    # The finished page, opened fresh, stays still: one load and one socket in 10 s.
    sockets: list[str] = []
    loads: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("load", lambda: loads.append(page.url))
    page.goto(f"{base}/jobs/{first_id}/")
    page.wait_for_function("() => window.jobCharts.loss.data.datasets[0].data.length === 6")
    page.wait_for_timeout(10_000)
    assert (len(loads), len(sockets)) == (1, 1), (loads, sockets)

    # The model it made, with its lineage.
    page.click("#result-link")
    page.wait_for_url(re.compile(r".*/models/\d+/$"))
    result = Job.objects.get(pk=first_id).result_model
    assert page.url.endswith(f"/models/{result.pk}/")

    # Run again with changes: the form comes filled in from the job.
    page.goto(f"{base}/jobs/{first_id}/")
    page.click("#clone")
    page.wait_for_url(re.compile(rf".*/jobs/new/\?clone={first_id}$"))
    assert page.input_value("#id_p_max_steps") == "6"
    assert page.input_value("#id_dataset") == str(dataset_id)
    page.fill("#id_p_learning_rate", "0.0001")
    page.click("#launch")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    second = Job.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    assert second.pk != first_id and second.params["learning_rate"] == 0.0001
    assert second.params["max_steps"] == 6 and second.dataset_id == dataset_id

    # Delete the first job: it goes, the model it made stays.
    page.goto(f"{base}/jobs/{first_id}/")
    page.click("#delete")
    page.wait_for_url(f"{base}/jobs/")
    assert not Job.objects.filter(pk=first_id).exists()
    assert RegisteredModel.objects.filter(pk=result.pk, status="ready").exists()
    services.job_cancel(user=second.created_by, job=second)  # leave the worker free


def test_new_job_picks_no_model_by_default_and_says_where_a_model_came_from(
    browser_page, live_server_proc, alice, team
):
    from tests.factories import ready_dataset, sms_rows
    from tests.support import browser_login

    page, base = browser_page, live_server_proc.url
    sms = ready_dataset(team, "classification", sms_rows(20), name="sms")
    bundled = RegisteredModel.objects.get(team=team, source="bundled")
    child = RegisteredModel.objects.create(
        team=team,
        name="spam-filter",
        source="job",
        status="ready",
        task="classification",
        parent=bundled,
        dataset=sms,
        lineage_edge="fine-tuned from",
    )
    browser_login(page, base, "alice")
    page.goto(base + "/jobs/new/")
    # Nothing is picked for the person: the newest model (their own fine-tune) is not.
    assert page.input_value("#id_base_model") == ""
    page.select_option("#id_base_model", str(child.pk))
    hint = page.inner_text("#lineage-base_model")
    assert f"fine-tuned from {bundled.name} v{bundled.version} on sms v1" in hint
    page.select_option("#id_base_model", str(bundled.pk))
    assert "no parent" in page.inner_text("#lineage-base_model")
