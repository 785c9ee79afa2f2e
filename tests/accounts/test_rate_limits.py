"""Rate limits: log-in lockout per user and address, throttles per token, 429 + Retry-After."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from llmweb.accounts import services
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def log_in(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_failed_log_ins_lock_that_user_out_from_that_address_only(settings):
    settings.AXES_FAILURE_LIMIT = 3
    make_user("dora")
    here = Client(REMOTE_ADDR="203.0.113.5")
    assert [log_in(here, "dora", "wrong").status_code for _ in range(2)] == [200, 200]
    locked = log_in(here, "dora", "wrong")
    assert locked.status_code == 429 and int(locked["Retry-After"]) == 15 * 60
    # Even the right password waits now, from this address...
    r = log_in(here, "dora", "correct horse 42")
    assert r.status_code == 429 and "try again in 15 minutes" in r.content.decode()
    # ...while the owner elsewhere is not locked out by a stranger's guesses.
    assert log_in(Client(REMOTE_ADDR="198.51.100.7"), "dora", "correct horse 42").status_code == 302


def test_a_successful_log_in_resets_the_count(settings):
    settings.AXES_FAILURE_LIMIT = 3
    make_user("erin")
    client = Client(REMOTE_ADDR="203.0.113.6")
    for _ in range(2):
        log_in(client, "erin", "wrong")
    assert log_in(client, "erin", "correct horse 42").status_code == 302
    client.logout()
    assert [log_in(client, "erin", "wrong").status_code for _ in range(2)] == [200, 200]


def token_client(user, name: str) -> APIClient:
    _, secret = services.api_token_create(user=user, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_each_token_has_its_own_rate(alice, settings):
    settings.LLMWEB_API_RATE = "3/min"
    first, second = token_client(alice, "a"), token_client(alice, "b")
    assert [first.get("/api/v1/me/").status_code for _ in range(3)] == [200] * 3
    r = first.get("/api/v1/me/")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0 and "detail" in r.json()
    assert second.get("/api/v1/me/").status_code == 200


def test_guessing_tokens_gets_429_after_the_limit(alice, settings):
    settings.LLMWEB_TOKEN_FAILURES_PER_MINUTE = 5
    guesser = APIClient(REMOTE_ADDR="203.0.113.9")
    codes = []
    for i in range(7):
        guesser.credentials(HTTP_AUTHORIZATION=f"Bearer llmw_guess{i}")
        codes.append(guesser.get("/api/v1/me/").status_code)
    assert codes == [401] * 5 + [429] * 2
    r = guesser.get("/api/v1/me/")
    assert 0 < int(r["Retry-After"]) <= 61


def test_sign_ups_per_address_are_limited(settings):
    settings.LLMWEB_SIGNUPS_PER_HOUR = 2
    body = {"password1": "a long pass phrase 9", "password2": "a long pass phrase 9"}
    codes = [
        Client(REMOTE_ADDR="203.0.113.10")
        .post("/accounts/signup/", {"username": f"u{i}", **body})
        .status_code
        for i in range(3)
    ]
    assert codes == [302, 302, 429]
