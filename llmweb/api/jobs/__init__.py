"""`/api/v1/jobs/` and `/api/v1/job-kinds/`."""

from llmweb.api.jobs.views import JobKindListApi, JobViewSet

__all__ = ["JobKindListApi", "JobViewSet"]
