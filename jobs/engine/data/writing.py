"""The three passes over the data that touch disk, each with bounded memory.

1. ``read_rows``: source records -> canonical rows in one Arrow file (labels as text).
2. ``write_splits``: that file, read with plain reads (not memory-mapped, so its
   pages do not pile up in the worker's resident memory), -> each split's
   ``save_to_disk`` folder in file order plus its seeded order, feeding the statistics
   on the way.
"""

from __future__ import annotations

import ctypes
import json
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jobs.engine.data.mapping import RowChecker
from jobs.engine.data.order import write_seeded_order
from jobs.engine.data.stats import RowFacts, StatsAccumulator

WRITE_BATCH = 10_000
WRITE_BATCH_CHARS = 8 << 20  # also flush early when rows are long
PROGRESS_EVERY_ROWS = 50_000
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


def write_splits(
    raw: Path,
    out: Path,
    orders: dict[str, np.ndarray],
    features: Any,
    which: np.ndarray,
    labels: np.ndarray | None,
    acc: StatsAccumulator | None,
    check_stop: Callable[[], None],
) -> None:
    """Route each raw row (``which[i]`` = split number) straight into its split's
    ``save_to_disk`` folder under ``out``, in file order, feeding the statistics.

    Rows stay in file order, so no pass gathers them in another order (that gather over
    a memory map was most of the worker's memory and a quarter of the time); each split's
    seeded order is stored beside it (:mod:`jobs.engine.data.order`) for readers that
    want it, and training samplers shuffle anyway. The statistics of batch ``k`` run on a
    second thread while batch ``k`` is written and ``k + 1`` read (numpy and Arrow release
    the GIL), with at most one batch waiting; ``acc`` None skips them (they were
    computed while reading: :class:`BackgroundFacts`).
    """
    import datasets
    import pyarrow as pa

    names = list(orders)
    writers: list[Any] = []
    for name in names:
        # ``save_to_disk`` of an empty split writes the layout (state, info, one empty
        # shard); the rows then go straight into that shard.
        empty = datasets.Dataset.from_dict({c: [] for c in features}, features=features)
        empty.save_to_disk(str(out / name), num_shards=1)
        shard = sorted((out / name).glob("data-*.arrow"))[0]
        writers.append(
            datasets.arrow_writer.ArrowWriter(features=features, path=str(shard))
            if orders[name].size
            else None
        )
    pending: Future | None = None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="dataset-stats") as pool:
            offset = 0
            with pa.OSFile(str(raw)) as f:
                for k, batch in enumerate(pa.ipc.open_stream(f)):
                    end = offset + batch.num_rows
                    if labels is not None:
                        i = batch.schema.get_field_index("label")
                        ids = pa.array(labels[offset:end], pa.int64())
                        batch = batch.set_column(i, "label", ids)
                    owner = which[offset:end]
                    if pending is not None:
                        pending.result()
                    if acc is not None:
                        pending = pool.submit(acc.add_routed, batch, owner, names)
                    for j, writer in enumerate(writers):
                        if writer is not None:
                            part = batch.filter(pa.array(owner == j))
                            if part.num_rows:
                                writer.write_table(pa.Table.from_batches([part]))
                    offset = end
                    if k % 20 == 19:
                        check_stop()
                if pending is not None:
                    pending.result()
    finally:
        for writer in writers:
            if writer is not None:
                writer.finalize()
    for name in names:
        state_file = out / name / datasets.config.DATASET_STATE_JSON_FILENAME
        state = json.loads(state_file.read_text(encoding="utf-8"))
        state["_fingerprint"] = datasets.fingerprint.generate_random_fingerprint()
        state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")
        # Row r of the file is the (cumsum - 1)-th row of its split as written.
        j = names.index(name)
        write_seeded_order(out / name, (np.cumsum(which == j) - 1)[orders[name]])
    with open(out / datasets.config.DATASETDICT_JSON_FILENAME, "w", encoding="utf-8") as f:
        json.dump({"splits": names}, f)


class BackgroundFacts:
    """The statistics' per-row work on the batches the reading pass writes, on a second
    thread while the reader parses the next ones (numpy and Arrow release the GIL).

    At most one batch waits. Label ids do not exist yet while reading: labels are hashed
    as text and the ids are set on :meth:`result` later. Extra-column counts are kept in
    :attr:`extras` for the final accumulator.
    """

    def __init__(self, schema: str, extras: list[str]):
        self._schema, self._extra_names = schema, extras
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dataset-facts")
        self._pending: Future | None = None
        self.discard()

    def __call__(self, batch: Any) -> None:
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._one, batch)

    def _one(self, batch: Any) -> None:
        self._parts.append(self._acc.row_facts(batch))
        self._acc.add_extras(batch)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    @property
    def extras(self) -> dict[str, Any]:
        return self._acc.extras

    def result(self) -> RowFacts:
        self._wait()
        return RowFacts.concat(self._parts, self._acc.texts)

    def discard(self) -> None:
        """Forget every batch seen (the fast reader gave up; the row reader starts over)."""
        try:
            self._wait()
        finally:
            self._acc = StatsAccumulator(self._schema, None, self._extra_names)
            self._parts: list[RowFacts] = []

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)


def release_memory() -> None:
    """Hand freed memory back to the OS between passes, so the peak is one pass's worth.

    No ``gc.collect()``: the passes' arrays are freed by reference counting, and a full
    collection over a worker's loaded libraries took ~0.3 s a call.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
