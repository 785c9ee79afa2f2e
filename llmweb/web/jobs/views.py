"""Job pages: list (live statuses), new (form per kind + estimate; also "run again with
changes"), detail (live chart, notes and tags), and the controls."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs import selectors, services
from jobs.errors import JobError
from jobs.kinds import all_kinds, get_kind
from llmweb.accounts.selectors import can_write
from llmweb.catalog.selectors import dataset_list_for_user, model_list_for_user
from llmweb.web.jobs.forms import JobForm


@login_required
def job_list(request):
    show_archived = request.GET.get("archived") == "1"
    jobs = selectors.job_list_for_user(user=request.user, team=request.team).filter(
        archived=show_archived
    )[:200]
    return render(
        request,
        "jobs/list.html",
        {
            "jobs": jobs,
            "show_archived": show_archived,
            "can_write": can_write(user=request.user, team=request.team),
        },
    )


def _initial_from(request) -> dict:
    """Prefill: ``?model=&dataset=&type=`` links, or ``?clone=<job id>`` (run again)."""
    initial: dict = {}
    if request.GET.get("clone"):
        source = selectors.job_get_for_user(user=request.user, job_id=request.GET["clone"])
        try:
            kind = get_kind(source.type)
        except JobError:
            raise Http404("That job's kind is not available here.") from None
        initial["type"] = kind.name
        initial["name"] = source.name
        for name, value in services.job_inputs(source).items():
            if value is None:
                continue
            initial[name] = [v.pk for v in value] if isinstance(value, list) else value.pk
        for name, value in (source.params or {}).items():
            initial[f"p_{name}"] = ",".join(value) if isinstance(value, list) else value
        then = source.then or {}
        if then:
            initial["then"] = then.get("type")
            for name, value in (then.get("inputs") or {}).items():
                initial[f"then_in_{name}"] = value
            for name, value in (then.get("params") or {}).items():
                initial[f"then_p_{name}"] = ",".join(value) if isinstance(value, list) else value
        return initial
    if request.GET.get("model"):
        initial["base_model"] = request.GET["model"]
    if request.GET.get("dataset"):
        initial["dataset"] = request.GET["dataset"]
    if request.GET.get("type"):
        initial["type"] = request.GET["type"]
    # Any kind's input by its name (``?type=compress&source_model=7``: "Make it smaller").
    for name in {spec.name for kind in all_kinds() for spec in kind.inputs}:
        if request.GET.get(name):
            initial[name] = request.GET[name]
    # A chain ("Make it smaller" -> distill, then quantize): ``then=compress`` and its
    # ``then_in_<input>`` / ``then_p_<param>`` values.
    for key, value in request.GET.items():
        if key.startswith(("p_", "then_p_", "then_in_")) and value:
            initial[key] = value
    if request.GET.get("then"):
        initial["then"] = request.GET["then"]
    # Fields shared by name start with the first kind's default; a link that names the
    # kind gets that kind's own defaults (compress's method is not fine-tune's "full").
    try:
        kind = get_kind(initial["type"]) if initial.get("type") else None
    except JobError:
        kind = None
    if kind is not None:
        for name, spec in kind.param_table().items():
            if spec.default is not None:
                initial.setdefault(f"p_{name}", spec.default)
    return initial


def _field_message(exc: JobError) -> str:
    """Beside its field, "learning_rate: must be..." need not repeat the field's name."""
    prefix = f"{exc.param}: "
    return exc.message.removeprefix(prefix) if exc.param else exc.message


@login_required
def job_new(request):
    team = request.team
    models = model_list_for_user(user=request.user, team=team).filter(status="ready")
    datasets = dataset_list_for_user(user=request.user, team=team).filter(status="ready")
    form = JobForm(
        request.POST or None, models=models, datasets=datasets, initial=_initial_from(request)
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                job = services.job_submit(
                    user=request.user,
                    team=team,
                    job_type=form.cleaned_data["type"],
                    inputs=form.inputs(),
                    params=form.params(),
                    name=form.cleaned_data["name"],
                    then=form.then_value(),
                )
            except JobError as exc:
                field = form.field_for(exc.param)
                form.add_error(field, _field_message(exc) if field else exc.message)
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Job #{job.pk} queued.")
                return redirect("job-page", job_id=job.pk)
        status = 400
    kinds = [kind.schema() for kind in form.kinds]
    context = {"form": form, "kinds_json": kinds, "lineage_json": _lineage_hints(models)}
    return render(request, "jobs/new.html", context, status=status)


def _lineage_hints(models) -> dict[str, str]:
    """One line per pickable model saying where it came from, shown beside the picker so
    nobody fine-tunes their own fine-tune without noticing."""
    hints = {}
    for m in models.select_related("parent", "dataset"):
        if m.parent_id:
            edge = getattr(m, "lineage_edge", "") or "derived from"
            line = f"{edge} {m.parent.name} v{m.parent.version}"
            if m.dataset_id:
                line += f" on {m.dataset.name} v{m.dataset.version}"
        else:
            line = f"{m.get_source_display().lower()} model, no parent"
        hints[str(m.pk)] = line
    return hints


@login_required
def job_detail(request, job_id: int):
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    return render(
        request,
        "jobs/detail.html",
        {
            "job": job,
            "can_write": can_write(user=request.user, team=job.team),
            "queue_position": selectors.job_queue_position(job=job),
            "follow_up_refusal": selectors.job_follow_up_refusal(job=job),
        },
    )


@login_required
@require_POST
def job_control(request, job_id: int, action: str):
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    fn = {
        "cancel": services.job_cancel,
        "retry": services.job_retry,
        "resume": services.job_resume,
    }[action]
    try:
        result = fn(user=request.user, job=job)
    except (JobError, PermissionDenied) as exc:
        messages.error(request, getattr(exc, "message", None) or str(exc))
        return redirect("job-page", job_id=job.pk)
    messages.success(
        request,
        {
            "cancel": "Cancel requested.",
            "retry": f"Retry queued as job #{result.pk}.",
            "resume": "Job resumes from its last checkpoint.",
        }[action],
    )
    return redirect("job-page", job_id=result.pk)


@login_required
@require_POST
def job_edit(request, job_id: int):
    """Notes, tags and archiving, from the job page."""
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    tags = [t for t in request.POST.get("tags", "").split(",") if t.strip()]
    try:
        services.job_update(
            user=request.user,
            job=job,
            notes=request.POST.get("notes", job.notes),
            tags=tags,
            archived=request.POST.get("archived") == "on",
        )
    except (JobError, PermissionDenied) as exc:
        messages.error(request, getattr(exc, "message", None) or str(exc))
    else:
        messages.success(request, "Saved.")
    return redirect("job-page", job_id=job.pk)


@login_required
@require_POST
def job_delete(request, job_id: int):
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    try:
        services.job_delete(user=request.user, job=job)
    except (JobError, PermissionDenied) as exc:
        messages.error(request, getattr(exc, "message", None) or str(exc))
        return redirect("job-page", job_id=job.pk)
    messages.success(request, f"Job #{job_id} deleted.")
    return redirect("jobs")
