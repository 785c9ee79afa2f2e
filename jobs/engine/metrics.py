"""Task metrics as pure functions, shared by the fine-tune and evaluate engines.

Everything here is computed locally (scikit-learn, sacrebleu, rouge-score): nothing is
fetched from a hub at run time, which is why ``evaluate.load`` is not used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

# Han, Hiragana/Katakana and Hangul: scripts written without spaces between words, where
# word-level tokenisers see one giant token (or, for rouge-score, nothing at all).
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CJK_OR_WORD = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+", re.UNICODE
)


def classification_metrics(
    preds: Sequence[int], labels: Sequence[int], label_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 and the confusion matrix over *all* classes.

    Classes are fixed by ``label_names`` (not by what happens to occur in ``labels``) so a
    class the model never predicts still counts as an F1 of 0 in the macro average, and
    the confusion matrix is always ``len(label_names)`` square (rows = true, cols = pred).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    if not labels:
        return {"accuracy": 0.0, "macro_f1": 0.0, "confusion_matrix": [], "per_class_f1": {}}
    ids = list(range(len(label_names)))
    per_class = f1_score(labels, preds, labels=ids, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, labels=ids, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, preds, labels=ids).tolist(),
        "per_class_f1": {name: float(f) for name, f in zip(label_names, per_class, strict=True)},
    }


def perplexity(eval_loss: float) -> float:
    """exp(mean token cross-entropy); ``inf`` instead of an OverflowError for a diverged run."""
    if eval_loss is None or math.isnan(eval_loss):
        return float("nan")
    return math.exp(eval_loss) if eval_loss < 700 else float("inf")


def has_cjk(texts: Sequence[str]) -> bool:
    return any(_CJK.search(t) for t in texts)


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (0-100) with one reference per hypothesis.

    BLEU's default ``13a`` tokeniser splits on spaces, so Chinese/Japanese references get
    sacrebleu's ``zh`` tokeniser (character-level for CJK) instead; chrF needs no tokeniser.
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0}
    hyps, refs = list(hypotheses), [list(references)]
    tokenize = "zh" if has_cjk(references) else "13a"
    return {
        "bleu": float(sacrebleu.corpus_bleu(hyps, refs, tokenize=tokenize).score),
        "chrf": float(sacrebleu.corpus_chrf(hyps, refs).score),
    }


class _CjkAwareTokenizer:
    """rouge-score's default tokeniser drops every non-ASCII character, so Chinese text
    would score 0 whatever the model wrote: CJK characters become one token each."""

    def __init__(self) -> None:
        from rouge_score.tokenizers import DefaultTokenizer

        self._default = DefaultTokenizer(use_stemmer=True)

    def tokenize(self, text: str) -> list[str]:
        if _CJK.search(text):
            return _CJK_OR_WORD.findall(text.lower())
        return self._default.tokenize(text)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (0-1) over hypothesis/reference pairs (Porter stemming)."""
    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    keys = ("rouge1", "rouge2", "rougeL")
    if not hypotheses:
        return dict.fromkeys(keys, 0.0)
    scorer = rouge_scorer.RougeScorer(list(keys), tokenizer=_CjkAwareTokenizer())
    totals = dict.fromkeys(keys, 0.0)
    for hyp, ref in zip(hypotheses, references, strict=True):
        scores = scorer.score(ref, hyp)  # (target, prediction)
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: total / len(hypotheses) for key, total in totals.items()}
