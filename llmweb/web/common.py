"""What every page area shares: the home and 404 pages, the active team, form errors."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The site's 404 page (``handler404``): says what was not found, in the site's frame."""
    return render(request, "404.html", {"message": str(exception or "")}, status=404)


def team_or_404(request):
    """The active team; a user in no team (removed from the last one) gets a clear 404."""
    if request.team is None:
        raise Http404("You are in no team yet.")
    return request.team


def form_errors(form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form field it names (or on the form)."""
    for field, errs in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
        for e in errs:
            form.add_error(field if field in form.fields else None, e)
