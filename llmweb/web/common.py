"""What every page area shares: the home and 404 pages, the active team, service errors."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from llmweb.accounts.models import Team
from llmweb.core.errors import DomainError


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The site's 404 page (``handler404``), plain. The exception is never shown: the
    resolver's carries its ``tried`` list with server paths, and an object lookup's would
    tell whether another team's id exists."""
    return render(request, "404.html", {}, status=404)


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page that names none (Swagger UI, JSON)."""
    path = finders.find("favicon.ico")
    if not path:
        raise Http404
    response = FileResponse(open(path, "rb"), content_type="image/x-icon")  # noqa: SIM115
    response["Cache-Control"] = "public, max-age=86400"
    return response


def team_or_404(request: HttpRequest) -> Team:
    """The active team; a user in no team (removed from the last one) gets a clear 404."""
    if request.team is None:
        raise Http404("You are in no team yet.")
    return request.team


def form_error(form: forms.Form, exc: DomainError, *, prefix: str = "") -> None:
    """Show a service's refusal beside the field it names (``param``), else atop the form.

    ``prefix`` is for forms that name generated fields differently from the service's
    parameters (``p_<param>``); the plain name is tried first.
    """
    param = exc.param or ""
    field = next((f for f in (param, f"{prefix}{param}") if param and f in form.fields), None)
    form.add_error(field, exc.message)
