"""Writers of Dataset records: upload, processing outcome, clean versions, delete.

Past ~400 lines on purpose: the upload refusals (size, sniffing, mapping, encodings) and
the failure policy below must be read together, and every write to a Dataset row lives
here so that policy holds everywhere.

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
from jobs.engine.schemas import LM_TASKS, SCHEMAS
from llmweb.accounts.audit import audit_record
from llmweb.accounts.models import Team
from llmweb.catalog import sniff
from llmweb.catalog.models import Dataset, DatasetStatus, Schema
from llmweb.catalog.selectors import job_refs, jobs_using
from llmweb.catalog.services.common import (
    UploadTooLarge,
    create_versioned,
    delete_finished_jobs,
    require_write,
)
from llmweb.core.errors import Conflict, DomainError
from llmweb.core.queue import enqueue_on_commit

log = logging.getLogger(__name__)

EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".dat", ".zip")
FORMATS = {
    "": "Detect from the content",
    "csv": "Delimited text (CSV and the like)",
    "tsv": "Tab-separated (TSV)",
    "json": "JSON array of objects",
    "jsonl": "JSON lines",
    "parquet": "Parquet",
    "txt": "Plain text",
}
DELIMITER_CHOICES = {
    "": "Detect",
    "tab": "Tab",
    "comma": "Comma ,",
    "semicolon": "Semicolon ;",
    "pipe": "Pipe |",
}
HEADER_CHOICES = {"": "Detect", "yes": "First row names the columns", "no": "No header row"}
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
    A name with no extension is kept as it is: its content decides how it is read.
    """
    raw = re.split(r"[\\/]", name or "")[-1]
    raw = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    stem, dot, ext = raw.rpartition(".")
    if not dot or not stem:
        stem, ext = raw.lstrip("."), ""
    ext = ext.lower()
    if not ext:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100] or "upload"
    if f".{ext}" not in EXTENSIONS:
        raise DomainError(
            f"{name or 'The file'} has .{ext}; upload one of {', '.join(EXTENSIONS)} "
            "(or a file with no extension).",
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


def parse_read_options(
    *, fmt: str | None = None, delimiter: str | None = None, has_header: Any = None
) -> dict[str, Any]:
    """The person's overrides of how the file is read; empty values mean "detect".

    ``has_header`` accepts true/false, yes/no, 1/0 and ""/None/"auto" (detect).
    """
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise DomainError(
            f"Unknown format {fmt!r}; use one of {', '.join(f for f in FORMATS if f)}.",
            param="format",
        )
    delimiter = (delimiter or "").strip().lower()
    delimiter = {"\t": "tab", "\\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(
        delimiter, delimiter
    )
    if delimiter not in DELIMITER_CHOICES:
        raise DomainError(
            f"Unknown delimiter {delimiter!r}; use tab, comma, semicolon or pipe "
            "(or leave it empty to detect).",
            param="delimiter",
        )
    if delimiter and fmt not in ("", "csv", "tsv"):
        raise DomainError(f"A {fmt} file has no delimiter.", param="delimiter")
    if delimiter and fmt == "tsv" and delimiter != "tab":
        raise DomainError("A TSV file is tab-separated; choose format csv.", param="delimiter")
    header = str(has_header).strip().lower() if has_header is not None else ""
    if header in ("", "auto", "detect", "none"):
        header_value = None
    elif header in ("true", "yes", "1", "on"):
        header_value = True
    elif header in ("false", "no", "0", "off"):
        header_value = False
    else:
        raise DomainError("has_header is true, false or empty (detect).", param="has_header")
    out: dict[str, Any] = {}
    if fmt:
        out["format"] = fmt
    if delimiter:
        out["delimiter"] = delimiter
    if header_value is not None:
        out["has_header"] = header_value
    return out


def upload_read_plan(
    path: Path, *, filename: str, options: dict[str, Any], schema: str
) -> sniff.ReadPlan:
    """How the stored upload will be read; DomainError for a file that is not data.

    The same decision the worker makes (``catalog.tasks.datasets``), from the first
    64 KiB, so the answer is instant and the web process never loads pandas.
    """
    head = sniff.read_head(path)
    reason = sniff.binary_reason(head, filename)
    if reason:
        raise DomainError(reason, code="binary_file", param="file")
    return sniff.read_plan(
        head,
        filename=filename,
        fmt=options.get("format"),
        delimiter=options.get("delimiter"),
        prefer_text=schema in LM_TASKS,
    )


def check_plan_fits_schema(plan: sniff.ReadPlan, *, schema: str, filename: str) -> None:
    """Refuse now what processing would refuse later: too few columns for the schema."""
    wanted = SCHEMAS[schema]
    if plan.columns is None or plan.columns >= len(wanted):
        return
    how = sniff.describe(plan)
    hint = (
        "If the file is separated by another character, choose its delimiter; "
        if plan.format != "txt"
        else "If its columns are separated by a tab, comma, semicolon or |, choose that "
        "delimiter; for plain text choose causal-lm or masked-lm; "
    )
    raise DomainError(
        f"{filename} reads as {how} with {plan.columns} column"
        f"{'s' if plan.columns != 1 else ''}, but {schema} needs {len(wanted)} "
        f"({', '.join(wanted)}). {hint}nothing was stored.",
        code="too_few_columns",
        param="file",
    )


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
    fmt: str | None = None,
    delimiter: str | None = None,
    has_header: Any = None,
) -> Dataset:
    """Store an uploaded data file as a new dataset version and queue its processing.

    The size limit is checked before anything is stored when the size is known, and
    again while copying, because a declared size may lie. The row and the file are
    made in one transaction; if either fails, neither remains. The head of the file is
    read before commit: binary data, or a file whose columns cannot fill the schema,
    is refused here instead of becoming a failed record.

    Raises:
        PermissionDenied: a viewer.
        DomainError: bad name, schema, mapping, ratios, encoding, extension, empty file,
            binary file, read options, too few columns for the schema.
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
        "read_options": parse_read_options(fmt=fmt, delimiter=delimiter, has_header=has_header),
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
            plan = upload_read_plan(
                dataset.upload_path,
                filename=filename,
                options=fields["read_options"],
                schema=schema,
            )
            check_plan_fits_schema(plan, schema=schema, filename=filename)
            dataset.size_bytes = size
            # The reaper's "never claimed within N minutes" counts from here (liveness.py).
            dataset.queued_at = timezone.now()
            dataset.save(update_fields=["size_bytes", "queued_at"])
        except BaseException:
            dataset.delete_files()  # the row goes with the rolled-back transaction
            raise
        audit_record(
            actor=user,
            team=team,
            action="dataset.upload",
            target=dataset,
            details={"filename": filename, "bytes": size, "schema": schema},
        )
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


# ---------------------------------------------------------------- clean version


def dataset_clean_version_create(*, user, dataset: Dataset) -> Dataset:
    """A new version of a ready dataset without what its quality report flags.

    Exact duplicate rows are dropped (the first one stays, train first) and validation
    and test rows whose input also appears in train are removed, so evaluation measures
    unseen data. The splits are kept as they are (no re-split). A worker writes the new
    version (``clean_dataset_task``); the record names its source (``derived_from``) and
    says what was removed (``lineage_note``).

    Raises:
        PermissionDenied: a viewer.
        DatasetConflict: the dataset is not ready.
    """
    _require_write(user=user, team=dataset.team)
    if dataset.status != DatasetStatus.READY:
        raise DatasetConflict(
            f"{dataset} is {dataset.status}; only a ready dataset can be cleaned.",
            code="dataset_not_ready",
        )
    with transaction.atomic():
        clean = create_versioned(
            Dataset,
            team=dataset.team,
            name=dataset.name,
            description=dataset.description,
            schema=dataset.schema,
            original_filename=dataset.original_filename,
            size_bytes=0,
            claimed_encoding=dataset.claimed_encoding,
            mapping=dataset.mapping,
            split_ratios=dataset.split_ratios,
            seed=dataset.seed,
            stratify=dataset.stratify,
            txt_mode=dataset.txt_mode,
            read_options=dataset.read_options,
            derived_from=dataset,
            lineage_note=f"Clean version of {dataset}: being made.",
            created_by=user,
            status=DatasetStatus.UPLOADED,
            progress_message="Waiting for a worker",
        )
        audit_record(
            actor=user,
            team=dataset.team,
            action="dataset.clean",
            target=clean,
            details={"source": dataset.pk},
        )
        enqueue_on_commit(
            "llmweb.catalog.tasks.cleaning:clean_dataset_task",
            clean.pk,
            on_error=lambda exc: dataset_mark_failed(
                dataset_id=clean.pk,
                error={
                    "code": "queue_unavailable",
                    "message": "The task queue could not be reached, so the clean version "
                    "was not made. Try again in a minute.",
                },
            ),
        )
    return clean


# ---------------------------------------------------------------- generated version


def dataset_register_generated(
    *, job, source: Dataset, model, folder: str | Path, info: dict[str, Any]
) -> Dataset:
    """A ready new version of ``source`` holding ``model``'s outputs ("generated by" it).

    Called by a job's finish step (sequence-level distillation) on the worker, where the
    engine wrote ``folder`` (processed splits, canonical columns) and ``info`` (num_rows,
    stats, warnings, generation settings). The folder is moved, not copied. Record, move
    and "ready" happen in one transaction, so nobody (the reaper included) ever sees a
    half-made version. Redelivery-safe: the job's version is found by
    ``stats.generation.job`` and returned.
    """
    found = Dataset.objects.filter(
        team=job.team, generated_by=model, stats__generation__job=job.pk
    ).first()
    if found is not None and found.status == DatasetStatus.READY:
        return found
    if found is not None:
        found.delete_files()
        found.delete()
    generation = {**(info.get("generation") or {}), "job": job.pk, "model": model.pk}
    note = (
        f"Generated by model {model.name} v{model.version} (job #{job.pk}, "
        f"{generation.get('decoding', 'greedy')}): train holds its outputs for the inputs "
        f"of {source}; validation and test keep the references."
    )
    with transaction.atomic():
        ds = create_versioned(
            Dataset,
            team=job.team,
            name=source.name,
            description=source.description,
            schema=source.schema,
            original_filename=f"generated by {model.name} v{model.version}"[:255],
            split_ratios=source.split_ratios,
            seed=source.seed,
            derived_from=source,
            generated_by=model,
            lineage_note=note,
            stats={"generation": generation},
            created_by=job.created_by,
            status=DatasetStatus.PROCESSING,
        )
        ds.processed_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(ds.processed_dir))
        (ds.processed_dir / "generation.json").unlink(missing_ok=True)
        ready = dataset_mark_ready(
            dataset_id=ds.pk,
            result={
                "format": "arrow",
                "encoding": "utf-8",
                "num_rows": info.get("num_rows") or {},
                "stats": {**(info.get("stats") or {}), "generation": generation},
                "warnings": info.get("warnings") or [],
                "columns": list(SCHEMAS[source.schema]),
                "lineage_note": note,
            },
        )
        assert ready is not None  # created above in this transaction
    return ready


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
            "delimiter": result.get("delimiter"),
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
        if result.get("lineage_note"):
            ds.lineage_note = str(result["lineage_note"])[:2000]
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


def dataset_delete(*, user, dataset: Dataset, delete_jobs: bool = False) -> None:
    """Delete the record and its files; with ``delete_jobs`` the finished jobs that used
    it go first (their events and work files too; the models they made stay).

    Deleting a dataset while it is processing is allowed: the task notices the row is
    gone at its next progress report, stops and removes what it wrote.

    Raises:
        DatasetConflict: jobs used the dataset and ``delete_jobs`` is off (the error's
            ``jobs`` lists them), or one of them has not finished.
    """
    _require_write(user=user, team=dataset.team)
    folder = dataset.storage_dir
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        used_by = list(jobs_using(dataset=dataset))
        if used_by and not delete_jobs:
            ids = ", ".join(f"#{j.pk}" for j in used_by[:10])
            raise DatasetConflict(
                f"{len(used_by)} job{'s' if len(used_by) != 1 else ''} ({ids}) used this "
                "dataset and keep it in their history. Delete those jobs with it "
                "(delete_jobs=true), or keep the dataset.",
                code="dataset_in_use",
                jobs=job_refs(used_by),
            )
        delete_finished_jobs(user=user, jobs=used_by, conflict=DatasetConflict)
        audit_record(
            actor=user,
            team=dataset.team,
            action="dataset.delete",
            target=dataset,
            details={"jobs_deleted": [j.pk for j in used_by]} if used_by else None,
        )
        try:
            dataset.delete()
        except ProtectedError as e:  # a job started a moment ago
            ids = sorted(o.pk for o in e.protected_objects)[:10]
            raise DatasetConflict(
                "Jobs " + ", ".join(f"#{i}" for i in ids) + " use this dataset now.",
                code="dataset_in_use",
            ) from None
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
