"""Re-score an evaluation's saved predictions with another metric, without the model.

Torch-free (sacrebleu, scikit-learn, rouge-score only), so the web process can do it
for a file of predictions in well under a second. Each metric returns its value and a
signature, like the scores the evaluate engine stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from jobs.engine.base import EngineError

Rows = Sequence[dict[str, Any]]


def _labels(rows: Rows, names: Sequence[str]) -> tuple[list[int], list[int]]:
    index = {name: i for i, name in enumerate(names)}
    try:
        return [index[r["true"]] for r in rows], [index[r["pred"]] for r in rows]
    except KeyError as exc:
        raise EngineError(
            f"A saved prediction names an unknown class {exc}.", code="bad_samples"
        ) from None


def _sk(fn_name: str, **kwargs: Any) -> Callable[[Rows, Sequence[str]], tuple[float, str]]:
    def score(rows: Rows, names: Sequence[str]) -> tuple[float, str]:
        import sklearn.metrics

        y_true, y_pred = _labels(rows, names)
        fn = getattr(sklearn.metrics, fn_name)
        value = float(fn(y_true, y_pred, **kwargs))
        args = ",".join(f"{k}={v}" for k, v in kwargs.items() if k != "labels")
        return value, f"sklearn:{version('scikit-learn')}|{fn_name}" + (f"|{args}" if args else "")

    return score


def _ece(rows: Rows, names: Sequence[str]) -> tuple[float, str]:
    from jobs.engine.metrics import calibration

    result = calibration([r["confidence"] for r in rows], [int(bool(r["correct"])) for r in rows])
    return float(result["ece"]), "ece|bins=10,equal-width|max-softmax confidence"


def _sacre(kind: str, **kwargs: Any) -> Callable[[Rows, Sequence[str]], tuple[float, str]]:
    def score(rows: Rows, names: Sequence[str]) -> tuple[float, str]:
        from sacrebleu.metrics import BLEU, CHRF, TER

        from jobs.engine.metrics import has_cjk

        hyps = [r.get("prediction") or "" for r in rows]
        refs = [r.get("reference") or "" for r in rows]
        if kind == "bleu":
            metric: Any = BLEU(tokenize="zh" if has_cjk(refs) else "13a", **kwargs)
        elif kind == "chrf":
            metric = CHRF(**kwargs)
        else:
            metric = TER(**kwargs)
        value = float(metric.corpus_score(hyps, [refs]).score)
        return value, str(metric.get_signature())

    return score


def _rouge(key: str) -> Callable[[Rows, Sequence[str]], tuple[float, str]]:
    def score(rows: Rows, names: Sequence[str]) -> tuple[float, str]:
        from jobs.engine.metrics import rouge_full

        means, _, signature = rouge_full(
            [r.get("prediction") or "" for r in rows], [r.get("reference") or "" for r in rows]
        )
        return float(means[key]), signature

    return score


def _exact(rows: Rows, names: Sequence[str]) -> tuple[float, str]:
    hits = sum(
        (r.get("prediction") or "").strip() == (r.get("reference") or "").strip() for r in rows
    )
    return hits / max(1, len(rows)), "exact-match|stripped"


CLASSIFICATION: dict[str, Callable[[Rows, Sequence[str]], tuple[float, str]]] = {
    "accuracy": _sk("accuracy_score"),
    "balanced_accuracy": _sk("balanced_accuracy_score"),
    "macro_f1": _sk("f1_score", average="macro", zero_division=0),
    "micro_f1": _sk("f1_score", average="micro", zero_division=0),
    "weighted_f1": _sk("f1_score", average="weighted", zero_division=0),
    "mcc": _sk("matthews_corrcoef"),
    "cohen_kappa": _sk("cohen_kappa_score"),
    "ece": _ece,
}
GENERATION: dict[str, Callable[[Rows, Sequence[str]], tuple[float, str]]] = {
    "bleu": _sacre("bleu"),
    "chrf": _sacre("chrf", word_order=2),
    "chrf_plain": _sacre("chrf", word_order=0),
    "ter": _sacre("ter"),
    "rouge1": _rouge("rouge1"),
    "rouge2": _rouge("rouge2"),
    "rougeL": _rouge("rougeL"),
    "rougeLsum": _rouge("rougeLsum"),
    "exact_match": _exact,
}
BY_MEASURE = {"classification": CLASSIFICATION, "generation": GENERATION}


def rescore_metrics(measure: str) -> list[str]:
    """The metrics saved predictions of this measure can be scored with."""
    return list(BY_MEASURE.get(measure, {}))


def rescore(
    rows: Rows, *, measure: str, metric: str, label_names: Sequence[str] = ()
) -> tuple[float, str]:
    """``(value, signature)`` of ``metric`` over saved per-sample rows.

    Raises:
        EngineError: ``metric`` does not apply to this measure (perplexity rows hold
            losses, not predictions), or the rows are unusable.
    """
    table = BY_MEASURE.get(measure)
    if not table:
        raise EngineError(
            f"{measure} evaluations keep losses, not predictions: nothing to re-score.",
            code="not_rescorable",
            param="metric",
        )
    if metric not in table:
        raise EngineError(
            f"metric must be one of {', '.join(table)} for {measure}.",
            code="invalid_param",
            param="metric",
        )
    if not rows:
        raise EngineError("This evaluation kept no per-sample rows.", code="bad_samples")
    return table[metric](rows, label_names)
