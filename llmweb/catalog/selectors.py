"""Reads of datasets and models, always scoped by membership (pages, API and sockets)."""

from __future__ import annotations

from django.db.models import QuerySet
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
