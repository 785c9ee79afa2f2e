"""``POST /api/v1/models/{id}/generate/`` and ``/classify/``: the playground as an API.

The same path as the page's websocket (``jobs.playground``): validated, queued on
``inference``, answered by a worker's model cache. JSON by default; with
``"stream": true`` each worker event is one server-sent event (``data: {...}``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from jobs import playground
from llmweb.api.streaming import Refusal, api_error, event_stream, guarded, read_request, sse

# CSRF: exempt from the middleware because token clients have no cookie; a session
# request is still CSRF-checked by DRF's SessionAuthentication inside api_user.


@csrf_exempt
async def model_generate(request: HttpRequest, pk: int) -> HttpResponse:
    """Body: ``prompt`` (or ``messages`` with ``mode: chat``), ``mode``, ``params``
    (max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop,
    top_logprobs), ``stream``. Answers ``{text, finish_reason, tokens, usage, ttft,
    tokens_per_second}``."""
    try:
        user, body = await read_request(request)
        data = {**body, "model": pk}
        message = await guarded(lambda: playground.playground_request(user=user, data=data))
        if message["mode"] == "classify":
            raise Refusal(
                400,
                "This is a classifier: POST to classify/.",
                code="mode_unsupported",
                param="mode",
            )
        await guarded(playground.playground_check_capacity)
    except Refusal as r:
        return api_error(r)
    if body.get("stream"):
        return event_stream(_events(message))
    result = await playground.playground_collect(message)
    if result["error"]:
        err = result["error"]
        return api_error(
            Refusal(playground.error_status(err["code"]), err["message"], code=err["code"])
        )
    done = result["done"]
    return JsonResponse(
        {
            "model": message["model"]["id"],
            "text": result["text"],
            "finish_reason": done["finish_reason"],
            "tokens": [
                {k: t[k] for k in ("id", "token", "text", "logprob", "top_logprobs")}
                for t in result["tokens"]
            ],
            "usage": _usage(done),
            "ttft": done["ttft"],
            "tokens_per_second": done["tokens_per_second"],
        }
    )


@csrf_exempt
async def model_classify(request: HttpRequest, pk: int) -> HttpResponse:
    """Body: ``text``. Answers ``{labels: [{label, probability}]}``, likeliest first."""
    try:
        user, body = await read_request(request)
        data = {"model": pk, "mode": "classify", "prompt": body.get("text")}
        message = await guarded(lambda: playground.playground_request(user=user, data=data))
        await guarded(playground.playground_check_capacity)
    except Refusal as r:
        return api_error(r)
    result = await playground.playground_collect(message)
    if result["error"]:
        err = result["error"]
        return api_error(
            Refusal(playground.error_status(err["code"]), err["message"], code=err["code"])
        )
    return JsonResponse({"model": pk, "labels": result["done"]["labels"]})


def _usage(done: dict[str, Any]) -> dict[str, int]:
    prompt, completion = done["prompt_tokens"], done["completion_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _events(message: dict[str, Any]) -> AsyncIterator[str]:
    # Closing this generator (the client went away) closes the stream, which cancels the
    # generation in the worker.
    stream = playground.playground_stream(message)
    try:
        async for event in stream:
            yield sse(event)
    finally:
        await stream.aclose()
