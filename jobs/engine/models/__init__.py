"""Model folders: the bundled encoder, presets, uploads, hub downloads, loading.

Not Django models: these are Hugging Face model folders on disk. Split by concern:
``info`` describes a folder, ``safety`` decides whether a folder from outside may be
used at all, ``loading`` turns a folder into ``(model, tokenizer)`` or creates one.
"""

from __future__ import annotations

from jobs.engine.models.card import model_card_markdown
from jobs.engine.models.info import (
    BUNDLED_MODELS,
    TASKS,
    BundledModel,
    ModelInfo,
    bundled_model_path,
    inspect_model,
)
from jobs.engine.models.loading import create_preset_model, load_for_task, load_tokenizer
from jobs.engine.models.safety import (
    download_hub_model,
    unpack_and_validate_upload,
    validate_model_folder,
)

__all__ = [
    "BUNDLED_MODELS",
    "TASKS",
    "BundledModel",
    "ModelInfo",
    "bundled_model_path",
    "create_preset_model",
    "download_hub_model",
    "inspect_model",
    "load_for_task",
    "load_tokenizer",
    "model_card_markdown",
    "unpack_and_validate_upload",
    "validate_model_folder",
]
