"""Which numbers a comparison shows, which way is better, the Pareto front, the
training curves of the compared models and their generations side by side.

Plain functions over plain rows (no ORM), so the API, the page and a benchmark agree on
"best" and on which models are worth their latency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
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


# --- training curves -------------------------------------------------------------------------

CURVE_POINTS = 500


def _thin(points: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """``keep`` points spread evenly over ``points``, the first and the last kept, so a
    long run still shows where it started and ended."""
    if len(points) <= keep:
        return points
    if keep <= 1:
        return points[-keep:] if keep else []
    return [points[round(i * (len(points) - 1) / (keep - 1))] for i in range(keep)]


def training_curve(
    events: Iterable[tuple[str, dict[str, Any]]], *, limit: int = CURVE_POINTS
) -> list[dict[str, Any]]:
    """Train and eval loss of one job, step by step, from its event history.

    ``events`` are ``(kind, data)`` in sequence order: ``progress`` carries the train loss,
    ``metrics`` events of the training loop the eval loss (a ``final`` one is the held-out
    score after training, not a point of the curve), and ``resumed`` drops the points a
    resumed run went back over, so a curve never doubles back. At most ``limit`` points:
    eval points (few and costly) are kept before train points are thinned.

    Returns:
        ``[{"step", "epoch", "loss", "eval_loss"}]`` sorted by step; a value is ``None``
        where that step has no such loss. ``epoch`` is the fractional epoch when known.
    """
    train: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    for kind, data in events:
        step = data.get("step") if isinstance(data, dict) else None
        if kind == "resumed":
            cut = data.get("from_step") or 0
            for points in (train, evals):
                for s in [s for s in points if s > cut]:
                    del points[s]
            continue
        if not isinstance(step, int) or isinstance(step, bool):
            continue
        if kind == "progress":
            loss = number(data.get("loss"))
            if loss is not None:
                train[step] = {"epoch": number(data.get("epoch")), "loss": loss}
        elif kind == "metrics" and not data.get("final"):
            loss = number(data.get("loss", data.get("eval_loss")))
            if loss is not None:
                evals[step] = {"epoch": number(data.get("epoch")), "eval_loss": loss}
    # An eval point's epoch is the train point's at that step, else the run's steps/epoch.
    rate = next(
        (p["epoch"] / s for s, p in sorted(train.items(), reverse=True) if p["epoch"] and s),
        None,
    )
    for step, point in evals.items():
        if point["epoch"] is None:
            at = train.get(step, {}).get("epoch")
            point["epoch"] = at if at is not None else (round(step * rate, 4) if rate else None)
    eval_points = _thin([{"step": s, **evals[s]} for s in sorted(evals)], limit // 2)
    train_points = _thin([{"step": s, **train[s]} for s in sorted(train)], limit - len(eval_points))
    merged: dict[int, dict[str, Any]] = {}
    for point in train_points + eval_points:
        row = merged.setdefault(
            point["step"],
            {"step": point["step"], "epoch": None, "loss": None, "eval_loss": None},
        )
        row.update({k: v for k, v in point.items() if v is not None})
    return [merged[s] for s in sorted(merged)]


# --- generations side by side ----------------------------------------------------------------


def side_by_side(
    columns: list[tuple[int, list[dict[str, Any]]]], *, limit: int
) -> list[dict[str, Any]]:
    """The same inputs with each evaluation's output: one row per sample index, at most
    ``limit`` rows.

    ``columns`` pairs an evaluation id with a page of its per-sample rows. Rows are
    matched by their index ``i`` (the row's place in the split, which every evaluation of
    one dataset version and split shares), not by position, so a file with a missing row
    leaves a gap instead of shifting every later output.
    """
    by_index: list[dict[int, dict[str, Any]]] = [
        {int(r.get("i", n)): r for n, r in enumerate(rows)} for _, rows in columns
    ]
    indexes = sorted(set().union(*by_index)) if by_index else []
    out = []
    for i in indexes[:limit]:
        first = next(rows[i] for rows in by_index if i in rows)
        out.append(
            {
                "i": i,
                "input": first.get("input"),
                "reference": first.get("reference"),
                "outputs": {
                    str(evaluation_id): (
                        {
                            "prediction": rows[i].get("prediction"),
                            "score": number(rows[i].get("score")),
                            "correct": rows[i].get("correct"),
                        }
                        if i in rows
                        else None
                    )
                    for (evaluation_id, _), rows in zip(columns, by_index, strict=True)
                },
            }
        )
    return out
