"""The playground page: rendered for the team's models, and driven in headless Chromium."""

from __future__ import annotations

import pytest

from tests.support import browser_login

pytestmark = pytest.mark.django_db(transaction=True)


def test_page_lists_the_teams_servable_models_with_their_modes(
    client, alice, long_model, classifier
):
    client.force_login(alice)
    page = client.get(f"/playground/?model={long_model.id}")
    assert page.status_code == 200
    models = page.context["models"]
    by_name = {m["label"]: m for m in models}
    assert by_name["longfox v1"]["modes"] == ["completion", "chat", "attention"]
    assert by_name["spamfox v1"]["modes"] == ["classify", "attention"]
    assert page.context["selected"] == long_model.id
    detail = client.get(f"/models/{long_model.id}/").content.decode()
    assert f"/playground/?model={long_model.id}" in detail


def test_page_shows_nothing_of_other_teams(client, charlie, charlie_team, long_model):
    client.force_login(charlie)
    page = client.get("/playground/")
    assert page.context["models"] == []
    assert b"no-models" in page.content


@pytest.mark.browser
@pytest.mark.slow
def test_type_a_prompt_watch_tokens_hover_and_stop(
    playground_page, playground_server, inference_worker, alice, long_model
):
    page = playground_page
    base = playground_server.url
    browser_login(page, base, "alice")
    page.goto(base + f"/playground/?model={long_model.id}")
    page.wait_for_function("document.getElementById('pg-conn').textContent === 'connected'")
    page.fill("#pg-p-max_new_tokens", "4000")
    page.fill("#pg-prompt", "the quick brown fox")
    # Long enough to still be running when Stop is pressed.
    page.evaluate(
        "document.querySelector('#pg-params').insertAdjacentHTML('beforeend',"
        ' \'<input name="ignore_eos" data-type="bool" value="true">\')'
    )
    page.click("#pg-generate")
    page.wait_for_function("document.querySelectorAll('.pg-tok').length >= 10")
    assert "TTFT" in page.inner_text(".pg-ttft") and "ms" in page.inner_text(".pg-ttft")
    page.hover(".pg-tok:not(:empty) >> nth=0")
    page.wait_for_selector("#pg-tip:not([hidden])")
    assert "logprob" in page.inner_text("#pg-tip")
    assert len(page.query_selector_all("#pg-tip .pg-tip-row")) == 5
    page.click("#pg-stop")
    page.wait_for_selector(".pg-out[data-state=cancelled]")
    stopped = len(page.query_selector_all(".pg-tok"))
    assert stopped < 4000
    page.wait_for_timeout(1000)
    assert len(page.query_selector_all(".pg-tok")) == stopped, "tokens kept coming after Stop"
    assert "tok/s" in page.inner_text(".pg-tps")
    page.screenshot(path=str(playground_server.log.with_name("browser-playground.png")))
