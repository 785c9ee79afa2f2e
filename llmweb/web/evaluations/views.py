"""Evaluation pages: one evaluation (confusion matrix, samples worst first, download),
and the compare page (2-6 models, or a dataset's leaderboard). Reads go through the
evaluations selectors, so the pages show exactly what the API returns."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs.engine.rescoring import rescore_metrics
from llmweb.catalog import selectors as catalog
from llmweb.core.errors import DomainError
from llmweb.evaluations import selectors, services
from llmweb.web.evaluations.charts import reliability_svg, scatter_svg

PAGE = 25
HEADLINE_SKIP = (
    "per_class",
    "confusion_matrix",
    "reliability",
    "labels",
    "generation",
    "rescored",
    "slices",
)


def _query(request: HttpRequest, **changes: Any) -> str:
    params = {k: v for k, v in request.GET.items() if v}
    params.update({k: v for k, v in changes.items()})
    return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


@login_required
def evaluation_detail(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = selectors.evaluation_get_for_user(user=request.user, evaluation_id=evaluation_id)
    true, pred = request.GET.get("true") or None, request.GET.get("pred") or None
    ordering = request.GET.get("ordering") or "-loss"
    try:
        offset = max(0, int(request.GET.get("offset") or 0))
    except ValueError:
        offset = 0
    try:
        page = selectors.evaluation_samples(
            evaluation=evaluation,
            ordering=ordering,
            true=true,
            pred=pred,
            offset=offset,
            limit=PAGE,
        )
    except DomainError:
        ordering = "-loss"
        page = selectors.evaluation_samples(
            evaluation=evaluation,
            ordering=ordering,
            true=true,
            pred=pred,
            offset=offset,
            limit=PAGE,
        )
    metrics = evaluation.metrics or {}
    labels = metrics.get("labels") or []
    matrix = [
        {
            "label": labels[i] if i < len(labels) else i,
            "cells": [
                {
                    "count": count,
                    "pred": labels[j] if j < len(labels) else j,
                    "href": _query(request, true=labels[i], pred=labels[j], offset="") + "#samples",
                    "active": true == labels[i] and pred == labels[j],
                    "diagonal": i == j,
                }
                for j, count in enumerate(row)
            ],
        }
        for i, row in enumerate(metrics.get("confusion_matrix") or [])
        if i < len(labels)
    ]
    following = offset + PAGE
    return render(
        request,
        "evaluations/detail.html",
        {
            "evaluation": evaluation,
            "headline": [(k, v) for k, v in metrics.items() if k not in HEADLINE_SKIP],
            "per_class": sorted((metrics.get("per_class") or {}).items()),
            "labels": labels,
            "matrix": matrix,
            "reliability_svg": reliability_svg(metrics.get("reliability") or []),
            "rescored": sorted((metrics.get("rescored") or {}).items()),
            "slices": metrics.get("slices"),
            "rescore_metrics": rescore_metrics(evaluation.measure)
            if evaluation.samples_path
            else [],
            "page": page,
            "filter_true": true,
            "filter_pred": pred,
            "ordering": ordering,
            "clear_href": _query(request, true="", pred="", offset="") + "#samples",
            "next_href": _query(request, offset=following) + "#samples"
            if following < page.total
            else None,
            "prev_href": _query(request, offset=max(0, offset - PAGE)) + "#samples"
            if offset
            else None,
        },
    )


@login_required
@require_POST
def evaluation_rescore(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = selectors.evaluation_get_for_user(user=request.user, evaluation_id=evaluation_id)
    metric = request.POST.get("metric", "")
    try:
        services.evaluation_rescore(user=request.user, evaluation=evaluation, metric=metric)
    except (DomainError, PermissionDenied) as exc:
        messages.error(request, getattr(exc, "message", None) or str(exc))
    else:
        messages.success(request, f"Re-scored with {metric}.")
    return redirect("evaluation-page", evaluation_id=evaluation.pk)


@login_required
def evaluation_download(request: HttpRequest, evaluation_id: int) -> FileResponse:
    evaluation = selectors.evaluation_get_for_user(user=request.user, evaluation_id=evaluation_id)
    path = evaluation.samples_file
    if path is None or not path.is_file():
        raise Http404("This evaluation kept no per-sample rows.")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"evaluation-{evaluation.pk}-samples.jsonl",
        content_type="application/jsonl",
    )


def _curves_chart(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per model with a curve, named like the table rows, for the chart script."""
    names = {row["model"]: row["model_name"] for row in result["evaluations"]}
    return [
        {"model": int(model), "label": names.get(int(model), f"model {model}"), "points": points}
        for model, points in result["curves"].items()
    ]


@login_required
def compare(request: HttpRequest) -> HttpResponse:
    """The URL carries the choice (``?models=1,2&dataset=3``), so it can be shared."""
    models = request.GET.get("models") or ",".join(request.GET.getlist("model"))
    dataset = request.GET.get("dataset") or ""
    shown = request.GET.get("outputs") or ""  # "show more" grows the page of outputs
    result, error = None, None
    if models or dataset:
        try:
            result = selectors.comparison_for_user(
                user=request.user, models=models, dataset=dataset, outputs_limit=shown
            )
        except DomainError as exc:
            error = exc.message
    chosen = {int(m) for m in models.split(",") if m.strip().isdigit()} if models else set()
    rows = []
    if result:
        columns = result["columns"]
        for row in result["evaluations"]:
            cells = []
            for column in columns:
                value = (row.get(column["group"]) or {}).get(column["key"])
                cells.append(
                    {
                        "key": column["key"],
                        "value": value,
                        "best": row["id"] in result["best"].get(column["key"], []),
                    }
                )
            rows.append({**row, "cells": cells})
    outputs = result.get("outputs") if result else None
    if outputs:
        for line in outputs["rows"]:
            line["cells"] = [line["outputs"][str(c["evaluation"])] for c in outputs["columns"]]
    more = outputs["limit"] + selectors.OUTPUTS_PAGE if outputs else 0
    return render(
        request,
        "evaluations/compare.html",
        {
            "result": result,
            "rows": rows,
            "error": error,
            "scatter_svg": scatter_svg(result["scatter"]) if result else None,
            "curves": _curves_chart(result) if result else None,
            "outputs": outputs,
            "more_outputs_href": _query(request, outputs=min(more, selectors.MAX_OUTPUTS_PAGE))
            + "#outputs"
            if outputs and outputs["next_offset"] is not None
            else None,
            "all_models": catalog.model_list_for_user(user=request.user).filter(status="ready"),
            "all_datasets": catalog.dataset_list_for_user(user=request.user).filter(status="ready"),
            "chosen": chosen,
            "chosen_dataset": int(dataset) if dataset.isdigit() else None,
        },
    )
