"""Shared pieces of the model services: permissions, names, state changes, enqueueing."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.engine.jsonable import jsonable
from llmweb.accounts.models import Team
from llmweb.catalog.models import ModelSource, ModelStatus, ModelTask, RegisteredModel
from llmweb.catalog.services.common import require_write as common_require_write
from llmweb.core.errors import Conflict, DomainError
from llmweb.core.queue import enqueue_on_commit

# Job statuses during which the base model's files are (or soon will be) read.
ACTIVE_JOB_STATUSES = ("validating", "queued", "running")
MAX_CARD_CHARS = 100_000
MAX_VOCAB = 256_000


class ModelConflict(Conflict):
    """The request is valid but the model's state forbids it now (HTTP 409)."""


def require_write(*, user, team: Team) -> None:
    common_require_write(user=user, team=team, action="add, change or delete models")


def clean_name(name: str | None, *, fallback: str = "") -> str:
    name = (name or "").strip() or fallback.strip()
    if not name:
        raise DomainError("Give the model a name.", param="name")
    if len(name) > 90:
        raise DomainError("A model name has at most 90 characters.", param="name")
    if any(ord(c) < 32 for c in name):
        raise DomainError("A model name cannot contain control characters.", param="name")
    return name


def fields_from_info(info: dict[str, Any]) -> dict[str, Any]:
    """RegisteredModel fields from ``ModelInfo.as_dict()`` (plain data, no torch)."""
    task = info.get("task")
    return {
        "task": task if task in ModelTask.values else "",
        "architecture": (info.get("architecture") or "")[:100],
        "model_type": (info.get("model_type") or "")[:50],
        "num_parameters": info.get("num_parameters"),
        "size_bytes": info.get("size_bytes"),
        "dtype": (info.get("dtype") or "")[:20],
        "max_length": info.get("max_length"),
        "tokenizer": info.get("tokenizer") or {},
        "label_names": info.get("label_names"),
        "config_summary": {
            **(info.get("config") or {}),
            "supported_tasks": info.get("supported_tasks") or [],
            "is_encoder_decoder": bool(info.get("is_encoder_decoder")),
            "max_length_note": info.get("max_length_note"),
        },
    }


def enqueue(task_name: str, model_id: int) -> None:
    """Send ``llmweb.catalog.tasks.models:<task_name>`` after commit; a queue that cannot
    be reached fails the record at once."""
    # The reaper's "never claimed within N minutes" counts from here (liveness.py).
    RegisteredModel.objects.filter(pk=model_id).update(queued_at=timezone.now())
    enqueue_on_commit(
        f"llmweb.catalog.tasks.models:{task_name}",
        model_id,
        on_error=lambda exc: model_mark_failed(
            model_id=model_id,
            error={
                "code": "queue_unavailable",
                "message": "The task queue could not be reached, so the model was not "
                "processed. Try again in a minute.",
            },
        ),
    )


# ---------------------------------------------------------------- state changes (tasks)


def model_mark_ready(
    *, model_id: int, info: dict[str, Any], card: str | None = None
) -> RegisteredModel | None:
    """Fill a pending record from what the worker found; None if it was deleted meanwhile."""
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().filter(pk=model_id).first()
        if model is None:
            return None
        for key, value in fields_from_info(info).items():
            setattr(model, key, value)
        if card is not None:
            model.card = card[:MAX_CARD_CHARS]
        model.status = ModelStatus.READY
        model.error = None
        model.save()
        return model


def model_mark_failed(*, model_id: int, error: dict[str, Any]) -> RegisteredModel | None:
    """Keep the row with its error and delete every file it had (see module docstring)."""
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().filter(pk=model_id).first()
        if model is None:
            return None
        model.status = ModelStatus.FAILED
        model.error = jsonable({k: v for k, v in error.items() if v not in (None, [], {})})
        # Files first: whoever sees "failed" must find nothing left on disk.
        if model.source != ModelSource.BUNDLED:
            model.delete_files()
        model.save(update_fields=["status", "error"])
    return model
