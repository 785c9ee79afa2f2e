"""Plain async views for generation: who asks, what they sent, refusals, server-sent events.

Generation answers stream for seconds, so these views are async Django views (a DRF view
is sync and would hold a worker thread for the whole answer). They authenticate exactly
like the DRF views (``api.common.api_user``) and refuse in the API's JSON shape, or in
the shape a caller chooses (the OpenAI routes use OpenAI's).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from rest_framework.exceptions import APIException

from llmweb.api.common import api_user
from llmweb.core.errors import DomainError


class Refusal(Exception):  # noqa: N818 - reads as what the view answers
    """A request the view answers with an error status (and maybe a Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "invalid",
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after = retry_after

    @classmethod
    def of(cls, exc: Exception) -> Refusal:
        if isinstance(exc, Refusal):
            return exc
        if isinstance(exc, DomainError):
            return cls(
                exc.http_status,
                exc.message,
                code=exc.code,
                param=exc.param,
                retry_after=exc.extra.get("retry_after"),
            )
        if isinstance(exc, APIException):
            return cls(exc.status_code, str(exc.detail), code=str(exc.default_code))
        raise exc


def api_error(refusal: Refusal) -> JsonResponse:
    """The REST API's error shape: ``{"detail", "code", "param"}``."""
    body = {"detail": refusal.message, "code": refusal.code, "param": refusal.param}
    return with_retry(JsonResponse(body, status=refusal.status), refusal)


def with_retry(response: Any, refusal: Refusal) -> Any:
    if refusal.retry_after is not None:
        response["Retry-After"] = str(refusal.retry_after)
    if refusal.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


async def read_request(request: HttpRequest) -> tuple[Any, dict[str, Any]]:
    """``(user, JSON body)`` of a POST, or a :class:`Refusal`."""
    try:
        user = await sync_to_async(api_user)(request)
    except APIException as e:
        raise Refusal.of(e) from None
    # After authentication: an anonymous caller learns nothing, not even the method.
    if request.method != "POST":
        raise Refusal(405, "Use POST.", code="method_not_allowed")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "The body is not JSON.", code="parse_error") from None
    if not isinstance(body, dict):
        raise Refusal(400, "The body must be a JSON object.", code="parse_error")
    return user, body


async def guarded(call: Callable[[], Any]) -> Any:
    """Run a sync domain call off the event loop; its DomainError becomes a Refusal."""
    try:
        return await sync_to_async(call)()
    except (DomainError, APIException) as e:
        raise Refusal.of(e) from None


def event_stream(chunks: AsyncIterator[str]) -> StreamingHttpResponse:
    """``text/event-stream`` of pre-formatted ``data: ...`` chunks, never buffered."""
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold the tokens back
    return response


def sse(data: Any) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
