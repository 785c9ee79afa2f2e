"""From the quality report to a clean version, in headless Chromium with a real worker."""

from __future__ import annotations

import re

import pytest

from llmweb.catalog.models import Dataset
from tests.factories import ready_dataset
from tests.support import browser_login as login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_make_a_clean_version_from_the_quality_report(
    browser_page, live_server_proc, worker, alice, team
):
    page, base = browser_page, live_server_proc.url
    rows = [{"text": f"row {i} of the data", "label": "ab"[i % 2]} for i in range(40)]
    rows[33] = dict(rows[3])  # validation repeats a train row
    source = ready_dataset(team, "classification", rows, name="reviews")
    Dataset.objects.filter(pk=source.pk).update(
        stats={"exact_duplicates": 1, "overlap": {"validation": {"rows": 1, "fraction": 0.25}}}
    )
    login(page, base, "alice")
    page.goto(f"{base}/datasets/{source.pk}/")
    page.click("#clean-button")
    page.wait_for_url(re.compile(r".*/datasets/(\d+)/$"))
    assert page.url != f"{base}/datasets/{source.pk}/"
    page.wait_for_selector("#dataset-status[data-status=ready]", timeout=90_000)
    note = page.inner_text("#lineage-note")
    assert "Made from reviews v1" in note and "dropped 1 exact duplicate rows" in note
    assert page.locator("#clean-button").count() == 0  # nothing left to clean
