"""Shared pieces of the model services: permissions, versions, state changes, enqueueing."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from llmweb.accounts.models import Team
from llmweb.catalog.models import ModelSource, ModelStatus, ModelTask, RegisteredModel
from llmweb.catalog.services.common import CatalogConflict
from llmweb.catalog.services.common import require_write as common_require_write

log = logging.getLogger(__name__)

# Job statuses during which the base model's files are (or soon will be) read.
ACTIVE_JOB_STATUSES = ("validating", "queued", "running")
MAX_CARD_CHARS = 100_000
MAX_VOCAB = 256_000


class ModelConflict(CatalogConflict):
    """The request is valid but the model's state forbids it now (the API answers 409)."""


def require_write(*, user, team: Team) -> None:
    common_require_write(user=user, team=team, action="add, change or delete models")


def clean_name(name: str | None, *, fallback: str = "") -> str:
    name = (name or "").strip() or fallback.strip()
    if not name:
        raise ValidationError({"name": "Give the model a name."})
    if len(name) > 90:
        raise ValidationError({"name": "A model name has at most 90 characters."})
    if any(ord(c) < 32 for c in name):
        raise ValidationError({"name": "A model name cannot contain control characters."})
    return name


def create_versioned(*, team: Team, name: str, **fields: Any) -> RegisteredModel:
    """Create ``name`` at the next free version of this team (v1, v2, ...)."""
    for _ in range(5):
        try:
            with transaction.atomic():
                top = RegisteredModel.objects.filter(team=team, name=name).aggregate(
                    v=Max("version")
                )["v"]
                model = RegisteredModel.objects.create(
                    team=team, name=name, version=(top or 0) + 1, **fields
                )
        except IntegrityError:
            continue  # another writer took that version a moment ago
        # A new id owns no files; anything there was left by a rolled-back transaction.
        model.delete_files()
        return model
    raise ValidationError({"name": f"Could not allocate a version for {name!r}; try again."})


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


def jsonable(value: Any) -> Any:
    # numpy scalars and the like become floats or strings instead of failing the save.
    def default(o: Any) -> Any:
        try:
            return float(o)
        except (TypeError, ValueError):
            return str(o)

    return json.loads(json.dumps(value, default=default))


def enqueue(task_name: str, model_id: int) -> None:
    """Send the task after commit; a queue that cannot be reached fails the record at once."""

    def send() -> None:
        from llmweb.catalog import tasks

        try:
            # The reaper's "never claimed within N minutes" counts from the send.
            RegisteredModel.objects.filter(pk=model_id).update(queued_at=timezone.now())
            getattr(tasks, task_name).delay(model_id)
        except Exception:  # noqa: BLE001 - the broker is down; say so instead of hanging
            log.exception("could not enqueue %s for model %s", task_name, model_id)
            model_mark_failed(
                model_id=model_id,
                error={
                    "code": "queue_unavailable",
                    "message": "The task queue could not be reached, so the model was not "
                    "processed. Try again in a minute.",
                },
            )

    transaction.on_commit(send)


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
        model.save(update_fields=["status", "error"])
    if model.source != ModelSource.BUNDLED:
        model.delete_files()
    return model
