"""How to read an upload, decided from its first bytes: binary or text, format, delimiter.

The engine trusts a file's extension (``.txt`` is plain text, ``.csv`` is comma
separated), but real files disagree: the UCI sentiment files are ``sentence<TAB>0|1``
named ``.txt``, European spreadsheets save ``;``-separated ``.csv``, and some data comes
as ``.dat`` or with no extension at all. So the catalog looks at the content first and
hands the engine an explicit format. Delimiters the engine does not read itself
(``;`` and ``|``) are rewritten as a standard CSV file before processing.

Pure Python and no Django: the web process uses it to refuse an upload before a record
exists, and the inspection subprocess and the worker import it too.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HEAD_BYTES = 64 * 1024
SAMPLE_LINES = 50
DELIMITERS: dict[str, str] = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "txt")
# Extensions whose content decides the format; the others name their format reliably.
SNIFFED_SUFFIXES = ("", ".txt", ".text", ".dat", ".data")


@dataclass
class ReadPlan:
    """What the engine is told. ``delimiter`` is a key of DELIMITERS (None: not delimited).

    ``format`` None means "let the engine decide" (archives, Parquet, JSON by extension).
    ``columns`` is the number of fields a row has, when the head of the file shows it.
    """

    format: str | None
    delimiter: str | None = None
    columns: int | None = None
    sniffed: bool = False

    @property
    def engine_format(self) -> str | None:
        """The format the engine reads: ``;`` and ``|`` files are rewritten as CSV first."""
        if self.delimiter == "tab":
            return "tsv"
        if self.delimiter is not None:
            return "csv"
        return self.format

    @property
    def needs_rewrite(self) -> bool:
        return self.delimiter in ("semicolon", "pipe")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def is_container(head: bytes) -> bool:
    """Zip archives and Parquet files: read whole by the engine, never sniffed here."""
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PAR1", b"\x1f\x8b"))


def _utf16_by_nuls(head: bytes) -> bool:
    """UTF-16 without a BOM has NULs in every other byte for Latin text (as the engine)."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = max(len(head) // 2, 1)
    return (odd / half > 0.3 and even < odd / 10) or (even / half > 0.3 and odd < even / 10)


def binary_reason(head: bytes, filename: str) -> str | None:
    """Why the head of an upload is not a text data file, or None.

    NUL bytes never occur in UTF-8 or GB18030 text; only UTF-16 has them, in a pattern.
    """
    if not head or is_container(head):
        return None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    if b"\x00" in head and not _utf16_by_nuls(head[: len(head) // 2 * 2]):
        return (
            f"{filename} looks like a binary file (it contains NUL bytes), not text. "
            "Upload CSV, TSV, JSON, JSONL, Parquet or plain text."
        )
    return None


def decode_head(head: bytes, encoding: str | None = None) -> str:
    """The head as text, for sniffing only: a cut character at the end is dropped."""
    candidates = [encoding] if encoding else []
    if head.startswith(codecs.BOM_UTF8):
        candidates.append("utf-8-sig")
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates.append("utf-16")
    elif b"\x00" in head:
        candidates += ["utf-16-le", "utf-16-be"]
    candidates += ["utf-8", "gb18030"]
    for enc in candidates:
        try:
            return codecs.getincrementaldecoder(enc)("strict").decode(head, final=False)
        except (UnicodeDecodeError, LookupError):
            continue
    return head.decode("latin-1")


def _lines(text: str, cut: bool) -> list[str]:
    lines = [ln for ln in text.splitlines()[: SAMPLE_LINES + 1] if ln.strip()]
    if cut and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut short
    return lines[:SAMPLE_LINES]


def _widths(lines: list[str], delimiter: str) -> list[int]:
    if delimiter == "\t":  # the engine reads TSV with quoting off
        return [ln.count("\t") + 1 for ln in lines]
    out = []
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, strict=False)
    try:
        for fields in reader:
            out.append(len(fields))
    except csv.Error:
        return []
    return out


def sniff_delimiter(text: str, *, cut: bool = False) -> tuple[str | None, int | None]:
    """The delimiter (a DELIMITERS key) every sampled line splits on the same way, and the
    number of fields it gives; ``(None, None)`` for text that is not delimited.

    A candidate must give at least two fields on nine lines in ten of at least two
    lines; among candidates the most consistent wins, ties in the order tab, comma,
    semicolon, pipe (a sentence may hold commas; it rarely holds a tab).
    """
    lines = _lines(text, cut)
    if len(lines) < 2:
        return None, None
    best: tuple[float, int, str, int] | None = None
    for rank, (name, char) in enumerate(DELIMITERS.items()):
        widths = _widths(lines, char)
        if not widths:
            continue
        width, count = Counter(widths).most_common(1)[0]
        share = count / len(widths)
        if width < 2 or share < 0.9:
            continue
        key = (share, -rank, name, width)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None, None
    return best[2], best[3]


def _format_from_content(text: str) -> str | None:
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        return "jsonl"
    return None


def _delimited(delimiter: str, width: int | None, *, sniffed: bool = False) -> ReadPlan:
    fmt = "tsv" if delimiter == "tab" else "csv"
    return ReadPlan(format=fmt, delimiter=delimiter, columns=width, sniffed=sniffed)


def read_plan(
    head: bytes,
    *,
    filename: str,
    fmt: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    prefer_text: bool = False,
) -> ReadPlan:
    """Decide format and delimiter from the person's choice, the content and the name.

    An explicit ``fmt``/``delimiter`` wins; otherwise ``.txt``, ``.dat`` and files with
    no extension are sniffed (JSON, then a consistent delimiter, else plain text), and a
    ``.csv`` may turn out to use ``;`` or ``|`` or tabs. ``prefer_text`` (a language-model
    dataset) keeps a sniffed ``.txt`` as plain text: read as a table, every line's text
    after its first comma would be lost without a word.
    """
    suffix = Path(filename).suffix.lower()
    cut = len(head) >= HEAD_BYTES
    if delimiter and delimiter not in DELIMITERS:
        raise ValueError(f"unknown delimiter {delimiter!r}")
    if fmt and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if is_container(head):
        return ReadPlan(format=fmt)
    text = decode_head(head, encoding)
    if fmt in ("json", "jsonl", "parquet", "txt"):
        return ReadPlan(format=fmt, columns=1 if fmt == "txt" else None)
    if delimiter or fmt in ("csv", "tsv"):
        delimiter = delimiter or ("tab" if fmt == "tsv" else None)
        if delimiter is None:  # "csv" without a delimiter: whichever one the content uses
            sniffed, _ = sniff_delimiter(text, cut=cut)
            delimiter = sniffed if sniffed and sniffed != "tab" else "comma"
        widths = _widths(_lines(text, cut), DELIMITERS[delimiter])
        width = Counter(widths).most_common(1)[0][0] if widths else None
        return _delimited(delimiter, width)
    if suffix in (".tsv", ".tab"):
        widths = _widths(_lines(text, cut), "\t")
        width = Counter(widths).most_common(1)[0][0] if widths else None
        return _delimited("tab", width)
    if suffix == ".csv":
        sniffed, width = sniff_delimiter(text, cut=cut)
        if sniffed is None:
            return ReadPlan(format=None)  # the engine reports what is wrong with it
        return _delimited(sniffed, width, sniffed=True)
    if suffix not in SNIFFED_SUFFIXES:
        return ReadPlan(format=None)
    by_content = _format_from_content(text)
    if by_content:
        return ReadPlan(format=by_content, sniffed=True)
    sniffed, width = sniff_delimiter(text, cut=cut)
    if sniffed is not None and not prefer_text:
        return _delimited(sniffed, width, sniffed=True)
    return ReadPlan(format="txt", columns=1, sniffed=True)


def describe(plan: ReadPlan) -> str:
    """``"tab-separated text"``, for messages."""
    if plan.delimiter:
        return f"{plan.delimiter}-separated text"
    return {"txt": "plain text, one column", "json": "JSON", "jsonl": "JSON lines"}.get(
        plan.format or "", plan.format or "data"
    )


def rewrite_as_csv(src: Path, dest: Path, *, delimiter: str, encoding: str) -> Path:
    """Copy a ``;``- or ``|``-separated file as standard UTF-8 CSV, one record at a time."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))
    with (
        open(src, encoding=encoding, errors="strict", newline="") as fin,
        open(dest, "w", encoding="utf-8", newline="") as fout,
    ):
        reader = csv.reader(fin, delimiter=DELIMITERS[delimiter], strict=False)
        writer = csv.writer(fout, lineterminator="\n")
        for fields in reader:
            writer.writerow(fields)
    return dest


def readable_source(
    path: Path,
    *,
    filename: str,
    options: dict[str, Any],
    encoding: str | None,
    work: Path,
    prefer_text: bool = False,
) -> tuple[Path, str | None, str | None, ReadPlan]:
    """``(path, engine format, encoding, plan)`` to hand the engine, per :func:`read_plan`.

    A ``;``- or ``|``-separated file is rewritten as UTF-8 CSV under ``work`` first,
    because the engine reads only commas and tabs. Runs where the engine may be
    imported (the worker, the inspection subprocess), never in the web process.
    """
    plan = read_plan(
        read_head(path),
        filename=filename,
        fmt=options.get("format"),
        delimiter=options.get("delimiter"),
        encoding=encoding,
        prefer_text=prefer_text,
    )
    if not plan.needs_rewrite:
        return path, plan.engine_format, encoding, plan
    from jobs.engine.data import resolve_encoding

    enc = resolve_encoding(path, encoding)
    work.mkdir(parents=True, exist_ok=True)
    dest = rewrite_as_csv(
        path, work / "delimited.csv", delimiter=plan.delimiter or "comma", encoding=enc
    )
    return dest, "csv", "utf-8", plan
