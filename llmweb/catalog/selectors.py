"""Reads of datasets and models, always scoped by membership (pages, API and sockets)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from llmweb.catalog.models import Dataset, RegisteredModel


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
