"""OpenAI-compatible routes: ``POST /v1/completions``, ``POST /v1/chat/completions``,
``GET /v1/models``, so existing clients (the ``openai`` package, LangChain, curl
recipes) work unchanged with ``base_url=<server>/v1`` and an llmweb API token.

``model`` is a registered model's id or name in the token owner's teams. Supported:
``max_tokens`` / ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``,
``stop``, ``stream`` (with ``stream_options.include_usage``), ``logprobs`` (completions:
an int; chat: a bool with ``top_logprobs``), ``n == 1``; and the common extensions
``top_k`` and ``repetition_penalty``. Errors use OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import APIException

from jobs import playground
from jobs.engine.sampling import serving_modes
from llmweb.api.common import api_user
from llmweb.api.streaming import Refusal, event_stream, guarded, read_request, sse, with_retry
from llmweb.catalog.selectors import model_list_for_user

# The OpenAI API's own defaults, where they differ from the playground's.
DEFAULT_MAX_TOKENS = {"completion": 16, "chat": 256}
MAX_TOP_LOGPROBS = 20


def _error(refusal: Refusal) -> JsonResponse:
    kind = {
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        429: "rate_limit_error",
    }.get(refusal.status)
    kind = kind or ("server_error" if refusal.status >= 500 else "invalid_request_error")
    body = {
        "error": {
            "message": refusal.message,
            "type": kind,
            "param": refusal.param,
            "code": refusal.code,
        }
    }
    return with_retry(JsonResponse(body, status=refusal.status), refusal)


def _params(body: dict[str, Any], *, chat: bool) -> tuple[dict[str, Any], bool]:
    """SamplingParams values from an OpenAI body, and whether logprobs were asked for."""
    if body.get("n", 1) != 1:
        raise Refusal(400, "Only n=1 is supported.", param="n")
    if body.get("echo"):
        raise Refusal(400, "echo is not supported.", param="echo")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    params: dict[str, Any] = {
        "max_new_tokens": max_tokens or DEFAULT_MAX_TOKENS["chat" if chat else "completion"],
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "top_k": body.get("top_k", 0),
    }
    for key in ("seed", "repetition_penalty"):
        if body.get(key) is not None:
            params[key] = body[key]
    stop = body.get("stop")
    if stop:
        params["stop"] = [stop] if isinstance(stop, str) else stop
    if chat:
        wanted = bool(body.get("logprobs"))
        top = int(body.get("top_logprobs") or 0) if wanted else 0
    else:
        top = body.get("logprobs")
        wanted = top is not None
        top = int(top or 0)
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise Refusal(400, f"top_logprobs must be 0..{MAX_TOP_LOGPROBS}.", param="logprobs")
    params["top_logprobs"] = top
    return params, wanted


async def _message(
    request: HttpRequest, *, chat: bool
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    user, body = await read_request(request)
    params, logprobs = _params(body, chat=chat)
    data: dict[str, Any] = {"model": body.get("model"), "params": params}
    if chat:
        data.update(mode="chat", messages=body.get("messages"))
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            if len(prompt) != 1 or not isinstance(prompt[0], str):
                raise Refusal(400, "Send one prompt string.", param="prompt")
            prompt = prompt[0]
        data["prompt"] = prompt
    message = await guarded(lambda: playground.playground_request(user=user, data=data))
    if message["mode"] == "classify":
        raise Refusal(400, "This model is a classifier; it does not generate text.", param="model")
    await guarded(playground.playground_check_capacity)
    return message, body, logprobs


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _usage(done: dict[str, Any]) -> dict[str, int]:
    prompt, completion = done["prompt_tokens"], done["completion_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat_logprob(token: dict[str, Any]) -> dict[str, Any]:
    return {
        "token": token["token"],
        "logprob": token["logprob"],
        "bytes": list(token["token"].encode()),
        "top_logprobs": [
            {"token": a["token"], "logprob": a["logprob"], "bytes": list(a["token"].encode())}
            for a in token["top_logprobs"]
        ],
    }


def _completion_logprobs(tokens: list[dict[str, Any]], offset: int = 0) -> dict[str, Any]:
    offsets, at = [], offset
    for t in tokens:
        offsets.append(at)
        at += len(t["text"])
    return {
        "tokens": [t["token"] for t in tokens],
        "token_logprobs": [t["logprob"] for t in tokens],
        "top_logprobs": [{a["token"]: a["logprob"] for a in t["top_logprobs"]} for t in tokens],
        "text_offset": offsets,
    }


async def _respond(request: HttpRequest, *, chat: bool) -> HttpResponse:
    try:
        message, body, logprobs = await _message(request, chat=chat)
    except Refusal as r:
        return _error(r)
    meta = {
        "id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex,
        "created": int(time.time()),
        "model": str(body.get("model")),
    }
    if body.get("stream"):
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return event_stream(_chunks(message, meta, chat=chat, logprobs=logprobs, usage=usage))
    result = await playground.playground_collect(message)
    if result["error"]:
        err = result["error"]
        return _error(
            Refusal(playground.error_status(err["code"]), err["message"], code=err["code"])
        )
    done, tokens = result["done"], result["tokens"]
    if chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": result["text"]},
            "logprobs": {"content": [_chat_logprob(t) for t in tokens]} if logprobs else None,
            "finish_reason": _finish(done["finish_reason"]),
        }
    else:
        choice = {
            "index": 0,
            "text": result["text"],
            "logprobs": _completion_logprobs(tokens) if logprobs else None,
            "finish_reason": _finish(done["finish_reason"]),
        }
    obj = "chat.completion" if chat else "text_completion"
    return JsonResponse({**meta, "object": obj, "choices": [choice], "usage": _usage(done)})


async def _chunks(
    message: dict[str, Any], meta: dict[str, Any], *, chat: bool, logprobs: bool, usage: bool
) -> AsyncIterator[str]:
    obj = "chat.completion.chunk" if chat else "text_completion"
    stream = playground.playground_stream(message)
    offset = 0
    try:
        if chat:
            first = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            yield sse({**meta, "object": obj, "choices": [first]})
        async for event in stream:
            kind = event["type"]
            if kind in ("token", "text"):
                lp = None
                if logprobs and kind == "token":
                    lp = (
                        {"content": [_chat_logprob(event)]}
                        if chat
                        else _completion_logprobs([event], offset)
                    )
                offset += len(event["text"])
                if chat:
                    choice = {
                        "index": 0,
                        "delta": {"content": event["text"]},
                        "logprobs": lp,
                        "finish_reason": None,
                    }
                else:
                    choice = {
                        "index": 0,
                        "text": event["text"],
                        "logprobs": lp,
                        "finish_reason": None,
                    }
                yield sse({**meta, "object": obj, "choices": [choice]})
            elif kind == "done":
                reason = _finish(event["finish_reason"])
                last: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
                last.update({"delta": {}} if chat else {"text": ""})
                yield sse({**meta, "object": obj, "choices": [last]})
                if usage:
                    yield sse({**meta, "object": obj, "choices": [], "usage": _usage(event)})
            elif kind == "error":
                status = playground.error_status(event["code"])
                err = {
                    "message": event["message"],
                    "type": "server_error" if status >= 500 else "invalid_request_error",
                    "param": event.get("param"),
                    "code": event["code"],
                }
                yield sse({"error": err})
        yield sse("[DONE]")
    finally:
        await stream.aclose()


@csrf_exempt
async def completions(request: HttpRequest) -> HttpResponse:
    return await _respond(request, chat=False)


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _respond(request, chat=True)


async def models(request: HttpRequest) -> HttpResponse:
    """The models the token's owner can generate with (``id`` works as ``model``)."""
    try:
        user = await sync_to_async(api_user)(request)
    except APIException as e:
        return _error(Refusal.of(e))

    def rows() -> list[dict[str, Any]]:
        qs = model_list_for_user(user=user).filter(status="ready").select_related("team")
        return [
            {
                "id": str(m.pk),
                "object": "model",
                "created": int(m.created_at.timestamp()),
                "owned_by": m.team.name,
                "name": f"{m.name} v{m.version}",
            }
            for m in qs.order_by("-created_at")
            if any(mode != "classify" for mode in serving_modes(m.task))
        ]

    return JsonResponse({"object": "list", "data": await sync_to_async(rows)()})
