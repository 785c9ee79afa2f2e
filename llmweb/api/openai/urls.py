"""``/v1/``: the OpenAI-compatible routes (outside ``/api/v1/`` because clients append
``/completions`` to a base URL that ends in ``/v1``)."""

from __future__ import annotations

from django.urls import path

from llmweb.api.openai import views

urlpatterns = [
    path("completions", views.completions, name="openai-completions"),
    path("chat/completions", views.chat_completions, name="openai-chat-completions"),
    path("models", views.models, name="openai-models"),
]
