"""The distill kind's parameter table and result, apart from its recipes.

The web process reads :class:`DistillConfig` (validation, form, API schema) without torch,
and both recipes (:mod:`jobs.engine.distill` for classifiers, :mod:`jobs.engine.seqkd`
for language models) share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine import params as p
from jobs.engine.base import EngineError
from jobs.engine.presets import SIZES
from jobs.engine.schemas import CLASSIFICATION_TASKS
from jobs.engine.students import STUDENTS
from jobs.engine.train_config import refuse_budget_with_steps, time_budget_param

PATH_FIELDS = ("teacher_dir", "data_dir", "output_dir", "checkpoint_dir", "cache_dir")
# Teachers that generate text: distilled at the sequence level (jobs.engine.seqkd).
SEQUENCE_TASKS = ("seq2seq", "causal-lm")


@dataclass
class DistillConfig:
    """One distillation run; the paths, task and labels come from the job."""

    task: str
    teacher_dir: Path
    data_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    # Teacher logits are cached here (next to the dataset version) under ``teacher_key``.
    cache_dir: Path
    teacher_key: str
    student_dir: Path | None = None
    # Sequence-level KD writes the teacher's outputs here (a processed dataset folder that
    # the job's finish step turns into a new dataset version).
    generated_dir: Path | None = None
    student: str = p.param(
        "str",
        "half-layers",
        "half-layers: the teacher with every other layer, initialised from it (DistilBERT); "
        "preset: a smaller preset of the teacher's family with its tokenizer; "
        "model: the student model you chose.",
        choices=list(STUDENTS),
        basic=True,
    )
    student_preset: str = p.param(
        "str", "mini", "Preset size when student=preset.", choices=[s for s in SIZES]
    )
    teacher_precision: str = p.param(
        "str",
        "fp32",
        "fp32, or bnb-int8 / bnb-nf4 to hold a large teacher in 8 or 4 bits while it labels "
        "the data (bitsandbytes: CUDA workers only).",
        choices=["fp32", "bnb-int8", "bnb-nf4"],
    )
    temperature: float = p.param(
        "float",
        2.0,
        "Softmax temperature T for the soft labels (higher: softer).",
        min=0.0,
        min_exclusive=True,
        max=50.0,
        basic=True,
    )
    alpha: float = p.param(
        "float",
        0.5,
        "Weight of the distillation term; 1 - alpha weighs cross-entropy on the labels.",
        min=0.0,
        max=1.0,
        basic=True,
    )
    epochs: float = p.param(
        "float", 3.0, "Passes over the training split (ignored if max_steps > 0).",
        min=0.0, min_exclusive=True, max=1000.0, basic=True,
    )  # fmt: skip
    max_steps: int = p.param(
        "int", -1, "Stop after this many optimizer steps; -1 uses epochs.", min=-1,
        max=10_000_000, basic=True,
    )  # fmt: skip
    max_minutes: float | None = time_budget_param()
    learning_rate: float = p.param(
        "float", 1e-4, "Peak learning rate (AdamW).", min=0.0, min_exclusive=True, max=1.0,
        basic=True,
    )  # fmt: skip
    batch_size: int = p.param("int", 32, "Rows per device step.", min=1, max=4096, basic=True)
    max_length: int = p.param(
        "int", 128, "Tokens kept per row (longer rows are truncated).", min=8, max=131_072
    )
    warmup_ratio: float = p.param(
        "float", 0.0, "Fraction of steps spent warming up the learning rate.", min=0.0, max=0.5
    )
    weight_decay: float = p.param("float", 0.0, "AdamW weight decay.", min=0.0, max=1.0)
    seed: int = p.param("int", 42, "Random seed.", min=0, max=2**31 - 1)
    group_by_length: bool = p.param(
        "bool", True, "Batch rows of similar length together, in shuffled batch order."
    )
    lm_kd: str = p.param(
        "str",
        "sequence",
        "Causal and seq2seq teachers. sequence: the teacher writes outputs for the training "
        "inputs (a new dataset version) and the student fine-tunes on them (Kim & Rush; any "
        "tokenizer); token: KL on the teacher's next-token logits (same tokenizer; not built).",
        choices=["sequence", "token"],
    )
    num_beams: int = p.param(
        "int", 1, "Sequence-level KD: 1 is greedy decoding, 2-4 beam search.", min=1, max=4
    )
    max_new_tokens: int = p.param(
        "int", 64, "Sequence-level KD: most tokens the teacher writes per row.", min=1, max=1024
    )
    mix_references: float = p.param(
        "float",
        0.0,
        "Sequence-level KD: fraction of the training rows whose reference is added to the "
        "teacher's outputs (0: outputs only; 1: every reference too, twice the rows).",
        min=0.0,
        max=1.0,
    )
    eval_rows: int = p.param(
        "int", 1000, "Test rows on which teacher and student are compared.", min=8, max=100_000
    )
    hidden_loss_weight: float = p.param(
        "float",
        0.0,
        "Classification: weight of a cosine loss between the student's and the teacher's "
        "last hidden states (DistilBERT); needs equal widths and the teacher's tokenizer. "
        "0 turns it off.",
        min=0.0,
        max=10.0,
    )
    latency_repeats: int = p.param(
        "int", 3, "Timed passes per batch size (the median is reported).", min=1, max=50
    )
    # Not parameters: set by the job for a max_minutes run (see TrainConfig): when the
    # budget started, and the measured samples/s of similar jobs by device.
    budget_started: float | None = field(default=None, repr=False)
    throughput_hint: dict[str, float] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.task not in (*CLASSIFICATION_TASKS, *SEQUENCE_TASKS):
            raise p.invalid(
                "task", "distillation is built for classification, seq2seq and causal LMs"
            )
        for name in PATH_FIELDS:
            setattr(self, name, Path(getattr(self, name)))
        self.student_dir = Path(self.student_dir) if self.student_dir else None
        self.generated_dir = Path(self.generated_dir) if self.generated_dir else None
        p.validate(self)
        refuse_budget_with_steps(self)

    def train_config(
        self, model_dir: Path, data_dir: Path | None = None, *, reserve_seconds: float = 0.0
    ) -> Any:
        """The fine-tune recipe's config for the student (same steps, same defaults).

        With a time budget the student's training ends ``reserve_seconds`` before the
        job's budget does: what follows it (measuring the student) is the distill job's
        time too.
        """
        from jobs.engine.train_config import TrainConfig

        max_minutes = self.max_minutes
        if max_minutes is not None:
            max_minutes = max(0.1, max_minutes - reserve_seconds / 60)
        return TrainConfig(
            job_type="finetune",
            task=self.task,
            model_dir=model_dir,
            data_dir=data_dir or self.data_dir,
            output_dir=self.output_dir,
            checkpoint_dir=self.checkpoint_dir,
            epochs=self.epochs,
            max_steps=self.max_steps,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_length=self.max_length,
            warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay,
            seed=self.seed,
            group_by_length=self.group_by_length,
            max_minutes=max_minutes,
            throughput_hint=self.throughput_hint,
            budget_started=self.budget_started,
        )


@dataclass
class DistillResult:
    output_dir: Path
    metrics: dict[str, Any]
    report: dict[str, Any]
    teacher_logits_cached: bool
    global_step: int
    train_runtime: float
    # Sequence-level KD: the generated dataset (folder, num_rows, stats, how it was made).
    generated: dict[str, Any] | None = None


def refuse_teacher_precision(config: DistillConfig) -> None:
    """bitsandbytes needs CUDA (refused on CPU) and its teacher path is not built yet."""
    import torch

    from jobs.engine.compress import refuse_bitsandbytes

    refuse_bitsandbytes(
        config.teacher_precision, cuda=torch.cuda.is_available(), param="teacher_precision"
    )
    if config.teacher_precision != "fp32":
        raise EngineError(
            "Holding the teacher in bitsandbytes 8/4-bit is not built yet; use fp32.",
            code="not_built",
            param="teacher_precision",
        )
