from __future__ import annotations

import pytest

from llmweb.accounts.models import Membership


def test_signup_creates_user_and_personal_team(client, db):
    r = client.post(
        "/accounts/signup/",
        {
            "username": "dora",
            "email": "",
            "password1": "a much longer pass 9",
            "password2": "a much longer pass 9",
        },
    )
    assert r.status_code == 302
    m = Membership.objects.get(user__username="dora")
    assert m.role == "owner" and m.team.name == "dora's team"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "username": "alice",
                "password1": "a much longer pass 9",
                "password2": "a much longer pass 9",
            },
            "already exists",
        ),
        ({"username": "erin", "password1": "123", "password2": "123"}, "too short"),
        (
            {
                "username": "e" * 151,
                "password1": "a much longer pass 9",
                "password2": "a much longer pass 9",
            },
            "at most 150 characters",
        ),
        (
            {
                "username": "frank",
                "password1": "a much longer pass 9",
                "password2": "different pass 99",
            },
            "didn’t match",
        ),
    ],
)
def test_signup_bad_input_is_explained(client, alice, data, message):
    r = client.post("/accounts/signup/", data)
    assert r.status_code == 400
    assert message in r.content.decode()


def test_pages_need_login(client, db):
    r = client.get("/teams/")
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_team_page_of_another_team_is_404(client, team, charlie):
    client.force_login(charlie)
    assert client.get(f"/teams/{team.id}/").status_code == 404
    assert client.post("/teams/switch/", {"team_id": team.id}).status_code == 404


def test_owner_invites_and_changes_role_from_the_page(client, alice, team, charlie):
    client.force_login(alice)
    r = client.post(f"/teams/{team.id}/", {"username": "charlie", "role": "viewer"})
    assert r.status_code == 302
    client.post(f"/teams/{team.id}/members/{charlie.id}/", {"role": "member"})
    assert Membership.objects.get(team=team, user=charlie).role == "member"


def test_switching_team_changes_active_team(client, alice, team):
    from llmweb.accounts import services

    other = services.team_create(owner=alice, name="Second")
    client.force_login(alice)
    client.post("/teams/switch/", {"team_id": other.id, "next": "/"})
    assert "Second" in client.get("/").content.decode().split("<h1>")[1]


def test_token_secret_is_shown_once(client, alice):
    client.force_login(alice)
    r = client.post("/settings/tokens/", {"name": "ci"}, follow=True)
    secret = r.context["new_secret"]
    assert secret in r.content.decode()
    again = client.get("/settings/tokens/").content.decode()
    assert secret not in again and "ci" in again


@pytest.mark.parametrize("url", ["/no/such/page/", "/datasets/nope/x/", "/api/v1/nothing-here/"])
def test_404_is_plain_for_anyone_with_debug_off(client, db, settings, url):
    settings.DEBUG = False
    r = client.get(url)
    assert r.status_code == 404
    html = r.content.decode()
    # Pages get the site's plain page; the API answers JSON (its own error shape).
    assert ("There is nothing here" in html) != url.startswith("/api/")
    # The checkout's absolute path, not its bare folder name: a clone named "main"
    # would otherwise match the page's own <main> element.
    for leak in ("tried", "URLResolver", "URLPattern", ".py", "llmweb.", str(settings.BASE_DIR)):
        assert leak not in html, leak
