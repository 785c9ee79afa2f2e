"""The playground page: generation streamed over ``/ws/playground/``, compare, chat, classify."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.engine.params import schema_of
from jobs.engine.sampling import SamplingParams
from jobs.playground import playground_models
from llmweb.accounts.selectors import can_write
from llmweb.web.common import team_or_404


@login_required
def playground(request: HttpRequest) -> HttpResponse:
    team = team_or_404(request)
    models = playground_models(user=request.user, team=team)
    try:
        selected = int(request.GET.get("model", ""))
    except ValueError:
        selected = None
    return render(
        request,
        "playground/index.html",
        {
            "models": models,
            "selected": selected if any(m["id"] == selected for m in models) else None,
            "params_schema": schema_of(SamplingParams),
            "max_streams": settings.LLMWEB_PLAYGROUND_MAX_STREAMS,
            "can_run": can_write(user=request.user, team=team),
        },
    )
