"""Dataset pages: list, upload form, detail (status, quality report, preview), delete."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs.engine.schemas import SCHEMAS
from llmweb.accounts.selectors import can_write
from llmweb.catalog import selectors
from llmweb.catalog.models import DatasetStatus, Schema
from llmweb.catalog.services import datasets as services
from llmweb.core.errors import DomainError
from llmweb.web.common import form_error, team_or_404
from llmweb.web.datasets import forms

SPLITS = ("train", "validation", "test")


@login_required
def dataset_list(request):
    team = team_or_404(request)
    schema, status = request.GET.get("schema", ""), request.GET.get("status", "")
    rows = selectors.dataset_list_for_user(user=request.user, team=team).select_related(
        "created_by"
    )
    if schema:
        rows = rows.filter(schema=schema)
    if status:
        rows = rows.filter(status=status)
    return render(
        request,
        "datasets/list.html",
        {
            "datasets": [(d, sum((d.num_rows or {}).values())) for d in rows],
            "schemas": Schema.values,
            "statuses": DatasetStatus.values,
            "current": {"schema": schema, "status": status},
            "can_write": can_write(user=request.user, team=team),
        },
    )


@login_required
def dataset_new(request):
    """The page posts with XHR to the API (progress bars); a plain POST here is the fallback."""
    team = team_or_404(request)
    if not can_write(user=request.user, team=team):
        raise PermissionDenied("Viewers can look at this team's datasets but not add them.")
    form = forms.DatasetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            dataset = services.dataset_upload_create(
                user=request.user,
                team=team,
                name=d.get("name") or None,
                uploaded_file=d["file"],
                schema=d["schema"],
                description=d.get("description") or "",
                mapping=d.get("mapping") or None,
                split_ratios=d.get("split_ratios") or None,
                seed=d.get("seed") if d.get("seed") is not None else 42,
                stratify=bool(d.get("stratify")),
                encoding=d.get("encoding") or "",
                txt_mode=d.get("txt_mode") or "lines",
                fmt=d.get("format") or None,
                delimiter=d.get("delimiter") or None,
                has_header=d.get("has_header") or None,
            )
        except DomainError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Uploaded {dataset}; a worker is processing it.")
            return redirect("dataset-page", dataset_id=dataset.pk)
    return render(
        request,
        "datasets/upload.html",
        {
            "form": form,
            "team": team,
            "limit_bytes": settings.LLMWEB_MAX_UPLOAD_BYTES,
            "limit_mb": settings.LLMWEB_MAX_UPLOAD_BYTES // (1 << 20),
            "canonical": SCHEMAS,
        },
        status=400 if form.errors else 200,
    )


def _chart_data(dataset) -> dict:
    """What the two charts draw: labels per split, and length histograms of the train split."""
    stats = dataset.stats or {}
    splits = stats.get("splits") or {}
    labels = stats.get("label_names") or dataset.label_names or []
    per_split = {
        s: [(splits.get(s) or {}).get("labels", {}).get(n, 0) for n in labels] for s in SPLITS
    }
    train = splits.get("train") or {}
    hist = {}
    for kind in ("lengths", "tokens"):
        for column, summary in (train.get(kind) or {}).items():
            if summary.get("histogram"):
                hist[f"{column} ({'characters' if kind == 'lengths' else 'tokens'})"] = summary[
                    "histogram"
                ]
    return {"labels": labels, "per_split": per_split, "histograms": hist}


def _length_rows(dataset) -> list[dict]:
    rows = []
    for split, entry in ((dataset.stats or {}).get("splits") or {}).items():
        for kind in ("lengths", "tokens"):
            for column, s in (entry.get(kind) or {}).items():
                if s.get("count"):
                    rows.append({"split": split, "column": column, "unit": kind, **s})
    return rows


@login_required
def dataset_detail(request, dataset_id: int):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    stats = dataset.stats or {}
    return render(
        request,
        "datasets/detail.html",
        {
            "dataset": dataset,
            "status_message": selectors.catalog_waiting_message(dataset)
            or dataset.progress_message,
            "stats": stats,
            "splits": SPLITS,
            "total_rows": sum((dataset.num_rows or {}).values()),
            "split_rows": [(s, (dataset.num_rows or {}).get(s, 0)) for s in SPLITS],
            "chart_data": _chart_data(dataset),
            "length_rows": _length_rows(dataset),
            "overlap": sorted((stats.get("overlap") or {}).items()),
            "row_errors": (dataset.error or {}).get("details") or stats.get("row_errors") or [],
            "can_write": can_write(user=request.user, team=dataset.team),
            "used_by": selectors.job_refs(selectors.jobs_using(dataset=dataset)),
            "can_clean": dataset.status == DatasetStatus.READY
            and can_write(user=request.user, team=dataset.team)
            and bool(
                stats.get("exact_duplicates")
                or any((ov or {}).get("rows") for ov in (stats.get("overlap") or {}).values())
            ),
        },
    )


@login_required
@require_POST
def dataset_delete(request, dataset_id: int):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    try:
        services.dataset_delete(
            user=request.user, dataset=dataset, delete_jobs=request.POST.get("delete_jobs") == "1"
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dataset-page", dataset_id=dataset.pk)
    messages.success(request, f"{dataset} was deleted.")
    return redirect("datasets")


@login_required
@require_POST
def dataset_clean(request, dataset_id: int):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    try:
        clean = services.dataset_clean_version_create(user=request.user, dataset=dataset)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dataset-page", dataset_id=dataset.pk)
    messages.success(request, f"Making {clean}, a clean version of {dataset}.")
    return redirect("dataset-page", dataset_id=clean.pk)
