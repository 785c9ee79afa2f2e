from __future__ import annotations

from rest_framework.test import APIClient

from llmweb.accounts import services
from llmweb.accounts.models import Membership, Role


def test_me_lists_my_teams(api, alice, team):
    body = api(alice).get("/api/v1/me/").json()
    assert body["username"] == "alice"
    assert body["teams"] == [{"id": team.id, "name": team.name, "role": "owner"}]


def test_anonymous_gets_401_with_detail():
    r = APIClient().get("/api/v1/me/")
    assert r.status_code == 401 and r.json()["detail"]
    # A 401 names the scheme a script should use.
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_authenticates_a_script(alice, team):
    _, secret = services.api_token_create(user=alice, name="script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/me/").json()["username"] == "alice"


def test_bad_token_is_a_clear_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer llmw_not-a-real-token")
    r = client.get("/api/v1/me/")
    assert r.status_code == 401
    assert r.json()["detail"] == "Invalid or revoked API token."


def test_malformed_authorization_header_is_a_clear_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    r = client.get("/api/v1/me/")
    assert r.status_code == 401 and "Malformed" in r.json()["detail"]


def test_revoked_token_stops_working(api, alice):
    created = api(alice).post("/api/v1/tokens/", {"name": "laptop"}, format="json").json()
    assert created["token"].startswith("llmw_")
    listed = api(alice).get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["laptop"] and "token" not in listed[0]
    assert api(alice).delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    assert client.get("/api/v1/me/").status_code == 401


def test_team_create_and_invite_through_api(api, alice, charlie):
    team = api(alice).post("/api/v1/teams/", {"name": "NLP"}, format="json").json()
    assert team["role"] == "owner"
    r = api(alice).post(
        f"/api/v1/teams/{team['id']}/members/",
        {"username": "charlie", "role": "viewer"},
        format="json",
    )
    assert r.status_code == 201 and r.json()["role"] == "viewer"
    r = api(alice).patch(
        f"/api/v1/teams/{team['id']}/members/{charlie.id}/", {"role": "member"}, format="json"
    )
    assert r.json()["role"] == "member"


def test_other_teams_are_404_not_403(api, team, charlie, charlie_team, alice):
    assert api(charlie).get(f"/api/v1/teams/{team.id}/").status_code == 404
    assert api(charlie).get(f"/api/v1/teams/{team.id}/members/").status_code == 404
    r = api(charlie).post(
        f"/api/v1/teams/{team.id}/members/", {"username": "charlie"}, format="json"
    )
    assert r.status_code == 404
    assert (
        api(charlie).patch(f"/api/v1/teams/{team.id}/", {"name": "mine"}, format="json").status_code
        == 404
    )
    token = api(alice).post("/api/v1/tokens/", {"name": "x"}, format="json").json()
    assert api(charlie).delete(f"/api/v1/tokens/{token['id']}/").status_code == 404


def test_member_cannot_change_roles(api, team, bob, alice):
    r = api(bob).patch(
        f"/api/v1/teams/{team.id}/members/{alice.id}/", {"role": "viewer"}, format="json"
    )
    assert r.status_code == 403 and "owner" in r.json()["detail"]


def test_bad_input_is_a_clear_400(api, alice, team):
    r = api(alice).post("/api/v1/teams/", {"name": "x" * 101}, format="json")
    assert r.status_code == 400 and "name" in r.json()["detail"]
    r = api(alice).post(f"/api/v1/teams/{team.id}/members/", {"username": "bob"}, format="json")
    assert r.status_code == 400 and "already on this team" in r.json()["detail"]
    r = api(alice).post("/api/v1/teams/", "{not json", content_type="application/json")
    assert r.status_code == 400 and "JSON" in r.json()["detail"]


def test_openapi_schema_lists_endpoints(client, alice):
    client.force_login(alice)
    r = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/api/v1/me/" in paths and "/api/v1/teams/{id}/members/" in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content.lower()


def test_an_outsider_can_neither_change_nor_remove_a_member(api, team, bob, charlie):
    url = f"/api/v1/teams/{team.id}/members/{bob.id}/"
    assert api(charlie).patch(url, {"role": "viewer"}, format="json").status_code == 404
    assert api(charlie).delete(url).status_code == 404
    # Re-read from the database: bob is still a member, with his role.
    assert Membership.objects.get(team=team, user=bob).role == Role.MEMBER


def test_a_member_cannot_remove_another_member(api, team, alice, bob):
    r = api(bob).delete(f"/api/v1/teams/{team.id}/members/{alice.id}/")
    assert r.status_code == 403 and r.json()["detail"]
    assert Membership.objects.filter(team=team, user=alice, role=Role.OWNER).exists()
