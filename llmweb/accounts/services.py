"""Writes to teams, memberships and tokens; views and API only translate to these."""

from __future__ import annotations

import secrets
import unicodedata

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction

from llmweb.accounts.audit import audit_record
from llmweb.accounts.models import ApiToken, Membership, Role, Team
from llmweb.accounts.selectors import is_owner
from llmweb.core.errors import DomainError

User = get_user_model()


def _clean_team_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise DomainError("A team needs a name.", param="name")
    if len(name) > 100:
        raise DomainError("A team name has at most 100 characters.", param="name")
    return name


@transaction.atomic
def team_create(*, owner, name: str) -> Team:
    limit = settings.LLMWEB_MAX_TEAMS_PER_USER
    if Membership.objects.filter(user=owner, role=Role.OWNER).count() >= limit:
        raise DomainError(
            f"You own {limit} teams, the most one person may; delete one first.", param="name"
        )
    team = Team.objects.create(name=_clean_team_name(name))
    Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    audit_record(actor=owner, team=team, action="team.create", target=team)
    return team


@transaction.atomic
def team_rename(*, by, team: Team, name: str) -> Team:
    """Only an owner renames; members and viewers see the name."""
    if not is_owner(user=by, team=team):
        raise PermissionDenied("Only an owner can rename the team.")
    old, team.name = team.name, _clean_team_name(name)
    team.save(update_fields=["name"])
    if team.name != old:
        audit_record(actor=by, team=team, action="team.rename", target=team, details={"from": old})
    return team


def user_signup_setup(*, user) -> Team:
    """Every new user gets a personal team, so there is always somewhere to upload to."""
    return team_create(owner=user, name=f"{user.username}'s team")


@transaction.atomic
def team_invite(*, by, team: Team, username: str, role: str = Role.MEMBER) -> Membership:
    if not is_owner(user=by, team=team):
        raise PermissionDenied("Only an owner can invite people to this team.")
    if role not in Role.values:
        raise DomainError(f"Role must be one of {', '.join(Role.values)}.", param="role")
    # Sign-up stores NFKC-normalised names (accounts/usernames.py); look up the same form.
    wanted = unicodedata.normalize("NFKC", username or "").strip()
    user = User.objects.filter(username=wanted).first()
    if user is None:
        raise DomainError(f"No user is called {username!r}.", param="username")
    if Membership.objects.filter(team=team, user=user).exists():
        raise DomainError(f"{user.username} is already on this team.", param="username")
    membership = Membership.objects.create(team=team, user=user, role=role)
    audit_record(
        actor=by, team=team, action="member.add", target=membership, details={"role": role}
    )
    return membership


@transaction.atomic
def membership_set_role(*, by, membership: Membership, role: str) -> Membership:
    team = Team.objects.select_for_update().get(pk=membership.team_id)
    if not is_owner(user=by, team=team):
        raise PermissionDenied("Only an owner can change roles.")
    if role not in Role.values:
        raise DomainError(f"Role must be one of {', '.join(Role.values)}.", param="role")
    owners = team.memberships.filter(role=Role.OWNER)
    if membership.role == Role.OWNER and role != Role.OWNER and owners.count() == 1:
        raise DomainError("A team needs at least one owner.", param="role")
    old, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    if role != old:
        audit_record(
            actor=by,
            team=team,
            action="member.role_change",
            target=membership,
            details={"from": old, "to": role},
        )
    return membership


@transaction.atomic
def membership_remove(*, by, membership: Membership) -> None:
    team = Team.objects.select_for_update().get(pk=membership.team_id)
    if not is_owner(user=by, team=team) and by.pk != membership.user_id:
        raise PermissionDenied("Only an owner can remove other members.")
    if membership.role == Role.OWNER and team.memberships.filter(role=Role.OWNER).count() == 1:
        raise DomainError("A team needs at least one owner.", param="role")
    audit_record(
        actor=by,
        team=team,
        action="member.leave" if by.pk == membership.user_id else "member.remove",
        target=membership,
        details={"role": membership.role},
    )
    membership.delete()


def _audit_token(*, user, token: ApiToken, action: str) -> None:
    # A token acts in every team of its owner, so each of those teams' trails says so.
    for team in Team.objects.filter(memberships__user=user):
        audit_record(actor=user, team=team, action=action, target=token)


@transaction.atomic
def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Returns the record and the secret; the secret is never stored or shown again."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the token a name, e.g. 'laptop script'.", param="name")
    if len(name) > 100:
        raise DomainError("A token name has at most 100 characters.", param="name")
    limit = settings.LLMWEB_MAX_TOKENS_PER_USER
    if ApiToken.objects.filter(user=user).count() >= limit:
        raise DomainError(
            f"You have {limit} API tokens, the most one person may; revoke one first.",
            param="name",
        )
    secret = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        hint=secret[: len(ApiToken.PREFIX) + 4],
        digest=ApiToken.digest_of(secret),
    )
    _audit_token(user=user, token=token, action="token.create")
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken, by=None) -> None:
    """``by`` is the request's user (the token's owner, perhaps through another token)."""
    _audit_token(user=by or token.user, token=token, action="token.revoke")
    token.delete()
