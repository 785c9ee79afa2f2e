"""Every API error is JSON with a `detail` a person can read, in one place.

A service refuses with a ``DomainError`` (``llmweb.core.errors``); this handler turns it
into ``{"detail", "code", "param"}`` with the error's HTTP status, so views carry no
``except`` blocks of their own. Django's and DRF's own errors get the same shape (plus
``errors`` with every field's messages for a 400 from a serializer).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from llmweb.core.errors import DomainError

log = logging.getLogger(__name__)


def _flatten(errors: Any) -> str:
    if isinstance(errors, dict):
        parts = []
        for field, value in errors.items():
            msg = _flatten(value)
            parts.append(
                msg if field in ("non_field_errors", "__all__", "detail") else f"{field}: {msg}"
            )
        return " ".join(parts)
    if isinstance(errors, list):
        return " ".join(_flatten(e) for e in errors)
    return str(errors)


def domain_error_response(exc: DomainError) -> Response:
    """The one translation of a service's refusal into an HTTP answer."""
    return error_response(
        exc.message, code=exc.code, param=exc.param, http_status=exc.http_status, **exc.extra
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: domain errors first, then Django's, then DRF's own."""
    if isinstance(exc, DomainError):
        return domain_error_response(exc)
    if isinstance(exc, DatabaseOperationalError):
        # The database refused a connection (too many clients, restarting, locked): the
        # request did nothing, so "try again shortly" is the truth, not an internal error.
        log.warning("database unavailable for %s: %s", context.get("view"), exc)
        response = error_response(
            "The database is busy or restarting; nothing was changed. Try again shortly.",
            code="database_unavailable",
            http_status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "5"
        return response
    if isinstance(exc, DjangoValidationError):
        data = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(data)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        fields = [f for f in errors if f not in ("non_field_errors", "__all__", "detail")]
        response.data = {
            "detail": _flatten(errors) or "Invalid input.",
            "code": "invalid",
            "param": fields[0] if fields else None,
            "errors": errors,
        }
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif not isinstance(data, dict) or "detail" not in data:
        response.data = {"detail": _flatten(data)}
    return response


def error_response(
    detail: str,
    *,
    code: str = "invalid",
    param: str | None = None,
    http_status: int = 400,
    **extra: Any,
) -> Response:
    """A refusal a view decides itself (a request it cannot parse), in the same shape."""
    body: dict[str, Any] = {"detail": detail, "code": code, "param": param}
    body.update(extra)
    return Response(body, status=http_status)
