"""Dataset statistics and the warnings people should see before training.

Everything is computed in batches over memory-mapped splits; duplicates and leakage
use 64-bit hashes in numpy arrays (8 bytes a row) instead of sets of strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.engine.data.mapping import LABELLED, canonical_columns

BATCH = 2000
# Upper edges (exclusive) of the length histogram; the last bin is open-ended.
LENGTH_EDGES = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
NEAR_EMPTY_CHARS = 3
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


def _hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pd.util.hash_array(arr.to_numpy(zero_copy_only=False), categorize=False)


def _combine(parts: list[np.ndarray]) -> np.ndarray:
    """One 64-bit hash from per-column hashes (order matters: ("a", "b") != ("b", "a"))."""
    out = parts[0].copy()
    for h in parts[1:]:
        out *= np.uint64(0x9E3779B97F4A7C15)
        out ^= h
    return out


# RE2's ``\s`` is ASCII only: tab, newline, form feed, carriage return and space.
_SPACE = np.zeros(256, dtype=np.uint8)
_SPACE[[9, 10, 12, 13, 32]] = 1
# ASCII lower-casing and the bytes kept by ``[^\p{L}\p{N}]+`` removal, for ASCII text.
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32
_KEEP = np.zeros(256, dtype=bool)
_KEEP[48:58] = _KEEP[97:123] = True


def _string_chunks(col: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    return [c.cast(pa.string()) if not pa.types.is_string(c.type) else c for c in chunks]


def _bytes_of(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets relative to the data, data bytes) of a null-free string array."""
    n = len(chunk)
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset : chunk.offset + n + 1]
    data = chunk.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


def _segment_sums(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-row sums of a per-byte 0/1 array (``reduceat`` needs empty rows fixed up)."""
    if offsets.size < 2:
        return np.zeros(0, dtype=np.int64)
    padded = np.zeros(mask.size + 1, dtype=np.uint8)  # a start may equal the data's end
    padded[:-1] = mask
    sums = np.add.reduceat(padded, offsets[:-1], dtype=np.int64)
    sums[offsets[1:] == offsets[:-1]] = 0
    return sums


def _near_empty(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    r"""Rows with fewer than ``NEAR_EMPTY_CHARS`` characters once ``\s`` is removed."""
    out = []
    for chunk in _string_chunks(col):
        if chunk.null_count:
            short = pc.less(
                pc.utf8_length(pc.replace_substring_regex(chunk, r"\s+", "")), NEAR_EMPTY_CHARS
            )
            out.append(np.asarray(pc.fill_null(short, False)))
            continue
        offsets, data = _bytes_of(chunk)
        spaces = _segment_sums(_SPACE[data], offsets)
        chars = np.asarray(pc.utf8_length(chunk), dtype=np.int64)
        out.append(chars - spaces < NEAR_EMPTY_CHARS)
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def _normalized_hashes(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Hashes of the text lower-cased with letters and digits only (ASCII done in numpy)."""
    out = []
    for chunk in _string_chunks(col):
        if chunk.null_count == 0:
            offsets, data = _bytes_of(chunk)
            if data.size == 0 or data.max() < 128:
                lowered = _LOWER[data]
                keep = _KEEP[lowered]
                kept = lowered[keep]
                new_offsets = np.zeros(offsets.size, dtype=np.int32)
                np.cumsum(_segment_sums(keep, offsets), out=new_offsets[1:])
                norm = pa.StringArray.from_buffers(
                    len(chunk), pa.py_buffer(new_offsets), pa.py_buffer(kept)
                )
                out.append(_hashes(norm))
                continue
        norm = pc.replace_substring_regex(pc.utf8_lower(chunk), r"[^\p{L}\p{N}]+", "")
        out.append(_hashes(norm))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def _distinct(values: np.ndarray) -> int:
    """Distinct values by sorting (numpy's hash-based ``unique`` is slower here)."""
    if values.size == 0:
        return 0
    s = np.sort(values)
    return 1 + int(np.count_nonzero(s[1:] != s[:-1]))


def _hits(values: np.ndarray, sorted_pool: np.ndarray) -> int:
    """How many of ``values`` occur in ``sorted_pool``."""
    if sorted_pool.size == 0 or values.size == 0:
        return 0
    at = np.minimum(np.searchsorted(sorted_pool, values), sorted_pool.size - 1)
    return int(np.count_nonzero(sorted_pool[at] == values))


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
        st = self.start(split)
        if batch.num_rows == 0:
            return
        st.rows += batch.num_rows
        near_empty = None
        for c in self.texts:
            col = batch.column(c)
            st.lengths[c].append(np.asarray(pc.utf8_length(col), dtype=np.int64))
            short = _near_empty(col)
            near_empty = short if near_empty is None else near_empty | short
        st.empty += int(near_empty.sum()) if near_empty is not None else 0
        st.row_hashes.append(
            _combine(
                [
                    _hashes(batch.column(c))
                    if c != "label"
                    else pd.util.hash_array(np.asarray(batch.column(c), dtype=np.int64))
                    for c in canonical_columns(self.schema)
                ]
            )
        )
        st.input_hashes.append(_combine([_normalized_hashes(batch.column(c)) for c in self.inputs]))
        if self.label_names is not None:
            ids = np.asarray(batch.column("label"), dtype=np.int64)
            st.labels += np.bincount(ids, minlength=len(self.label_names))
        for name, extra in self.extras.items():
            extra.add(batch.column(name))

    def result(self) -> dict[str, Any]:
        names = self.label_names
        splits: dict[str, Any] = {}
        for name, st in self.splits.items():
            entry: dict[str, Any] = {
                "rows": st.rows,
                "empty_texts": st.empty,
                "lengths": {c: length_summary(_cat(v, np.int64)) for c, v in st.lengths.items()},
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
            "exact_duplicates": int(rows.size - _distinct(rows)),
            "near_duplicates": int(all_inputs.size - _distinct(all_inputs)),
            "overlap": {},
        }
        if self.extras:
            stats["extra_columns"] = [e.summary(n) for n, e in self.extras.items()]
        train = inputs.get("train")
        train_sorted = np.sort(train) if train is not None else None
        for name in ("validation", "test"):
            if train is not None and inputs.get(name) is not None and inputs[name].size:
                hits = _hits(inputs[name], train_sorted)
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
