"""From an uploaded path to a readable :class:`Source`: unpack, detect, transcode, inspect."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine.archive import archive_kind, safe_extract
from jobs.engine.base import EngineError
from jobs.engine.data.encoding import resolve_encoding, transcode_to_utf8
from jobs.engine.data.readers import EXTENSIONS, Source, detect_format, iter_rows, prepare
from jobs.engine.jsonable import jsonable

_NOT_DATA = re.compile(r"^(readme|license|licence|notice|about|changelog)\b|_about\.", re.I)


@dataclass
class FileInfo:
    """What an upload looks like, for the mapping form and the API."""

    format: str
    encoding: str | None
    columns: list[str]
    sample: list[dict[str, Any]]
    has_header: bool | None
    member: str | None = None
    row_errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pick_member(files: list[Path], root: Path, archive: Path) -> Path:
    if any(
        f.relative_to(root).as_posix() in ("xl/workbook.xml", "word/document.xml") for f in files
    ):
        raise EngineError(
            f"{archive.name} is an Office document, not a data file; save it as CSV (UTF-8).",
            code="unsupported_format",
        )
    data = [f for f in files if f.suffix.lower() in EXTENSIONS]
    if len(data) > 1:
        data = [f for f in data if not _NOT_DATA.search(f.name)] or data
    names = ", ".join(str(f.relative_to(root)) for f in (data or files)) or "nothing"
    if not data:
        raise EngineError(
            f"{archive.name} holds no data file (.csv, .tsv, .json, .jsonl, .parquet, .txt); "
            f"it holds {names}.",
            code="archive_no_data",
        )
    if len(data) > 1:
        raise EngineError(
            f"{archive.name} holds several data files ({names}); upload one file per dataset.",
            code="archive_several_files",
        )
    return data[0]


def _check_not_empty(path: Path, encoding: str) -> None:
    """Whitespace-only counts as empty; only a short file is read to decide."""
    window = 64 * 1024
    with open(path, encoding=encoding, errors="replace") as f:
        head = f.read(window)
    if not head.strip("\ufeff \t\r\n\x00") and len(head) < window:
        raise EngineError(f"{path.name} is empty.", code="empty_file")


def open_source(
    path: Path,
    *,
    work: Path,
    fmt: str | None = None,
    encoding: str | None = None,
    has_header: bool | None = None,
    max_chars: int = 1 << 20,
    max_extract_bytes: int = 2 << 30,
    transcode: bool = True,
    extract: Callable[..., list[Path]] = safe_extract,
) -> tuple[Source, str | None]:
    """Resolve an upload into a prepared source plus the archive member it came from.

    With ``transcode`` a non-UTF-8 file is rewritten as UTF-8 under ``work`` first.
    """
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path.name} was not found.", code="missing_file")
    member = None
    if path.stat().st_size and archive_kind(path) is not None:
        root = work / "extracted"
        files = extract(path, root, max_total_bytes=max_extract_bytes)
        chosen = _pick_member(files, root, path)
        member = str(chosen.relative_to(root))
        path = chosen
    if path.stat().st_size == 0:
        raise EngineError(f"{path.name} is empty.", code="empty_file")
    with open(path, "rb") as f:
        is_parquet = f.read(4) == b"PAR1"
    ext_parquet = fmt is None and path.suffix.lower() in (".parquet", ".pq")
    if fmt == "parquet" or ext_parquet or is_parquet and fmt is None:
        if not is_parquet:
            raise EngineError(f"{path.name} is not a Parquet file.", code="invalid_parquet")
        return prepare(Source(path, "parquet", None), max_chars), member
    enc = resolve_encoding(path, encoding)
    _check_not_empty(path, enc)
    fmt = fmt or detect_format(path, enc)
    src = Source(path, fmt, enc, has_header=has_header, encoding_label=enc)
    if transcode and enc != "utf-8":
        fd, name = tempfile.mkstemp(prefix="utf8-", suffix=path.suffix, dir=work)
        os.close(fd)
        src.path = transcode_to_utf8(path, enc, name)
        src.encoding = "utf-8"
    return prepare(src, max_chars), member


def sample_rows(src: Source, max_chars: int, n: int) -> list[dict[str, Any]]:
    """The first ``n`` readable rows (row errors skipped)."""
    out: list[dict[str, Any]] = []
    rows = iter_rows(src, limit=max_chars)
    try:
        for _, row, _ in rows:
            if row is not None:
                out.append(row)
                if len(out) >= n:
                    break
    finally:
        rows.close()
    return out


def inspect_file(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    sample_rows: int = 20,
    has_header: bool | None = None,
    max_field_bytes: int = 1 << 20,
    max_extract_bytes: int = 2 << 30,
    work_dir: str | os.PathLike[str] | None = None,
) -> FileInfo:
    """Detect format, encoding, header and columns, and read the first rows.

    Cheap: only archives are unpacked (into a temporary folder, removed afterwards);
    other files are read from their start in their own encoding.
    """
    with tempfile.TemporaryDirectory(prefix="inspect-", dir=work_dir) as tmp:
        src, member = open_source(
            Path(path),
            work=Path(tmp),
            fmt=fmt,
            encoding=encoding,
            has_header=has_header,
            max_chars=max_field_bytes,
            max_extract_bytes=max_extract_bytes,
            transcode=False,
        )
        rows: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        it = iter_rows(src, limit=max_field_bytes)
        try:
            for line, row, error in it:
                if row is None:
                    errors.append({"line": line, "column": None, "message": error})
                else:
                    rows.append(jsonable(row))
                if len(rows) >= sample_rows or len(errors) >= sample_rows:
                    break
        finally:
            it.close()
    return FileInfo(
        format=src.format,
        encoding=src.encoding_label if src.format != "parquet" else None,
        columns=src.columns,
        sample=rows,
        has_header=src.has_header,
        member=member,
        row_errors=errors,
    )
