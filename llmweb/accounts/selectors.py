"""Reads of teams and memberships, always scoped to the asking user."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from llmweb.accounts.models import ApiToken, Membership, Role, Team


def team_list_for_user(*, user) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user).distinct()


def team_get_for_user(*, user, team_id: int | str) -> Team:
    """A team the user belongs to, or 404 — never 403, so ids of other teams stay secret."""
    try:
        return team_list_for_user(user=user).get(pk=int(team_id))
    except (Team.DoesNotExist, ValueError, TypeError):
        raise Http404("No such team.") from None


def membership_get(*, user, team: Team) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, team=team).first()


def role_of(*, user, team: Team) -> str | None:
    m = membership_get(user=user, team=team)
    return m.role if m else None


def can_write(*, user, team: Team) -> bool:
    return role_of(user=user, team=team) in (Role.OWNER, Role.MEMBER)


def is_owner(*, user, team: Team) -> bool:
    return role_of(user=user, team=team) == Role.OWNER


def member_list(*, team: Team) -> QuerySet[Membership]:
    return team.memberships.select_related("user").order_by("user__username")


def api_token_list(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def api_token_get(*, user, token_id: int | str) -> ApiToken:
    try:
        return api_token_list(user=user).get(pk=int(token_id))
    except (ApiToken.DoesNotExist, ValueError, TypeError):
        raise Http404("No such token.") from None


def api_token_lookup(*, secret: str) -> ApiToken | None:
    """The live token with this secret (its user active), for the API and the websockets."""
    token = (
        ApiToken.objects.select_related("user").filter(digest=ApiToken.digest_of(secret)).first()
    )
    if token is None or not token.user.is_active:
        return None
    return token
