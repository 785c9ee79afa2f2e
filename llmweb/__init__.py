"""llmweb: a team's workbench for engineering language models."""

from llmweb.celery import app as celery_app

__all__ = ["celery_app"]
