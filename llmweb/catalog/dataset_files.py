"""Reads of a dataset's files for the web process: preview pages, downloads, inspection.

Processed splits are the Arrow files ``DatasetDict.save_to_disk`` wrote. They are read
here with pyarrow over memory maps (no ``datasets`` import, no cache files written next
to an immutable dataset), a batch at a time, so a page or a download never holds a
split in memory. Inspecting a fresh upload needs the engine (pandas, pyarrow), which
would double the web process's memory for good, so it runs in a short-lived
subprocess with a memory cap instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from jobs.engine.schemas import TEXT_COLUMNS
from llmweb.catalog.models import Dataset
from llmweb.core.errors import DomainError

SPLITS = ("train", "validation", "test")
PAGE_SIZE = 50
BATCH = 2000
# Any schema's text columns: a search looks in whichever the split has.
SEARCHED = frozenset(c for cols in TEXT_COLUMNS.values() for c in cols)
INSPECT_TIMEOUT = 60
# Address space, not RSS: numpy and pyarrow reserve far more than they touch.
INSPECT_ADDRESS_SPACE = 4 << 30


class PreviewError(DomainError):
    """A split that cannot be shown: unknown (400) or not there (409)."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400):
        super().__init__(message, code="not_available", param=param, http_status=status)


def clean_split(split: str | None) -> str:
    split = split or "train"
    if split not in SPLITS:
        raise PreviewError(
            f"Unknown split {split!r}; use train, validation or test.", param="split"
        )
    return split


def split_files(dataset: Dataset, split: str) -> list[Path]:
    """The Arrow shards of one split, in order; PreviewError if the dataset has none."""
    if dataset.status != "ready":
        raise PreviewError(
            f"{dataset} is {dataset.status}; only ready datasets have rows to show.", status=409
        )
    folder = dataset.processed_dir / clean_split(split)
    state = folder / "state.json"
    try:
        names = [f["filename"] for f in json.loads(state.read_text())["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        names = sorted(p.name for p in folder.glob("data-*.arrow"))
    files = [folder / n for n in names if "/" not in n and (folder / n).is_file()]
    if not files:
        raise PreviewError(f"The {split} split of {dataset} is missing on disk.", status=409)
    return files


def _batches(files: list[Path]) -> Iterator[Any]:
    import pyarrow as pa

    for path in files:
        with pa.memory_map(str(path)) as source:
            yield from pa.ipc.open_stream(source)


def _rows(batch, label_names: list[str] | None) -> list[dict[str, Any]]:
    rows = batch.to_pylist()
    if label_names:
        for row in rows:
            if isinstance(row.get("label"), int) and 0 <= row["label"] < len(label_names):
                row["label"] = label_names[row["label"]]
    return rows


def _matches(batch, q: str):
    import pyarrow.compute as pc

    hit = None
    for name in batch.schema.names:
        if name in SEARCHED:
            m = pc.match_substring(batch.column(name), q, ignore_case=True)
            hit = m if hit is None else pc.or_(hit, m)
    return hit


def rows_page(dataset: Dataset, *, split: str, page: int = 1, q: str = "") -> dict[str, Any]:
    """One page of a split (50 rows), optionally only rows whose text contains ``q``.

    Each row carries ``_row``, its position in the split. Total matches are counted by
    scanning every batch, so ``num_pages`` is exact.
    """
    import pyarrow.compute as pc

    split = clean_split(split)
    files = split_files(dataset, split)
    page = max(1, int(page))
    start, end = (page - 1) * PAGE_SIZE, page * PAGE_SIZE
    q = (q or "").strip()[:200]
    out: list[dict[str, Any]] = []
    total = offset = 0
    columns: list[str] = []
    for batch in _batches(files):
        columns = batch.schema.names
        positions = None
        if q:
            hit = _matches(batch, q)
            mask = hit.fill_null(False) if hit is not None else None
            if mask is None:
                offset += batch.num_rows
                continue
            positions = pc.indices_nonzero(mask).to_pylist()
            count = len(positions)
        else:
            count = batch.num_rows
        lo, hi = max(start - total, 0), min(end - total, count)
        if lo < hi:
            idx = positions[lo:hi] if positions is not None else list(range(lo, hi))
            taken = batch.take(idx) if positions is not None else batch.slice(lo, hi - lo)
            for i, row in zip(idx, _rows(taken, dataset.label_names), strict=True):
                out.append({"_row": offset + i, **row})
        total += count
        offset += batch.num_rows
    return {
        "split": split,
        "q": q,
        "page": page,
        "page_size": PAGE_SIZE,
        "count": total,
        "num_pages": max(1, -(-total // PAGE_SIZE)),
        "columns": columns,
        "results": out,
    }


def iter_jsonl(dataset: Dataset, split: str) -> Iterator[bytes]:
    """A split as JSON lines (labels as their names), one batch in memory at a time.

    The files are found now (PreviewError before the response starts), read lazily.
    """
    files = split_files(dataset, split)
    names = dataset.label_names

    def lines() -> Iterator[bytes]:
        for batch in _batches(files):
            rows = [json.dumps(r, ensure_ascii=False) for r in _rows(batch, names)]
            if rows:
                yield ("\n".join(rows) + "\n").encode("utf-8")

    return lines()


def parquet_file(dataset: Dataset, split: str):
    """A split as a Parquet file: an open, already-unlinked temp file (nothing to clean up).

    The file is written in the storage folder's temp area batch by batch, then its name
    is removed while the handle stays open, so a dropped download leaves no file behind.
    """
    import pyarrow.parquet as pq

    files = split_files(dataset, split)
    tmp_dir = Path(settings.STORAGE_DIR) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".parquet", dir=tmp_dir)
    handle = os.fdopen(fd, "w+b")
    try:
        writer = None
        for batch in _batches(files):
            writer = writer or pq.ParquetWriter(handle, batch.schema)
            writer.write_batch(batch)
        if writer is not None:
            writer.close()
        handle.flush()
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    finally:
        os.unlink(name)
    return handle


# ---------------------------------------------------------------- inspection

_INSPECT = """
import json, resource, sys
cap = int(sys.argv[5])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from pathlib import Path
from jobs.engine.base import EngineError
from jobs.engine.data import SCHEMAS, inspect_file, suggest_mapping
from llmweb.catalog.sniff import readable_source
path, encoding, tmp = Path(sys.argv[1]), sys.argv[2] or None, Path(sys.argv[3])
options = json.loads(sys.argv[6])
try:
    source, fmt, enc, plan = readable_source(
        path, filename=path.name, options=options, encoding=encoding, work=tmp,
        prefer_text=options.get("schema") in ("causal-lm", "masked-lm"),
    )
    info = inspect_file(source, fmt=fmt, encoding=enc, sample_rows=20, work_dir=tmp,
                        has_header=options.get("has_header"),
                        max_extract_bytes=int(sys.argv[4]))
except EngineError as e:
    print(json.dumps({"error": e.as_dict()}))
    sys.exit(0)
out = info.as_dict()
out["delimiter"] = plan.delimiter
out["sniffed"] = plan.sniffed
if source != path:  # rewritten as UTF-8 CSV; report the file's own encoding and delimiter
    out["encoding"] = encoding or None
out["suggested_mapping"] = {s: suggest_mapping(s, info.columns, info.sample) for s in SCHEMAS}
print(json.dumps(out, default=str))
"""


def trim_partial(path: Path) -> None:
    """Cut a file that is only the head of an upload back to its last whole line.

    The browser sends the first MiB of a text file to be inspected; a cut multi-byte
    character or half line at the end would look like a broken file.
    """
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
        cut = tail.rfind(b"\n")
        if cut < 0:
            return
        if tail[cut + 1 : cut + 2] == b"\x00":  # UTF-16-LE newline is 0A 00
            cut += 1
        f.truncate(size - len(tail) + cut + 1)


def inspect_upload(
    path: Path, *, encoding: str = "", options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Format, encoding, delimiter, columns, sample rows and a suggested mapping per schema.

    ``options`` are the person's read overrides (``services.datasets.parse_read_options``);
    the file is read the way the worker will read it. Returns ``{"error": {...}}`` for a
    file that is refused (the API answers 400).
    """
    from llmweb.catalog import sniff

    reason = sniff.binary_reason(sniff.read_head(path), path.name)
    if reason:
        return {"error": {"code": "binary_file", "message": reason, "param": "file"}}
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(root),
        "HF_HUB_OFFLINE": "1",
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only a fallback for libraries
    }
    with tempfile.TemporaryDirectory(prefix="inspect-", dir=path.parent) as tmp:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _INSPECT,
                str(path),
                encoding or "",
                tmp,
                str(256 << 20),
                str(INSPECT_ADDRESS_SPACE),
                json.dumps(options or {}),
            ],
            capture_output=True,
            text=True,
            timeout=INSPECT_TIMEOUT,
            env=env,
            cwd=root,
        )
    if proc.returncode != 0:
        return {
            "error": {
                "code": "inspect_failed",
                "message": "The file could not be read to suggest columns; it may be corrupt "
                "or too large to preview. You can still upload it.",
            }
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])
