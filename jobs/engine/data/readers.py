"""Streaming readers: one record at a time, whatever the upload's format.

Every reader yields ``(line, row, error)``: ``row`` is a dict keyed by source column
(None on error), ``error`` a row-level message. Lines are read with a length limit, so
a 10 MB line (or a runaway quote) becomes a row error instead of a memory spike; the
only whole-file failures are the structural ones (not JSON at all, no data).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from jobs.engine.base import EngineError
from jobs.engine.data.jsonarray import iter_json_array
from jobs.engine.data.mapping import ALL_SYNONYMS, normalize_name

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "txt")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "txt",
    ".text": "txt",
}
DRAIN_CHUNK = 256 * 1024
HEADER_SAMPLE = 50
Row = tuple[int, dict[str, Any] | None, str | None]


@dataclass
class Source:
    """A data file ready to read: format, encoding, header decision and column names."""

    path: Path
    format: str
    encoding: str | None
    has_header: bool | None = None
    columns: list[str] = field(default_factory=list)
    # The upload's own encoding when ``path`` is a UTF-8 transcode of it.
    encoding_label: str | None = None


def _sniff_text(path: Path, encoding: str) -> str:
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        head = f.read(64 * 1024)
    stripped = head.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        return "jsonl"
    lines = [ln for ln in head.splitlines()[:HEADER_SAMPLE] if ln.strip()]
    if len(head) == 64 * 1024 and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut short
    for delim, fmt in (("\t", "tsv"), (",", "csv")):
        counts = {ln.count(delim) for ln in lines}
        if lines and len(counts) == 1 and counts.pop() > 0:
            return fmt
    return "txt"


def detect_format(path: Path, encoding: str | None) -> str:
    """Format from the extension; content decides for ``.json`` and unknown extensions.

    A ``.json`` file whose first character is ``{`` is JSON Lines (a common mislabel).
    """
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return "parquet"
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt in ("csv", "tsv", "txt", "jsonl", "parquet"):
        return fmt
    sniffed = _sniff_text(path, encoding or "utf-8")
    if fmt == "json":
        return "jsonl" if sniffed == "jsonl" else "json"
    return sniffed


class _Lines:
    """Iterates lines of a text stream, each at most ``limit`` characters.

    Longer lines are skipped (drained in chunks, never held whole) and their numbers
    recorded in ``overlong``; ``lineno`` is the number of the last line read.
    """

    def __init__(self, f: IO[str], limit: int):
        self.f = f
        self.limit = limit
        self.lineno = 0
        self.overlong: list[int] = []

    def __iter__(self) -> Iterator[str]:
        while True:
            line = self.f.readline(self.limit + 1)
            if not line:
                return
            self.lineno += 1
            if len(line) > self.limit and not line.endswith(("\n", "\r")):
                self.overlong.append(self.lineno)
                while (rest := self.f.readline(DRAIN_CHUNK)) and not rest.endswith(("\n", "\r")):
                    pass
                continue
            yield line


def _overlong_errors(lines: _Lines) -> Iterator[tuple[int, None, str]]:
    while lines.overlong:
        n = lines.overlong.pop(0)
        yield n, None, f"line is longer than {lines.limit:,} characters; it was skipped"


def _split_records(
    src: Source, f: IO[str], limit: int
) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Raw field lists of a CSV/TSV file, header included."""
    lines = _Lines(f, limit)
    if src.format == "tsv":
        # Quoting off: a stray quote in an SMS must not swallow the following rows.
        for line in lines:
            yield from _overlong_errors(lines)
            stripped = line.rstrip("\r\n")
            if stripped.strip():
                yield lines.lineno, stripped.split("\t"), None
        yield from _overlong_errors(lines)
        return
    # The csv module's own default limit (128 KiB) would be lower than ours.
    csv.field_size_limit(max(csv.field_size_limit(), limit))
    reader = csv.reader(iter(lines), strict=False)
    while True:
        start = lines.lineno + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            yield start, None, f"unreadable CSV ({e}); check for an unbalanced quote"
            continue
        yield from _overlong_errors(lines)
        if any(f.strip() for f in fields):
            yield start, fields, None
    yield from _overlong_errors(lines)


_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|\.\d+)([eE][+-]?\d+)?%?$")
_HEADERISH = re.compile(r"^[^\W\d][\w \-./()#]{0,63}$")


def guess_has_header(rows: list[list[str]]) -> bool:
    """Decide whether the first row names the columns.

    Votes per column: a first cell that recurs below is data; a non-numeric cell over a
    numeric column, a known column name, or a cell absent from a few-valued column is a
    name. Cells that end like sentences ("Go.") are never names.
    """
    if not rows:
        return False
    first = [c.strip() for c in rows[0]]
    if not all(_HEADERISH.match(c) for c in first) or len(set(first)) != len(first):
        return False
    rest = rows[1:]
    score = 0
    for j, head in enumerate(first):
        column = [r[j].strip() for r in rest if j < len(r)]
        if normalize_name(head) in ALL_SYNONYMS:
            score += 2
        if head in column:
            score -= 3
            continue
        if column and sum(bool(_NUMBER.match(v)) for v in column) >= 0.9 * len(column):
            score += 2
        distinct = set(column)
        if column and len(distinct) <= max(2, len(column) // 2):
            score += 1
        lengths = sorted(len(v) for v in column)
        if (
            lengths
            and lengths[len(lengths) // 2] >= 20
            and len(head) * 2 <= lengths[len(lengths) // 2]
        ):
            score += 1
    return score > 0


def _unique_names(raw: list[str]) -> list[str]:
    names: list[str] = []
    for i, name in enumerate(raw):
        name = name.strip() or f"col_{i}"
        base, k = name, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def open_text(path: Path, encoding: str | None) -> IO[str]:
    return open(path, encoding=encoding or "utf-8", errors="strict", newline="")


@contextmanager
def decode_errors(src: Source) -> Iterator[None]:
    """Turn a decoding failure deep in the file into a message about encodings."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise EngineError(
            f"The file is not valid {src.encoding or 'utf-8'} ({e.reason}); it mixes "
            "encodings or is corrupt. Re-save it as UTF-8 or choose its encoding.",
            code="encoding_error",
            param="encoding",
        ) from e


def prepare(src: Source, limit: int) -> Source:
    """Fill in ``has_header`` (unless given) and ``columns`` from the head of the file."""
    if src.format == "txt":
        src.columns = ["text"]
        return src
    if src.format == "parquet":
        with _parquet_errors(src):
            import pyarrow.parquet as pq

            src.columns = list(pq.ParquetFile(src.path).schema_arrow.names)
        return src
    if src.format in ("json", "jsonl"):
        seen: dict[str, None] = {}
        with decode_errors(src):
            for _, row, _ in _take(_iter_json(src, limit), 100):
                seen.update(dict.fromkeys(row or {}))
        src.columns = list(seen)
        return src
    with decode_errors(src), open_text(src.path, src.encoding) as f:
        head = [fields for _, fields, _ in _take(_split_records(src, f, limit), HEADER_SAMPLE)]
    head = [h for h in head if h is not None]
    if src.has_header is None:
        src.has_header = guess_has_header(head)
    if src.has_header and head:
        src.columns = _unique_names(head[0])
    else:
        widths = Counter(len(h) for h in head)
        width = widths.most_common(1)[0][0] if widths else 1
        src.columns = [f"col_{i}" for i in range(width)]
    return src


def _take(it: Iterator[Any], n: int) -> list[Any]:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    close = getattr(it, "close", None)
    if close:
        close()
    return out


def iter_rows(
    src: Source, *, limit: int, txt_mode: str = "lines", block_chars: int = 2000
) -> Iterator[Row]:
    """Yield ``(line, row, error)`` for every record of a prepared source."""
    with decode_errors(src):
        if src.format in ("csv", "tsv"):
            yield from _iter_delimited(src, limit)
        elif src.format in ("json", "jsonl"):
            yield from _iter_json(src, limit)
        elif src.format == "parquet":
            yield from _iter_parquet(src)
        elif txt_mode == "corpus":
            yield from _iter_corpus(src, block_chars)
        else:
            yield from _iter_txt_lines(src, limit)


def _iter_delimited(src: Source, limit: int) -> Iterator[Row]:
    width = len(src.columns)
    with open_text(src.path, src.encoding) as f:
        records = _split_records(src, f, limit)
        if src.has_header:
            for _, fields, _ in records:
                if fields is not None:
                    break
        for line, fields, error in records:
            if fields is None:
                yield line, None, error
            elif len(fields) != width:
                yield line, None, f"has {len(fields)} fields, expected {width}"
            else:
                yield line, dict(zip(src.columns, fields, strict=True)), None


def _iter_txt_lines(src: Source, limit: int) -> Iterator[Row]:
    with open_text(src.path, src.encoding) as f:
        lines = _Lines(f, limit)
        for line in lines:
            yield from _overlong_errors(lines)
            text = line.rstrip("\r\n")
            if text.strip():
                yield lines.lineno, {"text": text}, None
        yield from _overlong_errors(lines)


def _iter_corpus(src: Source, block_chars: int) -> Iterator[Row]:
    """Cut running text into blocks of about ``block_chars``, preferring line breaks."""
    buf, line, start_line = "", 1, 1
    with open_text(src.path, src.encoding) as f:
        while True:
            chunk = f.read(block_chars)
            buf += chunk
            while len(buf) >= block_chars or (not chunk and buf):
                cut = buf.rfind("\n", block_chars // 2, block_chars)
                cut = (
                    cut + 1 if cut >= 0 and len(buf) >= block_chars else min(len(buf), block_chars)
                )
                block, buf = buf[:cut], buf[cut:]
                line += block.count("\n")
                if block.strip():
                    yield start_line, {"text": block}, None
                start_line = line
            if not chunk:
                return


@contextmanager
def _parquet_errors(src: Source) -> Iterator[None]:
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as e:
        raise EngineError(
            f"{src.path.name} is not a readable Parquet file ({e}).", code="invalid_parquet"
        ) from e


def _iter_parquet(src: Source) -> Iterator[Row]:
    import pyarrow.parquet as pq

    n = 0
    with _parquet_errors(src):
        for batch in pq.ParquetFile(src.path).iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                n += 1
                yield n, row, None


def _iter_json(src: Source, limit: int) -> Iterator[Row]:
    with open_text(src.path, src.encoding) as f:
        if src.format == "jsonl":
            lines = _Lines(f, limit)
            for text in lines:
                yield from _overlong_errors(lines)
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    yield lines.lineno, None, f"invalid JSON ({e.msg})"
                    continue
                yield _object_row(lines.lineno, obj)
            yield from _overlong_errors(lines)
        else:
            for line, obj in iter_json_array(f, limit):
                yield _object_row(line, obj)


def _object_row(line: int, obj: Any) -> Row:
    if not isinstance(obj, dict):
        return line, None, f"is a JSON {type(obj).__name__}, expected an object"
    return line, obj, None
