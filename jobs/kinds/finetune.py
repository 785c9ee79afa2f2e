"""Fine-tune: continue training a model on a dataset of its task (full or LoRA)."""

from __future__ import annotations

from jobs.kinds.base import register
from jobs.kinds.training import TrainingKind


@register
class Finetune(TrainingKind):
    name = "finetune"
    lineage_edge = "fine-tuned from"
    label = "Fine-tune"
    description = (
        "Train a model further on a dataset of its task: classification, causal LM, "
        "masked LM or seq2seq; every weight or LoRA adapters."
    )
