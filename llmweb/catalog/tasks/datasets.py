"""Dataset processing on queue ``default``: the stored upload becomes Arrow splits + stats.

The task only translates: it claims the row, builds a ``ProcessConfig``, runs the engine
(imported inside the task body, so the web process never loads pandas or datasets) with
a reporter that writes progress to the row, and records the outcome through the
services. On any failure every file of the record is removed (services docstring).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from celery import shared_task

from jobs.engine.base import Cancelled
from jobs.engine.schemas import LM_TASKS, SCHEMAS
from llmweb.catalog import sniff
from llmweb.catalog.models import Dataset, DatasetStatus
from llmweb.catalog.services import datasets as services
from llmweb.catalog.services.liveness import dataset_claim, heartbeat
from llmweb.core.running import run_guarded

log = logging.getLogger(__name__)

__all__ = ["process_dataset_task"]

# Where each engine phase starts and ends on the bar; shares measured on 200 MB JSONL and
# CSV files with bench/upload.py (reading, with the statistics' per-row work beside it,
# 70%; splitting and writing 10%; stats 5%; token lengths 14%).
PHASE_START = {
    "reading": 0.0,
    "validating": 0.7,
    "splitting": 0.71,
    "stats": 0.81,
    "tokens": 0.86,
    "done": 1.0,
}
PHASE_END = {
    "reading": 0.7,
    "validating": 0.71,
    "splitting": 0.81,
    "stats": 0.86,
    "tokens": 0.99,
    "done": 1.0,
}
# Rows tokenized for the token-length summaries, over all splits together: the tokenizer
# costs ~0.2 ms a row, and 2,000 rows a split was most of a small upload's processing.
TOKEN_SAMPLE = 2000
TOKEN_SAMPLE_MIN = 250  # per non-empty split, so a 10% split's percentiles still mean something


def token_sample_sizes(rows: dict[str, int]) -> dict[str, int]:
    """Rows to sample per split: ``TOKEN_SAMPLE`` shared in proportion to the split sizes,
    at least ``TOKEN_SAMPLE_MIN`` (or all of its rows) each."""
    total = sum(rows.values())
    return {
        name: min(n, max(TOKEN_SAMPLE_MIN, round(TOKEN_SAMPLE * n / total))) if n else 0
        for name, n in rows.items()
    }


class RowReporter:
    """Writes progress to the dataset row, at most every ``interval`` seconds.

    A write that matches no row means the dataset was deleted (or settled elsewhere);
    from then on ``should_stop`` answers True and the engine stops cleanly.
    """

    def __init__(self, dataset_id: int, *, expected_rows: int | None, interval: float = 0.5):
        self.dataset_id = dataset_id
        self.expected_rows = expected_rows
        self.interval = interval
        self.stopped = False
        self._last = 0.0
        self._checked = time.monotonic()
        self.writes = 0

    def fraction(self, phase: str, data: dict[str, Any]) -> float:
        start, end = PHASE_START.get(phase, 0.0), PHASE_END.get(phase, 0.0)
        rows = data.get("rows")
        if phase == "reading" and rows and self.expected_rows:
            # The row count is unknown until the end; ease towards the phase's end.
            return start + (end - start) * min(0.98, rows / self.expected_rows)
        if phase == "reading" and rows:
            return start + (end - start) * (1 - math.exp(-rows / 200_000))
        return start

    def emit(self, kind: str, **data: Any) -> None:
        if kind != "progress" or self.stopped:
            return
        now = time.monotonic()
        phase = data.get("phase") or ""
        if now - self._last < self.interval and phase != "done":
            return
        self._last = now
        self.write(self.fraction(phase, data), str(data.get("message") or phase)[:200])

    def write(self, progress: float, message: str) -> None:
        self.writes += 1
        updated = Dataset.objects.filter(
            pk=self.dataset_id, status=DatasetStatus.PROCESSING
        ).update(progress=round(progress, 4), progress_message=message)
        if not updated:
            self.stopped = True

    def should_stop(self) -> bool:
        """Also asked between batches and phases that emit nothing: a delete is noticed
        within ``interval`` wherever the engine is, not only at its next progress write."""
        now = time.monotonic()
        if not self.stopped and now - self._checked >= self.interval:
            self._checked = now
            self.stopped = not Dataset.objects.filter(
                pk=self.dataset_id, status=DatasetStatus.PROCESSING
            ).exists()
        return self.stopped


def _expected_rows(dataset: Dataset) -> int | None:
    """Rows estimated from the newlines in the first MiB of a text upload (None: unknown)."""
    if dataset.format == "parquet" or dataset.upload_path.suffix.lower() in (".zip", ".parquet"):
        return None
    try:
        with open(dataset.upload_path, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return None
    lines = head.count(b"\n")
    if not head or not lines:
        return None
    return max(1, int(dataset.size_bytes * lines / len(head)))


def _complete_mapping(
    dataset: Dataset, work_dir, *, source: Path, fmt: str | None, encoding: str | None
) -> dict[str, str] | None:
    """A partial mapping from the form gets the suggested columns for the slots left open."""
    from jobs.engine.data import inspect_file, suggest_mapping

    mapping = dict(dataset.mapping or {})
    wanted = SCHEMAS[dataset.schema]
    if not mapping or all(mapping.get(c) for c in wanted):
        return mapping or None
    info = inspect_file(
        source,
        fmt=fmt,
        encoding=encoding,
        has_header=(dataset.read_options or {}).get("has_header"),
        work_dir=work_dir,
    )
    suggested = suggest_mapping(dataset.schema, info.columns, info.sample)
    for canon in wanted:
        col = suggested.get(canon)
        if not mapping.get(canon) and col and col not in mapping.values():
            mapping[canon] = col
    return mapping


def add_token_lengths(processed_dir, stats: dict[str, Any]) -> None:
    """Token-length summaries of each split with the bundled tokenizer (a sample of rows).

    The engine measures characters; people size ``max_length`` in tokens. Only the
    ``tokenizers`` library is used (no torch). Skipped quietly if it is not installed.
    """
    import numpy as np
    import pyarrow as pa
    from tokenizers import Tokenizer

    from jobs.engine.data.stats import length_summary, text_columns
    from jobs.engine.models.info import bundled_model_path

    try:
        tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - the report works without token counts
        log.info("no bundled tokenizer; token lengths skipped")
        return
    # The shipped tokenizer.json pads and truncates to 128; lengths must be the real ones.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    columns = text_columns(stats.get("schema") or "causal-lm")
    splits = stats.get("splits") or {}
    samples = token_sample_sizes({name: entry.get("rows") or 0 for name, entry in splits.items()})
    for split, entry in splits.items():
        files = sorted((processed_dir / split).glob("data-*.arrow"))
        if not files or not entry.get("rows"):
            continue
        # Evenly spaced rows over the whole split (stored in file order).
        wanted = np.unique(np.linspace(0, entry["rows"] - 1, samples[split]).round())
        wanted = wanted.astype(np.int64)
        texts: dict[str, list[str]] = {c: [] for c in columns}
        seen = 0
        for path in files:
            # Plain reads, not a memory map: the sampled rows are spread over the whole
            # file, and mapped pages would all stay resident in the worker.
            with pa.OSFile(str(path)) as source:
                for batch in pa.ipc.open_stream(source):
                    # Only the sampled rows become Python strings.
                    inside = wanted[(wanted >= seen) & (wanted < seen + batch.num_rows)]
                    picks = pa.array(inside - seen)
                    for c in columns:
                        texts[c] += [v or "" for v in batch.column(c).take(picks).to_pylist()]
                    seen += batch.num_rows
        entry["tokens"] = {
            c: length_summary(
                np.asarray([len(e.ids) for e in tokenizer.encode_batch(v)], dtype=np.int64)
            )
            for c, v in texts.items()
        }
    stats["tokenizer"] = "all-MiniLM-L6-v2"


def _claim(dataset_id: int) -> Dataset | None:
    if not dataset_claim(dataset_id=dataset_id):
        return None  # deleted, held by a live worker, or a duplicate delivery of work done
    dataset = Dataset.objects.select_related("team").get(pk=dataset_id)
    # A try that was lost mid-way (killed worker) may have left part of the output and its
    # dot-named staging folders; we hold the claim, so nobody else is using them.
    shutil.rmtree(dataset.processed_dir, ignore_errors=True)
    for entry in dataset.storage_dir.glob(".*"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return dataset


@shared_task(bind=True, name="llmweb.catalog.tasks.process_dataset", queue="default")
def process_dataset_task(self, dataset_id: int) -> str:
    """Parse, validate, split and describe an uploaded dataset; see the module docstring."""
    from jobs.engine.data import ProcessConfig, process_dataset

    dataset = _claim(dataset_id)
    if dataset is None:
        return "skipped"
    reporter = RowReporter(dataset.pk, expected_rows=_expected_rows(dataset))
    work_dir = dataset.storage_dir / "work"

    def work() -> dict:
        source, fmt, encoding, plan = sniff.readable_source(
            dataset.upload_path,
            filename=dataset.original_filename,
            options=dataset.read_options or {},
            encoding=dataset.claimed_encoding or None,
            work=work_dir,
            prefer_text=dataset.schema in LM_TASKS,
        )
        config = ProcessConfig(
            source=source,
            out_dir=dataset.processed_dir,
            schema=dataset.schema,
            fmt=fmt,
            encoding=encoding,
            has_header=(dataset.read_options or {}).get("has_header"),
            mapping=_complete_mapping(
                dataset, dataset.storage_dir, source=source, fmt=fmt, encoding=encoding
            ),
            split_ratios=tuple(dataset.split_ratios or services.DEFAULT_RATIOS),
            seed=dataset.seed,
            stratify=dataset.stratify,
            txt_mode=dataset.txt_mode or "lines",
            max_errors=services.MAX_ROW_ERRORS,
            work_dir=dataset.storage_dir,
        )
        result = process_dataset(config, reporter).as_dict()
        stop_if_deleted()  # its last write ("done") may have found the row gone
        shutil.rmtree(work_dir, ignore_errors=True)
        result["delimiter"] = plan.delimiter or {"tsv": "tab", "csv": "comma"}.get(
            result.get("format") or ""
        )
        reporter.write(PHASE_START["tokens"], "Counting tokens")
        add_token_lengths(dataset.processed_dir, result["stats"])
        stop_if_deleted()
        return result

    def stop_if_deleted() -> None:
        if reporter.should_stop():
            raise Cancelled("deleted while processing")

    def cancelled() -> None:
        log.info("dataset %s was deleted while processing; stopped", dataset_id)
        dataset.delete_files()

    def gone() -> bool:
        return not Dataset.objects.filter(pk=dataset_id).exists()

    def failed(error: dict, traceback: str) -> None:
        # A delete removes the folder the engine is writing into; the error that follows
        # (a missing file) is the delete's doing, not a fault of the data.
        if gone():
            cancelled()
            return
        services.dataset_mark_failed(dataset_id=dataset_id, error=error)

    with heartbeat(dataset):
        ran = run_guarded(work, what="Processing", on_failed=failed, on_cancelled=cancelled)
    if ran.state == "failed" and gone():
        return "cancelled"
    if ran.state != "succeeded":
        return ran.state
    result = ran.value
    if services.dataset_mark_ready(dataset_id=dataset_id, result=result) is None:
        dataset.delete_files()  # deleted while we worked
        return "gone"
    return "ready"
