"""The model page's metrics: rounded, one name per metric and split, tables for per-class
values. ``RegisteredModel.metrics`` holds what the run reported, raw."""

from __future__ import annotations

from typing import Any

# Keys that describe the run, not its quality, and how to show them.
_RUN_KEYS = {
    "train_runtime": ("training", "runtime", "{:,.1f} s"),
    "train_samples_per_second": ("training", "samples per second", "{:,.1f}"),
    "global_step": ("training", "optimizer steps", "{:,.0f}"),
    "generation_sample": ("test", "generated samples", "{:,.0f}"),
}
_SKIP = {"labels", "split", "per_class_f1", "confusion_matrix", "examples"}


def metric_name(key: str) -> str:
    """One name per metric wherever it is shown: ``eval_loss`` and ``loss`` are ``loss``."""
    return key.removeprefix("eval_").removeprefix("test_").replace("_", " ")


def format_metric(value: Any) -> str:
    """Four decimals for a fraction or a loss, thousands separators for big numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"


def metrics_view(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """What the model page shows of ``RegisteredModel.metrics``: rounded rows with a split
    and a metric column, per-class F1 and the confusion matrix as tables, examples."""
    metrics = metrics or {}
    split = str(metrics.get("split") or "test")
    rows: list[tuple[str, str, str]] = []
    run: list[tuple[str, str, str]] = []
    for key, value in metrics.items():
        if key in _SKIP or isinstance(value, dict | list):
            continue
        if key in _RUN_KEYS:
            where, name, fmt = _RUN_KEYS[key]
            shown = fmt.format(value) if isinstance(value, int | float) else str(value)
            run.append((where, name, shown))
        else:
            rows.append((split, metric_name(key), format_metric(value)))
    labels = [str(x) for x in metrics.get("labels") or []]
    per_class = metrics.get("per_class_f1")
    per_class_rows = (
        [(str(k), format_metric(v)) for k, v in per_class.items()]
        if isinstance(per_class, dict)
        else []
    )
    if labels and per_class_rows and all(k.isdigit() for k, _ in per_class_rows):
        # Older runs keyed classes by id; show the names the model predicts.
        per_class_rows = [
            (labels[int(k)] if int(k) < len(labels) else k, v) for k, v in per_class_rows
        ]
    matrix = metrics.get("confusion_matrix")
    confusion = None
    if isinstance(matrix, list) and matrix and all(isinstance(r, list) for r in matrix):
        names = labels if len(labels) == len(matrix) else [str(i) for i in range(len(matrix))]
        confusion = {
            "labels": names,
            "rows": [(names[i], [f"{int(c):,}" for c in row]) for i, row in enumerate(matrix)],
        }
    examples = [e for e in metrics.get("examples") or [] if isinstance(e, dict)]
    return {
        "split": split,
        "rows": rows + run,
        "per_class": per_class_rows,
        "confusion": confusion,
        "examples": examples,
    }
