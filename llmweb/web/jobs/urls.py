"""URLs of the job pages."""

from __future__ import annotations

from django.urls import path, re_path

from llmweb.web.jobs.views import job_control, job_detail, job_list, job_new

urlpatterns = [
    path("", job_list, name="jobs"),
    path("new/", job_new, name="job-new"),
    path("<id:job_id>/", job_detail, name="job-page"),
    re_path(
        r"^(?P<job_id>[0-9]{1,18})/(?P<action>cancel|retry|resume)/$",
        job_control,
        name="job-control",
    ),
]
