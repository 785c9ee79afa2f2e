"""What every API area shares: which team a write is for, who is asking (plain views)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from llmweb.accounts.models import Team
from llmweb.accounts.selectors import is_owner, team_get_for_user, team_list_for_user
from llmweb.core.errors import DomainError


def request_team(request: Request, team_id: Any) -> Team:
    """The team a write is for: the given id (404 if not yours), else the active/first team.

    A script sends ``team``; a browser page that posts to the API has an active team in
    its session, and a person in exactly one team needs to say nothing.
    """
    if team_id not in (None, ""):
        return team_get_for_user(user=request.user, team_id=team_id)
    team = getattr(request._request, "team", None)  # the page's active team (session)
    team = team or team_list_for_user(user=request.user).order_by("id").first()
    if team is None:
        raise DomainError("You are in no team; create one first.", code="no_team", param="team")
    return team


class IsTeamOwner(BasePermission):
    """For routes under ``teams/{pk}/`` that only the team's owners may use (the audit log).

    Another team's id is a 404 before anything else (ids of other teams stay secret);
    a member or viewer of the team gets 403. The authorization-matrix test reads this
    permission off the view to expect 403 for members too.
    """

    message = "Only an owner of this team can see this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        team = team_get_for_user(user=request.user, team_id=view.kwargs["pk"])
        return is_owner(user=request.user, team=team)


def api_user(request: HttpRequest) -> Any:
    """Authenticate a plain (async, streaming) Django view exactly as the DRF views are:
    an API token, or a session with its CSRF check. Call it through ``sync_to_async``.

    Raises:
        rest_framework.exceptions.APIException: 401 without credentials or with a bad
            token, 403 for a session request without its CSRF token.
    """
    from rest_framework import exceptions
    from rest_framework.settings import api_settings

    drf_request = Request(
        request, authenticators=[cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    )
    user = drf_request.user
    if user is None or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    return user


DELETE_JOBS = OpenApiParameter(
    "delete_jobs",
    bool,
    description="Also delete the finished jobs that used this record (their events and work "
    "files; the models they made stay). Without it, a record used by jobs answers 409 with "
    "the jobs listed.",
)


def query_flag(request: Request, name: str) -> bool:
    """``?name=true|1|yes|on`` (any case) is True; anything else, or absent, is False."""
    return str(request.query_params.get(name, "")).strip().lower() in ("1", "true", "yes", "on")
