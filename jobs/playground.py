"""The web side of the playground: validate a request, queue it, relay what the worker sends.

Shared by the websocket consumer (``/ws/playground/``), ``/api/v1/models/{id}/generate/``
and the OpenAI-compatible routes, so all three resolve models, validate parameters, time
out and cancel the same way. Torch-free: the web process imports it.

A request travels as one Celery message on queue ``inference`` carrying a fresh reply
channel; the worker (``jobs.inference``) answers there with batches of events. A stream
that ends early (Stop, a closed socket or HTTP client) sends a message to the request's
cancel channel, which the worker's decoding loop notices before its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.http import Http404

from jobs.engine.base import EngineError
from jobs.engine.sampling import SamplingParams, check_mode, serving_modes
from jobs.publishing import REPLY_TYPE, cancel_channel
from llmweb.accounts.selectors import can_write
from llmweb.catalog.models import ModelStatus, RegisteredModel
from llmweb.catalog.selectors import model_get_for_user, model_list_for_user
from llmweb.core.errors import DomainError
from llmweb.core.ids import MAX_ID

log = logging.getLogger(__name__)

GENERATE_TASK = "jobs.tasks.generate"
# How often a waiting request looks at its place in the queue.
POSITION_INTERVAL_SECONDS = 1.0
MAX_PROMPT_CHARS = 50_000
MAX_MESSAGES = 200
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VERSIONED = re.compile(r"^(?P<name>.+?)(?:[:@]v?(?P<version>\d+))?$")


def playground_model_resolve(*, user: Any, ref: Any) -> RegisteredModel:
    """A model of the user's teams by id (``12``) or name (``shakespeare``, ``name:v2``).

    A name means its newest ready version; a name several of the user's teams use is
    refused as ambiguous rather than guessed. Other teams' models are "not found".
    """
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        if not 1 <= int(ref) <= MAX_ID:  # a 20-digit id must not reach the database
            raise DomainError(
                f"No model {ref} in your teams.",
                code="model_not_found",
                param="model",
                http_status=404,
            )
        try:
            return model_get_for_user(user=user, model_id=ref)
        except Http404:
            raise DomainError(
                f"No model {ref} in your teams.",
                code="model_not_found",
                param="model",
                http_status=404,
            ) from None
    if not isinstance(ref, str) or not ref.strip():
        raise DomainError("Name the model (its id or name).", code="invalid", param="model")
    match = _VERSIONED.match(ref.strip())
    assert match is not None
    qs = (
        model_list_for_user(user=user)
        .filter(name=match["name"], status=ModelStatus.READY)
        .select_related("team")
    )
    if match["version"]:
        qs = qs.filter(version=int(match["version"]))
    rows = list(qs.order_by("-version", "-id")[:50])
    if not rows:
        raise DomainError(
            f"No ready model named {ref!r} in your teams.",
            code="model_not_found",
            param="model",
            http_status=404,
        )
    if len({m.team_id for m in rows}) > 1:
        raise DomainError(
            f"Several of your teams have a model named {ref!r}; use its id.",
            code="ambiguous_model",
            param="model",
        )
    return rows[0]


def _domain(e: EngineError) -> DomainError:
    return DomainError(e.message, code=e.code, param=e.param)


def playground_request(
    *, user: Any, data: dict[str, Any], request_id: str | None = None
) -> dict[str, Any]:
    """Validate what a client asked for and build the worker's message (no reply channel yet).

    ``data``: ``model`` (id or name), ``mode`` (defaults by the model's task), ``prompt``
    (completion, seq2seq, classify) or ``messages`` (chat), ``params`` (SamplingParams).

    Raises:
        DomainError: an unknown or unready model, a mode it cannot serve, bad parameters.
    """
    if not isinstance(data, dict):
        raise DomainError("Send a JSON object.", code="invalid")
    model = playground_model_resolve(user=user, ref=data.get("model"))
    if not can_write(user=user, team=model.team):
        # Generation spends the team's inference workers: members and owners run models,
        # viewers read (the same line as every other write of the API).
        raise DomainError(
            "Viewers cannot run models; ask a team owner for member access.",
            code="permission_denied",
            param="model",
            http_status=403,
        )
    if model.status != ModelStatus.READY:
        raise DomainError(
            f"{model} is {model.status}, not ready.", code="model_not_ready", param="model"
        )
    modes = serving_modes(model.task)
    mode = data.get("mode") or (modes[0] if modes else "completion")
    try:
        check_mode(str(mode), model.task)
        params = SamplingParams.from_dict(data.get("params") or {})
    except EngineError as e:
        raise _domain(e) from None
    message: dict[str, Any] = {
        "request_id": request_id or uuid.uuid4().hex,
        "model": {
            "id": model.pk,
            "name": str(model),
            "path": str(model.artifact_dir),
            "task": model.task,
        },
        "mode": mode,
        "params": params.as_dict(),
    }
    if not _REQUEST_ID.match(message["request_id"]):
        raise DomainError("id: letters, digits, - and _ only.", code="invalid", param="id")
    if mode == "chat":
        messages = data.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or len(messages) > MAX_MESSAGES
            or not all(
                isinstance(m, dict)
                and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            raise DomainError(
                "messages: a list of {role, content} objects.", code="invalid", param="messages"
            )
        if sum(len(m["content"]) for m in messages) > MAX_PROMPT_CHARS:
            raise DomainError("The conversation is too long.", code="invalid", param="messages")
        message["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
    else:
        prompt = data.get("prompt")
        if not isinstance(prompt, str):
            raise DomainError("prompt: a string.", code="invalid", param="prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise DomainError(
                f"The prompt is longer than {MAX_PROMPT_CHARS} characters.",
                code="invalid",
                param="prompt",
            )
        message["prompt"] = prompt
    return message


def playground_queue_depth() -> int:
    """Requests waiting on the inference queue (not counting those being served)."""
    from llmweb.celery import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        # kombu's Redis transport sums the queue's priority lists (with the key prefix);
        # a queue nobody declared yet is empty.
        size = getattr(channel, "_size", None)
        return int(size(settings.LLMWEB_INFERENCE_QUEUE)) if size else 0


def playground_check_capacity() -> int:
    """The queue depth, or a 429 refusal (with a retry hint) when the queue is full.

    Raises:
        DomainError: ``queue_full`` (HTTP 429, ``retry_after`` seconds).
    """
    depth = playground_queue_depth()
    if depth >= settings.LLMWEB_PLAYGROUND_MAX_QUEUE:
        raise DomainError(
            f"The inference queue is full ({depth} waiting); try again shortly.",
            code="queue_full",
            http_status=429,
            retry_after=5,
        )
    return depth


def playground_queue_position(request_id: str) -> int | None:
    """1 + the requests ahead of ``request_id`` on the inference queue; None when it is no
    longer waiting there (a worker took it).

    kombu's Redis transport pushes on the left and workers pop from the right, so the
    requests ahead are the entries to the right of ours. Its task id is the request id.
    Playground messages carry no priority, so only the first priority list holds them.
    """
    from llmweb.celery import app

    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        # LRANGE is not among the commands kombu prefixes itself.
        key = getattr(client, "global_keyprefix", "") + settings.LLMWEB_INFERENCE_QUEUE
        entries = client.lrange(key, 0, -1)
    needle = request_id.encode()
    for i, raw in enumerate(entries):
        if needle in (raw if isinstance(raw, bytes) else str(raw).encode()):
            return len(entries) - i
    return None


def _enqueue(message: dict[str, Any], expires: float) -> int:
    from llmweb.celery import app

    depth = playground_queue_depth()
    # expires: a request nobody picked up before the requester gave up is dropped, not
    # generated into a channel nobody reads. The task id is the request id, so the
    # request can find its place in the queue (playground_queue_position).
    queue = settings.LLMWEB_INFERENCE_QUEUE
    rid = message["request_id"]
    app.send_task(GENERATE_TASK, args=[message], queue=queue, expires=expires, task_id=rid)
    return depth


async def playground_cancel(request_id: str) -> None:
    """Ask the worker serving ``request_id`` to stop (it may not have started yet: the
    message waits on the cancel channel and stops it before its first step)."""
    layer = get_channel_layer()
    try:
        await layer.send(cancel_channel(request_id), {"type": "cancel"})
    except Exception:  # noqa: BLE001 - best effort: the worker also stops on a full channel
        log.warning("could not cancel %s", request_id, exc_info=True)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


async def playground_stream(message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Queue ``message`` and yield the worker's events until ``done`` or ``error``.

    Never waits forever: no ``started`` within ``LLMWEB_PLAYGROUND_START_SECONDS`` means no
    inference worker took it; no message (the worker heart-beats every second) for
    ``LLMWEB_PLAYGROUND_STALL_SECONDS`` after that means the worker died. Both end with an
    ``error`` event. Closing the generator early cancels the generation in the worker;
    use ``contextlib.aclosing`` so that happens at once.
    """
    layer = get_channel_layer()
    start_timeout = float(settings.LLMWEB_PLAYGROUND_START_SECONDS)
    stall_timeout = float(settings.LLMWEB_PLAYGROUND_STALL_SECONDS)
    # The default "specific." prefix matters: channels_redis receives every process-local
    # channel of a layer through one Redis list; another prefix would wait forever behind
    # the consumer's own receive.
    reply = await layer.new_channel()
    message = {**message, "reply_channel": reply, "sent_at": time.time()}
    rid = message["request_id"]
    finished = False
    try:
        try:
            ahead = await asyncio.to_thread(_enqueue, message, start_timeout)
        except Exception:  # noqa: BLE001
            log.exception("could not queue playground request %s", rid)
            finished = True
            yield _error("queue_unavailable", "The inference queue cannot be reached.")
            return
        position = ahead + 1
        yield {"type": "queued", "request_id": rid, "position": position}
        started = False
        loop = asyncio.get_running_loop()
        start_deadline = loop.time() + start_timeout
        while True:
            if started:
                timeout = stall_timeout
            else:
                # While it waits, look at its place in the queue now and then; the page
                # shows each new position.
                timeout = min(POSITION_INTERVAL_SECONDS, max(0.0, start_deadline - loop.time()))
            try:
                received = await asyncio.wait_for(layer.receive(reply), timeout)
            except TimeoutError:
                if not started and loop.time() < start_deadline:
                    now = await asyncio.to_thread(playground_queue_position, rid)
                    if now is not None and now != position:
                        position = now
                        yield {"type": "queued", "request_id": rid, "position": position}
                    continue
                if started:
                    yield _error(
                        "worker_lost",
                        f"The inference worker stopped answering for {stall_timeout:.0f} s; "
                        "it probably died. Try again.",
                    )
                else:
                    yield _error(
                        "no_worker",
                        f"No inference worker took the request within {start_timeout:.0f} s.",
                    )
                return
            if received.get("type") != REPLY_TYPE:
                continue
            for event in received["events"]:
                if event["type"] == "heartbeat":
                    continue
                started = True
                if event["type"] in ("done", "error"):
                    finished = True
                yield event
                if finished:
                    return
    finally:
        if not finished:
            await playground_cancel(rid)


async def playground_collect(message: dict[str, Any]) -> dict[str, Any]:
    """Run a request to the end and gather it: ``{"tokens", "text", "done", "error"}``.

    ``done`` is the worker's last event (``None`` after an error); ``error`` the error
    event, if any. Cancelled with the caller (an HTTP client that went away).
    """
    tokens: list[dict[str, Any]] = []
    pieces: list[str] = []
    result: dict[str, Any] = {"tokens": tokens, "text": "", "done": None, "error": None}
    async with contextlib.aclosing(playground_stream(message)) as events:
        async for event in events:
            if event["type"] == "token":
                tokens.append(event)
                pieces.append(event["text"])
            elif event["type"] == "text":
                pieces.append(event["text"])
            elif event["type"] == "done":
                result["done"] = event
            elif event["type"] == "error":
                result["error"] = event
    result["text"] = "".join(pieces)
    return result


def error_status(code: str) -> int:
    """The HTTP status of an ``error`` event: the worker or queue failing is a 503."""
    if code in ("worker_lost", "no_worker", "queue_unavailable"):
        return 503
    return 500 if code == "internal" else 400


def has_chat_template(folder: Path) -> bool:
    """Whether a model folder's tokenizer carries a chat template (read without loading it:
    transformers 5 writes ``chat_template.jinja``, older folders keep it in the config)."""
    if (folder / "chat_template.jinja").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(config, dict) and config.get("chat_template"))


def playground_models(*, user: Any, team: Any) -> list[dict[str, Any]]:
    """The team's ready models the playground can run, with the modes each offers."""
    rows = []
    qs = model_list_for_user(user=user, team=team).filter(status=ModelStatus.READY)
    for m in qs.order_by("name", "-version"):
        modes = list(serving_modes(m.task))
        if not modes:
            continue
        if "chat" in modes and not has_chat_template(Path(m.artifact_dir)):
            modes.remove("chat")
        rows.append(
            {
                "id": m.pk,
                "label": f"{m.name} v{m.version}",
                "task": m.task,
                "modes": modes,
                "source": m.source,
            }
        )
    return rows
