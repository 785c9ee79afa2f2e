"""Fine-tune / pretrain parameters: one table that validates configs and drives web forms.

Importing this module does not import torch, so the web process can validate a job's
parameters (``TrainConfig.from_params``) and render forms (``param_schema()``) cheaply.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jobs.engine.base import EngineError

JOB_TYPES = ("finetune", "pretrain")
TASKS = ("classification", "pair-classification", "causal-lm", "seq2seq", "masked-lm")
CLASSIFICATION_TASKS = ("classification", "pair-classification")
PRETRAIN_TASKS = ("causal-lm", "masked-lm", "seq2seq")
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
PATH_FIELDS = ("model_dir", "data_dir", "output_dir", "checkpoint_dir")


def _p(type_: str, default: Any, help_: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "default": default, "help": help_, **extra}


# type: "int" | "float" | "bool" | "str" | "list[str]"; "nullable": None is allowed;
# min/max are inclusive unless "min_exclusive" is set.
_SCHEMA: dict[str, dict[str, Any]] = {
    "method": _p(
        "str",
        "full",
        "full: update every weight; lora: train small low-rank adapters.",
        choices=["full", "lora"],
    ),
    "lora_r": _p("int", 8, "LoRA rank (adapter width).", min=1, max=512),
    "lora_alpha": _p("int", 16, "LoRA scaling numerator (scale = alpha / r).", min=1, max=4096),
    "lora_dropout": _p("float", 0.05, "Dropout on the LoRA input.", min=0.0, max=0.9),
    "lora_target_modules": _p(
        "list[str]",
        None,
        "Module names that get adapters; empty picks per architecture "
        "(BERT query,value; GPT-2 c_attn; T5 q,v; Llama-style q_proj,v_proj).",
        nullable=True,
    ),
    "lora_merge": _p(
        "bool", True, "Merge adapters into the weights (a plain model) instead of saving them."
    ),
    "epochs": _p(
        "float",
        3.0,
        "Passes over the training split (ignored if max_steps > 0).",
        min=0.0,
        min_exclusive=True,
        max=1000.0,
    ),
    "max_steps": _p(
        "int", -1, "Stop after this many optimizer steps; -1 uses epochs.", min=-1, max=10_000_000
    ),
    "learning_rate": _p(
        "float", 5e-5, "Peak learning rate (AdamW).", min=0.0, min_exclusive=True, max=1.0
    ),
    "lr_scheduler": _p(
        "str", "linear", "Learning-rate schedule after warm-up.", choices=list(SCHEDULERS)
    ),
    "warmup_ratio": _p(
        "float", 0.0, "Fraction of steps spent warming up the learning rate.", min=0.0, max=0.5
    ),
    "batch_size": _p("int", 16, "Rows per device step.", min=1, max=4096),
    "grad_accum": _p(
        "int",
        1,
        "Steps accumulated per optimizer update (effective batch = batch_size x grad_accum).",
        min=1,
        max=1024,
    ),
    "max_length": _p(
        "int", 128, "Tokens kept per row (longer rows are truncated).", min=8, max=131_072
    ),
    "weight_decay": _p("float", 0.0, "AdamW weight decay.", min=0.0, max=1.0),
    "seed": _p("int", 42, "Random seed (data order, head init, dropout).", min=0, max=2**31 - 1),
    "eval_steps": _p(
        "int",
        None,
        "Evaluate on the validation split every N steps (empty: once per epoch).",
        min=1,
        max=10_000_000,
        nullable=True,
    ),
    "save_steps": _p(
        "int",
        None,
        "Checkpoint every N steps (empty: by the clock, see save_minutes).",
        min=1,
        max=10_000_000,
        nullable=True,
    ),
    "save_minutes": _p(
        "float",
        10.0,
        "Without save_steps: checkpoint when this many minutes passed since the last one, "
        "so a lost worker costs at most that much work and short runs pay for none.",
        min=0.0,
        min_exclusive=True,
        max=10_000.0,
    ),
    "early_stopping_patience": _p(
        "int",
        None,
        "Stop after N evaluations without a better validation loss (needs a validation split).",
        min=1,
        max=1000,
        nullable=True,
    ),
    "precision": _p(
        "str",
        "auto",
        "auto: bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU.",
        choices=["auto", "fp32", "fp16", "bf16"],
    ),
    "gradient_checkpointing": _p(
        "bool", False, "Recompute activations to save GPU memory (about 30% slower)."
    ),
    "group_by_length": _p(
        "bool",
        True,
        "Batch rows of similar length together (less padding, faster), in shuffled batch order.",
    ),
    "mlm_probability": _p(
        "float", 0.15, "Share of tokens masked (masked-lm only).", min=0.01, max=0.9
    ),
    "label_names": _p(
        "list[str]",
        None,
        "Class names in label-id order, when the dataset's label column does not carry them.",
        nullable=True,
    ),
}


def param_schema() -> dict[str, dict[str, Any]]:
    """Every user-settable parameter: type, default, min/max, choices, nullable, help."""
    return copy.deepcopy(_SCHEMA)


def _invalid(name: str, message: str) -> EngineError:
    return EngineError(f"{name}: {message}", code="invalid_param", param=name)


def _coerce(name: str, value: Any, spec: dict[str, Any]) -> Any:
    """Form posts give strings, JSON gives numbers: accept both, refuse anything else."""
    type_ = spec["type"]
    if value is None or (isinstance(value, str) and value.strip() == "" and type_ != "str"):
        if spec.get("nullable"):
            return None
        raise _invalid(name, "is required")
    try:
        if type_ == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if type_ == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if type_ == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        if type_ == "list[str]":
            items = value.split(",") if isinstance(value, str) else list(value)
            cleaned = [str(item).strip() for item in items if str(item).strip()]
            return cleaned or None
        if not isinstance(value, str):
            raise ValueError
        return value.strip()
    except (TypeError, ValueError):
        raise _invalid(name, f"must be {type_}, got {value!r}") from None


def _check(name: str, value: Any, spec: dict[str, Any]) -> None:
    if value is None:
        return
    if "choices" in spec and value not in spec["choices"]:
        raise _invalid(name, f"must be one of {', '.join(spec['choices'])}, got {value!r}")
    low, high = spec.get("min"), spec.get("max")
    if low is not None and (value < low or (spec.get("min_exclusive") and value == low)):
        bound = "greater than" if spec.get("min_exclusive") else "at least"
        raise _invalid(name, f"must be {bound} {low}, got {value}")
    if high is not None and value > high:
        raise _invalid(name, f"must be at most {high}, got {value}")


@dataclass
class TrainConfig:
    """One fine-tune or pretrain run.  Validated on construction (``EngineError``)."""

    job_type: str
    task: str
    model_dir: Path
    data_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    method: str = "full"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    lora_merge: bool = True
    epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 5e-5
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 128
    weight_decay: float = 0.0
    seed: int = 42
    eval_steps: int | None = None
    save_steps: int | None = None
    save_minutes: float = 10.0
    early_stopping_patience: int | None = None
    precision: str = "auto"
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    mlm_probability: float = 0.15
    label_names: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.job_type not in JOB_TYPES:
            raise _invalid("job_type", f"must be one of {', '.join(JOB_TYPES)}")
        if self.task not in TASKS:
            raise _invalid("task", f"must be one of {', '.join(TASKS)}")
        if self.job_type == "pretrain" and self.task not in PRETRAIN_TASKS:
            raise _invalid("task", f"pretraining supports {', '.join(PRETRAIN_TASKS)}")
        for name in PATH_FIELDS:
            setattr(self, name, Path(getattr(self, name)))
        for name, spec in _SCHEMA.items():
            value = getattr(self, name)
            # Programmatic callers pass typed values; still reject 1.5 for an int, "3" for
            # a float, and so on, rather than fail deep inside the Trainer.
            if value is not None or not spec.get("nullable"):
                value = _coerce(name, value, spec)
            _check(name, value, spec)
            setattr(self, name, value)
        # Whether fp16 has a GPU to run on is checked by the worker, not here: the web
        # process validating this config has no GPU (and should not import torch).

    @classmethod
    def from_params(cls, params: dict[str, Any], **fixed: Any) -> TrainConfig:
        """Build from user params (form or API) plus the fixed fields the job supplies.

        ``fixed`` carries ``job_type``, ``task`` and the four paths (``task``/``job_type``
        may also come in ``params``).  Unknown keys are refused, not ignored: a typo like
        ``learning_rat`` would otherwise silently train with the default.
        """
        allowed = set(_SCHEMA) | {"job_type", "task"}
        for key in params:
            if key not in allowed:
                raise EngineError(f"Unknown parameter {key!r}.", code="unknown_param", param=key)
        values = {**fixed, **params}
        for name in ("job_type", "task", *PATH_FIELDS):
            if values.get(name) in (None, ""):
                raise _invalid(name, "is required")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def resolved_precision(self) -> str:
        """``auto`` made concrete for this machine: bf16 > fp16 on CUDA, fp32 on CPU."""
        if self.precision != "auto":
            return self.precision
        if not _cuda_available():
            return "fp32"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # the web process may not have torch; the worker checks again
        return False
    return torch.cuda.is_available()
