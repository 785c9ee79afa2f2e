"""Each processed split's seeded order, stored beside its rows.

Splits are written in the upload's file order: putting millions of rows into a
shuffled order costs a gather over the whole file (time, and resident memory for its
pages). Which rows go to which split is still seeded and random; the seeded order
*within* a split is kept as an array of row positions, and :func:`in_seeded_order`
gives readers the split as it would have been written shuffled. Taking the first N
rows for a quick evaluation then samples the whole file, not its head (a file sorted
by label or length would otherwise give a biased slice). Training shuffles anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SEEDED_ORDER_FILE = "seeded_order.npy"


def write_seeded_order(folder: Path, positions: np.ndarray) -> None:
    """Store a split's seeded order: ``positions[k]`` is the row, as written, that comes
    k-th (a permutation of ``range(len(split))``)."""
    if positions.size == 0:
        return
    dtype = np.int32 if positions.size < 2**31 else np.int64
    np.save(folder / SEEDED_ORDER_FILE, positions.astype(dtype), allow_pickle=False)


def seeded_order(folder: Path, rows: int) -> np.ndarray | None:
    """The stored order of the split in ``folder``, or None when there is none or it
    does not fit ``rows`` (a split written before orders were stored, or rewritten)."""
    path = Path(folder) / SEEDED_ORDER_FILE
    if not path.is_file():
        return None
    try:
        order = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if order.ndim != 1 or order.size != rows:
        return None
    return order


def in_seeded_order(dataset: Any, folder: Path) -> Any:
    """``dataset`` (loaded from ``folder``) with its rows in the stored seeded order.

    ``select`` builds an indices mapping, not a copy; readers that go through it pay a
    gather per batch, which the training sampler's random access pays anyway.
    """
    order = seeded_order(folder, len(dataset))
    return dataset if order is None else dataset.select(order)
