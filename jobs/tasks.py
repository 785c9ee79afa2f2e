"""Thin Celery tasks: load records, build plain arguments, call an engine, report.

Engines are imported inside task bodies so the web process never imports torch.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from jobs import services
from jobs.models import Job
from jobs.reporting import JobReporter

log = logging.getLogger(__name__)


def _worker_id(task) -> str:
    host = getattr(task.request, "hostname", None) or socket.gethostname()
    return f"{host}:{os.getpid()}"


@shared_task(bind=True, name="jobs.tasks.run_job", acks_late=True, reject_on_worker_lost=True)
def run_job_task(self, job_id: int) -> str:
    from jobs.engine.base import Cancelled, EngineError
    from jobs.engine.finetune import device_description, run_training
    from jobs.engine.train_config import TrainConfig

    worker = _worker_id(self)
    if not services.job_claim(job_id=job_id, worker=worker, device=device_description()):
        return "not claimed"  # cancelled while queued, or a duplicate delivery
    job = Job.objects.select_related("base_model", "dataset", "team").get(pk=job_id)
    with JobReporter(job_id, worker) as reporter:
        try:
            if job.attempts > 1 or job.checkpoint_step:
                reporter.emit("resumed", from_step=job.checkpoint_step or 0, attempt=job.attempts)
            config = TrainConfig.from_params(
                job.params,
                job_type=job.type,
                task=job.dataset.schema,
                model_dir=job.base_model.artifact_dir,
                data_dir=job.dataset.processed_dir,
                output_dir=job.work_dir / "output",
                checkpoint_dir=job.checkpoint_dir,
            )
            config.label_names = job.dataset.label_names
            result = run_training(config, reporter)
        except Cancelled:
            reporter.flush()
            if not reporter.lost:
                services.job_mark_cancelled(job_id=job_id)
            return "cancelled"
        except EngineError as exc:
            reporter.flush()
            services.job_fail(job_id=job_id, error=exc.as_dict())
            return "failed"
        except Exception as exc:  # noqa: BLE001 - anything else is our bug; keep the traceback
            log.exception("job %s crashed", job_id)
            reporter.flush()
            services.job_fail(
                job_id=job_id,
                error={
                    "code": "internal_error",
                    "message": f"The job stopped on an internal error ({exc.__class__.__name__}). "
                    "An admin can read the traceback.",
                },
                traceback=traceback.format_exc(),
            )
            return "failed"
        reporter.flush()
        if reporter.lost:
            return "lost"
        from llmweb.catalog.services.models import model_register_from_job

        metrics = {
            **result.metrics,
            "train_samples_per_second": result.train_samples_per_second,
            "train_runtime": result.train_runtime,
            "global_step": result.global_step,
        }
        model = model_register_from_job(job=job, output_dir=result.output_dir, metrics=metrics)
        services.job_succeed(job_id=job_id, worker=worker, metrics=metrics, result_model=model)
        return "succeeded"


@shared_task(name="jobs.tasks.reap_stale_jobs")
def reap_stale_jobs_task(stale_seconds: float | None = None) -> list[int]:
    stale = timedelta(seconds=stale_seconds or settings.LLMWEB_HEARTBEAT_STALE_SECONDS)
    return services.job_requeue_stale(stale_after=stale)
