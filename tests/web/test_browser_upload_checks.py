"""The upload form reads files by their content and refuses, before sending, what cannot work."""

from __future__ import annotations

import re

import pytest

from llmweb.catalog.models import Dataset
from tests.support import browser_login as login
from tests.support import shared_data

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# sentence<TAB>0|1, no header: the shape of the UCI "Sentiment Labelled Sentences" files.
UCI = (
    b"So there is no way for me to plug it in here in the US unless I go by a converter.\t0\n"
    b"Good case, Excellent value.\t1\n"
    b"Great for the jawbone.\t1\n"
    b"Tied to charger for conversations lasting more than 45 minutes.MAJOR PROBLEMS!!\t0\n"
    b"The mic is great.\t1\n"
    b"I have to jiggle the plug to get it to line up right to get decent volume.\t0\n"
)


def _file(name: str, content: bytes) -> dict:
    return {"name": name, "mimeType": "text/plain", "buffer": content}


def _open_form(page, base: str) -> None:
    login(page, base, "alice")
    page.goto(base + "/datasets/new/")


def test_tab_separated_txt_is_previewed_as_two_columns(browser_page, live_server_proc, alice, team):
    page, base = browser_page, live_server_proc.url
    _open_form(page, base)
    page.set_input_files("#id_file", files=[_file("amazon_cells_labelled.txt", UCI)])
    page.wait_for_function("document.querySelector('select[name=map_label]')?.value === 'col_1'")
    assert page.input_value("select[name=map_text]") == "col_0"
    assert "Detected tsv from the content" in page.inner_text("#mapping-help")
    assert page.locator("#sample-table thead th").count() == 2
    assert not page.is_disabled("#upload-button")

    # Told it is pipe-separated, the file has one column: classification cannot map it.
    page.select_option("#id_delimiter", "pipe")
    page.wait_for_function("document.getElementById('upload-button').disabled")
    assert "1 column, but classification needs 2" in page.inner_text("#form-error")
    page.select_option("#id_delimiter", "")
    page.wait_for_function("!document.getElementById('upload-button').disabled")


def test_plain_text_cannot_be_sent_for_classification_until_the_schema_fits(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    _open_form(page, base)
    page.set_input_files("#id_file", files=[_file("notes.txt", b"first line\nsecond line\n")])
    page.wait_for_function("document.getElementById('upload-button').disabled")
    assert "needs 2 (text, label)" in page.inner_text("#form-error")
    page.select_option("#id_schema", "causal-lm")
    page.wait_for_function("!document.getElementById('upload-button').disabled")
    assert page.inner_text("#form-error") == ""


def test_a_file_with_nul_bytes_is_refused_before_upload(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    _open_form(page, base)
    uploads: list[str] = []
    page.on(
        "request",
        lambda r: (
            r.method == "POST" and r.url.endswith("/api/v1/datasets/") and uploads.append(r.url)
        ),
    )
    page.set_input_files("#id_file", files=[_file("data.csv", b"text,label\nhi\x00there,1\n" * 5)])
    page.wait_for_function("document.getElementById('upload-button').disabled")
    assert "NUL bytes" in page.inner_text("#form-error")
    page.eval_on_selector("#dataset-upload-form", "f => f.requestSubmit()")
    page.wait_for_timeout(500)
    assert uploads == [] and not Dataset.objects.exists()


def test_stratified_checkbox_sits_beside_its_label(browser_page, live_server_proc, alice, team):
    page, base = browser_page, live_server_proc.url
    _open_form(page, base)
    box = page.locator("#id_stratify").bounding_box()
    label = page.locator("label[for=id_stratify]").bounding_box()
    assert box["width"] < 30
    assert label["x"] <= box["x"] < label["x"] + 5
    assert abs((box["y"] + box["height"] / 2) - (label["y"] + label["height"] / 2)) < 6


@pytest.mark.slow
def test_sms_collection_renamed_txt_uploads_and_becomes_ready(
    browser_page, live_server_proc, worker, alice, team
):
    page, base = browser_page, live_server_proc.url
    _open_form(page, base)
    sms = shared_data("SMSSpamCollection.tsv").read_bytes()
    page.set_input_files("#id_file", files=[_file("SMSSpamCollection.txt", sms)])
    page.wait_for_function("document.querySelector('select[name=map_label]')?.value === 'col_0'")
    assert page.input_value("select[name=map_text]") == "col_1"
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"), timeout=90_000)
    page.wait_for_selector("#dataset-status[data-status=ready]", timeout=90_000)
    assert page.inner_text("#total-rows") == "5574"
