"""Sign-up refuses confusable names; teams and tokens per person are capped."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command

from llmweb.accounts.usernames import username_clean


def signup(client, username: str):
    return client.post(
        "/accounts/signup/",
        {
            "username": username,
            "password1": "a long pass phrase 9",
            "password2": "a long pass phrase 9",
        },
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    [
        "\u0430lice",  # Cyrillic а + Latin lice: mixed alphabets
        "ALICE",  # the same name in another case
        "\u0430\u0441\u0435",  # all Cyrillic "асе", which looks like Latin "ace"
    ],
)
def test_sign_up_refuses_names_that_pass_for_another(client, alice, name):
    get_user_model().objects.create_user("ace", password="x y z 123 456")
    r = signup(client, name)
    assert r.status_code == 400 and "username" in r.context["form"].errors
    assert not get_user_model().objects.filter(username=name).exists()


@pytest.mark.django_db
def test_sign_up_normalises_and_accepts_honest_names(client):
    assert signup(client, "\uff42\uff4f\uff42").status_code == 302  # full-width "ｂｏｂ"
    assert get_user_model().objects.filter(username="bob").exists()
    assert username_clean("张wei") == "张wei"  # Chinese beside Latin is no disguise
    assert username_clean("Дмитрий") == "Дмитрий"
    with pytest.raises(ValidationError):
        username_clean("eve\u200b")  # a zero-width space


@pytest.mark.django_db
def test_teams_and_tokens_per_person_are_capped(api, alice, settings):
    settings.LLMWEB_MAX_TEAMS_PER_USER = 2
    settings.LLMWEB_MAX_TOKENS_PER_USER = 2
    client = api(alice)
    assert [
        client.post("/api/v1/teams/", {"name": f"t{i}"}, format="json").status_code
        for i in range(3)
    ] == [201, 201, 400]
    statuses = [
        client.post("/api/v1/tokens/", {"name": f"k{i}"}, format="json").status_code
        for i in range(3)
    ]
    assert statuses == [201, 201, 400]
    r = client.post("/api/v1/tokens/", {"name": "k"}, format="json")
    assert "revoke one first" in r.json()["detail"]


@pytest.mark.django_db
def test_bootstrap_reads_the_admin_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("LLMWEB_ADMIN_PASSWORD", "from the environment 7")
    call_command("llmweb_bootstrap", admin_user="root")
    assert get_user_model().objects.get(username="root").check_password("from the environment 7")


@pytest.mark.django_db
def test_pages_carry_a_csp_with_a_nonce_on_their_scripts(client, alice):
    client.force_login(alice)
    r = client.get("/")
    policy = r["Content-Security-Policy"]
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert "script-src 'self' 'nonce-" in policy and "unsafe-inline" not in policy.split(";")[1]
    body = r.content.decode()
    inline = body.count("<script>") + body.count("<script nonce")
    assert body.count(f'<script nonce="{nonce}"') == inline
    assert " onchange=" not in body and " onsubmit=" not in body
