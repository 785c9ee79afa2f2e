from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import PermissionDenied
from rest_framework.test import APIClient

from llmweb.accounts import selectors, services
from llmweb.accounts.models import ApiToken, Membership, Role
from llmweb.core.errors import DomainError


def test_creator_owns_new_team(alice):
    team = services.team_create(owner=alice, name="Vision")
    assert selectors.role_of(user=alice, team=team) == Role.OWNER


def test_member_cannot_invite(team, bob, charlie):
    with pytest.raises(PermissionDenied):
        services.team_invite(by=bob, team=team, username="charlie")


def test_invite_of_unknown_user_is_refused(team, alice):
    with pytest.raises(DomainError, match="No user is called"):
        services.team_invite(by=alice, team=team, username="nobody")


def test_last_owner_cannot_step_down(team, alice):
    m = Membership.objects.get(team=team, user=alice)
    with pytest.raises(DomainError, match="at least one owner"):
        services.membership_set_role(by=alice, membership=m, role=Role.VIEWER)


def test_teams_are_scoped_to_members(team, charlie_team, alice, charlie):
    assert list(selectors.team_list_for_user(user=alice)) == [team]
    assert list(selectors.team_list_for_user(user=charlie)) == [charlie_team]


# sha256 of "llmw_known-secret-for-the-test", computed outside the code under test.
KNOWN_SECRET = "llmw_known-secret-for-the-test"
KNOWN_DIGEST = "567f029520740c7a29a5d2764827deee731e3ebd1a31bb649e5eebb3badaa5d8"


def test_token_digest_is_the_sha256_hex_of_the_secret():
    assert ApiToken.digest_of(KNOWN_SECRET) == KNOWN_DIGEST


def test_token_is_stored_hashed(alice):
    token, secret = services.api_token_create(user=alice, name="ci")
    stored = ApiToken.objects.get(pk=token.pk)
    assert secret.startswith("llmw_") and len(secret) >= 40
    assert secret not in stored.digest and stored.hint == secret[:9]
    assert stored.digest == hashlib.sha256(secret.encode()).hexdigest()


def test_a_row_with_the_known_digest_authenticates_the_known_secret(alice):
    ApiToken.objects.create(user=alice, name="known", hint=KNOWN_SECRET[:9], digest=KNOWN_DIGEST)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {KNOWN_SECRET}")
    assert client.get("/api/v1/me/").json()["username"] == "alice"
