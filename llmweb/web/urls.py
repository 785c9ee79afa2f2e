"""Page routes: each area (``llmweb/web/<area>/urls.py``) brings its own."""

from __future__ import annotations

from django.urls import include, path

from llmweb.web import common

urlpatterns = [
    path("", common.home, name="home"),
    path("", include("llmweb.web.accounts.urls")),
    path("datasets/", include("llmweb.web.datasets.urls")),
    path("models/", include("llmweb.web.models.urls")),
    path("jobs/", include("llmweb.web.jobs.urls")),
    path("playground/", include("llmweb.web.playground.urls")),
    path("", include("llmweb.web.evaluations.urls")),
]
