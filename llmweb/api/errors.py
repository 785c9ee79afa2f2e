"""Every API error is JSON with a `detail` a person can read (plus field errors for 400s)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(errors) -> str:
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


def exception_handler(exc, context):
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
        detail = _flatten(errors) or "Invalid input."
        response.data = {"detail": detail, "errors": errors}
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif not isinstance(data, dict) or "detail" not in data:
        response.data = {"detail": _flatten(data)}
    return response


def error_response(
    detail: str, *, code: str = "invalid", param: str | None = None, http_status: int = 400, **extra
) -> Response:
    body = {"detail": detail, "code": code}
    if param:
        body["param"] = param
    body.update(extra)
    return Response(body, status=http_status)
