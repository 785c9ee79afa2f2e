"""Decoding settings for interactive generation: one parameter table, torch-free.

The playground page, the websocket, ``/api/v1/models/{id}/generate/`` and the
OpenAI-compatible routes all build a :class:`SamplingParams`; the web process validates
with it before anything is queued (so a bad ``top_p`` is a 400, not a worker error), and
the worker's decoding loop (``jobs.engine.serving``) reads the same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.engine import params as p
from jobs.engine.base import EngineError

MAX_NEW_TOKENS = 4096
MAX_STOP_STRINGS = 4
MAX_TOP_LOGPROBS = 20


@dataclass
class SamplingParams:
    """How one answer is decoded. ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = p.param(
        "int", 64, "Most tokens to generate.", min=1, max=MAX_NEW_TOKENS, basic=True
    )
    temperature: float = p.param(
        "float", 0.8, "Softmax temperature; 0 always picks the likeliest token.", min=0.0, max=5.0
    )
    top_k: int = p.param("int", 50, "Sample among the k likeliest tokens; 0 = all.", min=0)
    top_p: float = p.param(
        "float",
        1.0,
        "Sample within the smallest set of tokens whose probability reaches p.",
        min=0.0,
        max=1.0,
        min_exclusive=True,
    )
    repetition_penalty: float = p.param(
        "float",
        1.0,
        "Divide the score of tokens already present (1 = off).",
        min=0.0,
        max=10.0,
        min_exclusive=True,
    )
    seed: int | None = p.param(
        "int",
        None,
        "Random seed: the same seed gives the same answer.",
        nullable=True,
        min=0,
        max=2**32 - 1,
    )
    stop: list[str] | None = p.param(
        "list[str]", None, "Stop when one of these strings appears (not included).", nullable=True
    )
    top_logprobs: int = p.param(
        "int",
        5,
        "Alternatives reported for each token (with log-probabilities).",
        min=0,
        max=MAX_TOP_LOGPROBS,
    )
    ignore_eos: bool = p.param(
        "bool", False, "Keep generating past the end-of-sequence token (benchmarks)."
    )

    def __post_init__(self) -> None:
        p.validate(self)
        if self.stop and len(self.stop) > MAX_STOP_STRINGS:
            raise p.invalid("stop", f"at most {MAX_STOP_STRINGS} stop strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values, to travel in a task message."""
        return p.user_params(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SamplingParams:
        """Refuses unknown keys, so a typo (``top-p``) is an error, not silently ignored."""
        return p.from_params(cls, dict(values))


MODES = ("completion", "chat", "seq2seq", "classify", "attention")


def check_mode(mode: str, task: str, *, has_chat_template: bool | None = None) -> None:
    """Refuse a mode the model cannot serve, before a worker loads it.

    ``has_chat_template`` is None when the caller does not know (the worker checks again
    once the tokenizer is loaded).
    """
    allowed = serving_modes(task)
    if mode not in MODES:
        raise EngineError(
            f"mode must be one of {', '.join(MODES)}.", code="invalid_param", param="mode"
        )
    if mode not in allowed:
        what = ", ".join(allowed) if allowed else "nothing the playground serves"
        raise EngineError(
            f"A {task or 'unknown'} model cannot run {mode}; it serves {what}.",
            code="mode_unsupported",
            param="mode",
        )
    if mode == "chat" and has_chat_template is False:
        raise EngineError(
            "This model's tokenizer has no chat template; use completion.",
            code="no_chat_template",
            param="mode",
        )


def serving_modes(task: str) -> tuple[str, ...]:
    """The playground modes a model of ``task`` offers (chat only with a template)."""
    return {
        "causal-lm": ("completion", "chat", "attention"),
        "seq2seq": ("seq2seq", "attention"),
        "classification": ("classify", "attention"),
        "pair-classification": ("classify",),
    }.get(task, ())
