"""Reads of evaluations, scoped by membership like every team object; samples and the
comparison are read from records the scoped queries returned."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from jobs.models import JobEvent
from llmweb.core.errors import DomainError
from llmweb.core.ids import MAX_ID
from llmweb.evaluations.comparison import (
    CURVE_POINTS,
    comparison_table,
    side_by_side,
    training_curve,
)
from llmweb.evaluations.models import Evaluation

SAMPLE_ORDERINGS = ("loss", "-loss", "score", "-score", "i", "-i")
MAX_COMPARED = 6
OUTPUTS_PAGE = 20
MAX_OUTPUTS_PAGE = 200
CURVE_EVENTS = ("progress", "metrics", "resumed")


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


def _count(raw: Any, *, param: str, default: int, low: int, high: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise DomainError(f"{param} must be a whole number.", param=param) from None
    if not low <= value <= high:
        raise DomainError(f"{param} must be between {low} and {high}.", param=param)
    return value


def comparison_curves(evaluations: list[Evaluation]) -> dict[str, list[dict[str, Any]]]:
    """model id -> the train/eval loss curve of the job that produced it (models made by
    no job, such as uploads, or by a job without loss events, have none)."""
    jobs: dict[int, int] = {}
    for evaluation in evaluations:
        if evaluation.model.job_id is not None:
            jobs.setdefault(evaluation.model_id, evaluation.model.job_id)
    events: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for job_id in set(jobs.values()):
        # A long run has a progress event per step and decoding them all takes seconds:
        # read the (cheap) seqs first and decode about 2 x CURVE_POINTS of them, evenly
        # spread. Eval points and resumes are few and all read.
        history = JobEvent.objects.filter(job_id=job_id, kind__in=CURVE_EVENTS)
        seqs = list(history.filter(kind="progress").order_by("seq").values_list("seq", flat=True))
        keep = 2 * CURVE_POINTS
        if len(seqs) > keep:
            chosen = {seqs[round(i * (len(seqs) - 1) / (keep - 1))] for i in range(keep)}
            history = history.filter(~Q(kind="progress") | Q(seq__in=sorted(chosen)))
        events[job_id] = list(history.order_by("seq").values_list("kind", "data"))
    curves = {}
    for model_id, job_id in jobs.items():
        points = training_curve(events[job_id])
        if points:
            curves[str(model_id)] = points
    return curves


def _sample_page(
    evaluation: Evaluation, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Rows ``offset`` to ``offset + limit`` of the per-sample file and its row count,
    without parsing (or holding) the rest of a large file."""
    path = evaluation.samples_file
    if path is None or not path.is_file():
        return [], 0
    page, total = [], 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            if offset <= total < offset + limit:
                page.append(json.loads(line))
            total += 1
    return page, total


def comparison_outputs(
    evaluations: list[Evaluation], *, offset: int = 0, limit: int = OUTPUTS_PAGE
) -> dict[str, Any] | None:
    """The generation evaluations' outputs for the same inputs, side by side.

    Only evaluations of one dataset version and split see the same inputs: those of the
    first generation evaluation are shown, the others are named in ``left_out``. None
    when no generation evaluation kept its samples.
    """
    generations = [e for e in evaluations if e.measure == "generation" and e.samples_path]
    if not generations:
        return None
    first = generations[0]
    shown = [e for e in generations if (e.dataset_id, e.split) == (first.dataset_id, first.split)]
    heads = [(e, *_sample_page(e, offset, limit)) for e in shown]
    total = max(count for _, _, count in heads)
    following = offset + limit
    return {
        "dataset": first.dataset_id,
        "split": first.split,
        "columns": [
            {"evaluation": e.pk, "model": e.model_id, "label": str(e.model)} for e, _, _ in heads
        ],
        "rows": side_by_side([(e.pk, rows) for e, rows, _ in heads], limit=limit),
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_offset": following if following < total else None,
        "left_out": [e.pk for e in generations if e not in shown],
    }


def comparison_for_user(
    *,
    user,
    models: Any = None,
    dataset: Any = None,
    outputs_offset: Any = None,
    outputs_limit: Any = None,
) -> dict[str, Any]:
    """2-6 models' latest evaluations on one dataset, or every evaluation on a dataset
    (its leaderboard). With models but no dataset, the newest dataset they share.

    Beside the table: the training curves of the models' jobs (``curves``) and, for
    generation models, their outputs for the same inputs (``outputs``, a page of
    ``outputs_limit`` rows from ``outputs_offset``).

    Raises:
        DomainError: no models and no dataset, more than six models, unknown ids, a page
            of outputs out of range.
    """
    offset = _count(outputs_offset, param="outputs_offset", default=0, low=0, high=10**9)
    limit = _count(
        outputs_limit, param="outputs_limit", default=OUTPUTS_PAGE, low=1, high=MAX_OUTPUTS_PAGE
    )
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
        "curves": comparison_curves(evaluations),
        "outputs": comparison_outputs(evaluations, offset=offset, limit=limit),
    }
