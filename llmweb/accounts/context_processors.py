from __future__ import annotations

from llmweb.accounts.selectors import role_of, team_list_for_user


def teams(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    team = getattr(request, "team", None)
    return {
        "my_teams": team_list_for_user(user=user),
        "active_team": team,
        "active_role": role_of(user=user, team=team) if team else None,
    }
