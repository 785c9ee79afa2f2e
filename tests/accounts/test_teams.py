from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from llmweb.accounts import selectors, services
from llmweb.accounts.models import Membership, Role
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


def test_token_is_stored_hashed(alice):
    token, secret = services.api_token_create(user=alice, name="ci")
    assert secret.startswith("llmw_") and secret not in token.digest
    assert token.digest == token.digest_of(secret)
