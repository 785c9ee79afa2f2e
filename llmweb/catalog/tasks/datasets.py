"""Dataset processing on queue ``default``: the stored upload becomes Arrow splits + stats.

The task only translates: it claims the row, builds a ``ProcessConfig``, runs the engine
(imported inside the task body, so the web process never loads pandas or datasets) with
a reporter that writes progress to the row, and records the outcome through the
services. On any failure every file of the record is removed (services docstring).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from celery import shared_task

from jobs.engine.schemas import SCHEMAS
from llmweb.catalog.models import Dataset, DatasetStatus
from llmweb.catalog.services import datasets as services
from llmweb.core.running import run_guarded

log = logging.getLogger(__name__)

__all__ = ["process_dataset_task"]

# Where each engine phase starts and ends on the bar; shares measured on a 50 MB JSONL
# with bench/upload.py (reading 22%, splitting 48%, stats 8%, saving 17%).
PHASE_START = {
    "reading": 0.0,
    "validating": 0.23,
    "splitting": 0.24,
    "stats": 0.72,
    "saving": 0.8,
    "tokens": 0.97,
    "done": 1.0,
}
PHASE_END = {
    "reading": 0.23,
    "validating": 0.24,
    "splitting": 0.72,
    "stats": 0.8,
    "saving": 0.97,
    "tokens": 0.99,
    "done": 1.0,
}
TOKEN_SAMPLE = 2000


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


def _complete_mapping(dataset: Dataset, work_dir) -> dict[str, str] | None:
    """A partial mapping from the form gets the suggested columns for the slots left open."""
    from jobs.engine.data import inspect_file, suggest_mapping

    mapping = dict(dataset.mapping or {})
    wanted = SCHEMAS[dataset.schema]
    if not mapping or all(mapping.get(c) for c in wanted):
        return mapping or None
    info = inspect_file(
        dataset.upload_path, encoding=dataset.claimed_encoding or None, work_dir=work_dir
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
    for split, entry in (stats.get("splits") or {}).items():
        files = sorted((processed_dir / split).glob("data-*.arrow"))
        if not files or not entry.get("rows"):
            continue
        step = max(1, entry["rows"] // TOKEN_SAMPLE)
        texts: dict[str, list[str]] = {c: [] for c in columns}
        seen = 0
        for path in files:
            with pa.memory_map(str(path)) as source:
                for batch in pa.ipc.open_stream(source):
                    # Every step-th row of the split; only those become Python strings.
                    picks = pa.array(np.arange((-seen) % step, batch.num_rows, step))
                    for c in columns:
                        texts[c] += [v or "" for v in batch.column(c).take(picks).to_pylist()]
                    seen += batch.num_rows
        entry["tokens"] = {
            c: length_summary(
                np.asarray(
                    [len(e.ids) for e in tokenizer.encode_batch(v[:TOKEN_SAMPLE])], dtype=np.int64
                )
            )
            for c, v in texts.items()
        }
    stats["tokenizer"] = "all-MiniLM-L6-v2"


def _claim(dataset_id: int, redelivered: bool) -> Dataset | None:
    statuses = [DatasetStatus.UPLOADED] + ([DatasetStatus.PROCESSING] if redelivered else [])
    claimed = Dataset.objects.filter(pk=dataset_id, status__in=statuses).update(
        status=DatasetStatus.PROCESSING,
        progress=0.0,
        progress_message="Starting",
    )
    if not claimed:
        return None  # deleted, or a duplicate delivery of work already done
    return Dataset.objects.select_related("team").get(pk=dataset_id)


@shared_task(bind=True, name="llmweb.catalog.tasks.process_dataset", queue="default")
def process_dataset_task(self, dataset_id: int) -> str:
    """Parse, validate, split and describe an uploaded dataset; see the module docstring."""
    from jobs.engine.data import ProcessConfig, process_dataset

    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    dataset = _claim(dataset_id, redelivered)
    if dataset is None:
        return "skipped"
    reporter = RowReporter(dataset.pk, expected_rows=_expected_rows(dataset))

    def work() -> dict:
        config = ProcessConfig(
            source=dataset.upload_path,
            out_dir=dataset.processed_dir,
            schema=dataset.schema,
            encoding=dataset.claimed_encoding or None,
            mapping=_complete_mapping(dataset, dataset.storage_dir),
            split_ratios=tuple(dataset.split_ratios or services.DEFAULT_RATIOS),
            seed=dataset.seed,
            stratify=dataset.stratify,
            txt_mode=dataset.txt_mode or "lines",
            max_errors=services.MAX_ROW_ERRORS,
            work_dir=dataset.storage_dir,
        )
        result = process_dataset(config, reporter).as_dict()
        reporter.write(PHASE_START["tokens"], "Counting tokens")
        add_token_lengths(dataset.processed_dir, result["stats"])
        return result

    def cancelled() -> None:
        log.info("dataset %s was deleted while processing; stopped", dataset_id)
        dataset.delete_files()

    def failed(error: dict, traceback: str) -> None:
        services.dataset_mark_failed(dataset_id=dataset_id, error=error)

    ran = run_guarded(work, what="Processing", on_failed=failed, on_cancelled=cancelled)
    if ran.state != "succeeded":
        return ran.state
    result = ran.value
    if services.dataset_mark_ready(dataset_id=dataset_id, result=result) is None:
        dataset.delete_files()  # deleted while we worked
        return "gone"
    return "ready"
