from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

import llmweb.core.ids  # noqa: F401 - registers the <id:…> path converter first
from llmweb.health import healthz
from llmweb.web.common import favicon

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("llmweb.api.urls")),
    path("v1/", include("llmweb.api.openai.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("llmweb.web.urls")),
]

# ReDoc is not served: its bundle fetches Google Fonts and a CDN logo, which fail offline;
# Swagger UI (/api/docs/) is served entirely from the sidecar package.
handler404 = "llmweb.web.common.not_found"
