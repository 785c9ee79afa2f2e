"""Reads of datasets and models, always scoped by membership (pages, API and sockets)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from django.utils.timesince import timesince

from llmweb.catalog.models import (
    Dataset,
    DatasetStatus,
    ModelSource,
    ModelStatus,
    RegisteredModel,
)

# Model sources a catalog task prepares (services/liveness.py requeues those when lost).
TASK_MODEL_SOURCES = (ModelSource.UPLOAD, ModelSource.PRESET, ModelSource.HUB)


def dataset_list_for_user(*, user, team=None) -> QuerySet[Dataset]:
    qs = Dataset.objects.visible_to(user)
    return qs.filter(team=team) if team is not None else qs


def dataset_get_for_user(*, user, dataset_id: int | str, writable: bool = False) -> Dataset:
    """404 for a dataset of another team (never 403: ids of other teams stay secret)."""
    qs = Dataset.objects.writable_by(user) if writable else Dataset.objects.visible_to(user)
    try:
        return qs.select_related("team").get(pk=int(dataset_id))
    except (Dataset.DoesNotExist, ValueError, TypeError):
        raise Http404("No such dataset.") from None


def model_list_for_user(*, user, team=None) -> QuerySet[RegisteredModel]:
    qs = RegisteredModel.objects.visible_to(user)
    return qs.filter(team=team) if team is not None else qs


def model_get_for_user(*, user, model_id: int | str, writable: bool = False) -> RegisteredModel:
    qs = (
        RegisteredModel.objects.writable_by(user)
        if writable
        else RegisteredModel.objects.visible_to(user)
    )
    try:
        return qs.select_related("team").get(pk=int(model_id))
    except (RegisteredModel.DoesNotExist, ValueError, TypeError):
        raise Http404("No such model.") from None


def jobs_using(*, dataset: Dataset | None = None, model: RegisteredModel | None = None):
    """Jobs that read this dataset (to train or to evaluate) or this model (in any role),
    oldest first: what keeps the record in their history and blocks its delete."""
    from jobs.models import Job

    qs = Job.objects.none()
    if dataset is not None:
        qs = Job.objects.filter(team_id=dataset.team_id).filter(
            Q(dataset=dataset) | Q(eval_dataset=dataset)
        )
    elif model is not None:
        qs = Job.objects.filter(team_id=model.team_id, job_models__model=model)
    return qs.distinct().order_by("pk")


def job_refs(jobs) -> list[dict]:
    """Plain descriptions of jobs for messages, pages and API errors."""
    return [
        {
            "id": j.pk,
            "name": j.name,
            "type": j.type,
            "status": j.status,
            "url": f"/jobs/{j.pk}/",
        }
        for j in jobs
    ]


def _ordinal_ahead(ahead: int) -> str:
    return "next in line" if ahead == 0 else f"{ahead} ahead of it"


def catalog_waiting_message(record: Dataset | RegisteredModel) -> str | None:
    """ "Waiting for a worker" with the queue position and age; None once a worker holds it.

    The position counts the unclaimed datasets and model arrivals of this deployment that
    were queued before this one (they share queue ``default``), across teams: a count,
    nothing about whose.
    """
    if isinstance(record, Dataset):
        if record.status != DatasetStatus.UPLOADED:
            return None
    elif (
        record.status != ModelStatus.PENDING
        or record.source not in TASK_MODEL_SOURCES
        or record.heartbeat_at is not None
    ):
        return None
    since = record.queued_at or record.created_at
    if since is None:
        return None
    ahead = (
        Dataset.objects.filter(status=DatasetStatus.UPLOADED)
        .annotate(waiting_since=Coalesce("queued_at", "created_at"))
        .filter(waiting_since__lt=since)
        .count()
        + RegisteredModel.objects.filter(
            status=ModelStatus.PENDING, source__in=TASK_MODEL_SOURCES, heartbeat_at__isnull=True
        )
        .annotate(waiting_since=Coalesce("queued_at", "created_at"))
        .filter(waiting_since__lt=since)
        .count()
    )
    seconds = (timezone.now() - since).total_seconds()
    age = f"{max(0, int(seconds))} s" if seconds < 60 else timesince(since, timezone.now())
    again = " (sent again after a lost try)" if record.requeues else ""
    return f"Waiting for a worker: {_ordinal_ahead(ahead)}, queued {age} ago{again}."
