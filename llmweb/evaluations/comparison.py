"""Which numbers a comparison shows, which way is better, and the Pareto front.

Plain functions over plain rows (no ORM), so the API, the page and a benchmark agree on
"best" and on which models are worth their latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    higher_is_better: bool
    group: str  # "metrics" | "speed"


QUALITY: dict[str, tuple[Column, ...]] = {
    "classification": (
        Column("accuracy", "Accuracy", True, "metrics"),
        Column("macro_f1", "Macro-F1", True, "metrics"),
        Column("ece", "ECE", False, "metrics"),
    ),
    "perplexity": (
        Column("perplexity", "Perplexity", False, "metrics"),
        Column("bits_per_byte", "Bits/byte", False, "metrics"),
    ),
    "pseudo-perplexity": (
        Column("pseudo_perplexity", "Pseudo-PPL", False, "metrics"),
        Column("masked_token_accuracy", "Masked acc.", True, "metrics"),
        Column("bits_per_byte", "Bits/byte", False, "metrics"),
    ),
    "generation": (
        Column("bleu", "BLEU", True, "metrics"),
        Column("chrf", "chrF++", True, "metrics"),
        Column("rouge1", "ROUGE-1", True, "metrics"),
        Column("rouge2", "ROUGE-2", True, "metrics"),
        Column("rougeL", "ROUGE-L", True, "metrics"),
        Column("rougeLsum", "ROUGE-Lsum", True, "metrics"),
    ),
}
SPEED = (
    Column("latency_p50_ms", "p50 ms", False, "speed"),
    Column("latency_p95_ms", "p95 ms", False, "speed"),
    Column("throughput_rows_per_s", "rows/s @32", True, "speed"),
    Column("num_parameters", "Parameters", False, "speed"),
    Column("size_bytes", "Size", False, "speed"),
    Column("peak_memory_bytes", "Peak memory", False, "speed"),
)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def columns_for(measures: list[str]) -> list[Column]:
    """Quality columns of every measure present (in order, once), then speed and size."""
    seen: dict[str, Column] = {}
    for measure in measures:
        for column in QUALITY.get(measure, ()):
            seen.setdefault(column.key, column)
    return [*seen.values(), *SPEED]


def value_of(row: dict[str, Any], column: Column) -> float | None:
    return number((row.get(column.group) or {}).get(column.key))


def best_rows(rows: list[dict[str, Any]], column: Column) -> list[int]:
    """Indexes of the rows holding the best value of ``column`` (ties all marked)."""
    values = [value_of(row, column) for row in rows]
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return []  # one number is not a contest
    best = max(present) if column.higher_is_better else min(present)
    return [i for i, v in enumerate(values) if v is not None and v == best]


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indexes of the points no other point beats on both latency (x, lower is better)
    and quality (y): the models worth their cost."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = False
        for j, (x2, y2) in enumerate(points):
            if j == i:
                continue
            better_q = y2 >= y if higher_is_better else y2 <= y
            strictly = x2 < x or (y2 > y if higher_is_better else y2 < y)
            if x2 <= x and better_q and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front


def comparison_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Columns, best marks and the quality-vs-latency scatter for evaluation rows.

    Each row has ``id``, ``measure``, ``metrics`` and ``speed``. The scatter's quality is
    the first quality column of the most common measure; rows without a latency (a
    fine-tune's own metrics) are in the table but not on the scatter.
    """
    measures = [row["measure"] for row in rows]
    columns = columns_for(list(dict.fromkeys(measures)))
    best = {column.key: [rows[i]["id"] for i in best_rows(rows, column)] for column in columns}
    scatter: dict[str, Any] = {"points": [], "pareto": [], "quality": None}
    if rows:
        main = max(set(measures), key=measures.count)
        quality = QUALITY.get(main, (None,))[0]
        if quality is not None:
            points = []
            for row in rows:
                x = number((row.get("speed") or {}).get("latency_p50_ms"))
                y = value_of(row, quality)
                if row["measure"] == main and x is not None and y is not None:
                    points.append({"id": row["id"], "label": row.get("label", ""), "x": x, "y": y})
            front = pareto_front([(p["x"], p["y"]) for p in points], quality.higher_is_better)
            scatter = {
                "quality": {
                    "key": quality.key,
                    "label": quality.label,
                    "higher_is_better": quality.higher_is_better,
                },
                "points": points,
                "pareto": [points[i]["id"] for i in front],
            }
    return {
        "columns": [
            {
                "key": c.key,
                "label": c.label,
                "higher_is_better": c.higher_is_better,
                "group": c.group,
            }
            for c in columns
        ],
        "best": best,
        "scatter": scatter,
    }
