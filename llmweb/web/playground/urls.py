"""The playground page, mounted at /playground/."""

from __future__ import annotations

from django.urls import path

from llmweb.web.playground import views

urlpatterns = [path("", views.playground, name="playground")]
