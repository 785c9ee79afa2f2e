"""Every error under /api/ is JSON with a ``detail``, including those Django raises first.

DRF's exception handler (errors.py) only sees what happens inside a DRF view. Django
answers some requests before or around it with HTML: an oversized body
(``RequestDataTooBig``), too many fields, a malformed multipart body, an unknown URL, a
failed CSRF check, a crash. A script reading the API should not have to parse HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import OperationalError as DatabaseOperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
# Headers an error response must keep when its body is replaced.
KEEP_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow")
DETAILS = {
    400: "Bad request.",
    401: "Authentication credentials were not provided or are not valid.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request body is too large.",
    429: "Too many requests; wait and try again.",
    503: "The service is busy or restarting; try again shortly.",
    500: "Internal server error; the admins can read the details in the server log.",
}


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _detail_for_exception(exc: Exception) -> tuple[int, str] | None:
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1 << 20)
        return 413, (
            f"The request body is over {limit:,.0f} MiB, the limit for non-file data; "
            "send files as multipart uploads."
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return 400, "The request has too many form fields or files."
    if isinstance(exc, MultiPartParserError):
        return 400, f"The multipart body could not be read: {exc}"
    if isinstance(exc, SuspiciousOperation):
        return 400, "The request was refused as malformed."
    if isinstance(exc, DatabaseOperationalError):
        # No connection to be had (too many clients, a restart): the request did nothing.
        return 503, "The database is busy or restarting; nothing was changed. Try again shortly."
    if isinstance(exc, OverflowError):
        # Ids and integer fields are bounded; this is the net under a missed one.
        return 400, "A number in the request is out of range."
    return None


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if _is_api(request) and response.status_code >= 400 and not _is_json(response):
            response = self._as_json(request, response)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        found = _detail_for_exception(exc)
        if found is None:
            return None
        status, detail = found
        log.info("%s %s refused: %s", request.method, request.path, exc.__class__.__name__)
        response = JsonResponse({"detail": detail}, status=status)
        if status == 503:
            response["Retry-After"] = "5"
        return response

    def _as_json(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        status = response.status_code
        detail = DETAILS.get(status) or response.reason_phrase or "Error."
        if status == 403 and b"CSRF" in response.content:
            detail = "CSRF check failed; send the X-CSRFToken header or use a bearer token."
        new = JsonResponse({"detail": detail}, status=status)
        for name in KEEP_HEADERS:
            if name in response:
                new[name] = response[name]
        return new


def _is_json(response: HttpResponse) -> bool:
    if response.status_code in (204, 304) or getattr(response, "streaming", False):
        return True
    return "json" in response.get("Content-Type", "")
