"""Model pages: list, detail (card, lineage, edit, delete), preset, upload and hub forms."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST
from markdown_it import MarkdownIt

from jobs.engine.models.card import human_count
from jobs.engine.presets import list_presets
from llmweb.accounts.selectors import can_write
from llmweb.catalog import selectors
from llmweb.catalog.model_selectors import (
    metric_names,
    model_lineage,
    model_list_filtered,
    model_usable_for,
)
from llmweb.catalog.models import ModelSource, ModelTask
from llmweb.catalog.services import models as services
from llmweb.catalog.services.model_facts import preset_param_count_exact
from llmweb.core.errors import DomainError
from llmweb.evaluations.selectors import evaluation_list_for_user
from llmweb.web.common import form_error, team_or_404
from llmweb.web.models import forms
from llmweb.web.models.metrics import metrics_view
from llmweb.web.models.report import report_rows, smaller_links

SORTS = [
    ("-created_at", "Newest"),
    ("created_at", "Oldest"),
    ("-size_bytes", "Largest on disk"),
    ("size_bytes", "Smallest on disk"),
    ("-num_parameters", "Most parameters"),
    ("num_parameters", "Fewest parameters"),
]


@login_required
def model_list(request):
    team = team_or_404(request)
    q = request.GET
    task, source, sort = q.get("task", ""), q.get("source", ""), q.get("sort", "-created_at")
    everything = list(model_list_filtered(user=request.user, team=team))
    metrics = metric_names(everything)
    sorts = SORTS + [(f"-metric:{m}", f"{m} (high first)") for m in metrics]
    try:
        rows = model_list_filtered(
            user=request.user, team=team, task=task, source=source, ordering=sort
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        rows = everything
    metric = sort.split("metric:", 1)[1] if "metric:" in sort else None
    return render(
        request,
        "models/list.html",
        {
            "models": [
                (
                    m,
                    (m.metrics or {}).get(metric) if metric else None,
                    human_count(m.num_parameters) if m.num_parameters else None,
                )
                for m in rows
            ],
            "metric": metric,
            "tasks": ModelTask.values,
            "sources": ModelSource.values,
            "sorts": sorts,
            "current": {"task": task, "source": source, "sort": sort},
            "can_write": can_write(user=request.user, team=team),
            "allow_hub": settings.LLMWEB_ALLOW_HUB,
        },
    )


@login_required
def model_detail(request, model_id: int):
    model = selectors.model_get_for_user(user=request.user, model_id=model_id)
    lineage = model_lineage(model=model)
    return render(
        request,
        "models/detail.html",
        {
            "model": model,
            "waiting": selectors.catalog_waiting_message(model),
            "card_html": render_card(model.card),
            "card_form": forms.CardForm(initial={"card": model.card}),
            "lineage": lineage,
            "lineage_svg": lineage_svg(lineage),
            "metrics": metrics_view(model.metrics),
            "usable_for": model_usable_for(model=model),
            "used_by": selectors.job_refs(selectors.jobs_using(model=model)),
            "evaluations": evaluation_list_for_user(user=request.user, model=model)[:50],
            "report_rows": report_rows(model.report),
            "smaller_links": smaller_links(model),
            "config_rows": sorted((model.config_summary or {}).items()),
            "can_write": can_write(user=request.user, team=model.team),
            "params_display": f"{model.num_parameters:,} ({human_count(model.num_parameters)})"
            if model.num_parameters
            else None,
        },
    )


@login_required
@require_POST
def model_card(request, model_id: int):
    model = selectors.model_get_for_user(user=request.user, model_id=model_id)
    form = forms.CardForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    else:
        try:
            services.model_update_card(
                user=request.user, model=model, card=form.cleaned_data["card"]
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Model card saved.")
    return redirect("model-page", model_id=model.pk)


@login_required
@require_POST
def model_delete(request, model_id: int):
    model = selectors.model_get_for_user(user=request.user, model_id=model_id)
    try:
        services.model_delete(
            user=request.user, model=model, delete_jobs=request.POST.get("delete_jobs") == "1"
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("model-page", model_id=model.pk)
    messages.success(request, f"{model} was deleted.")
    return redirect("models")


def _require_write(request, team) -> None:
    if not can_write(user=request.user, team=team):
        raise PermissionDenied("Viewers can look at this team's models but not add them.")


@login_required
def model_new_preset(request):
    team = team_or_404(request)
    _require_write(request, team)
    form = forms.PresetForm(request.POST or None, team=team)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            ds = md = None
            if d["tokenizer_kind"] == "dataset":
                ds = selectors.dataset_get_for_user(user=request.user, dataset_id=d["tokenizer_id"])
            else:
                md = selectors.model_get_for_user(user=request.user, model_id=d["tokenizer_id"])
            model = services.model_create_preset(
                user=request.user,
                team=team,
                name=d.get("name"),
                family=d["family"],
                size=d["size"],
                vocab_size=d.get("vocab_size"),
                tokenizer_dataset=ds,
                tokenizer_model=md,
            )
        except DomainError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Building {model}; the tokenizer is being trained.")
            return redirect("model-page", model_id=model.pk)
    presets = list_presets(with_param_counts=False)
    for row in presets:
        row["num_parameters"] = preset_param_count_exact(
            row["family"], row["size"], row["vocab_size"]
        )
    return render(
        request,
        "models/new_preset.html",
        {"form": form, "presets": presets, "model_vocab": form.model_vocab},
        status=400 if form.errors else 200,
    )


@login_required
def model_new_upload(request):
    """The form posts with XHR to the API (for the progress bar); this view is the fallback."""
    team = team_or_404(request)
    _require_write(request, team)
    form = forms.UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_upload_create(
                user=request.user,
                team=team,
                name=form.cleaned_data.get("name"),
                uploaded_file=form.cleaned_data["file"],
            )
        except DomainError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Uploaded {model}; a worker is validating it.")
            return redirect("model-page", model_id=model.pk)
    return render(
        request,
        "models/upload.html",
        {"form": form, "team": team, "limit_mb": settings.LLMWEB_MAX_UPLOAD_BYTES // (1 << 20)},
        status=400 if form.errors else 200,
    )


@login_required
def model_new_hub(request):
    if not settings.LLMWEB_ALLOW_HUB:
        raise Http404("Models from the hub are turned off on this server.")
    team = team_or_404(request)
    _require_write(request, team)
    form = forms.HubForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_register_hub(
                user=request.user, team=team, name=form.cleaned_data.get("name"),
                hub_id=form.cleaned_data["hub_id"],
            )  # fmt: skip
        except DomainError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Downloading {model.hub_id}.")
            return redirect("model-page", model_id=model.pk)
    return render(request, "models/hub.html", {"form": form}, status=400 if form.errors else 200)


# HTML fragments: the model card and the lineage graph. Both render text a user (or an
# uploaded archive) wrote, so both escape everything: the card goes through markdown-it
# with raw HTML off (tags show as text, links with ``javascript:`` and similar schemes are
# dropped, images are not loaded), and the SVG is assembled with ``format_html``.
_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").disable("image")
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*(\n|\Z)", re.S)

NODE_W, NODE_H, COL_W, ROW_H, PAD = 180, 46, 270, 84, 16


def render_card(text: str) -> SafeString:
    """Markdown to HTML with no way to inject markup; YAML front matter is dropped."""
    body = _FRONT_MATTER.sub("", text or "", count=1)
    return mark_safe(_MD.render(body))  # noqa: S308 - markdown-it escapes; html=False


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def lineage_svg(lineage: dict[str, Any]) -> SafeString:
    """Draw nodes in columns by generation, parents on the left, edges labelled."""
    rows: dict[int, int] = {}
    pos: dict[int, tuple[int, int]] = {}
    for node in lineage["nodes"]:
        g = node["generation"]
        r = rows.get(g, 0)
        rows[g] = r + 1
        pos[node["id"]] = (PAD + g * COL_W, PAD + r * ROW_H)
    width = PAD * 2 + (max(rows) if rows else 0) * COL_W + NODE_W
    height = PAD * 2 + (max(rows.values()) if rows else 1) * ROW_H - (ROW_H - NODE_H)
    edges = []
    for e in lineage["edges"]:
        if e["from"] not in pos or e["to"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        mid = (x1 + x2) // 2
        edges.append(
            format_html(
                '<g class="edge"><path d="M{} {} C{} {} {} {} {} {}" fill="none" '
                'stroke="#98a2b3" stroke-width="1.5" marker-end="url(#arrow)"/>'
                '<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#475467">'
                "<title>{}</title>{}</text></g>",
                x1,
                y1,
                mid,
                y1,
                mid,
                y2,
                x2,
                y2,
                mid,
                (y1 + y2) // 2 - 6,
                e["label"],
                _short(e["label"], 34),
            )  # fmt: skip
        )
    nodes = []
    for n in lineage["nodes"]:
        x, y = pos[n["id"]]
        stroke = "#3b5bdb" if n["current"] else "#c9cfdd"
        fill = "#edf2ff" if n["current"] else "#ffffff"
        nodes.append(
            format_html(
                '<a href="/models/{}/" class="node" data-model="{}"><rect x="{}" y="{}" '
                'width="{}" height="{}" rx="8" fill="{}" stroke="{}" stroke-width="1.5"/>'
                '<text x="{}" y="{}" font-size="13" font-weight="600" fill="#1d2330">'
                "<title>{}</title>{}</text>"
                '<text x="{}" y="{}" font-size="11" fill="#667085">{} · {} · {}</text></a>',
                n["id"],
                n["id"],
                x,
                y,
                NODE_W,
                NODE_H,
                fill,
                stroke,
                x + 10,
                y + 19,
                n["label"],
                _short(n["label"], 24),
                x + 10,
                y + 36,
                n["source"],
                n["task"] or "?",
                n["status"],
            )  # fmt: skip
        )
    return format_html(
        '<svg class="lineage" role="img" aria-label="Model lineage" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" '
        'viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0 0 L10 5 L0 10 z" fill="#98a2b3"/></marker></defs>{}{}</svg>',
        width, height, width, height,
        format_html_join("", "{}", ((e,) for e in edges)),
        format_html_join("", "{}", ((n,) for n in nodes)),
    )  # fmt: skip
