"""New models from outside: presets, uploaded archives, hub ids (all finished by a worker)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from jobs.engine.base import EngineError
from jobs.engine.presets import get_preset
from llmweb.accounts.models import Team
from llmweb.catalog.models import Dataset, DatasetStatus, ModelSource, ModelStatus, RegisteredModel
from llmweb.catalog.services.model_common import (
    MAX_VOCAB,
    clean_name,
    create_versioned,
    enqueue,
    require_write,
)

UPLOAD_SUFFIXES = (".zip", ".tar.gz", ".tgz")
_CHUNK = 1 << 20
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")

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
    require_write(user=user, team=team)
    try:
        preset = get_preset(family, size)
    except EngineError as e:
        raise ValidationError({"preset": e.message}) from None
    if (tokenizer_dataset is None) == (tokenizer_model is None):
        raise ValidationError(
            {
                "tokenizer": "Choose where the tokenizer comes from: a dataset to train it on, "
                "or a model to copy it from (one of the two)."
            }
        )
    preset_info: dict[str, Any] = {"family": family, "size": size}
    if tokenizer_dataset is not None:
        if tokenizer_dataset.team_id != team.pk:
            raise ValidationError({"tokenizer_dataset": "That dataset is not in this team."})
        if tokenizer_dataset.status != DatasetStatus.READY:
            raise ValidationError(
                {
                    "tokenizer_dataset": f"{tokenizer_dataset} is {tokenizer_dataset.status}; "
                    "a tokenizer can only be trained on a ready dataset."
                }
            )
        vocab = int(vocab_size or preset.default_vocab_size)
        low = 300 if preset.tokenizer_kind == "bpe" else 100
        if not low <= vocab <= MAX_VOCAB:
            raise ValidationError(
                {
                    "vocab_size": f"A {preset.tokenizer_kind} vocabulary must have between "
                    f"{low} and {MAX_VOCAB:,} tokens."
                }
            )
        preset_info |= {"vocab_size": vocab, "tokenizer_dataset": tokenizer_dataset.pk}
    else:
        assert tokenizer_model is not None
        if tokenizer_model.team_id != team.pk:
            raise ValidationError({"tokenizer_model": "That model is not in this team."})
        if tokenizer_model.status != ModelStatus.READY:
            raise ValidationError({"tokenizer_model": f"{tokenizer_model} is not ready."})
        preset_info |= {"tokenizer_model": tokenizer_model.pk}
    model = create_versioned(
        team=team,
        name=clean_name(name, fallback=f"{family}-{size}"),
        source=ModelSource.PRESET,
        status=ModelStatus.PENDING,
        task=preset.task,
        preset=preset_info,
        dataset=tokenizer_dataset,
        created_by=user,
    )
    enqueue("model_build_preset_task", model.pk)
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
        {
            "file": f"The archive is {size / (1 << 20):,.1f} MiB; the limit is "
            f"{limit / (1 << 20):,.0f} MiB (setting LLMWEB_MAX_UPLOAD_BYTES)."
        }
    )


def model_upload_create(*, user, team: Team, name: str | None, uploaded_file) -> RegisteredModel:
    """Store an uploaded model archive and queue its validation.

    The file is streamed to the record's folder in chunks; the size limit is checked
    before anything is stored when the size is known, and again while copying, because
    a declared size may lie. A refused file leaves neither row nor bytes behind.
    """
    require_write(user=user, team=team)
    filename = Path(getattr(uploaded_file, "name", "") or "model.zip").name
    suffix = _upload_suffix(filename)
    limit = int(settings.LLMWEB_MAX_UPLOAD_BYTES)
    declared = getattr(uploaded_file, "size", None)
    if declared is not None and declared > limit:
        raise _limit_error(declared, limit)
    model = create_versioned(
        team=team,
        name=clean_name(name, fallback=filename[: -len(suffix)]),
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
    enqueue("model_validate_upload_task", model.pk)
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
    require_write(user=user, team=team)
    if not settings.LLMWEB_ALLOW_HUB:
        raise ValidationError(
            {
                "hub_id": "Models from the Hugging Face hub are turned off on this server "
                "(setting LLMWEB_ALLOW_HUB). Upload the model folder as a .zip instead."
            }
        )
    hub_id = (hub_id or "").strip()
    if not _HUB_ID.fullmatch(hub_id) or ".." in hub_id:
        raise ValidationError(
            {
                "hub_id": f"{hub_id!r} is not a hub model id (e.g. distilbert-base-uncased "
                "or owner/name)."
            }
        )
    model = create_versioned(
        team=team,
        name=clean_name(name, fallback=hub_id.rsplit("/", 1)[-1]),
        source=ModelSource.HUB,
        status=ModelStatus.PENDING,
        hub_id=hub_id,
        created_by=user,
    )
    enqueue("model_download_hub_task", model.pk)
    return model
