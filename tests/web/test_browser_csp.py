"""The pages work under the real Content-Security-Policy (no Playwright CSP bypass here)."""

from __future__ import annotations

import pytest

from llmweb.accounts import services
from llmweb.catalog.models import RegisteredModel
from tests.factories import (
    evaluation_with_samples,
    generations,
    job_record,
    ready_dataset,
    training_history,
)
from tests.support import CHROMIUM, CHROMIUM_ARGS, ROOT
from tests.support import browser_login as login

pytestmark = [pytest.mark.browser]

PAGES = [
    "/",
    "/teams/",
    "/settings/tokens/",
    "/datasets/",
    "/datasets/new/",
    "/models/",
    "/models/new/preset/",
    "/models/new/upload/",
    "/jobs/",
    "/jobs/new/",
    "/playground/",
    "/api/docs/",
    "/admin/",
]


@pytest.mark.django_db(transaction=True)
def test_pages_raise_no_csp_violations_and_inline_behaviour_still_works(
    live_server_proc, alice, team, monkeypatch
):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop; the ORM must still work around it here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    other = services.team_create(owner=alice, name="Second lab")
    model = RegisteredModel.objects.filter(team=team).first()
    base = live_server_proc.url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(30_000)
        problems: list[str] = []

        def on_console(message) -> None:
            text = message.text
            if "Content Security Policy" in text or (
                message.type == "error" and "Failed to load resource" not in text
            ):
                problems.append(text)

        page.on("console", on_console)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "response",
            lambda r: (
                problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        try:
            login(page, base, "alice")
            for path in PAGES + ([f"/models/{model.pk}/"] if model else []):
                page.goto(base + path)
                page.wait_for_load_state("load")
            assert problems == [], problems
            # The compare page draws its curves chart with an inline script (with the nonce).
            page.goto(base + compare_with_a_curve(team))
            page.wait_for_load_state("load")
            assert page.evaluate("window.compareChart.data.datasets.length") == 2
            assert problems == [], problems
            # data-autosubmit replaced an inline onchange: switching team reloads the page.
            page.goto(base + "/")
            with page.expect_navigation():
                page.select_option("#team-switcher", str(other.pk))
            assert page.input_value("#team-switcher") == str(other.pk)
            assert problems == [], problems
        finally:
            browser.close()


def compare_with_a_curve(team) -> str:
    """A compare page with one model's training curve and its generations."""
    pairs = ready_dataset(team, "seq2seq", [{"source": "a", "target": "b"}] * 20, name="p")
    tuned = RegisteredModel.objects.create(
        team=team, name="tuned", source="upload", status="ready", task="seq2seq"
    )
    tuned.job = job_record(team=team, base_model=tuned, dataset=pairs)
    tuned.save()
    training_history(tuned.job, [2.0, 1.0], {2: 1.5})
    evaluation_with_samples(
        model=tuned,
        dataset=pairs,
        measure="generation",
        metrics={"bleu": 1.0},
        rows=generations(["b"], refs=["b"], inputs=["a"]),
    )
    return f"/compare/?dataset={pairs.pk}"


def test_no_template_carries_an_inline_event_handler():
    """The CSP forbids inline handlers; a page that only some teams see (the playground
    form needs a generation model) would break for them alone, so scan every template."""
    import re

    handler = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(ROOT)}: {m.group(0)[:80]}"
        for path in (ROOT / "templates").rglob("*.html")
        for m in handler.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
