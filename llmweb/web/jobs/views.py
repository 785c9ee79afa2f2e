"""Job pages: list (live statuses), new (form + estimate), detail (live chart)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs import selectors, services
from llmweb.accounts.selectors import can_write
from llmweb.catalog.selectors import dataset_list_for_user, model_list_for_user
from llmweb.web.jobs.forms import JobForm


@login_required
def job_list(request):
    jobs = selectors.job_list_for_user(user=request.user, team=request.team)[:200]
    return render(
        request,
        "jobs/list.html",
        {"jobs": jobs, "can_write": can_write(user=request.user, team=request.team)},
    )


@login_required
def job_new(request):
    team = request.team
    models = model_list_for_user(user=request.user, team=team).filter(status="ready")
    datasets = dataset_list_for_user(user=request.user, team=team).filter(status="ready")
    initial = {}
    if request.GET.get("model"):
        initial["base_model"] = request.GET["model"]
    if request.GET.get("dataset"):
        initial["dataset"] = request.GET["dataset"]
    if request.GET.get("type"):
        initial["type"] = request.GET["type"]
    form = JobForm(request.POST or None, models=models, datasets=datasets, initial=initial)
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
                )
            except services.JobError as exc:
                field = (
                    f"p_{exc.param}"
                    if exc.param and f"p_{exc.param}" in form.fields
                    else (exc.param if exc.param in form.fields else None)
                )
                form.add_error(field, exc.message)
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Job #{job.pk} queued.")
                return redirect("job-page", job_id=job.pk)
        status = 400
    kinds = [kind.schema() for kind in form.kinds]
    return render(request, "jobs/new.html", {"form": form, "kinds_json": kinds}, status=status)


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
    except services.JobError as exc:
        messages.error(request, exc.message)
        return redirect("job-page", job_id=job.pk)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
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
