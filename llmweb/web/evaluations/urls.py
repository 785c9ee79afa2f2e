"""Evaluation pages, mounted at /evaluations/ and /compare/."""

from __future__ import annotations

from django.urls import path

from llmweb.web.evaluations import views

urlpatterns = [
    path("evaluations/<id:evaluation_id>/", views.evaluation_detail, name="evaluation-page"),
    path(
        "evaluations/<id:evaluation_id>/samples.jsonl",
        views.evaluation_download,
        name="evaluation-download",
    ),
    path(
        "evaluations/<id:evaluation_id>/rescore/",
        views.evaluation_rescore,
        name="evaluation-rescore",
    ),
    path("compare/", views.compare, name="compare"),
]
