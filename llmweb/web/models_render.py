"""HTML fragments of the model pages: the model card and the lineage graph.

Both render text a user (or an uploaded archive) wrote, so both escape everything:
the card goes through markdown-it with raw HTML off (tags show as text, links with
``javascript:`` and similar schemes are dropped, images are not loaded), and the SVG
is assembled with ``format_html``.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").disable("image")
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*(\n|\Z)", re.S)

NODE_W, NODE_H, COL_W, ROW_H, PAD = 180, 46, 270, 84, 16


def render_card(text: str) -> SafeString:
    """Markdown to HTML with no way to inject markup; YAML front matter is dropped."""
    body = _FRONT_MATTER.sub("", text or "", count=1)
    return mark_safe(_MD.render(body))  # noqa: S308 - markdown-it escapes; html=False


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def lineage_svg(lineage: dict[str, Any]) -> SafeString:
    """Draw nodes in columns by generation, parents on the left, edges labelled."""
    rows: dict[int, int] = {}
    pos: dict[int, tuple[int, int]] = {}
    for node in lineage["nodes"]:
        g = node["generation"]
        r = rows.get(g, 0)
        rows[g] = r + 1
        pos[node["id"]] = (PAD + g * COL_W, PAD + r * ROW_H)
    width = PAD * 2 + (max(rows) if rows else 0) * COL_W + NODE_W
    height = PAD * 2 + (max(rows.values()) if rows else 1) * ROW_H - (ROW_H - NODE_H)
    edges = []
    for e in lineage["edges"]:
        if e["from"] not in pos or e["to"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        mid = (x1 + x2) // 2
        edges.append(
            format_html(
                '<g class="edge"><path d="M{} {} C{} {} {} {} {} {}" fill="none" '
                'stroke="#98a2b3" stroke-width="1.5" marker-end="url(#arrow)"/>'
                '<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#475467">'
                "<title>{}</title>{}</text></g>",
                x1,
                y1,
                mid,
                y1,
                mid,
                y2,
                x2,
                y2,
                mid,
                (y1 + y2) // 2 - 6,
                e["label"],
                _short(e["label"], 34),
            )  # fmt: skip
        )
    nodes = []
    for n in lineage["nodes"]:
        x, y = pos[n["id"]]
        stroke = "#3b5bdb" if n["current"] else "#c9cfdd"
        fill = "#edf2ff" if n["current"] else "#ffffff"
        nodes.append(
            format_html(
                '<a href="/models/{}/" class="node" data-model="{}"><rect x="{}" y="{}" '
                'width="{}" height="{}" rx="8" fill="{}" stroke="{}" stroke-width="1.5"/>'
                '<text x="{}" y="{}" font-size="13" font-weight="600" fill="#1d2330">'
                "<title>{}</title>{}</text>"
                '<text x="{}" y="{}" font-size="11" fill="#667085">{} · {} · {}</text></a>',
                n["id"],
                n["id"],
                x,
                y,
                NODE_W,
                NODE_H,
                fill,
                stroke,
                x + 10,
                y + 19,
                n["label"],
                _short(n["label"], 24),
                x + 10,
                y + 36,
                n["source"],
                n["task"] or "?",
                n["status"],
            )  # fmt: skip
        )
    return format_html(
        '<svg class="lineage" role="img" aria-label="Model lineage" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" '
        'viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0 0 L10 5 L0 10 z" fill="#98a2b3"/></marker></defs>{}{}</svg>',
        width, height, width, height,
        format_html_join("", "{}", ((e,) for e in edges)),
        format_html_join("", "{}", ((n,) for n in nodes)),
    )  # fmt: skip


# ---------------------------------------------------------------- metrics

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
