"""Reads of evaluations, scoped by membership like every team object; samples and the
comparison are read from records the scoped queries returned."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from llmweb.core.errors import DomainError
from llmweb.core.ids import MAX_ID
from llmweb.evaluations.comparison import comparison_table
from llmweb.evaluations.models import Evaluation

SAMPLE_ORDERINGS = ("loss", "-loss", "score", "-score", "i", "-i")
MAX_COMPARED = 6


def evaluation_list_for_user(*, user, model=None, dataset=None) -> QuerySet[Evaluation]:
    qs = Evaluation.objects.visible_to(user).select_related("model", "dataset", "job")
    if model is not None:
        qs = qs.filter(model=model)
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    return qs


def evaluation_get_for_user(*, user, evaluation_id: int | str) -> Evaluation:
    """404 for an evaluation of another team (ids of other teams stay secret)."""
    try:
        return (
            Evaluation.objects.visible_to(user)
            .select_related("model", "dataset", "job", "team")
            .get(pk=int(evaluation_id))
        )
    except (Evaluation.DoesNotExist, ValueError, TypeError):
        raise Http404("No such evaluation.") from None


@dataclass
class SamplePage:
    total: int
    rows: list[dict[str, Any]]
    offset: int
    limit: int


def _sort_key(field: str):
    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row.get(field)
        # rows without the value sort last either way
        return (0, float(value)) if isinstance(value, int | float) else (1, 0.0)

    return key


def evaluation_sample_rows(*, evaluation: Evaluation) -> list[dict[str, Any]]:
    """Every saved per-sample row of an evaluation (none when it kept no file)."""
    path = evaluation.samples_file
    if path is None or not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluation_samples(
    *,
    evaluation: Evaluation,
    ordering: str = "-loss",
    true: str | None = None,
    pred: str | None = None,
    correct: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> SamplePage:
    """A page of the per-sample rows, filtered by true/predicted class and sorted
    ("-loss": worst examples first)."""
    if ordering not in SAMPLE_ORDERINGS:
        raise DomainError(
            f"ordering must be one of {', '.join(SAMPLE_ORDERINGS)}.", param="ordering"
        )
    rows = evaluation_sample_rows(evaluation=evaluation)
    if true:
        rows = [r for r in rows if r.get("true") == true]
    if pred:
        rows = [r for r in rows if r.get("pred") == pred]
    if correct is not None:
        rows = [r for r in rows if r.get("correct") is correct]
    field = ordering.lstrip("-")
    descending = ordering.startswith("-")
    present = [r for r in rows if isinstance(r.get(field), int | float)]
    missing = [r for r in rows if not isinstance(r.get(field), int | float)]
    present.sort(key=lambda r: float(r[field]), reverse=descending)
    rows = present + missing
    offset, limit = max(0, offset), max(1, min(limit, 500))
    return SamplePage(
        total=len(rows), rows=rows[offset : offset + limit], offset=offset, limit=limit
    )


def _ids(raw: Any) -> list[int]:
    if raw in (None, "", []):
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    try:
        ids = [int(str(item).strip()) for item in items if str(item).strip()]
    except ValueError:
        raise DomainError("models must be a comma-separated list of ids.", param="models") from None
    if any(not 0 < i < MAX_ID for i in ids):
        raise DomainError("models must be positive ids.", param="models")
    return ids


def evaluation_row(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "id": evaluation.pk,
        "label": f"{evaluation.model}",
        "model": evaluation.model_id,
        "model_name": str(evaluation.model),
        "dataset": evaluation.dataset_id,
        "dataset_name": str(evaluation.dataset),
        "split": evaluation.split,
        "measure": evaluation.measure,
        "source": evaluation.source,
        "device": evaluation.device,
        "metrics": evaluation.metrics,
        "signatures": evaluation.signatures,
        "speed": evaluation.speed,
        "created_at": evaluation.created_at.isoformat(),
    }


def comparison_for_user(*, user, models: Any = None, dataset: Any = None) -> dict[str, Any]:
    """2-6 models' latest evaluations on one dataset, or every evaluation on a dataset
    (its leaderboard). With models but no dataset, the newest dataset they share.

    Raises:
        DomainError: no models and no dataset, more than six models, unknown ids.
    """
    model_ids = _ids(models)
    if len(model_ids) > MAX_COMPARED:
        raise DomainError(f"Compare at most {MAX_COMPARED} models.", param="models")
    if not model_ids and dataset in (None, ""):
        raise DomainError("Name the models to compare, or a dataset.", param="models")
    qs = evaluation_list_for_user(user=user)
    if dataset not in (None, ""):
        try:
            dataset_id = int(dataset)
        except (TypeError, ValueError):
            raise DomainError("dataset must be an id.", param="dataset") from None
        if not 0 < dataset_id < MAX_ID:
            raise DomainError("dataset must be a positive id.", param="dataset")
        qs = qs.filter(dataset_id=dataset_id)
    if model_ids:
        qs = qs.filter(model_id__in=model_ids)
        if dataset in (None, ""):
            shared = None
            for each in qs.order_by("-created_at", "-id"):
                if all(
                    qs.filter(model_id=m, dataset_id=each.dataset_id).exists() for m in model_ids
                ):
                    shared = each.dataset_id
                    break
            if shared is not None:
                qs = qs.filter(dataset_id=shared)
        latest: dict[int, Evaluation] = {}
        for each in qs.order_by("-created_at", "-id"):
            latest.setdefault(each.model_id, each)
        evaluations = [latest[m] for m in model_ids if m in latest]
    else:
        evaluations = list(qs.order_by("-created_at", "-id"))
    rows = [evaluation_row(e) for e in evaluations]
    datasets = sorted({(r["dataset"], r["dataset_name"]) for r in rows})
    return {
        "models": model_ids,
        "dataset": datasets[0][0] if len(datasets) == 1 else None,
        "datasets": [{"id": i, "name": n} for i, n in datasets],
        "evaluations": rows,
        **comparison_table(rows),
    }
