"""The Celery app. Queues: ``gpu`` (training, one job per GPU), ``inference``, ``default``."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmweb.settings")

app = Celery("llmweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue("gpu"), Queue("inference"), Queue("default")]
app.autodiscover_tasks(["jobs", "llmweb.catalog"])


@app.task(name="llmweb.ping")
def ping() -> str:
    """Round trip through broker, worker and result backend; used by tests and /healthz."""
    return "pong"
