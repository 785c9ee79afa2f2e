"""Students for distillation: the teacher with every other layer, a smaller preset of its
family (with its tokenizer), or a model the team already has.

Layer selection is DistilBERT's initialisation: keep layers 0, 2, 4, ... of the teacher
and copy their weights (and everything outside the layer stack: embeddings, final norm,
task head), so the student starts close to the teacher instead of from noise.
Torch-free at import: the web process reads the layer arithmetic for the estimate.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jobs.engine.base import EngineError

STUDENTS = ("half-layers", "preset", "model")
# model_type -> the config attributes holding the layer counts (all are halved).
LAYER_ATTRS: dict[str, tuple[str, ...]] = {
    "bert": ("num_hidden_layers",),
    "roberta": ("num_hidden_layers",),
    "xlm-roberta": ("num_hidden_layers",),
    "electra": ("num_hidden_layers",),
    "gpt2": ("n_layer",),
    "t5": ("num_layers", "num_decoder_layers"),
}
# model_type -> the preset family with the same architecture.
PRESET_FAMILY = {"bert": "bert", "gpt2": "gpt2", "t5": "t5"}
# "bert.encoder.layer.3.attention..." / "transformer.h.3...." / "encoder.block.3...."
_LAYER_KEY = re.compile(r"^(.*?\.(?:layer|h|block|layers))\.(\d+)\.(.*)$")


def every_other_layer(n_layers: int) -> list[int]:
    """Teacher layers the student keeps: 0, 2, 4, ... (ceil(n / 2) of them).

    >>> every_other_layer(6), every_other_layer(5), every_other_layer(1)
    ([0, 2, 4], [0, 2, 4], [0])
    """
    if n_layers < 1:
        raise EngineError("The teacher has no layers to select from.", code="invalid_model")
    return list(range(0, n_layers, 2))


def teacher_key_for(student_key: str, keep: list[int]) -> str:
    """The teacher weight a student weight is copied from: layer i <- layer keep[i]."""
    match = _LAYER_KEY.match(student_key)
    if not match:
        return student_key
    prefix, index, rest = match.groups()
    return f"{prefix}.{keep[int(index)]}.{rest}"


def half_layers_config(teacher_config: Any) -> tuple[Any, list[int]]:
    """A copy of the teacher's config with every other layer, and the kept indices."""
    import copy

    attrs = LAYER_ATTRS.get(teacher_config.model_type)
    if not attrs:
        raise EngineError(
            f"Keeping every other layer is built for {', '.join(LAYER_ATTRS)} models, not "
            f"{teacher_config.model_type}; choose student=preset or student=model.",
            code="student_unsupported",
            param="student",
        )
    config = copy.deepcopy(teacher_config)
    keep: list[int] = []
    for attr in attrs:
        n = getattr(config, attr, None) or getattr(config, attrs[0])
        keep = every_other_layer(int(n))
        if len(keep) == n:
            raise EngineError(
                "The teacher has a single layer; there is nothing to drop.",
                code="student_unsupported",
                param="student",
            )
        setattr(config, attr, len(keep))
    return config, keep


def half_layers_student(teacher: Any) -> Any:
    """The teacher with every other layer kept, initialised from the teacher's weights."""
    config, keep = half_layers_config(teacher.config)
    student = type(teacher)(config)
    source = teacher.state_dict()
    mapped = {key: source[teacher_key_for(key, keep)] for key in student.state_dict()}
    student.load_state_dict(mapped, strict=True)
    return student


def family_of(model_type: str) -> str:
    family = PRESET_FAMILY.get(model_type)
    if family is None:
        raise EngineError(
            f"There is no preset of the {model_type} family; choose student=half-layers or "
            "student=model.",
            code="student_unsupported",
            param="student",
        )
    return family


def preset_student(
    *, teacher_dir: Path, model_type: str, size: str, out_dir: Path, seed: int
) -> Path:
    """A fresh preset of the teacher's family that uses the teacher's tokenizer."""
    from jobs.engine.models.loading import create_preset_model

    create_preset_model(
        family=family_of(model_type),
        size=size,
        out_dir=out_dir,
        tokenizer_from=teacher_dir,
        seed=seed,
    )
    return out_dir


def estimate_student(
    *, student: str, teacher: dict[str, Any], size: str | None = None
) -> dict[str, Any]:
    """Parameters of the student and the speed-up to expect, from config numbers alone.

    ``teacher`` has ``num_parameters``, ``hidden_size``, ``num_hidden_layers`` and
    ``vocab_size`` (a model record's summary). A transformer layer holds about 12·d²
    weights; compute per token scales with the layers, so the speed-up is the layer ratio.
    """
    n = int(teacher.get("num_parameters") or 0)
    d = int(teacher.get("hidden_size") or 0)
    layers = int(teacher.get("num_hidden_layers") or 0)
    if student == "half-layers" and layers:
        kept = len(every_other_layer(layers))
        return {
            "student_parameters": max(0, n - (layers - kept) * 12 * d * d),
            "student_layers": kept,
            "speedup_about": round(layers / kept, 2),
        }
    if student == "preset" and size:
        from jobs.engine.presets import get_preset

        preset = get_preset(teacher.get("family") or "bert", size)
        pd = int(preset.config.get("hidden_size") or preset.config.get("n_embd") or 0)
        pl = int(preset.config.get("num_hidden_layers") or preset.config.get("n_layer") or 1)
        vocab = int(teacher.get("vocab_size") or 0)
        params = 12 * pl * pd * pd + vocab * pd
        speed = (layers * d * d) / (pl * pd * pd) if layers and d else None
        return {
            "student_parameters": params,
            "student_layers": pl,
            "speedup_about": round(speed, 2) if speed else None,
        }
    return {}
