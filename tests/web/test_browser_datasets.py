"""The dataset upload form in headless Chromium against the live ASGI server and a real worker."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_user
from tests.support import shared_data

pytestmark = [pytest.mark.browser]


@pytest.fixture
def page(browser_page):
    return browser_page


@pytest.mark.django_db(transaction=True)
def test_upload_sms_with_the_form_then_see_the_label_chart(page, live_server_proc, worker):
    from llmweb.accounts.services import user_signup_setup

    sms = shared_data("SMSSpamCollection.tsv")
    user = make_user("ada")
    user_signup_setup(user=user)
    base = live_server_proc.url
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "correct horse 42")
    page.click("form.form button[type=submit]")
    page.wait_for_url(base + "/")

    page.goto(base + "/datasets/")
    page.click("#upload-link")
    page.set_input_files("#id_file", str(sms))
    # the inspect call fills the column pickers with the suggestion
    page.wait_for_function("document.querySelector('select[name=map_label]')?.value === 'col_0'")
    assert page.input_value("select[name=map_text]") == "col_1"
    assert page.input_value("#id_name") == "SMSSpamCollection"
    assert "Detected tsv, utf-8" in page.inner_text("#mapping-help")
    page.click("#upload-button")
    page.wait_for_function("document.getElementById('upload-bar').dataset.pct === '100'")
    assert page.get_attribute("#upload-bar", "style") == "width: 100%;"
    assert "(100%)" in page.inner_text("#upload-status")

    page.wait_for_url(re.compile(r".*/datasets/\d+/$"), timeout=90_000)
    page.wait_for_selector("#dataset-status[data-status=ready]")
    page.wait_for_function("window.labelChart && window.labelChart.data.labels.length === 2")
    assert page.evaluate("window.labelChart.data.labels") == ["ham", "spam"]
    assert page.evaluate("window.lengthChart.data.datasets.length") == 2  # characters, tokens
    assert page.inner_text("#total-rows") == "5574"
    page.wait_for_selector("#preview-table tbody tr")
    page.fill("#preview-q", "free")
    page.wait_for_function(
        "document.getElementById('preview-page').textContent.includes('rows') && "
        "[...document.querySelectorAll('#preview-table tbody tr')].every("
        "r => r.textContent.toLowerCase().includes('free'))"
    )
    page.screenshot(
        path=str(live_server_proc.log.with_name("browser-dataset-ready.png")), full_page=True
    )
