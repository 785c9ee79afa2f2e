"""Model pages: list, detail (card, lineage, edit, delete), preset, upload and hub forms."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

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
from llmweb.web import models_forms as forms
from llmweb.web.common import form_errors, team_or_404
from llmweb.web.models_render import lineage_svg, metrics_view, render_card

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
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
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
            "card_html": render_card(model.card),
            "card_form": forms.CardForm(initial={"card": model.card}),
            "lineage": lineage,
            "lineage_svg": lineage_svg(lineage),
            "metrics": metrics_view(model.metrics),
            "usable_for": model_usable_for(model=model),
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
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Model card saved.")
    return redirect("model-page", model_id=model.pk)


@login_required
@require_POST
def model_delete(request, model_id: int):
    model = selectors.model_get_for_user(user=request.user, model_id=model_id)
    try:
        services.model_delete(user=request.user, model=model)
    except services.ModelConflict as exc:
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
        except ValidationError as exc:
            form_errors(form, exc)
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
        except ValidationError as exc:
            form_errors(form, exc)
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
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"Downloading {model.hub_id}.")
            return redirect("model-page", model_id=model.pk)
    return render(request, "models/hub.html", {"form": form}, status=400 if form.errors else 200)
