"""The only writers of Job state. Each transition is a conditional UPDATE plus a JobEvent."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from jobs import preflight
from jobs.models import Job, JobEvent, JobStatus
from jobs.reporting import job_group, publish
from llmweb.accounts.selectors import can_write

log = logging.getLogger(__name__)


class JobError(Exception):
    """A refusal a person can act on; the API turns it into a 400 naming ``param``."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        param: str | None = None,
        http_status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.param, self.http_status = message, code, param, http_status

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param}


# --- events ------------------------------------------------------------------------------


def job_event_append(*, job_id: int, kind: str, data: dict[str, Any]) -> JobEvent:
    """Allocate the next dense seq with an atomic increment, insert, then publish."""
    for _ in range(5):
        with transaction.atomic():
            Job.objects.filter(pk=job_id).update(last_seq=F("last_seq") + 1)
            seq = Job.objects.values_list("last_seq", flat=True).get(pk=job_id)
            try:
                event = JobEvent.objects.create(
                    job_id=job_id, seq=seq, kind=kind, data=_jsonable(data)
                )
            except IntegrityError:  # pragma: no cover - only under a lost row lock
                continue
        transaction.on_commit(lambda e=event: publish(job_group(job_id), e.as_message()))
        return event
    raise RuntimeError(f"could not allocate an event seq for job {job_id}")


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in data.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        elif isinstance(v, (set, tuple)):
            v = list(v)
        elif v is not None and not isinstance(v, (str, int, float, bool, list, dict)):
            v = str(v)
        out[k] = v
    return out


def _transition(job_id: int, frm: tuple[str, ...], to: str, **fields) -> bool:
    """Conditional UPDATE: True when this caller moved the job; False when someone else did."""
    with transaction.atomic():
        moved = Job.objects.filter(pk=job_id, status__in=frm).update(status=to, **fields) == 1
        if moved:
            job_event_append(
                job_id=job_id, kind="status", data={"status": to, **_status_extra(fields)}
            )
    return moved


def _status_extra(fields: dict[str, Any]) -> dict[str, Any]:
    extra = {}
    for key in ("worker", "device", "error", "attempts"):
        if key in fields and not isinstance(fields[key], F):
            extra[key] = fields[key]
    return extra


# --- submit ------------------------------------------------------------------------------


def job_submit(
    *,
    user,
    team,
    job_type: str,
    base_model,
    dataset,
    params: dict[str, Any],
    name: str = "",
    priority: int = 0,
    retry_of: Job | None = None,
) -> Job:
    """Validate (pre-flight, before any GPU time), record and enqueue a job."""
    if not can_write(user=user, team=team):
        raise PermissionDenied("Viewers cannot start jobs; ask an owner for the member role.")
    checked = preflight.check(
        job_type=job_type, team=team, base_model=base_model, dataset=dataset, params=params
    )
    with transaction.atomic():
        job = Job.objects.create(
            team=team,
            created_by=user,
            type=job_type,
            name=(name or "")[:100],
            params=checked.params,
            base_model=base_model,
            dataset=dataset,
            queue=settings.LLMWEB_TRAIN_QUEUE,
            priority=priority,
            status=JobStatus.VALIDATING,
            retry_of=retry_of,
        )
        job_event_append(job_id=job.pk, kind="status", data={"status": "validating"})
        job_event_append(job_id=job.pk, kind="estimate", data=checked.estimate)
        _transition(job.pk, (JobStatus.VALIDATING,), JobStatus.QUEUED, queued_at=timezone.now())
        transaction.on_commit(lambda: _enqueue(job.pk))
    job.refresh_from_db()
    return job


def _enqueue(job_id: int) -> None:
    from jobs.tasks import run_job_task

    try:
        job = Job.objects.only("queue", "priority").get(pk=job_id)
        run_job_task.apply_async(args=[job_id], queue=job.queue, priority=job.priority)
    except Exception as exc:  # noqa: BLE001 - a job that cannot be queued must not sit "queued"
        log.exception("could not enqueue job %s", job_id)
        job_fail(
            job_id=job_id,
            error={
                "code": "queue_unavailable",
                "message": f"The job queue is unreachable ({exc.__class__.__name__}). Try again.",
            },
        )


# --- worker side -------------------------------------------------------------------------


def job_claim(*, job_id: int, worker: str, device: str) -> bool:
    """Exactly one worker wins; a late duplicate delivery finds the job taken and exits."""
    now = timezone.now()
    return _transition(
        job_id,
        (JobStatus.QUEUED,),
        JobStatus.RUNNING,
        worker=worker,
        device=device,
        heartbeat_at=now,
        started_at=now,
        attempts=F("attempts") + 1,
    )


def job_poll(*, job_id: int, worker: str, heartbeat: bool) -> str:
    """Heartbeat (when asked) and report: ``run``, ``cancel`` or ``lost``."""
    qs = Job.objects.filter(pk=job_id, worker=worker, status=JobStatus.RUNNING)
    if heartbeat:
        if qs.update(heartbeat_at=timezone.now()) == 0:
            return "lost"
    row = qs.values_list("cancel_requested", flat=True).first()
    if row is None:
        return "lost"
    return "cancel" if row else "run"


def job_progress_update(
    *,
    job_id: int,
    worker: str,
    step: int | None = None,
    total: int | None = None,
    epoch: float | None = None,
    eta_seconds: float | None = None,
    **_ignored,
) -> None:
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if step is not None:
        fields["step"] = int(step)
    if total:
        fields["total_steps"] = int(total)
    if epoch is not None:
        fields["epoch"] = float(epoch)
    fields["eta_seconds"] = eta_seconds
    Job.objects.filter(pk=job_id, worker=worker, status=JobStatus.RUNNING).update(**fields)


def job_checkpoint_update(*, job_id: int, step: int) -> None:
    Job.objects.filter(pk=job_id).update(checkpoint_step=step)


def job_succeed(*, job_id: int, worker: str, metrics: dict[str, Any], result_model=None) -> bool:
    return _transition(
        job_id,
        (JobStatus.RUNNING,),
        JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        metrics=_jsonable(metrics),
        result_model=result_model,
        eta_seconds=0,
    )


def job_fail(*, job_id: int, error: dict[str, Any], traceback: str = "") -> bool:
    error = {
        "code": error.get("code", "error"),
        "message": error.get("message", "The job failed."),
        "param": error.get("param"),
    }
    return _transition(
        job_id,
        (JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.RUNNING),
        JobStatus.FAILED,
        finished_at=timezone.now(),
        error=error,
        error_traceback=traceback,
    )


def job_mark_cancelled(*, job_id: int) -> bool:
    return _transition(
        job_id,
        (JobStatus.RUNNING, JobStatus.QUEUED),
        JobStatus.CANCELLED,
        finished_at=timezone.now(),
    )


# --- people ------------------------------------------------------------------------------


def _require_writer(user, job: Job) -> None:
    if not can_write(user=user, team=job.team):
        raise PermissionDenied("Viewers cannot change jobs.")


def job_cancel(*, user, job: Job) -> Job:
    """Queued: cancelled now, never starts. Running: flagged; the worker stops within a step."""
    _require_writer(user, job)
    if job.is_finished:
        raise JobError(
            f"The job already {job.status}; there is nothing to cancel.",
            code="job_finished",
            http_status=409,
        )
    if not _transition(
        job.pk,
        (JobStatus.QUEUED, JobStatus.VALIDATING),
        JobStatus.CANCELLED,
        finished_at=timezone.now(),
        cancel_requested=True,
    ):
        if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True):
            job_event_append(
                job_id=job.pk, kind="log", data={"message": f"cancel requested by {user.username}"}
            )
    job.refresh_from_db()
    return job


def job_retry(*, user, job: Job) -> Job:
    """A new job with the same params; the old one keeps its history."""
    _require_writer(user, job)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise JobError(
            "Only a failed or cancelled job can be retried.", code="not_retryable", http_status=409
        )
    return job_submit(
        user=user,
        team=job.team,
        job_type=job.type,
        base_model=job.base_model,
        dataset=job.dataset,
        params=job.params,
        name=job.name,
        priority=job.priority,
        retry_of=job,
    )


def job_resume(*, user, job: Job) -> Job:
    """The same cancelled job continues from its last checkpoint."""
    _require_writer(user, job)
    if job.status != JobStatus.CANCELLED:
        raise JobError(
            "Only a cancelled job can be resumed.", code="not_resumable", http_status=409
        )
    if not job.checkpoint_step:
        raise JobError(
            "This job saved no checkpoint before it stopped; retry it instead.",
            code="no_checkpoint",
            http_status=409,
        )
    if _transition(
        job.pk,
        (JobStatus.CANCELLED,),
        JobStatus.QUEUED,
        queued_at=timezone.now(),
        finished_at=None,
        cancel_requested=False,
        worker="",
    ):
        transaction.on_commit(lambda: _enqueue(job.pk))
    job.refresh_from_db()
    return job


def job_requeue_stale(*, stale_after: timedelta) -> list[int]:
    """The reaper: a running job whose heartbeat is stale lost its worker; queue it again."""
    cutoff = timezone.now() - stale_after
    requeued = []
    for job_id in Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
        "pk", flat=True
    ):
        if _transition(
            job_id, (JobStatus.RUNNING,), JobStatus.QUEUED, queued_at=timezone.now(), worker=""
        ):
            job_event_append(
                job_id=job_id,
                kind="log",
                data={
                    "message": "worker lost (no heartbeat); job queued again",
                    "level": "warning",
                },
            )
            transaction.on_commit(lambda j=job_id: _enqueue(j))
            requeued.append(job_id)
    return requeued
