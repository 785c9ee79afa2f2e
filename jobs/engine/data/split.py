"""Seeded, deterministic train/validation/test index splits (stratified or not)."""

from __future__ import annotations

import math

import numpy as np

from jobs.engine.base import EngineError


def allocate(n: int, ratios: tuple[float, ...]) -> list[int]:
    """Split ``n`` items by ``ratios`` with the largest-remainder rule (sums to ``n``)."""
    raw = [n * r for r in ratios]
    counts = [math.floor(x) for x in raw]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def split_indices(
    n: int,
    ratios: tuple[float, ...],
    seed: int,
    labels: np.ndarray | None = None,
    label_names: list[str] | None = None,
) -> list[np.ndarray]:
    """Row indices for each split, each split shuffled.

    With ``labels`` (int class ids), every label is split on its own so each split keeps
    the label proportions, and every split with a non-zero ratio gets at least one
    example of every label. A label with fewer examples than such splits raises
    ``label_too_rare``.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        perm = rng.permutation(n)
        bounds = np.cumsum([0, *allocate(n, ratios)])
        return [perm[bounds[i] : bounds[i + 1]] for i in range(len(ratios))]

    need = sum(1 for r in ratios if r > 0)
    counts = np.bincount(labels, minlength=len(label_names or []))
    rare = [(i, int(c)) for i, c in enumerate(counts) if 0 < c < need]
    if rare:
        names = label_names or [str(i) for i in range(len(counts))]
        listed = ", ".join(f"{names[i]!r} ({c} example{'s' if c != 1 else ''})" for i, c in rare)
        raise EngineError(
            f"Too few examples to stratify for label {listed}: each label needs at least "
            f"{need} (one per split). Drop or merge the label, or turn off stratification.",
            code="label_too_rare",
            param="stratify",
            details=[{"label": names[i], "count": c} for i, c in rare],
        )
    order = np.argsort(labels, kind="stable")
    parts: list[list[np.ndarray]] = [[] for _ in ratios]
    start = 0
    for count in counts:
        members = rng.permutation(order[start : start + count])
        start += count
        if count == 0:
            continue
        sizes = allocate(int(count), ratios)
        for j, r in enumerate(ratios):
            if r > 0 and sizes[j] == 0:
                biggest = int(np.argmax(sizes))
                sizes[biggest] -= 1
                sizes[j] += 1
        bounds = np.cumsum([0, *sizes])
        for j in range(len(ratios)):
            parts[j].append(members[bounds[j] : bounds[j + 1]])
    return [
        rng.permutation(np.concatenate(p)) if p else np.array([], dtype=np.int64) for p in parts
    ]
