from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from llmweb.api import accounts

router = DefaultRouter()
router.register("teams", accounts.TeamViewSet, basename="team")
router.register("tokens", accounts.ApiTokenViewSet, basename="token")

urlpatterns = [
    path("me/", accounts.MeApi.as_view(), name="api-me"),
    path("", include(router.urls)),
]
