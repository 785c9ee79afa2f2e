"""Puts the user's active team on the request (chosen with the team switcher)."""

from __future__ import annotations

from llmweb.accounts.selectors import team_list_for_user

SESSION_KEY = "active_team_id"


class ActiveTeamMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.team = None
        if request.user.is_authenticated:
            teams = team_list_for_user(user=request.user)
            team_id = request.session.get(SESSION_KEY)
            team = teams.filter(pk=team_id).first() if team_id else None
            request.team = team or teams.order_by("id").first()
        return self.get_response(request)
