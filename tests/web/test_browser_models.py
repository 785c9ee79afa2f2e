"""Upload a model through the form in headless Chromium and watch it become ready."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_user, tiny_preset_folder, zip_folder
from tests.support import browser_login

pytestmark = [pytest.mark.browser]


@pytest.fixture
def page(browser_page):
    return browser_page


@pytest.mark.django_db(transaction=True)
def test_upload_form_shows_progress_and_the_model_becomes_ready(
    page, live_server_proc, worker, tmp_path
):
    from llmweb.accounts.services import user_signup_setup

    user = make_user("hedy")
    user_signup_setup(user=user)
    archive = zip_folder(tiny_preset_folder(tmp_path / "gpt2"), tmp_path / "tiny-gpt.zip")
    base = live_server_proc.url

    page.goto(base + "/accounts/login/")
    page.fill("#id_username", "hedy")
    page.fill("#id_password", "correct horse 42")
    page.click("form.form button[type=submit]")
    page.wait_for_url(base + "/")

    page.goto(base + "/models/")
    assert "all-MiniLM-L6-v2" in page.inner_text("#model-table")
    page.click("text=Upload")
    page.set_input_files("#id_file", str(archive))
    page.fill("#id_name", "browser-gpt")
    page.click("#upload-form button[type=submit]")
    page.wait_for_function("document.getElementById('upload-bar').dataset.pct === '100'")
    # the server answered 202; the bar is full and the page says the worker took over
    page.wait_for_function(
        "document.getElementById('upload-status').textContent.startsWith('Uploaded 100%')"
    )
    assert page.get_attribute("#upload-bar", "style") == "width: 100%;"

    page.wait_for_url(re.compile(r".*/models/\d+/$"))
    page.wait_for_selector("#model-status[data-status=ready]", timeout=60_000)
    assert "browser-gpt" in page.inner_text("#model-title")
    facts = page.inner_text("#model-facts")
    assert "GPT2LMHeadModel" in facts and "300 tokens" in facts
    page.screenshot(path=str(live_server_proc.log.with_name("browser-model-ready.png")))


@pytest.mark.django_db(transaction=True)
def test_usable_for_follows_the_job_rule_not_the_loadable_heads(page, live_server_proc, api):
    from llmweb.accounts.services import user_signup_setup
    from llmweb.catalog.models import RegisteredModel

    user = make_user("ida")
    team = user_signup_setup(user=user)
    # A GPT-2 can be loaded with a classification head, but a job refuses it for that.
    gpt = RegisteredModel.objects.create(
        team=team,
        name="gpt2-tiny",
        source="preset",
        status="ready",
        task="causal-lm",
        config_summary={"supported_tasks": ["causal-lm", "classification"]},
    )
    base = live_server_proc.url
    browser_login(page, base, "ida")
    page.goto(f"{base}/models/{gpt.pk}/")
    assert page.inner_text("#usable-for") == "causal-lm datasets"
    assert api(user).get(f"/api/v1/models/{gpt.pk}/").json()["usable_for"] == ["causal-lm"]
    bundled = RegisteredModel.objects.get(team=team, source="bundled")
    page.goto(f"{base}/models/{bundled.pk}/")
    assert page.inner_text("#usable-for") == (
        "classification, pair-classification, masked-lm datasets"
    )
