"""Dataset statistics and the warnings people should see before training.

Everything is computed in batches over memory-mapped splits; duplicates and leakage
use 64-bit hashes in numpy arrays (8 bytes a row) instead of sets of strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.engine.data import textkernels as tk
from jobs.engine.data.mapping import LABELLED, canonical_columns

BATCH = 2000
# Upper edges (exclusive) of the length histogram; the last bin is open-ended.
LENGTH_EDGES = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
IMBALANCE_WARN = 3.0
# Distinct values counted per extra column; past this the column is noted as "many
# values" (an id, a free text) and stops being counted, so memory stays bounded.
EXTRA_DISTINCT_LIMIT = 1000
EXTRA_TOP = 10


def input_columns(schema: str) -> list[str]:
    """The columns a model reads; leakage and near-duplicates are judged on these."""
    if schema == "pair-classification":
        return ["text_a", "text_b"]
    if schema == "seq2seq":
        return ["source"]
    return ["text"]


def text_columns(schema: str) -> list[str]:
    return [c for c in canonical_columns(schema) if c != "label"]


def length_summary(lengths: np.ndarray) -> dict[str, Any]:
    """Count, min/max/mean, percentiles and a fixed-edge histogram of text lengths.

    Public because the catalog summarises token lengths the same way (one report shape).
    """
    if lengths.size == 0:
        return {"count": 0}
    edges = [0, *LENGTH_EDGES]
    counts = np.histogram(lengths, bins=[*edges, np.iinfo(np.int64).max])[0]
    bins = [
        {"min": lo, "max": (edges[i + 1] - 1 if i + 1 < len(edges) else None), "count": int(c)}
        for i, (lo, c) in enumerate(zip(edges, counts, strict=True))
    ]
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
    return {
        "count": int(lengths.size),
        "min": int(lengths.min()),
        "max": int(lengths.max()),
        "mean": round(float(lengths.mean()), 1),
        "p50": round(float(p50), 1),
        "p90": round(float(p90), 1),
        "p99": round(float(p99), 1),
        "histogram": bins,
    }


def _token_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    if hasattr(tokenizer, "encode_batch") and not hasattr(tokenizer, "model_input_names"):
        return [len(enc.ids) for enc in tokenizer.encode_batch(texts)]
    return [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]


@dataclass
class RowFacts:
    """What the statistics need of each row: 14 bytes a row plus 4 per text column."""

    lengths: dict[str, np.ndarray]
    near_empty: np.ndarray
    row_hashes: np.ndarray
    input_hashes: np.ndarray
    labels: np.ndarray | None = None

    @classmethod
    def concat(cls, parts: list[RowFacts], texts: list[str]) -> RowFacts:
        """The facts of consecutive batches as one (empty parts allowed)."""
        return cls(
            lengths={c: _cat([p.lengths[c] for p in parts], np.int32) for c in texts},
            near_empty=_cat([p.near_empty for p in parts], bool),
            row_hashes=_cat([p.row_hashes for p in parts], np.uint64),
            input_hashes=_cat([p.input_hashes for p in parts], np.uint64),
        )


class _Split:
    def __init__(self, texts: list[str], n_labels: int):
        self.rows = 0
        self.empty = 0
        self.lengths: dict[str, list[np.ndarray]] = {c: [] for c in texts}
        self.row_hashes: list[np.ndarray] = []
        self.input_hashes: list[np.ndarray] = []
        self.labels = np.zeros(n_labels, dtype=np.int64)


class _ExtraColumn:
    """Value counts of one extra column, up to ``EXTRA_DISTINCT_LIMIT`` distinct values."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.many = False

    def add(self, col: pa.Array | pa.ChunkedArray) -> None:
        if self.many:
            return
        for item in pc.value_counts(col).to_pylist():
            value = item["values"] or ""
            self.counts[value] = self.counts.get(value, 0) + int(item["counts"])
        if len(self.counts) > EXTRA_DISTINCT_LIMIT:
            self.many, self.counts = True, {}

    def summary(self, name: str) -> dict[str, Any]:
        top = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:EXTRA_TOP]
        return {
            "name": name,
            "distinct": None if self.many else len(self.counts),
            "many_values": self.many,
            "top": [{"value": v, "rows": n} for v, n in top],
        }


def extra_column_names(schema: str, columns: list[str]) -> list[str]:
    """The columns of a processed split that are not the schema's: the extra columns."""
    canonical = set(canonical_columns(schema))
    return [c for c in columns if c not in canonical]


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.array([], dtype=dtype)


class StatsAccumulator:
    """Collects statistics batch by batch (Arrow tables with canonical columns).

    ``label`` holds class ids when ``label_names`` is given. Holds 16 bytes of hashes
    and a few bytes of lengths per row, never the texts. ``extras`` (extra columns) get
    bounded value counts; duplicates and leakage are judged on the canonical columns only.
    """

    def __init__(
        self, schema: str, label_names: list[str] | None = None, extras: list[str] | None = None
    ):
        self.schema = schema
        self.texts = text_columns(schema)
        self.inputs = input_columns(schema)
        self.label_names = label_names
        self.splits: dict[str, _Split] = {}
        self.extras = {name: _ExtraColumn() for name in extras or []}

    def start(self, split: str) -> _Split:
        """Register ``split`` so it is reported even if it stays empty."""
        return self.splits.setdefault(split, _Split(self.texts, len(self.label_names or [])))

    def add(self, split: str, batch: pa.Table | pa.RecordBatch) -> None:
        """Count every row of ``batch`` into ``split``."""
        self.start(split)
        if batch.num_rows:
            self._store(split, self.row_facts(batch), None)
            self.add_extras(batch)

    def add_routed(
        self, batch: pa.Table | pa.RecordBatch, owner: np.ndarray, names: list[str]
    ) -> None:
        """Count row ``i`` of ``batch`` into split ``names[owner[i]]``.

        The per-row work (hashes, lengths) runs once over the whole batch, and only the
        small per-row results are divided: cheaper than filtering the rows per split first.
        """
        self.add_facts(self.row_facts(batch), owner, names)
        self.add_extras(batch)

    def add_facts(self, facts: RowFacts, owner: np.ndarray, names: list[str]) -> None:
        """Count facts computed earlier (:meth:`row_facts`) into splits, as ``add_routed``."""
        for name in names:
            self.start(name)
        for j, name in enumerate(names):
            pick = np.flatnonzero(owner == j)
            if pick.size:
                self._store(name, facts, pick)

    def row_facts(self, batch: pa.Table | pa.RecordBatch) -> RowFacts:
        """Per-row lengths, near-empty flags, row and input hashes, label ids of ``batch``.

        A text ``label`` column (rows as read, before label ids exist) is hashed as text
        and gives no ids; set ``labels`` on the result once they are known.
        """
        lengths = {
            c: np.asarray(pc.utf8_length(batch.column(c)), dtype=np.int32) for c in self.texts
        }
        normalized = {c: tk.normalized(batch.column(c)) for c in self.inputs}
        near_empty = np.zeros(batch.num_rows, dtype=bool)
        for c in self.texts:
            letters = normalized[c][1] if c in normalized else None
            near_empty |= tk.near_empty(batch.column(c), letters)
        labels = None
        parts = []
        for c in canonical_columns(self.schema):
            col = batch.column(c)
            if c == "label" and not pa.types.is_string(col.type):
                labels = np.asarray(col, dtype=np.int64)
                parts.append(pd.util.hash_array(labels))
            else:
                parts.append(tk.hashes(col))
        return RowFacts(
            lengths=lengths,
            near_empty=near_empty,
            row_hashes=tk.combine(parts),
            input_hashes=tk.combine([normalized[c][0] for c in self.inputs]),
            labels=labels if self.label_names is not None else None,
        )

    def _store(self, split: str, facts: RowFacts, pick: np.ndarray | None) -> None:
        def rows(values: np.ndarray) -> np.ndarray:
            return values if pick is None else values[pick]

        st = self.start(split)
        st.rows += len(facts.row_hashes) if pick is None else int(pick.size)
        for c, values in facts.lengths.items():
            st.lengths[c].append(rows(values))
        st.empty += int(rows(facts.near_empty).sum())
        st.row_hashes.append(rows(facts.row_hashes))
        st.input_hashes.append(rows(facts.input_hashes))
        if facts.labels is not None:
            st.labels += np.bincount(rows(facts.labels), minlength=len(self.label_names or []))

    def add_extras(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Value counts of the extra columns (over the whole dataset, not per split)."""
        for name, extra in self.extras.items():
            extra.add(batch.column(name))

    def result(self) -> dict[str, Any]:
        names = self.label_names
        splits: dict[str, Any] = {}
        for name, st in self.splits.items():
            entry: dict[str, Any] = {
                "rows": st.rows,
                "empty_texts": st.empty,
                "lengths": {
                    c: length_summary(_cat(v, np.int32).astype(np.int64))
                    for c, v in st.lengths.items()
                },
            }
            if names is not None:
                entry["labels"] = {names[i]: int(c) for i, c in enumerate(st.labels)}
            splits[name] = entry
        rows = _cat([_cat(st.row_hashes, np.uint64) for st in self.splits.values()], np.uint64)
        inputs = {n: _cat(st.input_hashes, np.uint64) for n, st in self.splits.items()}
        all_inputs = _cat(list(inputs.values()), np.uint64)
        stats: dict[str, Any] = {
            "schema": self.schema,
            "rows": int(rows.size),
            "splits": splits,
            "empty_texts": sum(st.empty for st in self.splits.values()),
            "exact_duplicates": int(rows.size - tk.distinct(rows)),
            "near_duplicates": int(all_inputs.size - tk.distinct(all_inputs)),
            "overlap": {},
        }
        if self.extras:
            stats["extra_columns"] = [e.summary(n) for n, e in self.extras.items()]
        train = inputs.get("train")
        train_sorted = np.sort(train) if train is not None else None
        for name in ("validation", "test"):
            if train is not None and inputs.get(name) is not None and inputs[name].size:
                hits = tk.hits(inputs[name], train_sorted)
                stats["overlap"][name] = {
                    "rows": hits,
                    "fraction": round(hits / inputs[name].size, 4),
                }
        if names is not None:
            totals = sum((st.labels for st in self.splits.values()), np.zeros(len(names), np.int64))
            stats["label_names"] = names
            stats["labels"] = {names[i]: int(c) for i, c in enumerate(totals)}
            present = [(int(c), names[i]) for i, c in enumerate(totals) if c > 0]
            if present:
                (lo, lo_name), (hi, hi_name) = min(present), max(present)
                stats["imbalance"] = {
                    "ratio": round(hi / lo, 2),
                    "majority": hi_name,
                    "minority": lo_name,
                }
        return stats


def compute_stats(
    dsd: Any, schema: str, *, tokenizer: Any = None, sample_limit: int = 2000
) -> dict[str, Any]:
    """Rows, label distribution, lengths, empties, duplicates and train overlap per split.

    ``dsd`` is a ``DatasetDict`` with canonical columns. Token lengths are measured on
    at most ``sample_limit`` evenly spaced rows per split when ``tokenizer`` (a
    ``tokenizers.Tokenizer`` or a transformers tokenizer) is given. Returns plain JSON
    types only.
    """
    names = None
    first = dsd[next(iter(dsd))]
    if schema in LABELLED:
        names = list(first.features["label"].names)
    acc = StatsAccumulator(schema, names, extra_column_names(schema, first.column_names))
    for name, ds in dsd.items():
        acc.start(name)
        for table in ds.with_format("arrow").iter(batch_size=BATCH):
            acc.add(name, table)
    stats = acc.result()
    if tokenizer is not None:
        for name, ds in dsd.items():
            if not len(ds):
                continue
            step = max(1, len(ds) // sample_limit)
            sample = ds.select(range(0, len(ds), step)[:sample_limit])
            stats["splits"][name]["tokens"] = {
                c: length_summary(
                    np.asarray(_token_lengths(tokenizer, list(sample[c])), dtype=np.int64)
                )
                for c in acc.texts
            }
    return stats


def _pct(fraction: float) -> str:
    pct = 100 * fraction
    return f"{pct:.0f}%" if pct >= 10 or pct == 0 else f"{pct:.1f}%"


def stats_warnings(stats: dict[str, Any]) -> list[str]:
    """Short sentences for the problems in ``stats`` worth a look before training."""
    out = []
    for name, ov in stats.get("overlap", {}).items():
        if ov["rows"]:
            out.append(
                f"{_pct(ov['fraction'])} of {name} rows also appear in train "
                f"({ov['rows']:,} row{'s' if ov['rows'] != 1 else ''}; same text after "
                "normalising case, punctuation and spaces)"
            )
    if stats.get("empty_texts"):
        out.append(f"{stats['empty_texts']:,} texts are empty or near-empty")
    imbalance = stats.get("imbalance")
    if imbalance and imbalance["ratio"] >= IMBALANCE_WARN:
        out.append(
            f"Class imbalance {imbalance['ratio']:.1f}:1 "
            f"({imbalance['majority']} vs {imbalance['minority']})"
        )
    exact = stats.get("exact_duplicates", 0)
    if exact:
        out.append(f"{exact:,} exact duplicate rows")
    near = stats.get("near_duplicates", 0)
    if near > exact:
        out.append(
            f"{near:,} rows repeat another row's text after normalising case and punctuation"
        )
    return out
