"""Headless Chromium (Debian's package) driven by Playwright, against the live ASGI server."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True)
def test_signup_create_team_and_token(browser_page, live_server_proc):
    page = browser_page
    base = live_server_proc.url
    page.goto(base + "/accounts/signup/")
    page.fill("#id_username", "grace")
    page.fill("#id_password1", "browser tests are real 7")
    page.fill("#id_password2", "browser tests are real 7")
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(base + "/")
    assert "grace's team" in page.inner_text("h1")

    page.click("text=Team")
    page.fill("#id_name", "Speech")
    page.click("#team-form button[type=submit]")
    page.wait_for_selector("text=Team 'Speech' created and selected.")
    assert page.input_value("#team-switcher") == page.url.rstrip("/").rsplit("/", 1)[1]

    page.click("text=API tokens")
    page.fill("#id_name", "notebook")
    page.click("#token-form button[type=submit]")
    secret = page.inner_text("#new-token-value").strip()
    assert secret.startswith("llmw_")
    rows = page.locator("#token-table tbody tr")
    assert rows.count() == 1 and "notebook" in rows.first.inner_text()
    page.screenshot(path=str(live_server_proc.log.with_name("browser-tokens.png")))

    page.reload()
    assert page.locator("#new-token").count() == 0
    assert secret not in page.content()
    assert page.locator("#token-table tbody tr").count() == 1
