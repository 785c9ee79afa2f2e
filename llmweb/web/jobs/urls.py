"""URLs of the job pages."""

from __future__ import annotations

from django.urls import path, re_path

from llmweb.web.jobs.views import (
    job_control,
    job_delete,
    job_detail,
    job_edit,
    job_list,
    job_new,
)

urlpatterns = [
    path("", job_list, name="jobs"),
    path("new/", job_new, name="job-new"),
    path("<id:job_id>/", job_detail, name="job-page"),
    path("<id:job_id>/edit/", job_edit, name="job-edit"),
    path("<id:job_id>/delete/", job_delete, name="job-delete"),
    re_path(
        r"^(?P<job_id>[0-9]{1,18})/(?P<action>cancel|retry|resume)/$",
        job_control,
        name="job-control",
    ),
]
