"""The only writers of Job state. Each transition is a conditional UPDATE plus a JobEvent.

Longer than our ~400-line habit on purpose: every write to a Job row (submit, claim,
progress, finish, cancel, retry, resume, reap, clone, edit, delete) stays in this one
module, so "who can change a job's state" has one answer a reviewer can read top to end.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from jobs import preflight
from jobs.engine.jsonable import jsonable
from jobs.errors import JobError
from jobs.kinds import get_kind
from jobs.models import Job, JobEvent, JobModel, JobStatus
from jobs.publishing import job_group, publish
from llmweb.accounts.audit import audit_record
from llmweb.accounts.selectors import can_write
from llmweb.core.queue import enqueue_on_commit

log = logging.getLogger(__name__)

__all__ = ["JobError"]  # re-exported: callers catch services.JobError


# --- events ------------------------------------------------------------------------------


def job_event_append(
    *, job_id: int, kind: str, data: dict[str, Any], worker: str | None = None
) -> JobEvent | None:
    """Allocate the next dense seq with an atomic increment, insert, then publish.

    With ``worker``, the event is written only while that worker still owns the running
    job: a worker presumed dead (its job requeued and taken by another) adds nothing to
    the new attempt's history; None says the event was dropped.
    """
    for _ in range(5):
        with transaction.atomic():
            owned = Job.objects.filter(pk=job_id)
            if worker is not None:
                owned = owned.filter(worker=worker, status=JobStatus.RUNNING)
            if owned.update(last_seq=F("last_seq") + 1) == 0:
                return None
            seq = Job.objects.values_list("last_seq", flat=True).get(pk=job_id)
            try:
                event = JobEvent.objects.create(
                    job_id=job_id, seq=seq, kind=kind, data=jsonable(data)
                )
            except IntegrityError:  # pragma: no cover - only under a lost row lock
                continue
        transaction.on_commit(lambda e=event: publish(job_group(job_id), e.as_message()))
        return event
    raise RuntimeError(f"could not allocate an event seq for job {job_id}")


STATUS_EVENT_FIELDS = ("worker", "device", "error", "attempts")


def _transition(job_id: int, frm: tuple[str, ...], to: str, **fields) -> bool:
    """Conditional UPDATE: True when this caller moved the job; False when someone else did."""
    with transaction.atomic():
        moved = Job.objects.filter(pk=job_id, status__in=frm).update(status=to, **fields) == 1
        if moved:
            job_event_append(
                job_id=job_id, kind="status", data={"status": to, **_status_extra(job_id, fields)}
            )
    return moved


def _status_extra(job_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    """The status event carries the values written, never the expressions that wrote them
    (``attempts=F("attempts") + 1`` is read back as the number it became)."""
    keys = [key for key in STATUS_EVENT_FIELDS if key in fields]
    if any(hasattr(fields[key], "resolve_expression") for key in keys):
        return Job.objects.filter(pk=job_id).values(*keys).first() or {}
    return {key: fields[key] for key in keys}


# --- submit ------------------------------------------------------------------------------


def job_submit(
    *,
    user,
    team,
    job_type: str,
    params: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    base_model=None,
    dataset=None,
    name: str = "",
    priority: int = 0,
    retry_of: Job | None = None,
    then: dict[str, Any] | None = None,
    follows: Job | None = None,
) -> Job:
    """Validate (pre-flight, before any GPU time), record and enqueue a job of any kind.

    Args:
        job_type: the kind's name (``jobs.kinds``).
        inputs: the kind's inputs by name (``{"base_model": model, "dataset": ds}``;
            a list for ``many`` inputs), already scoped to what ``user`` may see.
        base_model, dataset: shorthand for the two inputs the training kinds take.
        then: a follow-up job (``{"type", "params", "inputs"}``) submitted with this job's
            result model when it succeeds; checked now (``preflight.check_then``).
        follows: the job whose success submitted this one (set by the chain only).
    """
    if not can_write(user=user, team=team):
        raise PermissionDenied("Viewers cannot start jobs; ask an owner for the member role.")
    kind = get_kind(job_type)
    inputs = dict(inputs or {})
    if base_model is not None:
        inputs.setdefault("base_model", base_model)
    if dataset is not None:
        inputs.setdefault("dataset", dataset)
    checked = preflight.check(kind=kind, team=team, inputs=inputs, params=params)
    follow_up = preflight.check_then(kind=kind, team=team, then=then)
    datasets = dict(checked.datasets)
    with transaction.atomic():
        job = Job.objects.create(
            team=team,
            created_by=user,
            type=kind.name,
            name=(name or "")[:100],
            params=jsonable(checked.params),
            dataset=datasets.get("train"),
            eval_dataset=datasets.get("eval"),
            queue=kind.queue_name(),
            priority=priority,
            status=JobStatus.VALIDATING,
            retry_of=retry_of,
            then=jsonable(follow_up),
            follows=follows,
        )
        JobModel.objects.bulk_create(
            [
                JobModel(job=job, model=model, role=role, position=position)
                for position, (role, model) in enumerate(checked.models)
            ]
        )
        job_event_append(job_id=job.pk, kind="status", data={"status": "validating"})
        job_event_append(job_id=job.pk, kind="estimate", data=checked.estimate)
        _transition(job.pk, (JobStatus.VALIDATING,), JobStatus.QUEUED, queued_at=timezone.now())
        audit_record(
            actor=user,
            team=team,
            action="job.submit",
            target=job,
            details={"kind": kind.name}
            | ({"retry_of": retry_of.pk} if retry_of else {})
            | ({"follows": follows.pk} if follows else {}),
        )
        _enqueue(job)
    job.refresh_from_db()
    return job


def job_inputs(job: Job) -> dict[str, Any]:
    """The inputs a job was submitted with, by input name (for retry and clone)."""
    return {spec.name: value for spec, value in get_kind(job.type).inputs_of(job).specs}


def broker_priority(priority: int) -> int:
    """The API's priority (-10..10, higher runs first) as the Redis transport's (0..9,
    0 runs first): kombu orders Redis priorities the other way round from AMQP."""
    clamped = max(-10, min(10, int(priority)))
    return round((10 - clamped) * 9 / 20)


def _enqueue(job: Job) -> None:
    """After commit; a job that cannot be queued must not sit "queued"."""

    def failed(exc: Exception) -> None:
        job_fail(
            job_id=job.pk,
            error={
                "code": "queue_unavailable",
                "message": f"The job queue is unreachable ({exc.__class__.__name__}). Try again.",
            },
        )

    enqueue_on_commit(
        "jobs.tasks:run_job_task",
        job.pk,
        on_error=failed,
        queue=job.queue,
        priority=broker_priority(job.priority),
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
    """Succeeded, then its follow-up (``then``) submitted: only the caller that moved the
    job starts it, so a duplicate delivery cannot start two."""
    moved = _transition(
        job_id,
        (JobStatus.RUNNING,),
        JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        metrics=jsonable(metrics),
        result_model=result_model,
        eta_seconds=0,
    )
    if moved:
        job_follow_up_start(job_id=job_id)
    return moved


def job_follow_up_start(*, job_id: int) -> Job | None:
    """Submit a succeeded job's follow-up with its result model, as the same person.

    It goes through :func:`job_submit`, so pre-flight judges it against the real model
    now. A refusal never touches the first job's success: it becomes a ``follow_up``
    event on the first job saying why nothing was started.
    """
    job = Job.objects.select_related("team", "created_by", "result_model").get(pk=job_id)
    then = job.then
    if not then or job.status != JobStatus.SUCCEEDED or job.follow_up is not None:
        return None
    kind_name = then.get("type", "")
    try:
        if job.created_by is None:
            raise JobError("the person who submitted this job no longer exists.")
        if job.result_model is None:
            raise JobError("this job registered no model to hand on.")
        kind = get_kind(kind_name)
        filled = kind.follow_up_input()
        if filled is None:  # the kind changed since submit
            raise JobError(f"a {kind.name} job reads no model.")
        inputs = preflight.then_inputs(kind=kind, team=job.team, raw=then.get("inputs") or {})
        inputs[filled.name] = [job.result_model] if filled.many else job.result_model
        follow = job_submit(
            user=job.created_by,
            team=job.team,
            job_type=kind.name,
            inputs=inputs,
            params=then.get("params") or {},
            name=f"{job.name} · {kind.name}"[:100] if job.name else "",
            priority=job.priority,
            follows=job,
        )
    except (JobError, PermissionDenied, IntegrityError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        job_event_append(
            job_id=job_id,
            kind="follow_up",
            data={
                "status": "refused",
                "type": kind_name,
                "message": f"The follow-up {kind_name} job was not started: {message}",
                "code": getattr(exc, "code", "refused"),
                "param": getattr(exc, "param", None),
            },
        )
        log.info("job %s: follow-up %s refused: %s", job_id, kind_name, message)
        return None
    job_event_append(
        job_id=job_id,
        kind="follow_up",
        data={"status": "started", "type": kind.name, "job": follow.pk},
    )
    return follow


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
    with transaction.atomic():
        was = job.status
        if _transition(
            job.pk,
            (JobStatus.QUEUED, JobStatus.VALIDATING),
            JobStatus.CANCELLED,
            finished_at=timezone.now(),
            cancel_requested=True,
        ):
            changed = True
        elif Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True):
            changed, was = True, JobStatus.RUNNING
            job_event_append(
                job_id=job.pk, kind="log", data={"message": f"cancel requested by {user.username}"}
            )
        else:
            changed = False  # it finished a moment ago: nothing was cancelled
        if changed:
            audit_record(
                actor=user, team=job.team, action="job.cancel", target=job, details={"was": was}
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
        inputs=job_inputs(job),
        params=job.params,
        name=job.name,
        priority=job.priority,
        retry_of=job,
        then=job.then,
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
    with transaction.atomic():
        if _transition(
            job.pk,
            (JobStatus.CANCELLED,),
            JobStatus.QUEUED,
            queued_at=timezone.now(),
            finished_at=None,
            cancel_requested=False,
            worker="",
        ):
            audit_record(
                actor=user,
                team=job.team,
                action="job.resume",
                target=job,
                details={"from_step": job.checkpoint_step},
            )
            _enqueue(job)
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
            _enqueue(Job.objects.only("pk", "queue", "priority").get(pk=job_id))
            requeued.append(job_id)
    return requeued


# --- editing, cloning, deleting --------------------------------------------------------

MAX_TAGS, MAX_TAG_CHARS = 20, 40


def job_update(
    *,
    user,
    job: Job,
    name: str | None = None,
    notes: str | None = None,
    tags: list[str] | None = None,
    archived: bool | None = None,
) -> Job:
    """What people write on a job; its inputs, params and history never change."""
    _require_writer(user, job)
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name.strip()[:100]
    if notes is not None:
        fields["notes"] = notes[:5000]
    if tags is not None:
        clean = []
        for tag in tags:
            tag = str(tag).strip()
            if not tag:
                continue
            if len(tag) > MAX_TAG_CHARS:
                raise JobError(
                    f"Tags are at most {MAX_TAG_CHARS} characters; {tag[:20]!r}… is longer.",
                    param="tags",
                )
            if tag not in clean:
                clean.append(tag)
        if len(clean) > MAX_TAGS:
            raise JobError(f"At most {MAX_TAGS} tags per job.", param="tags")
        fields["tags"] = clean
    if archived is not None:
        fields["archived"] = bool(archived)
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def job_clone(
    *, user, job: Job, params: dict[str, Any] | None = None, name: str | None = None
) -> Job:
    """Run a job again with the same kind and inputs, its params changed by ``params``.

    Unlike retry, any job can be cloned, and the clone is a job of its own (no
    ``retry_of`` edge): it is how people iterate on a recipe.
    """
    if params is not None and not isinstance(params, dict):
        raise JobError("params must be a JSON object of parameter names to values.", param="params")
    return job_submit(
        user=user,
        team=job.team,
        job_type=job.type,
        inputs=job_inputs(job),
        params={**(job.params or {}), **(params or {})},
        name=job.name if name is None else name,
        priority=job.priority,
        then=job.then,
    )


def job_delete(*, user, job: Job) -> None:
    """A finished job goes with its events and work files; the model it produced stays."""
    _require_writer(user, job)
    if not job.is_finished:
        raise JobError(
            f"Job #{job.pk} is {job.status}; cancel it first, then delete it.",
            code="job_active",
            http_status=409,
        )
    folder = job.work_dir
    with transaction.atomic():
        audit_record(
            actor=user, team=job.team, action="job.delete", target=job, details={"kind": job.type}
        )
        Job.objects.filter(pk=job.pk).delete()
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
