"""The distillation / compression report on a model page: before, after, and the ratio.

A distill or compress job stores what it measured on the new model (``report``: the
teacher's or source's figures, this model's, and after ÷ before); this turns that into
rows a template prints, and builds the "Make it smaller" links to the New-job form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.template.defaultfilters import filesizeformat

from jobs.engine.models.card import human_count

SMALLER_TASKS = ("classification", "causal-lm", "seq2seq", "masked-lm", "encoder")


def _quality(figures: dict[str, Any]) -> tuple[str, Any] | None:
    quality = figures.get("quality") or {}
    for key in ("accuracy", "perplexity"):
        if isinstance(quality.get(key), int | float):
            return key, quality[key]
    return None


def _ratio(value: Any) -> str:
    return f"{value:.2f}×" if isinstance(value, int | float) else "—"


def report_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of (what, before, after, ratio) for the figures the job measured."""
    if not report or "before" not in report or "after" not in report:
        return []
    before, after, ratios = report["before"], report["after"], report.get("ratios") or {}
    rows = []

    def row(label: str, key: str, fmt, ratio_key: str) -> None:
        b, a = before.get(key), after.get(key)
        if b is None and a is None:
            return
        rows.append(
            {
                "label": label,
                "before": fmt(b) if b is not None else "—",
                "after": fmt(a) if a is not None else "—",
                "ratio": _ratio(ratios.get(ratio_key)),
                "key": ratio_key,
            }
        )

    row("Parameters", "parameters", human_count, "parameters_ratio")
    row("Size on disk", "size_bytes", filesizeformat, "size_ratio")
    row("Latency, batch 1", "latency_ms_b1", lambda v: f"{v:.1f} ms", "latency_ratio_b1")
    row("Latency, batch 32", "latency_ms_b32", lambda v: f"{v:.1f} ms", "latency_ratio_b32")
    qb, qa = _quality(before), _quality(after)
    if qb and qa:
        fmt = (lambda v: f"{v:.2%}") if qa[0] == "accuracy" else (lambda v: f"{v:.2f}")
        retained = ratios.get("quality_retained")
        rows.append(
            {
                "label": qa[0].capitalize() + " (retained)",
                "before": fmt(qb[1]),
                "after": fmt(qa[1]),
                "ratio": f"{retained:.1%}" if isinstance(retained, int | float) else "—",
                "key": "quality_retained",
            }
        )
    return rows


def smaller_links(model: Any) -> list[dict[str, str]]:
    """New-job form links that propose making ``model`` smaller (prefilled by name):
    distill, quantize, or both in a chain (the distill form with "then: compress")."""
    if model.status != "ready" or model.dtype == "int8" or model.task not in SMALLER_TASKS:
        return []
    link = lambda kind, label, query: {  # noqa: E731
        "kind": kind,
        "label": label,
        "url": "/jobs/new/?" + urlencode(query),
    }
    classifier = model.task == "classification"
    data = {"dataset": model.dataset_id} if model.dataset_id else {}
    compress = {"type": "compress", "source_model": model.pk}
    if model.dataset_id and classifier:
        compress["eval_dataset"] = model.dataset_id
    links = []
    if classifier:
        distill = {"type": "distill", "teacher_model": model.pk, **data}
        links.append(link("distill", "Distill into a smaller student", distill))
    links.append(link("compress", "Quantize to int8", compress))
    if classifier:
        # The quantized student is measured on the data it was distilled on.
        then = {"then": "compress"} | ({"then_in_eval_dataset": model.dataset_id} if data else {})
        links.append(link("distill-compress", "Distill, then quantize the student", distill | then))
    return links
