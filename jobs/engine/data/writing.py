"""The three passes over the data that touch disk, each with bounded memory.

1. ``read_rows``: source records -> canonical rows in one Arrow file (labels as text).
2. ``write_split_files``: that file, read with plain reads (not memory-mapped, so its
   pages do not pile up in the worker's resident memory), -> one Arrow file per split,
   feeding the statistics on the way.
3. ``save_splits``: each split file -> ``save_to_disk`` layout, one split at a time.
"""

from __future__ import annotations

import ctypes
import gc
import json
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jobs.engine.data.mapping import RowChecker
from jobs.engine.data.stats import StatsAccumulator

WRITE_BATCH = 10_000
WRITE_BATCH_CHARS = 8 << 20  # also flush early when rows are long
PROGRESS_EVERY_ROWS = 50_000
TAKE_ROWS = 20_000  # rows gathered at a time when saving a split in seeded order
# Give up reading once this many rows are invalid and they outnumber the valid ones:
# it is the wrong file or the wrong mapping, and the first errors already say so.
GIVE_UP_AFTER = 1000


@dataclass
class RawRows:
    """What the reading pass produced and saw."""

    path: Path
    n_valid: int = 0
    n_invalid: int = 0
    stopped_early: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    first_seen: dict[str, int] = field(default_factory=dict)  # label -> id by appearance
    seen_ids: array = field(default_factory=lambda: array("i"))  # 4 bytes a row

    def label_ids(self, names: list[str]) -> np.ndarray:
        """Each valid row's label as an index into the sorted ``names``."""
        position = {name: k for k, name in enumerate(names)}
        to_sorted = np.array([position[label] for label in self.first_seen], dtype=np.int64)
        return to_sorted[np.frombuffer(self.seen_ids, dtype=np.int32)]


def read_rows(
    rows: Iterator[tuple[int, dict[str, Any] | None, str | None]],
    checker: RowChecker,
    path: Path,
    *,
    max_errors: int,
    on_progress: Callable[[int], None],
) -> RawRows:
    import datasets

    canon = checker.columns
    features = datasets.Features({c: datasets.Value("string") for c in canon})
    out = RawRows(path)
    writer = datasets.arrow_writer.ArrowWriter(
        features=features, path=str(path), writer_batch_size=WRITE_BATCH
    )
    batch: dict[str, list[str]] = {c: [] for c in canon}
    batch_chars = 0
    try:
        for line, row, error in rows:
            good, problems = (None, [(None, error)]) if row is None else checker(row)
            if problems or good is None:
                out.n_invalid += 1
                for column, message in problems:
                    if len(out.errors) < max_errors:
                        out.errors.append({"line": line, "column": column, "message": message})
                if out.n_invalid >= GIVE_UP_AFTER and out.n_invalid > out.n_valid:
                    out.stopped_early = True
                    break
                continue
            for c in canon:
                batch[c].append(good[c])
            if "label" in good:
                out.seen_ids.append(out.first_seen.setdefault(good["label"], len(out.first_seen)))
            out.n_valid += 1
            batch_chars += sum(map(len, good.values()))
            if len(batch[canon[0]]) >= WRITE_BATCH or batch_chars >= WRITE_BATCH_CHARS:
                writer.write_batch(batch)
                batch, batch_chars = {c: [] for c in canon}, 0
            if out.n_valid % PROGRESS_EVERY_ROWS == 0:
                on_progress(out.n_valid)
        if batch[canon[0]]:
            writer.write_batch(batch)
    finally:
        close = getattr(rows, "close", None)
        if close:
            close()
        writer.finalize()
    return out


def write_split_files(
    raw: Path,
    split_files: dict[str, Path],
    features: Any,
    which: np.ndarray,
    labels: np.ndarray | None,
    acc: StatsAccumulator,
    check_stop: Callable[[], None],
) -> None:
    """Route each raw row to its split's file (``which[i]`` = split number), in file order."""
    import datasets
    import pyarrow as pa

    names = list(split_files)
    writers = [
        datasets.arrow_writer.ArrowWriter(features=features, path=str(p))
        for p in split_files.values()
    ]
    for name in names:
        acc.start(name)
    try:
        offset = 0
        with pa.OSFile(str(raw)) as f:
            for k, batch in enumerate(pa.ipc.open_stream(f)):
                end = offset + batch.num_rows
                if labels is not None:
                    i = batch.schema.get_field_index("label")
                    batch = batch.set_column(i, "label", pa.array(labels[offset:end], pa.int64()))
                owner = which[offset:end]
                for j, writer in enumerate(writers):
                    part = pa.Table.from_batches([batch.filter(pa.array(owner == j))])
                    if part.num_rows:
                        writer.write_table(part)
                        acc.add(names[j], part)
                offset = end
                if k % 20 == 19:
                    check_stop()
    finally:
        for writer in writers:
            writer.finalize()


def save_splits(
    split_files: dict[str, Path],
    orders: dict[str, np.ndarray],
    features: Any,
    out: Path,
    after_each: Callable[[str], None],
) -> None:
    """Save each split under ``out/<name>`` in ``orders[name]`` (global row ids) order.

    Split files hold rows in file order; selecting by rank restores the seeded shuffle, so
    an upload sorted short to long does not stay sorted.
    """
    import datasets
    import pyarrow as pa

    for name, path in split_files.items():
        idx = orders[name]
        # ``save_to_disk`` of an empty split writes the layout (state, info, one empty
        # shard); the rows then go straight into that shard in seeded order, which is
        # one write instead of a gather through an indices mapping plus a copy.
        empty = datasets.Dataset.from_dict({c: [] for c in features}, features=features)
        empty.save_to_disk(str(out / name), num_shards=1)
        if idx.size:
            shards = sorted((out / name).glob("data-*.arrow"))
            ranks = np.searchsorted(np.sort(idx), idx) if idx.size > 1 else np.zeros(1, np.int64)
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_stream(source).read_all()
                writer = datasets.arrow_writer.ArrowWriter(features=features, path=str(shards[0]))
                try:
                    for start in range(0, ranks.size, TAKE_ROWS):
                        writer.write_table(table.take(pa.array(ranks[start : start + TAKE_ROWS])))
                finally:
                    writer.finalize()
                del table
            state_file = out / name / datasets.config.DATASET_STATE_JSON_FILENAME
            state = json.loads(state_file.read_text(encoding="utf-8"))
            state["_fingerprint"] = datasets.fingerprint.generate_random_fingerprint()
            state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")
        release_memory()  # unmap this split before the next one is read
        after_each(name)
    with open(out / datasets.config.DATASETDICT_JSON_FILENAME, "w", encoding="utf-8") as f:
        json.dump({"splits": list(split_files)}, f)


def release_memory() -> None:
    """Hand freed memory back to the OS between passes, so the peak is one pass's worth."""
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
