"""What a locked-out log-in sees: 429 with Retry-After (django-axes calls this)."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def lockout_response(
    request: HttpRequest, original_response=None, credentials=None
) -> HttpResponse:
    """Too many failed log-ins for this user from this address: try again after the cool-off.

    The lock is per user *and* address (``AXES_LOCKOUT_PARAMETERS``), so a stranger
    guessing a name cannot lock its owner out from elsewhere.
    """
    seconds = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds())
    message = (
        f"Too many failed log-ins for this account from your address; try again in "
        f"{math.ceil(seconds / 60)} minutes."
    )
    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse({"detail": message}, status=429)
    else:
        form = AuthenticationForm(request)
        response = render(
            request, "registration/login.html", {"form": form, "lockout": message}, status=429
        )
    response["Retry-After"] = str(seconds)
    return response
