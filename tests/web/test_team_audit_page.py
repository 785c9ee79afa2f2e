"""The team page's audit table: owners see who did what, newest first, a page at a time;
members and viewers see no table. Actions taken on the pages are recorded too."""

from __future__ import annotations

import html
import re

import pytest
from rest_framework.test import APIClient

from llmweb.accounts import services
from llmweb.accounts.models import AuditEntry, Role
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def audit_rows(page: str) -> list[str]:
    """The text of each row of the audit table (tags stripped, spaces collapsed)."""
    table = re.search(r'<table class="table" id="audit-table">(.*?)</table>', page, re.S)
    assert table, "no audit table on the page"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", row).split())) for row in rows]


def test_actions_on_the_pages_are_recorded_with_the_person(client, team, alice, charlie):
    client.force_login(alice)
    client.post(f"/teams/{team.pk}/", {"username": "charlie", "role": "viewer"})
    client.post(f"/teams/{team.pk}/members/{charlie.pk}/", {"role": "member"})
    client.post(f"/teams/{team.pk}/members/{charlie.pk}/", {"remove": "1", "role": "member"})
    client.post("/settings/tokens/", {"name": "notebook"})
    token = alice.api_tokens.get()
    client.post(f"/settings/tokens/{token.pk}/revoke/")

    got = list(
        AuditEntry.objects.filter(team=team)
        .order_by("id")
        .values_list("action", "actor_name", "token_name", "details")
    )[2:]  # after the team's creation and bob's arrival
    assert got == [
        ("member.add", "alice", "", {"role": "viewer"}),
        ("member.role_change", "alice", "", {"from": "viewer", "to": "member"}),
        ("member.remove", "alice", "", {"role": "member"}),
        ("token.create", "alice", "", {}),
        ("token.revoke", "alice", "", {}),
    ]


def test_the_owner_sees_the_table_newest_first(client, team, alice, bob):
    services.api_token_create(user=bob, name="bob's script")
    client.force_login(alice)
    services.team_rename(by=alice, team=team, name="Alice's new lab")

    r = client.get(f"/teams/{team.pk}/")
    assert r.status_code == 200
    rows = audit_rows(r.content.decode())
    assert len(rows) == 5  # header, rename, token, bob joined, team created
    assert "team.rename" in rows[1] and "from: Alice's lab" in rows[1]
    assert "bob" in rows[2] and "token.create" in rows[2]
    assert "member.add" in rows[3] and "role: member" in rows[3]
    assert "team.create" in rows[4]


def test_a_token_action_shows_the_token_on_the_page(client, team, alice):
    _, secret = services.api_token_create(user=alice, name="laptop")
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    make_user("dora")
    r = script.post(f"/api/v1/teams/{team.pk}/members/", {"username": "dora"}, format="json")
    assert r.status_code == 201
    client.force_login(alice)
    rows = audit_rows(client.get(f"/teams/{team.pk}/").content.decode())
    assert "alice via token “laptop”" in rows[1] and "member.add" in rows[1]


def test_members_and_viewers_see_no_audit_table(client, team, alice, bob):
    make_user("vera")
    services.team_invite(by=alice, team=team, username="vera", role=Role.VIEWER)
    for who in ("bob", "vera"):
        client.force_login(team.members.get(username=who))
        page = client.get(f"/teams/{team.pk}/").content.decode()
        assert 'id="member-table"' in page and 'id="audit-table"' not in page


def test_the_table_is_paginated(client, team, alice):
    for i in range(30):
        services.team_rename(by=alice, team=team, name=f"lab {i}")
    client.force_login(alice)
    first = client.get(f"/teams/{team.pk}/").content.decode()
    assert len(audit_rows(first)) == 1 + 25 and 'id="audit-pager"' in first
    assert "page 1 of 2" in first and "from: lab 28" in audit_rows(first)[1]
    second = client.get(f"/teams/{team.pk}/?audit_page=2").content.decode()
    rows = audit_rows(second)
    assert len(rows) == 1 + 7 and "team.create" in rows[-1]
