"""Fast path of the reading pass: whole Arrow batches instead of Python row dicts.

Most uploads are clean, so the reading pass first tries pyarrow's block-wise CSV and
JSON readers (bounded memory) and checks whole columns at once. It gives up (returns
None) at the first thing the row-by-row reader would treat specially: a parse error, a
null or non-text value, an empty label, a blank row, an over-long line or field, a
label type other than text/integer/boolean, an extra column holding anything but
text. The caller then reruns the row-by-row reader, so row errors with exact line
numbers keep coming from one place; a clean file gives the same rows either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.engine.data.mapping import EXTRA_MAX_CHARS, RowChecker
from jobs.engine.data.readers import Source
from jobs.engine.data.writing import PROGRESS_EVERY_ROWS, RawRows

BLOCK = 1 << 20  # bigger blocks parse no faster here and hold more memory in flight
SCAN_CHUNK = 4 << 20


class _GiveUp(Exception):
    """The fast path cannot vouch for this file; use the row-by-row reader."""


def _max_line_bytes(path: Path) -> int:
    """Longest physical line in bytes (bytes >= characters, so the check is conservative)."""
    longest, carry = 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(SCAN_CHUNK):
            nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            if nl.size == 0:
                carry += len(chunk)
                continue
            longest = max(longest, carry + int(nl[0]))
            if nl.size > 1:
                longest = max(longest, int(np.diff(nl).max()) - 1)
            carry = len(chunk) - int(nl[-1]) - 1
    return max(longest, carry)


def _first_record(path: Path) -> dict | None:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                return obj if isinstance(obj, dict) else None
    return None


def _batches(src: Source, schema: str, mapping: dict[str, str], extras: list[str]):
    import pyarrow.csv as pcsv
    import pyarrow.json as pj

    if src.format == "jsonl":
        first = _first_record(src.path)
        if first is None:
            raise _GiveUp
        # A number in an extra column fails the parse: the row reader turns it into text.
        fields = [pa.field(col, pa.string()) for col in extras]
        for canon, col in mapping.items():
            value = first.get(col)
            if canon != "label" or isinstance(value, str):
                fields.append(pa.field(col, pa.string()))
            elif isinstance(value, bool):
                fields.append(pa.field(col, pa.bool_()))
            elif isinstance(value, int):
                fields.append(pa.field(col, pa.int64()))
            else:
                raise _GiveUp
        return pj.open_json(
            src.path,
            read_options=pj.ReadOptions(block_size=BLOCK),
            parse_options=pj.ParseOptions(
                explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"
            ),
        )
    with open(src.path, "rb") as f:
        if f.read(1) in (b"\n", b"\r"):
            raise _GiveUp  # leading blank lines: skip_rows would count them
    tsv = src.format == "tsv"
    return pcsv.open_csv(
        src.path,
        read_options=pcsv.ReadOptions(
            column_names=src.columns, skip_rows=1 if src.has_header else 0, block_size=BLOCK
        ),
        parse_options=pcsv.ParseOptions(
            delimiter="\t" if tsv else ",",
            quote_char=False if tsv else '"',
            double_quote=not tsv,
            escape_char=False,
            newlines_in_values=not tsv,
            ignore_empty_lines=True,
        ),
        convert_options=pcsv.ConvertOptions(
            column_types={c: pa.string() for c in src.columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _extras(batch: pa.RecordBatch, checker: RowChecker) -> list[pa.Array]:
    """The extra columns as the row reader writes them: missing as "", long values cut."""
    out = []
    for col in checker.extras:
        arr = batch.column(col)
        if not pa.types.is_string(arr.type):
            raise _GiveUp
        arr = pc.fill_null(arr, "")
        long = pc.greater(pc.utf8_length(arr), EXTRA_MAX_CHARS)
        cut = pc.sum(long).as_py() or 0
        if cut:
            checker.truncated[col] += cut
            arr = pc.utf8_slice_codeunits(arr, 0, EXTRA_MAX_CHARS)
        out.append(arr)
    return out


def _canonical(
    batch: pa.RecordBatch, src: Source, mapping: dict[str, str], checker: RowChecker
) -> tuple[list[pa.Array], pa.Array | None]:
    """Canonical string columns of ``batch`` (label last as text); raises ``_GiveUp``."""
    delimited = src.format in ("csv", "tsv")
    if delimited:
        blank = None
        for col in batch.columns:
            empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0)
            blank = empty if blank is None else pc.and_(blank, empty)
        if blank is not None and pc.any(blank).as_py():
            raise _GiveUp
    out: list[pa.Array] = []
    label = None
    for canon, col in mapping.items():
        arr = batch.column(col)
        if arr.null_count:
            raise _GiveUp
        if canon != "label":
            if pa.types.is_string(arr.type):
                too_long = pc.greater(pc.utf8_length(arr), checker.max_chars)
                if pc.any(too_long).as_py():
                    raise _GiveUp
                out.append(arr)
                continue
            raise _GiveUp
        if pa.types.is_string(arr.type):
            arr = pc.utf8_trim_whitespace(arr)
            if pc.any(pc.equal(pc.utf8_length(arr), 0)).as_py():
                raise _GiveUp
            kind = "text"
        elif pa.types.is_boolean(arr.type):
            arr, kind = pc.if_else(arr, "true", "false"), "boolean"
        elif pa.types.is_integer(arr.type):
            arr, kind = pc.cast(arr, pa.string()), "number"
        else:
            raise _GiveUp
        if checker.label_kind not in (None, kind):
            raise _GiveUp
        checker.label_kind = kind
        label = arr
        out.append(arr)
    return out, label


def read_rows_fast(
    src: Source,
    checker: RowChecker,
    path: Path,
    *,
    on_progress: Callable[[int], None],
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
) -> RawRows | None:
    """The reading pass for a clean CSV/TSV/JSONL file, or None to use the slow path.

    ``on_batch`` sees each canonical batch as it is written (labels as text); after a
    None it must forget what it saw.
    """
    if src.format not in ("csv", "tsv", "jsonl") or src.encoding not in (None, "utf-8"):
        return None
    if src.path.stat().st_size == 0:
        return None
    mapping = checker.mapping
    kind0, counts0 = checker.label_kind, dict(checker.label_counts)
    truncated0 = dict(checker.truncated)
    out = RawRows(path)
    schema = pa.schema([pa.field(c, pa.string()) for c in checker.columns])
    next_progress = PROGRESS_EVERY_ROWS
    try:
        if _max_line_bytes(src.path) > checker.max_chars:
            raise _GiveUp
        reader = _batches(src, src.format, mapping, checker.extras)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                columns, label = _canonical(batch, src, mapping, checker)
                columns += _extras(batch, checker)
                canonical = pa.RecordBatch.from_arrays(columns, schema=schema)
                writer.write_batch(canonical)
                if on_batch is not None:
                    on_batch(canonical)
                if label is not None:
                    enc = pc.dictionary_encode(label)
                    values = enc.dictionary.to_pylist()
                    ids = np.array(
                        [out.first_seen.setdefault(v, len(out.first_seen)) for v in values],
                        dtype=np.int32,
                    )
                    out.seen_ids.frombytes(ids[np.asarray(enc.indices)].tobytes())
                out.n_valid += batch.num_rows
                if out.n_valid >= next_progress:
                    next_progress = out.n_valid + PROGRESS_EVERY_ROWS
                    on_progress(out.n_valid)
    except (_GiveUp, pa.ArrowException, ValueError, UnicodeDecodeError):
        checker.label_kind, checker.label_counts = kind0, counts0
        checker.truncated = truncated0
        path.unlink(missing_ok=True)
        return None
    if out.n_valid == 0:
        path.unlink(missing_ok=True)
        checker.label_kind = kind0
        return None
    if out.first_seen:
        totals = np.bincount(np.frombuffer(out.seen_ids, dtype=np.int32))
        checker.label_counts = {v: int(totals[i]) for v, i in out.first_seen.items()}
    return out
