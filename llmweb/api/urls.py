"""REST API v1 routes: each area's views live in ``llmweb/api/<area>/views.py``."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from llmweb.api.accounts import views as accounts
from llmweb.api.datasets import views as datasets
from llmweb.api.evaluations import views as evaluations
from llmweb.api.jobs import views as jobs
from llmweb.api.models import views as models
from llmweb.api.playground import views as playground
from llmweb.core.ids import ID_REGEX


class IdRouter(DefaultRouter):
    """Every ``{id}`` in the API is at most 18 digits unless a viewset says otherwise.

    DRF's default (``[^/.]+``) let a 20-digit id reach the database (a 500 on SQLite).
    """

    def get_lookup_regex(self, viewset, lookup_prefix: str = "") -> str:
        if getattr(viewset, "lookup_value_regex", None) is None:
            viewset.lookup_value_regex = ID_REGEX
        return super().get_lookup_regex(viewset, lookup_prefix)


router = IdRouter()
router.register("teams", accounts.TeamViewSet, basename="team")
router.register("tokens", accounts.ApiTokenViewSet, basename="token")
router.register("datasets", datasets.DatasetViewSet, basename="dataset")
router.register("models", models.ModelViewSet, basename="model")
router.register("jobs", jobs.JobViewSet, basename="job")
router.register("evaluations", evaluations.EvaluationViewSet, basename="evaluation")

urlpatterns = [
    path("me/", accounts.MeApi.as_view(), name="api-me"),
    path("presets/", models.PresetListApi.as_view(), name="api-presets"),
    path("job-kinds/", jobs.JobKindListApi.as_view(), name="api-job-kinds"),
    path("models/<id:pk>/generate/", playground.model_generate, name="model-generate"),
    path("models/<id:pk>/classify/", playground.model_classify, name="model-classify"),
    path("compare/", evaluations.CompareApi.as_view(), name="api-compare"),
    path("teams/<id:pk>/audit/", accounts.TeamAuditApi.as_view(), name="team-audit"),
    path("", include(router.urls)),
]
