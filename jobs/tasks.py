"""Thin Celery tasks: load records, build plain arguments, call an engine, report.

``run_job_task`` runs every job kind (``jobs.kinds``): claim, heartbeat, cancel, resume,
events and the error mapping happen here once; the kind builds the engine config, its
engine does the work, and the kind's ``finish`` says what the result is. Engines are
imported inside the task body so the web process never imports torch.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections, connection

from jobs import inference, services
from jobs.kinds import get_kind
from jobs.models import Job
from jobs.reporting import JobReporter, db_retry
from llmweb.core.running import run_guarded

STEADY_SECONDS = 0.3


def _database_steady() -> None:
    """Two round trips ``STEADY_SECONDS`` apart on one connection: a restart or a run of
    terminated backends fails one of them, and ``db_retry`` waits and tries again."""
    for pause in (STEADY_SECONDS, 0):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        time.sleep(pause)


def _worker_id(task) -> str:
    host = getattr(task.request, "hostname", None) or socket.gethostname()
    return f"{host}:{os.getpid()}"


def device_description() -> str:
    """``cuda:0 NVIDIA H200`` or ``cpu``: what a job page shows as "ran on"."""
    from jobs.engine.device import device_description as describe

    return describe()


@shared_task(bind=True, name="jobs.tasks.run_job", acks_late=True, reject_on_worker_lost=True)
def run_job_task(self, job_id: int) -> str:
    worker = _worker_id(self)
    if not services.job_claim(job_id=job_id, worker=worker, device=device_description()):
        return "not claimed"  # cancelled while queued, or a duplicate delivery
    job = (
        Job.objects.select_related("dataset", "eval_dataset", "team", "created_by")
        .prefetch_related("job_models__model")
        .get(pk=job_id)
    )
    with JobReporter(job_id, worker) as reporter:

        def work():
            kind = get_kind(job.type)
            if job.attempts > 1 or job.checkpoint_step:
                reporter.emit("resumed", from_step=job.checkpoint_step or 0, attempt=job.attempts)
            inputs = kind.inputs_of(job)
            config = kind.config(inputs=inputs, params=job.params, job=job)
            result = kind.entry_point()(config, reporter)
            reporter.flush()
            if reporter.lost:
                return None
            # This thread's connection sat idle through the whole run; if the database
            # restarted meanwhile it is dead, and Django reconnects only when told to.
            if not connection.in_atomic_block:  # a caller's transaction is not ours to end
                close_old_connections()
                # finish moves files and registers records; it is not retried, so it
                # starts only once the database answers steadily (an outage that began
                # during training may still be on: the run outlived it or not).
                db_retry(_database_steady, what=f"job {job_id} before finish")
            return kind.finish(job, result)

        def failed(error: dict, traceback: str) -> None:
            reporter.flush()
            db_retry(
                lambda: services.job_fail(job_id=job_id, error=error, traceback=traceback),
                what=f"job {job_id} failed",
            )

        def cancelled() -> None:
            reporter.flush()
            if not reporter.lost:
                db_retry(
                    lambda: services.job_mark_cancelled(job_id=job_id),
                    what=f"job {job_id} cancelled",
                )

        ran = run_guarded(work, what="The job", on_failed=failed, on_cancelled=cancelled)
        if ran.state != "succeeded":
            return ran.state
        if ran.value is None:
            return "lost"
        db_retry(
            lambda: services.job_succeed(
                job_id=job_id,
                worker=worker,
                metrics=ran.value.metrics,
                result_model=ran.value.result_model,
            ),
            what=f"job {job_id} succeeded",
        )
        return "succeeded"


@shared_task(name="jobs.tasks.reap_stale_jobs")
def reap_stale_jobs_task(stale_seconds: float | None = None) -> list[int]:
    stale = timedelta(seconds=stale_seconds or settings.LLMWEB_HEARTBEAT_STALE_SECONDS)
    return services.job_requeue_stale(stale_after=stale)


# Not acks_late: a generation whose worker died is not worth redelivering (its requester
# was told and has moved on); the message's expiry drops one nobody picked up in time.
@shared_task(name="jobs.tasks.generate", acks_late=False, ignore_result=True)
def generate_task(message: dict) -> str:
    """Stream one playground request's answer to its reply channel (``jobs.inference``)."""
    return inference.serve(message)
