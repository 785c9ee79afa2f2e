"""What every API area shares: which team a write is for."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request

from llmweb.accounts.models import Team
from llmweb.accounts.selectors import team_get_for_user, team_list_for_user
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
