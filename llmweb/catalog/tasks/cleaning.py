"""The clean version of a dataset, on queue ``default``: its source's processed splits
without exact duplicates and without evaluation rows whose input is also in train.

Shares the claim, the progress reporter and the token-length summaries with processing
(:mod:`llmweb.catalog.tasks.datasets`); see ``services.datasets.dataset_clean_version_create``.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from llmweb.catalog.models import Dataset, DatasetStatus
from llmweb.catalog.services import datasets as services
from llmweb.catalog.services.liveness import heartbeat
from llmweb.catalog.tasks.datasets import RowReporter, _claim, add_token_lengths
from llmweb.core.running import run_guarded

__all__ = ["clean_dataset_task"]


def clean_splits(dsd: Any, schema: str) -> tuple[Any, dict[str, int], dict[str, int]]:
    """``(cleaned DatasetDict, exact duplicates dropped per split, leaked rows removed per
    evaluation split)``.

    Rows are judged with the hashes the quality report uses: its accumulator
    (``jobs.engine.data.stats.StatsAccumulator``) hashes each batch it is given, a whole
    row for exact duplicates and the normalized model inputs for leakage, and those
    hashes are read back per batch. The first occurrence stays, train read first.
    """
    from datasets import DatasetDict

    from jobs.engine.data.stats import StatsAccumulator

    labels = None
    first = dsd[next(iter(dsd))]
    if "label" in first.features and hasattr(first.features["label"], "names"):
        labels = list(first.features["label"].names)
    accumulator = StatsAccumulator(schema, labels)

    def hashes(split: str, batch):
        state = accumulator.start(split)
        accumulator.add(split, batch)
        return state.row_hashes[-1], state.input_hashes[-1]

    order = [s for s in ("train", "validation", "test") if s in dsd] + [
        s for s in dsd if s not in ("train", "validation", "test")
    ]
    seen_rows: set[int] = set()
    train_inputs: set[int] = set()
    dropped: dict[str, int] = {}
    leaked: dict[str, int] = {}
    out = {}
    for split in order:
        ds = dsd[split]
        keep: list[int] = []
        offset = 0
        for batch in ds.with_format("arrow").iter(batch_size=10_000):
            if batch.num_rows == 0:
                continue
            rows, inputs = hashes(split, batch)
            for i in range(batch.num_rows):
                r, x = int(rows[i]), int(inputs[i])
                if r in seen_rows:
                    dropped[split] = dropped.get(split, 0) + 1
                    continue
                seen_rows.add(r)
                if split != "train" and x in train_inputs:
                    leaked[split] = leaked.get(split, 0) + 1
                    continue
                if split == "train":
                    train_inputs.add(x)
                keep.append(offset + i)
            offset += batch.num_rows
        out[split] = ds.select(keep) if len(keep) != len(ds) else ds
    return DatasetDict(out), dropped, leaked


def _clean_note(source: Dataset, dropped: dict[str, int], leaked: dict[str, int]) -> str:
    parts = []
    if sum(dropped.values()):
        where = ", ".join(f"{n:,} from {s}" for s, n in dropped.items())
        parts.append(f"dropped {sum(dropped.values()):,} exact duplicate rows ({where})")
    if sum(leaked.values()):
        where = " and ".join(f"{n:,} {s}" for s, n in leaked.items())
        parts.append(f"removed {where} rows whose input is also in train")
    return f"Clean version of {source}: " + ("; ".join(parts) or "nothing needed removing") + "."


@shared_task(bind=True, name="llmweb.catalog.tasks.clean_dataset", queue="default")
def clean_dataset_task(self, dataset_id: int) -> str:
    """Write a clean version's splits from its source's processed splits; see
    ``services.datasets.dataset_clean_version_create``."""
    from datasets import load_from_disk

    from jobs.engine.data import compute_stats, stats_warnings

    dataset = _claim(dataset_id)
    if dataset is None:
        return "skipped"
    source = Dataset.objects.filter(pk=dataset.derived_from_id, status=DatasetStatus.READY).first()
    if source is None:
        services.dataset_mark_failed(
            dataset_id=dataset_id,
            error={"code": "source_gone", "message": "The source dataset is gone or not ready."},
        )
        return "failed"
    reporter = RowReporter(dataset.pk, expected_rows=None)

    def work() -> tuple[Any, dict[str, int], dict[str, int], dict[str, Any]]:
        reporter.write(0.1, f"Reading {source}")
        dsd, dropped, leaked = clean_splits(
            load_from_disk(str(source.processed_dir), keep_in_memory=False), dataset.schema
        )
        reporter.write(0.5, "Saving the clean splits")
        dataset.processed_dir.parent.mkdir(parents=True, exist_ok=True)
        dsd.save_to_disk(str(dataset.processed_dir))
        stats = compute_stats(dsd, dataset.schema)
        add_token_lengths(dataset.processed_dir, stats)
        return dsd, dropped, leaked, stats

    def failed(error: dict, traceback: str) -> None:
        services.dataset_mark_failed(dataset_id=dataset_id, error=error)

    with heartbeat(dataset):
        ran = run_guarded(work, what="Cleaning", on_failed=failed)
    if ran.state != "succeeded":
        return ran.state
    dsd, dropped, leaked, stats = ran.value
    result = {
        "format": source.format,
        "encoding": source.encoding,
        "mapping": source.mapping,
        "num_rows": {split: len(ds) for split, ds in dsd.items()},
        "label_names": source.label_names,
        "stats": stats,
        "warnings": stats_warnings(stats),
        "columns": (source.stats or {}).get("source", {}).get("columns") or [],
        "has_header": (source.stats or {}).get("source", {}).get("has_header"),
        "delimiter": (source.stats or {}).get("source", {}).get("delimiter"),
        "lineage_note": _clean_note(source, dropped, leaked),
    }
    if services.dataset_mark_ready(dataset_id=dataset_id, result=result) is None:
        dataset.delete_files()
        return "gone"
    return "ready"
