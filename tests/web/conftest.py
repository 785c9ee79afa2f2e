"""Headless Chromium (Debian's package) driven by Playwright, for the browser tests."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("LLMWEB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"
)


@pytest.fixture
def browser_page(live_server_proc):
    # Playwright's sync API runs an event loop; the ORM must still work around it in tests.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        # Playwright's wait_for_function compiles its predicate with eval, which our CSP
        # forbids; test_browser_csp.py checks the pages under the real policy.
        page = browser.new_page(bypass_csp=True)
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def login(page, base: str, username: str, password: str = "correct horse 42") -> None:
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form button[type=submit]")
    page.wait_for_url(base + "/")
