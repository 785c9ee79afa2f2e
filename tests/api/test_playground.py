"""The generate API and the OpenAI-compatible routes, over HTTP to a live server with a real
inference worker; the OpenAI routes are driven by the official ``openai`` client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from llmweb.accounts.services import api_token_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def token(alice, team):
    return api_token_create(user=alice, name="script")[1]


@pytest.fixture
def oai(playground_server, token):
    return openai.OpenAI(base_url=playground_server.url + "/v1", api_key=token, max_retries=0)


def _post(server, path, token, body, **kw):
    return httpx.post(
        server.url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw
    )


def test_generate_answers_json_with_tokens_and_usage(
    playground_server, inference_worker, token, long_model
):
    r = _post(
        playground_server,
        f"/api/v1/models/{long_model.id}/generate/",
        token,
        {"prompt": "the fox", "params": {"max_new_tokens": 7, "ignore_eos": True, "seed": 1}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 7
    assert "".join(t["text"] for t in body["tokens"]) == body["text"]
    assert body["tokens"][0]["top_logprobs"] and body["ttft"] > 0


def test_generate_streams_server_sent_events(
    playground_server, inference_worker, token, long_model
):
    events = []
    with httpx.stream(
        "POST",
        playground_server.url + f"/api/v1/models/{long_model.id}/generate/",
        json={"prompt": "a", "stream": True, "params": {"max_new_tokens": 5, "ignore_eos": True}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "queued" and kinds[-1] == "done" and kinds.count("token") == 5


def test_generate_refuses_other_teams_bad_params_and_anonymous(
    playground_server, long_model, charlie, charlie_team, token
):
    other = api_token_create(user=charlie, name="x")[1]
    url = f"/api/v1/models/{long_model.id}/generate/"
    assert _post(playground_server, url, other, {"prompt": "a"}).status_code == 404
    bad = _post(playground_server, url, token, {"prompt": "a", "params": {"top_p": 3}})
    assert bad.status_code == 400 and bad.json()["param"] == "top_p"
    anon = httpx.post(playground_server.url + url, json={"prompt": "a"})
    assert anon.status_code in (401, 403)


def test_classify_gives_label_probabilities(playground_server, inference_worker, token, classifier):
    r = _post(
        playground_server, f"/api/v1/models/{classifier.id}/classify/", token, {"text": "win"}
    )
    assert r.status_code == 200, r.text
    assert {row["label"] for row in r.json()["labels"]} == {"ham", "spam"}


def test_openai_client_completions_plain_and_streaming(inference_worker, oai, long_model):
    done = oai.completions.create(
        model="longfox",
        prompt="the quick",
        max_tokens=6,
        logprobs=3,
        seed=2,
        extra_body={"ignore_eos": True},
    )
    choice = done.choices[0]
    assert choice.finish_reason == "length" and done.usage.completion_tokens == 6
    assert len(choice.logprobs.tokens) == 6 and len(choice.logprobs.top_logprobs[0]) == 3
    pieces = [
        c.choices[0].text
        for c in oai.completions.create(
            model=str(long_model.id),
            prompt="the quick",
            max_tokens=6,
            stream=True,
            extra_body={"ignore_eos": True},
            seed=2,
            temperature=0,
        )
        if c.choices
    ]
    greedy = oai.completions.create(
        model=str(long_model.id),
        prompt="the quick",
        max_tokens=6,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert "".join(pieces) == greedy.choices[0].text


def test_openai_client_chat_plain_and_streaming_with_logprobs(inference_worker, oai, long_model):
    messages = [{"role": "user", "content": "hello fox"}]
    done = oai.chat.completions.create(
        model="longfox",
        messages=messages,
        max_tokens=5,
        logprobs=True,
        top_logprobs=2,
        extra_body={"ignore_eos": True},
    )
    assert done.choices[0].message.role == "assistant"
    assert len(done.choices[0].logprobs.content) == 5
    assert len(done.choices[0].logprobs.content[0].top_logprobs) == 2
    chunks = list(
        oai.chat.completions.create(
            model="longfox",
            messages=messages,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    assert chunks[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_openai_errors_have_openai_shape(oai, long_model, classifier):
    with pytest.raises(openai.NotFoundError):
        oai.completions.create(model="no-such-model", prompt="a")
    with pytest.raises(openai.BadRequestError):
        oai.completions.create(model="spamfox", prompt="a")
    assert "longfox" not in [m.id for m in oai.models.list()]  # ids, not names
    assert str(long_model.id) in [m.id for m in oai.models.list()]


def test_a_full_queue_is_429_with_retry_after(client, settings, token, long_model):
    settings.LLMWEB_PLAYGROUND_MAX_QUEUE = 0  # any depth is "full"
    r = client.post(
        f"/api/v1/models/{long_model.id}/generate/",
        {"prompt": "a"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert r.status_code == 429 and r["Retry-After"] == "5"
    assert r.json()["code"] == "queue_full"
    chat = client.post(
        "/v1/chat/completions",
        {"model": "longfox", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert chat.status_code == 429 and chat.json()["error"]["type"] == "rate_limit_error"


def test_a_viewer_may_read_models_but_not_run_them(client, alice, team, long_model):
    from llmweb.accounts.models import Role
    from llmweb.accounts.services import team_invite
    from tests.factories import make_user

    make_user("vera")
    team_invite(by=alice, team=team, username="vera", role=Role.VIEWER)
    vera_token = api_token_create(user=team.memberships.get(role=Role.VIEWER).user, name="v")[1]
    r = client.post(
        f"/api/v1/models/{long_model.id}/generate/",
        {"prompt": "a"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {vera_token}",
    )
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
