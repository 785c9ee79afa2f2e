"""Evaluate parameters: one dataclass whose fields are the parameter table.

Torch-free, like :mod:`jobs.engine.train_config`, so the web process validates an
evaluation's parameters (and builds its form) without importing the ML stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine import params as p
from jobs.engine.schemas import TASKS

SPLITS = ("auto", "test", "validation", "train", "all")
# Which model tasks can be scored on which dataset schema, and how.
EVALUABLE: dict[str, tuple[str, ...]] = {
    "classification": ("classification",),
    "pair-classification": ("classification",),
    "causal-lm": ("causal-lm", "masked-lm"),
    "masked-lm": ("masked-lm", "causal-lm"),
    # "causal-lm with a target column": a decoder-only model continues the source.
    "seq2seq": ("seq2seq", "causal-lm"),
}


@dataclass
class EvalModel:
    """One model to score: ``key`` names it in the result (the record id in a job)."""

    key: str
    path: Path
    task: str
    name: str = ""


@dataclass
class EvaluateConfig:
    """Score up to six models on one split of one dataset. Validated on construction."""

    task: str
    data_dir: Path
    output_dir: Path
    models: list[EvalModel] = field(default_factory=list)
    # The dataset's classes in label-id order (classification only).
    label_names: list[str] | None = None
    split: str = p.param(
        "str",
        "auto",
        "Which split to score: auto takes test, else validation; all scores every row "
        "(a dataset uploaded as a test set).",
        choices=list(SPLITS),
        basic=True,
    )
    max_rows: int | None = p.param(
        "int",
        None,
        "Score at most this many rows (empty: all).",
        min=1,
        max=10_000_000,
        nullable=True,
        basic=True,
    )
    batch_size: int = p.param("int", 32, "Rows per forward pass.", min=1, max=4096)
    max_length: int = p.param(
        "int",
        128,
        "Tokens per input; perplexity slides a window this long with stride max_length/2.",
        min=8,
        max=131_072,
        basic=True,
    )
    max_new_tokens: int = p.param(
        "int",
        64,
        "Longest generated output (seq2seq, causal-lm with a target).",
        min=1,
        max=4096,
    )
    num_beams: int = p.param("int", 1, "Beam width for generation (1: greedy).", min=1, max=16)
    measure_speed: bool = p.param(
        "bool", True, "Measure latency, throughput and memory (same protocol for every model)."
    )
    latency_runs: int = p.param(
        "int",
        20,
        "Timed batch-1 forward passes for p50/p95 latency (after 3 warm-ups).",
        min=3,
        max=1000,
    )
    threads: int = p.param(
        "int",
        4,
        "CPU threads while scoring and timing, fixed so numbers compare.",
        min=1,
        max=256,
    )
    seed: int = p.param("int", 42, "Random seed (masking for masked-lm).", min=0, max=2**31 - 1)
    slice_column: str | None = p.param(
        "str",
        None,
        "Break the metrics down by the values of this extra column (a domain, a source) "
        "when the dataset has it.",
        nullable=True,
        options_from="dataset",
    )
    slice_warn_gap: float = p.param(
        "float",
        0.05,
        "Warn when the best and worst slice differ by more than this (accuracy or chrF/100: "
        "absolute; perplexity: relative).",
        min=0.0,
        max=1.0,
    )

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise p.invalid("task", f"must be one of {', '.join(TASKS)}")
        self.data_dir, self.output_dir = Path(self.data_dir), Path(self.output_dir)
        self.models = [m if isinstance(m, EvalModel) else EvalModel(**m) for m in self.models]
        for m in self.models:
            m.path = Path(m.path)
            if m.task not in EVALUABLE[self.task]:
                raise p.invalid(
                    "models",
                    f"{m.name or m.key} is a {m.task or 'unknown'} model; {self.task} data "
                    f"needs a {' or '.join(EVALUABLE[self.task])} model",
                )
        p.validate(self)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in p.table(type(self))}
