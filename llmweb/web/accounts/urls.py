"""Account pages, mounted at the site root: sign-up, log-in, teams, tokens."""

from __future__ import annotations

from django.urls import include, path

from llmweb.web.accounts import views

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("teams/", views.team_list, name="teams"),
    path("teams/switch/", views.team_switch, name="team-switch"),
    path("teams/<id:team_id>/", views.team_detail, name="team-detail"),
    path("teams/<id:team_id>/members/<id:user_id>/", views.member_role, name="member-role"),
    path("settings/tokens/", views.tokens, name="tokens"),
    path("settings/tokens/<id:token_id>/revoke/", views.token_revoke, name="token-revoke"),
]
