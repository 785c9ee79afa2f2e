"""Writers of Dataset records: upload, processing outcome, delete.

Views, serializers and tasks only translate to these functions. The web process never
parses an upload: it streams the bytes into the record's folder and a task on queue
``default`` turns them into Arrow (``process_dataset_task``).

Failure policy. The issue asks that a failed upload "leaves no orphan files or
half-made records". A file refused here (size, extension, permissions) leaves neither a
row nor bytes. A file that fails processing keeps only its row, status ``failed`` with
the ``error`` (code, message and up to 20 row errors with line numbers), so the person
sees why; the uploaded file and every temporary or processed file are deleted at that
moment. A ready dataset keeps its original upload beside ``processed/`` as provenance.
A ready dataset version is immutable: there is no update service, only delete.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from jobs.engine.jsonable import jsonable
from jobs.engine.schemas import SCHEMAS
from llmweb.accounts.models import Team
from llmweb.catalog.models import Dataset, DatasetStatus, Schema
from llmweb.catalog.services.common import UploadTooLarge, create_versioned, require_write
from llmweb.core.errors import Conflict, DomainError
from llmweb.core.queue import enqueue_on_commit

log = logging.getLogger(__name__)

EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".zip")
ENCODINGS = {
    "": "Detect automatically",
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "gb18030": "GB18030 / GBK (Chinese Windows, Excel)",
    "utf-16": "UTF-16 (Notepad 'Unicode')",
}
TXT_MODES = {"lines": "One example per line", "corpus": "One corpus, cut into blocks"}
DEFAULT_RATIOS = (0.8, 0.1, 0.1)
MAX_ROW_ERRORS = 20
_CHUNK = 1 << 20


class DatasetUploadTooLarge(UploadTooLarge):
    """The data file is over the size limit (HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit, advice=" Split the file or ask an admin to raise the limit.")


class DatasetConflict(Conflict):
    """Valid request, but the dataset's state forbids it now (HTTP 409)."""


# ---------------------------------------------------------------- input parsing


def _require_write(*, user, team: Team) -> None:
    require_write(user=user, team=team, action="upload or delete datasets")


def clean_filename(name: str | None) -> str:
    """A safe file name: no folders, only [A-Za-z0-9._-], a known extension kept.

    Browsers send names like ``C:\\Users\\me\\spam ✓.csv``; only the last part survives.
    """
    raw = re.split(r"[\\/]", name or "")[-1]
    raw = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    stem, dot, ext = raw.rpartition(".")
    if not dot:
        stem, ext = raw, ""
    ext = ext.lower()
    if f".{ext}" not in EXTENSIONS:
        shown = f".{ext}" if ext else "no extension"
        raise DomainError(
            f"{name or 'The file'} has {shown}; upload one of {', '.join(EXTENSIONS)}.",
            code="bad_extension",
            param="file",
        )
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100] or "upload"
    return f"{stem}.{ext}"


def clean_name(name: str | None, *, fallback: str = "") -> str:
    """``None`` means "not given" and takes the fallback; a blank name is an error."""
    name = (fallback if name is None else name).strip()
    if not name:
        raise DomainError("Give the dataset a name.", param="name")
    if len(name) > 100:
        raise DomainError("A dataset name has at most 100 characters.", param="name")
    if any(ord(c) < 32 for c in name):
        raise DomainError("A dataset name cannot contain control characters.", param="name")
    return name


def clean_schema(schema: str | None) -> str:
    if schema not in Schema.values:
        raise DomainError(
            f"Unknown schema {schema!r}; choose one of {', '.join(Schema.values)}.", param="schema"
        )
    return schema


def parse_split_ratios(value: Any) -> tuple[float, float, float]:
    """Ratios from ``"0.8,0.1,0.1"``, ``"80,10,10"``, a JSON list or a list; default 80/10/10."""
    if value in (None, "", []):
        return DEFAULT_RATIOS
    bad = DomainError(
        "Split ratios must be three numbers for train, validation and test, "
        f"like 0.8,0.1,0.1 (got {str(value)[:60]!r}).",
        param="split_ratios",
    )
    if isinstance(value, str):
        text = value.strip()
        try:
            items = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError:
            raise bad from None
    else:
        items = value
    try:
        ratios = [float(str(x).strip()) for x in items]
    except (TypeError, ValueError):
        raise bad from None
    if len(ratios) != 3 or any(r != r or r < 0 for r in ratios):
        raise bad
    total = sum(ratios)
    if 99 <= total <= 101:  # percentages
        ratios = [r / 100 for r in ratios]
        total = sum(ratios)
    if abs(total - 1) > 1e-3:
        raise DomainError(
            f"Split ratios must add up to 1 (or 100); these add up to {total:g}.",
            param="split_ratios",
        )
    if ratios[0] <= 0:
        raise DomainError("The train split needs a ratio above 0.", param="split_ratios")
    return tuple(round(r / total, 6) for r in ratios)  # type: ignore[return-value]


def parse_mapping(value: Any, schema: str) -> dict[str, str] | None:
    """A mapping ``{canonical: source column}`` from JSON text or a dict; None = auto."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise DomainError(
                f"The mapping is not valid JSON ({e.msg} at character {e.pos}); "
                'send e.g. {"text": "sms", "label": "class"}.',
                param="mapping",
            ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | type(None)) for k, v in value.items()
    ):
        raise DomainError(
            'The mapping must be an object of column names, e.g. {"text": "sms"}.', param="mapping"
        )
    wanted = SCHEMAS[schema]
    unknown = sorted(set(value) - set(wanted))
    if unknown:
        raise DomainError(
            f"The mapping names {', '.join(unknown)}, which {schema} does not use; "
            f"it needs {', '.join(wanted)}.",
            param="mapping",
        )
    mapping = {k: v.strip() for k, v in value.items() if v and v.strip()}
    return mapping or None


def clean_encoding(encoding: str | None) -> str:
    encoding = (encoding or "").strip().lower()
    if encoding in ("auto", "detect"):
        return ""
    if encoding and encoding not in ENCODINGS and encoding not in ("gbk", "utf-16-le", "utf-16-be"):
        raise DomainError(
            f"Unknown encoding {encoding!r}; leave it empty to detect, or use one "
            "of utf-8, utf-8-sig, gb18030, gbk, utf-16.",
            param="encoding",
        )
    return encoding


# ---------------------------------------------------------------- upload


def _store(uploaded_file, target: Path, limit: int) -> int:
    """Stream (or move, when Django already spooled it to disk) the upload into ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = getattr(uploaded_file, "temporary_file_path", None)
    if temp is not None:
        src = Path(temp())
        size = src.stat().st_size
        if size > limit:
            raise DatasetUploadTooLarge(size, limit)
        try:  # same filesystem: a rename, no copy
            os.link(src, target)
            return size
        except OSError:
            pass
    written = 0
    with open(target, "wb") as out:
        for chunk in uploaded_file.chunks(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise DatasetUploadTooLarge(written, limit)
            out.write(chunk)
    return written


def dataset_upload_create(
    *,
    user,
    team: Team,
    name: str | None,
    uploaded_file,
    schema: str,
    description: str = "",
    mapping: dict[str, str] | str | None = None,
    split_ratios: Any = None,
    seed: int = 42,
    stratify: bool = True,
    encoding: str = "",
    txt_mode: str = "lines",
) -> Dataset:
    """Store an uploaded data file as a new dataset version and queue its processing.

    The size limit is checked before anything is stored when the size is known, and
    again while copying, because a declared size may lie. The row and the file are
    made in one transaction; if either fails, neither remains.

    Raises:
        PermissionDenied: a viewer.
        DomainError: bad name, schema, mapping, ratios, encoding, extension, empty file.
        DatasetUploadTooLarge: over ``LLMWEB_MAX_UPLOAD_BYTES``.
    """
    _require_write(user=user, team=team)
    if uploaded_file is None:
        raise DomainError("Choose a file to upload.", param="file")
    filename = clean_filename(getattr(uploaded_file, "name", ""))
    schema = clean_schema(schema)
    name = clean_name(name, fallback=filename.rsplit(".", 1)[0])
    if len(description or "") > 5000:
        raise DomainError("A description has at most 5,000 characters.", param="description")
    fields = {
        "schema": schema,
        "description": (description or "").strip(),
        "mapping": parse_mapping(mapping, schema),
        "split_ratios": list(parse_split_ratios(split_ratios)),
        "seed": int(seed if seed not in (None, "") else 42),
        "stratify": bool(stratify),
        "claimed_encoding": clean_encoding(encoding),
        "txt_mode": txt_mode or "lines",
    }
    if fields["txt_mode"] not in TXT_MODES:
        raise DomainError("txt_mode must be 'lines' or 'corpus'.", param="txt_mode")
    limit = int(settings.LLMWEB_MAX_UPLOAD_BYTES)
    declared = getattr(uploaded_file, "size", None)
    if declared is not None and declared > limit:
        raise DatasetUploadTooLarge(declared, limit)
    if declared == 0:
        raise DomainError(f"{filename} is empty.", param="file")

    with transaction.atomic():
        dataset = create_versioned(
            Dataset,
            team=team,
            name=name,
            original_filename=filename,
            created_by=user,
            status=DatasetStatus.UPLOADED,
            progress_message="Waiting for a worker",
            **fields,
        )
        try:
            size = _store(uploaded_file, dataset.upload_path, limit)
            if size == 0:
                raise DomainError(f"{filename} is empty.", param="file")
            dataset.size_bytes = size
            dataset.save(update_fields=["size_bytes"])
        except BaseException:
            dataset.delete_files()  # the row goes with the rolled-back transaction
            raise
        enqueue_on_commit(
            "llmweb.catalog.tasks.datasets:process_dataset_task",
            dataset.pk,
            on_error=lambda exc: dataset_mark_failed(
                dataset_id=dataset.pk,
                error={
                    "code": "queue_unavailable",
                    "message": "The task queue could not be reached, so the file was not "
                    "processed. Upload it again in a minute.",
                },
            ),
        )
    return dataset


# ---------------------------------------------------------------- processing outcome


def dataset_mark_ready(*, dataset_id: int, result: dict[str, Any]) -> Dataset | None:
    """Fill the record from ``ProcessResult.as_dict()``; None if it was deleted meanwhile."""
    with transaction.atomic():
        ds = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
        if ds is None or ds.status != DatasetStatus.PROCESSING:
            return None
        stats = dict(result.get("stats") or {})
        stats["row_errors"] = list(result.get("row_errors") or [])[:MAX_ROW_ERRORS]
        stats["source"] = {
            "columns": result.get("columns") or [],
            "has_header": result.get("has_header"),
            "member": result.get("member"),
        }
        ds.status = DatasetStatus.READY
        ds.format = (result.get("format") or "")[:16]
        ds.encoding = (result.get("encoding") or "")[:32]
        ds.mapping = result.get("mapping")
        ds.num_rows = result.get("num_rows") or {}
        ds.label_names = result.get("label_names")
        ds.stats = jsonable(stats)
        ds.warnings = list(result.get("warnings") or [])
        ds.error = None
        ds.progress = 1.0
        total = sum(ds.num_rows.values())
        ds.progress_message = f"Ready: {total:,} rows"
        ds.processed_at = timezone.now()
        ds.save()
        return ds


def dataset_mark_failed(*, dataset_id: int, error: dict[str, Any]) -> Dataset | None:
    """Keep the row with its error and delete every file it had (see module docstring)."""
    with transaction.atomic():
        ds = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
        if ds is None:
            return None
        # Files first: whoever sees "failed" (a page, a poll, a test) finds nothing left.
        ds.delete_files()
        details = [
            {"line": d.get("line"), "column": d.get("column"), "message": d.get("message")}
            for d in (error.get("details") or [])[:MAX_ROW_ERRORS]
        ]
        ds.status = DatasetStatus.FAILED
        ds.error = jsonable(
            {
                "code": error.get("code") or "error",
                "message": error.get("message") or "Processing failed.",
                "param": error.get("param"),
                "details": details,
            }
        )
        ds.progress_message = "Failed"
        ds.processed_at = timezone.now()
        ds.save(update_fields=["status", "error", "progress_message", "processed_at"])
    return ds


# ---------------------------------------------------------------- delete


def dataset_delete(*, user, dataset: Dataset) -> None:
    """Delete the record and its files; a dataset that jobs were run on stays.

    Deleting a dataset while it is processing is allowed: the task notices the row is
    gone at its next progress report, stops and removes what it wrote.
    """
    _require_write(user=user, team=dataset.team)
    folder = dataset.storage_dir
    with transaction.atomic():
        try:
            dataset.delete()
        except ProtectedError as e:
            ids = sorted(o.pk for o in e.protected_objects)[:10]
            raise DatasetConflict(
                "Jobs " + ", ".join(f"#{i}" for i in ids) + " used this dataset and keep it in "
                "their history; delete those jobs first.",
                code="dataset_in_use",
            ) from None
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
