"""Model pages, mounted under /models/."""

from __future__ import annotations

from django.urls import path

from llmweb.web.models import views

urlpatterns = [
    path("", views.model_list, name="models"),
    path("new/preset/", views.model_new_preset, name="models-new-preset"),
    path("new/upload/", views.model_new_upload, name="models-new-upload"),
    path("new/hub/", views.model_new_hub, name="models-new-hub"),
    path("<id:model_id>/", views.model_detail, name="model-page"),
    path("<id:model_id>/card/", views.model_card, name="model-page-card"),
    path("<id:model_id>/delete/", views.model_delete, name="model-page-delete"),
]
