"""The schema vocabulary: tasks and the canonical columns each one reads.

A leaf module with no imports, so the web process (which must not load torch or pandas),
the data engine and the collators all read the same table.
"""

from __future__ import annotations

# Columns each dataset schema (= task) holds after processing, in order.
SCHEMAS: dict[str, tuple[str, ...]] = {
    "classification": ("text", "label"),
    "pair-classification": ("text_a", "text_b", "label"),
    "causal-lm": ("text",),
    "masked-lm": ("text",),
    "seq2seq": ("source", "target"),
}
TASKS: tuple[str, ...] = tuple(SCHEMAS)
CLASSIFICATION_TASKS: tuple[str, ...] = ("classification", "pair-classification")
LM_TASKS: tuple[str, ...] = ("causal-lm", "masked-lm")
# Columns that hold text a tokenizer reads (labels are not text).
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    task: tuple(c for c in cols if c != "label") for task, cols in SCHEMAS.items()
}

# The transformers Auto class that builds or loads a model for each model task
# ("encoder" is a bare encoder without a head). Names, so this module stays import-free.
AUTO_MODEL_CLASSES: dict[str, str] = {
    "classification": "AutoModelForSequenceClassification",
    "pair-classification": "AutoModelForSequenceClassification",
    "causal-lm": "AutoModelForCausalLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
    "masked-lm": "AutoModelForMaskedLM",
    "encoder": "AutoModel",
}
