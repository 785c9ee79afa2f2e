"""Fine-tune / pretrain parameters: one dataclass whose fields are the parameter table.

Each parameter is declared once, with :func:`jobs.engine.params.param`; validation, the
web form and the API schema are read from those declarations. Importing this module does
not import torch, so the web process validates a job's parameters cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine import params as p
from jobs.engine.schemas import CLASSIFICATION_TASKS, LM_TASKS, TASKS

JOB_TYPES = ("finetune", "pretrain")
PRETRAIN_TASKS = (*LM_TASKS, "seq2seq")
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
# Seq2seq quality is scored on generated text, which is slow: a fixed sample keeps the
# final evaluation to seconds on a GPU (and under a minute on CPU for small models).
GENERATION_SAMPLE = 64
PATH_FIELDS = ("model_dir", "data_dir", "output_dir", "checkpoint_dir")


def time_budget_param() -> Any:
    """``max_minutes``, declared alike by every kind that trains (fine-tune, pretrain,
    distill): a fresh field each time, since a dataclass field belongs to one class."""
    return p.param(
        "float",
        None,
        "Time budget instead of epochs or steps: the run times its first steps, picks the "
        "step count that fits (final evaluation and save included) and fits the learning-rate "
        "schedule to it. Excludes max_steps.",
        min=0.1,
        max=10_080.0,
        nullable=True,
        basic=True,
        label="time budget (minutes)",
    )


def refuse_budget_with_steps(config: Any) -> None:
    if config.max_minutes is not None and config.max_steps > 0:
        raise p.invalid(
            "max_minutes",
            "a time budget and max_steps both fix the run's length; set one of them",
        )


__all__ = [
    "CLASSIFICATION_TASKS",
    "JOB_TYPES",
    "PATH_FIELDS",
    "PRETRAIN_TASKS",
    "TASKS",
    "TrainConfig",
    "param_schema",
]


@dataclass
class TrainConfig:
    """One fine-tune or pretrain run.  Validated on construction (``EngineError``)."""

    job_type: str
    task: str
    model_dir: Path
    data_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    method: str = p.param(
        "str",
        "full",
        "full: update every weight; lora: train small low-rank adapters.",
        choices=["full", "lora"],
        basic=True,
    )
    lora_r: int = p.param("int", 8, "LoRA rank (adapter width).", min=1, max=512)
    lora_alpha: int = p.param(
        "int", 16, "LoRA scaling numerator (scale = alpha / r).", min=1, max=4096
    )
    lora_dropout: float = p.param("float", 0.05, "Dropout on the LoRA input.", min=0.0, max=0.9)
    lora_target_modules: list[str] | None = p.param(
        "list[str]",
        None,
        "Module names that get adapters; empty picks per architecture "
        "(BERT query,value; GPT-2 c_attn; T5 q,v; Llama-style q_proj,v_proj).",
        nullable=True,
    )
    lora_merge: bool = p.param(
        "bool", True, "Merge adapters into the weights (a plain model) instead of saving them."
    )
    epochs: float = p.param(
        "float",
        3.0,
        "Passes over the training split (ignored if max_steps > 0).",
        min=0.0,
        min_exclusive=True,
        max=1000.0,
        basic=True,
    )
    max_steps: int = p.param(
        "int",
        -1,
        "Stop after this many optimizer steps; -1 uses epochs.",
        min=-1,
        max=10_000_000,
        basic=True,
    )
    max_minutes: float | None = time_budget_param()
    learning_rate: float = p.param(
        "float",
        5e-5,
        "Peak learning rate (AdamW).",
        min=0.0,
        min_exclusive=True,
        max=1.0,
        basic=True,
    )
    lr_scheduler: str = p.param(
        "str", "linear", "Learning-rate schedule after warm-up.", choices=list(SCHEDULERS)
    )
    warmup_ratio: float = p.param(
        "float", 0.0, "Fraction of steps spent warming up the learning rate.", min=0.0, max=0.5
    )
    batch_size: int = p.param("int", 16, "Rows per device step.", min=1, max=4096, basic=True)
    grad_accum: int = p.param(
        "int",
        1,
        "Steps accumulated per optimizer update (effective batch = batch_size x grad_accum).",
        min=1,
        max=1024,
    )
    max_length: int = p.param(
        "int",
        128,
        "Tokens kept per row (longer rows are truncated).",
        min=8,
        max=131_072,
        basic=True,
    )
    weight_decay: float = p.param("float", 0.0, "AdamW weight decay.", min=0.0, max=1.0)
    seed: int = p.param(
        "int", 42, "Random seed (data order, head init, dropout).", min=0, max=2**31 - 1
    )
    eval_steps: int | None = p.param(
        "int",
        None,
        "Evaluate on the validation split every N steps (empty: once per epoch).",
        min=1,
        max=10_000_000,
        nullable=True,
    )
    save_steps: int | None = p.param(
        "int",
        None,
        "Checkpoint every N steps (empty: by the clock, see save_minutes).",
        min=1,
        max=10_000_000,
        nullable=True,
    )
    save_minutes: float = p.param(
        "float",
        10.0,
        "Without save_steps: checkpoint when this many minutes passed since the last one, "
        "so a lost worker costs at most that much work and short runs pay for none.",
        min=0.0,
        min_exclusive=True,
        max=10_000.0,
    )
    early_stopping_patience: int | None = p.param(
        "int",
        None,
        "Stop after N evaluations without a better validation loss (needs a validation split).",
        min=1,
        max=1000,
        nullable=True,
    )
    precision: str = p.param(
        "str",
        "auto",
        "auto: bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU.",
        choices=["auto", "fp32", "fp16", "bf16"],
    )
    gradient_checkpointing: bool = p.param(
        "bool", False, "Recompute activations to save GPU memory (about 30% slower)."
    )
    group_by_length: bool = p.param(
        "bool",
        True,
        "Batch rows of similar length together (less padding, faster), in shuffled batch order.",
    )
    mlm_probability: float = p.param(
        "float", 0.15, "Share of tokens masked (masked-lm only).", min=0.01, max=0.9
    )
    label_names: list[str] | None = p.param(
        "list[str]",
        None,
        "Class names in label-id order, when the dataset's label column does not carry them.",
        nullable=True,
    )

    # Not a parameter: measured samples/s of similar finished jobs by device, which the job
    # fills in for a max_minutes run so its first, untimed steps follow a realistic schedule.
    throughput_hint: dict[str, float] | None = field(default=None, repr=False)
    # Not a parameter: the ``time.monotonic()`` at which the budget started, set by the job
    # when the worker takes it, so engine imports and loading count too (default: the
    # engine's start).
    budget_started: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.job_type not in JOB_TYPES:
            raise p.invalid("job_type", f"must be one of {', '.join(JOB_TYPES)}")
        if self.task not in TASKS:
            raise p.invalid("task", f"must be one of {', '.join(TASKS)}")
        if self.job_type == "pretrain" and self.task not in PRETRAIN_TASKS:
            raise p.invalid("task", f"pretraining supports {', '.join(PRETRAIN_TASKS)}")
        for name in PATH_FIELDS:
            setattr(self, name, Path(getattr(self, name)))
        p.validate(self)
        refuse_budget_with_steps(self)
        # Whether fp16 has a GPU to run on is checked by the worker, not here: the web
        # process validating this config has no GPU (and should not import torch).

    @classmethod
    def from_params(cls, params: dict[str, Any], **fixed: Any) -> TrainConfig:
        """Build from user params (form or API) plus the fixed fields the job supplies.

        ``fixed`` carries ``job_type``, ``task`` and the four paths (scripts may put
        ``job_type``/``task`` in ``params`` instead). Unknown keys are refused, not ignored.
        """
        params = dict(params)
        for name in ("job_type", "task"):
            if name in params:
                fixed[name] = params.pop(name)
        return p.from_params(cls, params, **fixed)

    def resolved_precision(self) -> str:
        """``auto`` made concrete for this machine: bf16 > fp16 on CUDA, fp32 on CPU."""
        if self.precision != "auto":
            return self.precision
        if not _cuda_available():
            return "fp32"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def param_schema() -> dict[str, dict[str, Any]]:
    """Every user-settable training parameter: type, default, min/max, choices, help."""
    return p.schema_of(TrainConfig)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # the web process may not have torch; the worker checks again
        return False
    return torch.cuda.is_available()
