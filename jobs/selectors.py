"""Reads of jobs, scoped by membership; the only place that decides who sees a job."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from jobs.models import Job, JobEvent, JobStatus


def job_list_for_user(*, user, team=None) -> QuerySet[Job]:
    qs = (
        Job.objects.visible_to(user)
        .select_related("dataset", "eval_dataset", "result_model", "created_by", "followed_by")
        .prefetch_related("job_models__model")
    )
    return qs.filter(team=team) if team is not None else qs


def job_get_for_user(*, user, job_id: int | str, writable: bool = False) -> Job:
    qs = Job.objects.writable_by(user) if writable else Job.objects.visible_to(user)
    try:
        return (
            qs.select_related("dataset", "eval_dataset", "result_model", "team", "followed_by")
            .prefetch_related("job_models__model")
            .get(pk=int(job_id))
        )
    except (Job.DoesNotExist, ValueError, TypeError):
        raise Http404("No such job.") from None


def job_events_after(*, job: Job, after: int = 0, limit: int = 1000) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit])


def job_follow_up_refusal(*, job: Job) -> dict | None:
    """Why a succeeded job's follow-up (``then``) was not started, from its last
    ``follow_up`` event; None when it started or there is none."""
    if not job.then or job.follow_up is not None:
        return None
    event = JobEvent.objects.filter(job=job, kind="follow_up").order_by("-seq").first()
    return event.data if event is not None and event.data.get("status") == "refused" else None


def job_queue_position(*, job: Job) -> int | None:
    """1-based place among queued jobs of the same queue (higher priority, then older, first)."""
    if job.status != JobStatus.QUEUED:
        return None
    ahead = Job.objects.filter(queue=job.queue, status=JobStatus.QUEUED).exclude(pk=job.pk)
    # Ties on queued_at (one clock tick, many submissions) break on the id, so the
    # positions of N queued jobs are exactly 1..N.
    ahead = (
        ahead.filter(priority__gt=job.priority)
        | ahead.filter(priority=job.priority, queued_at__lt=job.queued_at)
        | ahead.filter(priority=job.priority, queued_at=job.queued_at, pk__lt=job.pk)
    )
    return ahead.count() + 1


def job_queue_eta_seconds(*, job: Job) -> float | None:
    """Rough: jobs ahead (and the running one) times the mean duration of recent jobs."""
    position = job_queue_position(job=job)
    if position is None:
        return None
    recent = Job.objects.filter(
        status=JobStatus.SUCCEEDED,
        queue=job.queue,
        started_at__isnull=False,
        finished_at__isnull=False,
    ).order_by("-finished_at")[:20]
    durations = [(j.finished_at - j.started_at).total_seconds() for j in recent]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    running = Job.objects.filter(queue=job.queue, status=JobStatus.RUNNING).count()
    return mean * (position - 1 + running)


def training_throughput(
    *, model_type: str, num_parameters: int, max_length: int, limit: int = 20
) -> dict[str, dict]:
    """Measured training speed of finished jobs on a similar model, by device.

    Similar = same architecture family, within 2x the parameters, same max_length power
    of two. Per device: median samples/s, median fixed overhead (wall time of the attempt
    minus the training loop: loading, final evaluation, saving) and how many jobs. A
    speed number leaks nothing about other teams, so all jobs of the deployment count.
    """
    import statistics

    low, high = num_parameters / 2, num_parameters * 2
    bucket = max(1, int(max_length)).bit_length()
    jobs = (
        Job.objects.filter(
            status=JobStatus.SUCCEEDED,
            job_models__role="base",
            job_models__model__model_type=model_type,
            job_models__model__num_parameters__gte=low,
            job_models__model__num_parameters__lte=high,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .exclude(device="")
        .order_by("-finished_at")
        .only("device", "params", "metrics", "started_at", "finished_at")[: limit * 5]
    )
    samples: dict[str, list[tuple[float, float]]] = {}
    for job in jobs:
        metrics = job.metrics or {}
        rate = metrics.get("train_samples_per_second")
        runtime = metrics.get("train_runtime")
        length = (job.params or {}).get("max_length") or 0
        if not rate or runtime is None or int(length).bit_length() != bucket:
            continue
        wall = (job.finished_at - job.started_at).total_seconds()
        device = job.device.split(" ", 1)[0] if job.device.startswith("cpu") else job.device
        found = samples.setdefault(device, [])
        if len(found) < limit:
            found.append((float(rate), max(0.0, wall - float(runtime))))
    return {
        device: {
            "samples_per_second": statistics.median(r for r, _ in pairs),
            "overhead_seconds": statistics.median(o for _, o in pairs),
            "jobs": len(pairs),
        }
        for device, pairs in samples.items()
    }
