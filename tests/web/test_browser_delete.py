"""A dataset that a job used: its page lists the job and offers to delete both."""

from __future__ import annotations

import pytest

from jobs.models import Job
from llmweb.catalog.models import Dataset
from tests.factories import bundled_model, job_record
from tests.support import browser_login as login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dataset_page_lists_the_jobs_and_deletes_them_with_it(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    ds = Dataset.objects.create(
        team=team, name="sms", schema="classification", original_filename="sms.tsv", status="ready"
    )
    job = job_record(team=team, base_model=bundled_model(team), dataset=ds)
    login(page, base, "alice")
    page.goto(f"{base}/datasets/{ds.pk}/")
    assert page.locator(f"#used-by a[href='/jobs/{job.pk}/']").count() == 1
    assert page.inner_text("#delete-button") == "Delete with its 1 job"
    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.click("#delete-button")
    page.wait_for_url(f"{base}/datasets/")
    assert f"#{job.pk}" in dialogs[0]
    assert not Dataset.objects.filter(pk=ds.pk).exists()
    assert not Job.objects.filter(pk=job.pk).exists()
