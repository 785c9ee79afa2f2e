"""Layout in real Chromium: phone width, buttons in headings, favicon, offline API docs."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.support import browser_login as login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ["/", "/datasets/", "/datasets/new/", "/models/", "/jobs/", "/teams/", "/settings/tokens/"]


def test_navbar_fits_a_390px_phone_with_the_team_switcher_visible(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, base, "alice")
    for path in PAGES:
        page.goto(base + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        box = page.locator("#team-switcher").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (path, box)
    page.screenshot(path=str(live_server_proc.log.with_name("browser-390.png")), full_page=True)


def test_new_job_button_is_button_sized_not_heading_sized(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    login(page, base, "alice")
    page.goto(base + "/jobs/")
    button = page.locator("h1 button", has_text="New job")
    size = float(button.evaluate("b => getComputedStyle(b).fontSize").rstrip("px"))
    body = float(page.evaluate("getComputedStyle(document.body).fontSize").rstrip("px"))
    assert size <= body, (size, body)


def test_no_page_asks_for_a_missing_file_or_another_host(
    browser_page, live_server_proc, alice, team
):
    page, base = browser_page, live_server_proc.url
    host = urlparse(base).netloc
    missing: list[str] = []
    foreign: list[str] = []
    page.on("response", lambda r: r.status == 404 and missing.append(r.url))
    page.on("request", lambda r: urlparse(r.url).netloc not in (host, "") and foreign.append(r.url))
    login(page, base, "alice")
    for path in [*PAGES, "/api/docs/"]:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
    assert missing == [] and foreign == [], (missing, foreign)
    favicon = page.request.get(base + "/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"] == "image/x-icon"
    assert page.request.get(base + "/api/redoc/").status == 404
