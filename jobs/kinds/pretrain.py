"""Pretrain: language-model training of a (usually freshly built preset) model."""

from __future__ import annotations

from jobs.kinds.base import register
from jobs.kinds.training import TrainingKind


@register
class Pretrain(TrainingKind):
    name = "pretrain"
    lineage_edge = "pretrained from"
    label = "Pretrain from scratch"
    description = (
        "Language-model training on raw text: causal LM, masked LM or seq2seq denoising, "
        "typically of a preset built with a tokenizer trained on the dataset."
    )
    dataset_tasks = ("causal-lm", "masked-lm")
    dataset_refusal = "Pretraining needs a causal-lm or masked-lm dataset."
