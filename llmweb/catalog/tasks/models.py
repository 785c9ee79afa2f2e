"""Model tasks on queue ``default``: validate an upload, build a preset, fetch from the hub.

Each takes a model id, does the torch work through ``jobs.engine`` (imported inside the
task body, so the web process never imports torch) and reports through
``model_mark_ready`` / ``model_mark_failed``. Any failure deletes the record's files.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings

from jobs.engine.base import EngineError
from jobs.engine.schemas import TEXT_COLUMNS
from llmweb.catalog.models import Dataset, RegisteredModel
from llmweb.catalog.services import models as services
from llmweb.catalog.services.liveness import heartbeat, model_claim
from llmweb.core.running import run_guarded

log = logging.getLogger(__name__)

__all__ = ["model_build_preset_task", "model_download_hub_task", "model_validate_upload_task"]


def _pending(model_id: int) -> RegisteredModel | None:
    if not model_claim(model_id=model_id):
        return None  # deleted, held by a live worker, or a duplicate delivery of finished work
    model = RegisteredModel.objects.select_related("team").filter(pk=model_id).first()
    if model is not None:
        # A try that was lost mid-way (killed worker) may have left part of the output.
        shutil.rmtree(model.artifact_dir, ignore_errors=True)
    return model


def _readme(folder: Path) -> str | None:
    path = folder / "README.md"
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")[: services.MAX_CARD_CHARS]


def _run(model: RegisteredModel, work: Callable[[], tuple[Any, str | None]]) -> str:
    """Run ``work`` -> (ModelInfo, card) and record the outcome; files go on failure."""
    folder = model.storage_dir

    def failed(error: dict[str, Any], traceback: str) -> None:
        # Files first: once the record says "failed", nothing of the upload is left.
        shutil.rmtree(folder, ignore_errors=True)
        services.model_mark_failed(model_id=model.pk, error=error)

    with heartbeat(model):
        ran = run_guarded(work, what="Processing", on_failed=failed)
    if ran.state != "succeeded":
        return ran.state
    info, card = ran.value
    if services.model_mark_ready(model_id=model.pk, info=info.as_dict(), card=card) is None:
        shutil.rmtree(folder, ignore_errors=True)  # deleted while we worked
        return "gone"
    return "ready"


@shared_task(name="llmweb.catalog.tasks.validate_model_upload")
def model_validate_upload_task(model_id: int) -> str:
    """Unpack the stored archive into ``artifact/``, prove the model loads, describe it."""
    from jobs.engine.models import model_card_markdown, unpack_and_validate_upload

    model = _pending(model_id)
    if model is None:
        return "skipped"

    def work():
        archive = services.upload_archive_path(model)
        if archive is None:
            raise EngineError("The uploaded archive is missing from storage.", code="no_upload")
        # Bombs are caught by the ratio check; this bounds honest archives that unpack big.
        limit = getattr(settings, "LLMWEB_MAX_MODEL_BYTES", 4 * settings.LLMWEB_MAX_UPLOAD_BYTES)
        info = unpack_and_validate_upload(archive, model.artifact_dir, max_total_bytes=limit)
        shutil.rmtree(archive.parent, ignore_errors=True)
        card = _readme(model.artifact_dir) or model_card_markdown(
            info, extra={"title": model.name, "source": "uploaded archive"}
        )
        return info, card

    return _run(model, work)


def dataset_texts(dataset: Dataset) -> Iterator[str]:
    """Every text of the processed train split, streamed in batches from Arrow."""
    from datasets import load_from_disk

    try:
        split = load_from_disk(str(dataset.processed_dir))["train"]
    except (FileNotFoundError, KeyError) as e:
        raise EngineError(
            f"{dataset} has no processed train split to train a tokenizer on.",
            code="no_dataset",
        ) from e
    columns = [c for c in TEXT_COLUMNS.get(dataset.schema, ()) if c in split.column_names]
    if not columns:
        raise EngineError(f"{dataset} has no text column.", code="no_text")
    for batch in split.select_columns(columns).iter(batch_size=1000):
        for column in columns:
            for text in batch[column]:
                if text:
                    yield text


@shared_task(name="llmweb.catalog.tasks.build_preset_model")
def model_build_preset_task(model_id: int) -> str:
    """Train the tokenizer (or copy one) and write the randomly initialised preset."""
    from jobs.engine.models import create_preset_model

    model = _pending(model_id)
    if model is None:
        return "skipped"
    preset = dict(model.preset or {})

    def work():
        texts = tokenizer_from = None
        if preset.get("tokenizer_dataset"):
            dataset = Dataset.objects.filter(pk=preset["tokenizer_dataset"]).first()
            if dataset is None:
                raise EngineError("The tokenizer's dataset was deleted.", code="no_dataset")
            texts = dataset_texts(dataset)
        else:
            source = RegisteredModel.objects.filter(pk=preset.get("tokenizer_model")).first()
            if source is None:
                raise EngineError("The tokenizer's model was deleted.", code="no_model")
            tokenizer_from = source.artifact_dir
        info = create_preset_model(
            family=preset["family"],
            size=preset["size"],
            out_dir=model.artifact_dir,
            texts=texts,
            tokenizer_from=tokenizer_from,
            vocab_size=preset.get("vocab_size"),
            seed=0,
        )
        return info, _readme(model.artifact_dir)

    return _run(model, work)


@shared_task(name="llmweb.catalog.tasks.download_hub_model")
def model_download_hub_task(model_id: int) -> str:
    """Fetch safetensors, config and tokenizer from the hub, then validate like an upload."""
    from jobs.engine.models import download_hub_model, model_card_markdown

    model = _pending(model_id)
    if model is None:
        return "skipped"

    def work():
        limit = getattr(settings, "LLMWEB_MAX_MODEL_BYTES", 4 * settings.LLMWEB_MAX_UPLOAD_BYTES)
        info = download_hub_model(model.hub_id, model.artifact_dir, max_total_bytes=limit)
        card = _readme(model.artifact_dir) or model_card_markdown(
            info, extra={"title": model.name, "source": f"hub: {model.hub_id}"}
        )
        return info, card

    return _run(model, work)
