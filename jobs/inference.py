"""The worker's side of the playground: one model cache per worker process, a request per task.

An inference worker runs Celery's *threads* pool (``-P threads``): every request is a
thread of one process, so each model sits in memory once however many requests use it,
concurrent requests for one model join one batched decode (``jobs.engine.batching``), and
a Stop reaches the decoding thread through a ``threading.Event``. (A prefork pool
would load the model once per child; a solo pool would serve one request at a time.)
Torch releases the GIL inside its kernels, so threads do decode in parallel.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from functools import partial
from typing import Any

from django.conf import settings

from jobs.publishing import ReplyStream, cancel_channel

log = logging.getLogger(__name__)

_cache_lock = threading.Lock()
_cache: Any = None


def model_cache() -> Any:
    """This process's ``ModelCache`` (created on first use, budget from settings)."""
    global _cache
    with _cache_lock:
        if _cache is None:
            from jobs.engine.serving import ModelCache

            _cache = ModelCache(max_bytes=settings.LLMWEB_INFERENCE_CACHE_MB * 2**20)
        return _cache


def serve(message: dict[str, Any]) -> str:
    """Answer one playground request on its reply channel; returns how it ended.

    ``message`` is what ``jobs.playground.playground_request`` built: ``request_id``,
    ``reply_channel``, ``model`` (``id``, ``name``, ``path``, ``task``), ``mode``,
    ``prompt`` / ``messages`` / ``text``, ``params``.
    """
    from jobs.engine.base import EngineError

    rid = message["request_id"]
    with ReplyStream(message["reply_channel"], cancel_channel(rid)) as stream:
        stream.send(
            {
                "type": "started",
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "queued_seconds": max(0.0, time.time() - message.get("sent_at", time.time())),
            }
        )
        try:
            done = _run(message, stream)
        except EngineError as e:
            stream.send({"type": "error", **e.as_dict()})
            return "failed"
        except Exception:  # noqa: BLE001 - the person gets a message, the log the traceback
            log.exception("playground request %s failed", rid)
            stream.send({"type": "error", "code": "internal", "message": "The generation failed."})
            return "failed"
    log.info(
        "playground %s on %s: %s after %s tokens",
        rid,
        message["model"]["name"],
        done.get("finish_reason"),
        done.get("completion_tokens"),
    )
    return str(done.get("finish_reason"))


def _run(message: dict[str, Any], stream: ReplyStream) -> dict[str, Any]:
    from jobs.engine.sampling import SamplingParams, check_mode
    from jobs.engine.serving import (
        attention_map,
        chat_input_ids,
        classify_with_attributions,
        stream_generate,
    )

    info = message["model"]
    cache = model_cache()
    key = f"{info['path']}::{info['task']}"
    cached = key in cache
    loaded = cache.get(info["path"], info["task"])
    stream.send(
        {
            "type": "model",
            "id": info["id"],
            "name": info["name"],
            "cached": cached,
            "load_seconds": loaded.load_seconds,
            "device": str(loaded.model.device),
            "chat": loaded.has_chat_template,
        }
    )
    mode = message["mode"]
    check_mode(mode, info["task"], has_chat_template=loaded.has_chat_template)
    if mode == "classify":
        start = time.perf_counter()
        result = classify_with_attributions(loaded, message.get("prompt") or "")
        done = {
            "type": "done",
            "finish_reason": "stop",
            "labels": result["labels"],
            "attributions": result["tokens"],
            "seconds": time.perf_counter() - start,
        }
        stream.send(done)
        return done
    if mode == "attention":
        start = time.perf_counter()
        attention = attention_map(loaded, message.get("prompt") or "")
        done = {
            "type": "done",
            "finish_reason": "stop",
            "attention": attention,
            "seconds": time.perf_counter() - start,
        }
        stream.send(done)
        return done
    params = SamplingParams.from_dict(message.get("params") or {})
    input_ids = None
    if mode == "chat":
        input_ids = chat_input_ids(loaded.tokenizer, message.get("messages") or [])
    done = {}
    # Concurrent requests for one decoder-only model share one batched decode; the others
    # (encoder-decoder) decode alone on this thread.
    decoder = loaded.batch_decoder()
    generate = (
        decoder.stream
        if decoder is not None
        else partial(stream_generate, loaded.model, loaded.tokenizer)
    )
    for event in generate(
        prompt=message.get("prompt"),
        input_ids=input_ids,
        params=params,
        should_stop=stream.cancelled.is_set,
    ):
        if event["type"] == "done" and event["finish_reason"] == "cancelled":
            # Wall-clock times (same clock as the requester's on one host): when the Stop
            # reached this process and when decoding ended; bench/generate.py reads them.
            event = {
                **event,
                "stop_received_at": stream.cancel_received_at,
                "stopped_at": time.time(),
            }
        stream.send(event)
        if event["type"] == "done":
            done = event
    return done
