"""The Celery app. Queues: ``gpu`` (training, one job per GPU), ``inference``, ``default``."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import celeryd_after_setup
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


@celeryd_after_setup.connect
def preload_engines(sender, instance, **kwargs) -> None:
    """A worker imports the engines of the job kinds it serves once, before the pool forks.

    Otherwise the first job on each new worker pays ~5-10 s of imports before its first
    step, which people read as "the job is stuck".
    """
    if os.environ.get("LLMWEB_PRELOAD", "1") == "0":
        return
    import importlib

    from jobs.kinds import all_kinds

    queues = set(instance.app.amqp.queues.consume_from or {})
    for kind in all_kinds():
        if kind.queue_name() in queues:
            importlib.import_module(kind.engine.partition(":")[0])
    from django.conf import settings

    if "inference" in queues or settings.LLMWEB_INFERENCE_QUEUE in queues:
        # Resolve transformers' lazy names once, before requests arrive on many threads.
        import transformers

        import jobs.engine.serving  # noqa: F401

        for name in ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "LogitsProcessorList"):
            getattr(transformers, name)
    # The default queue (uploads, validation) is not preloaded: its imports cost ~220 MB
    # of resident memory for a second or two saved on the first task.
