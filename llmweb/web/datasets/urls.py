"""Dataset pages, mounted under /datasets/."""

from __future__ import annotations

from django.urls import path

from llmweb.web.datasets import views

urlpatterns = [
    path("", views.dataset_list, name="datasets"),
    path("new/", views.dataset_new, name="datasets-upload"),
    path("<id:dataset_id>/", views.dataset_detail, name="dataset-page"),
    path("<id:dataset_id>/delete/", views.dataset_delete, name="dataset-page-delete"),
    path("<id:dataset_id>/clean/", views.dataset_clean, name="dataset-page-clean"),
]
