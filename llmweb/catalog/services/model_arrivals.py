"""New models from outside: presets, uploaded archives, hub ids (all finished by a worker)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from jobs.engine.base import EngineError
from jobs.engine.presets import get_preset
from llmweb.accounts.audit import audit_record
from llmweb.accounts.models import Team
from llmweb.catalog.models import Dataset, DatasetStatus, ModelSource, ModelStatus, RegisteredModel
from llmweb.catalog.services.common import UploadTooLarge, create_versioned
from llmweb.catalog.services.model_common import MAX_VOCAB, clean_name, enqueue, require_write
from llmweb.core.errors import DomainError

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
        raise DomainError(e.message, param="preset") from None
    if (tokenizer_dataset is None) == (tokenizer_model is None):
        raise DomainError(
            "Choose where the tokenizer comes from: a dataset to train it on, "
            "or a model to copy it from (one of the two).",
            param="tokenizer",
        )
    preset_info: dict[str, Any] = {"family": family, "size": size}
    if tokenizer_dataset is not None:
        if tokenizer_dataset.team_id != team.pk:
            raise DomainError("That dataset is not in this team.", param="tokenizer_dataset")
        if tokenizer_dataset.status != DatasetStatus.READY:
            raise DomainError(
                f"{tokenizer_dataset} is {tokenizer_dataset.status}; "
                "a tokenizer can only be trained on a ready dataset.",
                param="tokenizer_dataset",
            )
        vocab = int(vocab_size or preset.default_vocab_size)
        low = 300 if preset.tokenizer_kind == "bpe" else 100
        if not low <= vocab <= MAX_VOCAB:
            raise DomainError(
                f"A {preset.tokenizer_kind} vocabulary must have between "
                f"{low} and {MAX_VOCAB:,} tokens.",
                param="vocab_size",
            )
        preset_info |= {"vocab_size": vocab, "tokenizer_dataset": tokenizer_dataset.pk}
    else:
        assert tokenizer_model is not None
        if tokenizer_model.team_id != team.pk:
            raise DomainError("That model is not in this team.", param="tokenizer_model")
        if tokenizer_model.status != ModelStatus.READY:
            raise DomainError(f"{tokenizer_model} is not ready.", param="tokenizer_model")
        preset_info |= {"tokenizer_model": tokenizer_model.pk}
    with transaction.atomic():
        model = create_versioned(
            RegisteredModel,
            team=team,
            name=clean_name(name, fallback=f"{family}-{size}"),
            source=ModelSource.PRESET,
            status=ModelStatus.PENDING,
            task=preset.task,
            preset=preset_info,
            dataset=tokenizer_dataset,
            created_by=user,
        )
        audit_record(
            actor=user, team=team, action="model.create", target=model, details=preset_info
        )
        enqueue("model_build_preset_task", model.pk)
    return model


# ---------------------------------------------------------------- upload


def _upload_suffix(filename: str) -> str:
    lower = filename.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise DomainError(
        f"{filename} is not a .zip, .tar.gz or .tgz archive of a model folder.", param="file"
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
        raise UploadTooLarge(declared, limit, what="The archive")
    model = create_versioned(
        RegisteredModel,
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
                    raise UploadTooLarge(written, limit, what="The archive")
                out.write(chunk)
        if written == 0:
            raise DomainError(f"{filename} is empty.", param="file")
    except BaseException:
        model.delete_files()
        model.delete()
        raise
    # The entry goes with the stored archive: a refused file above leaves none.
    with transaction.atomic():
        RegisteredModel.objects.filter(pk=model.pk).update(size_bytes=written)
        audit_record(
            actor=user,
            team=team,
            action="model.upload",
            target=model,
            details={"filename": filename[:255], "bytes": written},
        )
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
        raise DomainError(
            "Models from the Hugging Face hub are turned off on this server "
            "(setting LLMWEB_ALLOW_HUB). Upload the model folder as a .zip instead.",
            param="hub_id",
        )
    hub_id = (hub_id or "").strip()
    if not _HUB_ID.fullmatch(hub_id) or ".." in hub_id:
        raise DomainError(
            f"{hub_id!r} is not a hub model id (e.g. distilbert-base-uncased or owner/name).",
            param="hub_id",
        )
    with transaction.atomic():
        model = create_versioned(
            RegisteredModel,
            team=team,
            name=clean_name(name, fallback=hub_id.rsplit("/", 1)[-1]),
            source=ModelSource.HUB,
            status=ModelStatus.PENDING,
            hub_id=hub_id,
            created_by=user,
        )
        audit_record(
            actor=user, team=team, action="model.register", target=model, details={"hub_id": hub_id}
        )
        enqueue("model_download_hub_task", model.pk)
    return model
