"""Small helpers every page module uses."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404


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
