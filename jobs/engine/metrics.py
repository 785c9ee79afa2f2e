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


# --- evaluation: the fuller reports the evaluate engine stores --------------------------

# Sentence ends, for ROUGE-Lsum (it scores summaries sentence by sentence, split on "\n"):
# Latin punctuation needs a following space, CJK full-width punctuation does not.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])")


def classification_report(
    preds: Sequence[int],
    labels: Sequence[int],
    label_names: Sequence[str],
    confidences: Sequence[float] | None = None,
    *,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, the confusion matrix
    (rows = true, cols = predicted, over *all* classes) and, given the confidence of each
    prediction (its max softmax probability), ECE with the reliability bins behind it."""
    from sklearn.metrics import precision_recall_fscore_support

    base = classification_metrics(preds, labels, label_names)
    ids = list(range(len(label_names)))
    per_class: dict[str, dict[str, float]] = {}
    if labels:
        p, r, f, s = precision_recall_fscore_support(
            labels, preds, labels=ids, average=None, zero_division=0
        )
        for i, name in enumerate(label_names):
            per_class[name] = {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
    report: dict[str, Any] = {
        "accuracy": base["accuracy"],
        "macro_f1": base["macro_f1"],
        "per_class": per_class,
        "confusion_matrix": base["confusion_matrix"],
        "labels": list(label_names),
    }
    if confidences is not None:
        correct = [int(p == t) for p, t in zip(preds, labels, strict=True)]
        report.update(calibration(confidences, correct, n_bins=n_bins))
    return report


def calibration(
    confidences: Sequence[float], correct: Sequence[int], *, n_bins: int = 10
) -> dict[str, Any]:
    """Expected calibration error over ``n_bins`` equal-width confidence bins.

    ECE = sum_b |B_b|/N * |acc(B_b) - conf(B_b)| (Guo et al. 2017). A confidence of
    exactly 1.0 falls in the last bin. Empty bins are kept (count 0) so the reliability
    chart always has ``n_bins`` bars.
    """
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences for {len(correct)} outcomes")
    counts = [0] * n_bins
    conf_sum = [0.0] * n_bins
    hit_sum = [0] * n_bins
    for conf, hit in zip(confidences, correct, strict=True):
        b = min(n_bins - 1, max(0, int(float(conf) * n_bins)))
        counts[b] += 1
        conf_sum[b] += float(conf)
        hit_sum[b] += int(hit)
    total = len(confidences)
    ece, bins = 0.0, []
    for b in range(n_bins):
        n = counts[b]
        conf = conf_sum[b] / n if n else None
        acc = hit_sum[b] / n if n else None
        if n:
            ece += n / total * abs(acc - conf)  # type: ignore[operator]
        bins.append(
            {
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "count": n,
                "confidence": conf,
                "accuracy": acc,
            }
        )
    return {"ece": ece, "reliability": bins}


def bleu_chrf_signed(
    hypotheses: Sequence[str], references: Sequence[str]
) -> tuple[dict[str, float], dict[str, str]]:
    """Corpus BLEU and chrF++ (0-100) through sacrebleu's object API, with signatures.

    The signature (``nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.6.0``) says
    exactly which implementation and settings produced a number, so two evaluations are
    only compared when their signatures agree. CJK references get the ``zh`` tokeniser.
    """
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu = BLEU(tokenize="zh" if has_cjk(references) else "13a")
    chrf = CHRF(word_order=2)  # chrF++: character n-grams plus word uni- and bigrams
    hyps, refs = list(hypotheses), [list(references)]
    scores = {
        "bleu": float(bleu.corpus_score(hyps, refs).score) if hyps else 0.0,
        "chrf": float(chrf.corpus_score(hyps, refs).score) if hyps else 0.0,
    }
    return scores, {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}


def sentence_chrf(hypothesis: str, reference: str) -> float:
    """chrF++ of one output: the per-row score the samples list sorts by."""
    from sacrebleu.metrics import CHRF

    return float(CHRF(word_order=2).sentence_score(hypothesis, [reference]).score)


def split_sentences(text: str) -> str:
    """One sentence per line, the form ROUGE-Lsum expects."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s.strip())


ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge_full(
    hypotheses: Sequence[str], references: Sequence[str]
) -> tuple[dict[str, float], list[dict[str, float]], str]:
    """Mean ROUGE-1/2/L/Lsum F-measures (0-1), the per-pair scores, and a signature.

    Uses :class:`_CjkAwareTokenizer` (CJK characters are tokens; the stock tokeniser
    would score Chinese as 0) and Porter stemming for Latin text.
    """
    from importlib.metadata import version

    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=_CjkAwareTokenizer())
    rows = []
    for hyp, ref in zip(hypotheses, references, strict=True):
        scores = scorer.score(split_sentences(ref), split_sentences(hyp))  # (target, prediction)
        rows.append({key: float(scores[key].fmeasure) for key in ROUGE_KEYS})
    n = max(1, len(rows))
    means = {key: sum(r[key] for r in rows) / n for key in ROUGE_KEYS}
    signature = f"rouge-score:{version('rouge-score')}|tok:cjk-char+porter|sent:punct|f"
    return means, rows, signature
