"""Turn an uploaded file into a processed ``DatasetDict`` on disk.

One pass reads the source (decoded, transcoded to UTF-8 in chunks when needed) and
writes canonical rows straight to an Arrow file, so memory stays bounded whatever the
upload's size; splitting selects indices over that memory-mapped file; the result is
saved beside ``out_dir`` and renamed into place only when everything worked.

Extra columns: up to ``MAX_EXTRA_COLUMNS`` source columns the mapping leaves out are
kept after the canonical ones as short strings (``mapping.extra_columns``), so an
evaluation can slice its metrics by a domain or a source; the stats describe them.

Invalid rows: a structural problem (no rows, a mapped column missing from the file,
broken JSON, wrong encoding) fails at once. Row-level problems (null or non-text
values, mixed label kinds, too many fields, an over-long line) are collected; when
they are at most ``MAX_INVALID_FRACTION`` of the rows those rows are dropped with a
warning, otherwise the whole upload fails with the first ``max_errors`` of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jobs.engine.base import Cancelled, EngineError, NullReporter, Reporter
from jobs.engine.data.fastread import read_rows_fast
from jobs.engine.data.mapping import (
    LABELLED,
    LM_SCHEMAS,
    MAX_EXTRA_COLUMNS,
    RowChecker,
    canonical_columns,
    check_mapping,
    extra_columns,
    label_names,
    suggest_mapping,
)
from jobs.engine.data.readers import FORMATS, iter_rows
from jobs.engine.data.source import open_source, sample_rows
from jobs.engine.data.split import split_indices
from jobs.engine.data.stats import StatsAccumulator, stats_warnings
from jobs.engine.data.writing import (
    BackgroundFacts,
    RawRows,
    read_rows,
    release_memory,
    write_splits,
)

MAX_INVALID_FRACTION = 0.01
SPLITS = ("train", "validation", "test")
PHASES = ("reading", "validating", "splitting", "stats")


def _invalid(message: str, param: str) -> EngineError:
    return EngineError(message, code="invalid_config", param=param)


@dataclass
class ProcessConfig:
    """What to read and how to turn it into a processed dataset.

    ``mapping`` maps canonical columns to source columns (None: suggested).
    ``has_header`` None guesses it for CSV/TSV. ``txt_mode`` is ``"lines"`` (one
    example per non-blank line) or ``"corpus"`` (blocks of about ``block_chars``).
    ``max_field_bytes`` bounds one line, field or JSON record, in characters.
    ``work_dir`` holds temporary files (default: next to ``out_dir``).
    """

    source: Path
    out_dir: Path
    schema: str
    fmt: str | None = None
    encoding: str | None = None
    mapping: dict[str, str] | None = None
    has_header: bool | None = None
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    stratify: bool = True
    txt_mode: str = "lines"
    block_chars: int = 2000
    max_errors: int = 20
    max_field_bytes: int = 1 << 20
    max_extract_bytes: int = 2 << 30
    max_labels: int = 1000
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        self.out_dir = Path(self.out_dir)
        self.work_dir = Path(self.work_dir) if self.work_dir is not None else None
        canonical_columns(self.schema)
        if self.fmt is not None and self.fmt not in FORMATS:
            raise _invalid(f"Unknown format {self.fmt!r}; use one of {', '.join(FORMATS)}.", "fmt")
        ratios = tuple(float(r) for r in self.split_ratios)
        if len(ratios) != 3 or any(r < 0 for r in ratios) or ratios[0] <= 0:
            raise _invalid(
                "split_ratios needs three non-negative numbers with train > 0.", "split_ratios"
            )
        if abs(sum(ratios) - 1.0) > 1e-6:
            raise _invalid(
                f"split_ratios must sum to 1 (they sum to {sum(ratios):g}).", "split_ratios"
            )
        self.split_ratios = ratios  # type: ignore[assignment]
        if self.txt_mode not in ("lines", "corpus"):
            raise _invalid("txt_mode must be 'lines' or 'corpus'.", "txt_mode")
        for name in (
            "block_chars",
            "max_errors",
            "max_field_bytes",
            "max_extract_bytes",
            "max_labels",
        ):
            if int(getattr(self, name)) < 1:
                raise _invalid(f"{name} must be a positive number.", name)


@dataclass
class ProcessResult:
    """What was read and produced; ``stats`` and ``row_errors`` are JSON-ready."""

    encoding: str | None
    format: str
    mapping: dict[str, str]
    num_rows: dict[str, int]
    label_names: list[str] | None
    warnings: list[str]
    stats: dict[str, Any]
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    has_header: bool | None = None
    member: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Run:
    def __init__(self, config: ProcessConfig, reporter: Reporter):
        self.config = config
        self.reporter = reporter
        self.phase = 0

    def check_stop(self) -> None:
        if self.reporter.should_stop():
            raise Cancelled(f"cancelled while {PHASES[self.phase]}")

    def start(self, phase: str, message: str) -> None:
        if self.reporter.should_stop():
            raise Cancelled(f"cancelled before {phase}")
        self.phase = PHASES.index(phase)
        self.reporter.emit(
            "progress", step=self.phase, total=len(PHASES), phase=phase, message=message
        )


def process_dataset(config: ProcessConfig, reporter: Reporter | None = None) -> ProcessResult:
    """Read, validate, split, save and describe a dataset; see the module docstring.

    Splits are always ``train``, ``validation`` and ``test``; a split whose ratio is 0
    is saved empty. An existing ``out_dir`` is replaced only once the new one is complete,
    so re-running a task is safe. Raises :class:`EngineError` or :class:`Cancelled`;
    either way nothing new is left in ``out_dir``'s folder.
    """
    run = _Run(config, reporter or NullReporter())
    out_dir = config.out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    base = config.work_dir or out_dir.parent
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".dataset-work-", dir=base))
    staged = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        result = _process(run, work, staged)
        _replace_dir(staged, out_dir)
        run.reporter.emit(
            "progress",
            step=len(PHASES),
            total=len(PHASES),
            phase="done",
            message=f"Ready: {sum(result.num_rows.values()):,} rows",
        )
        return result
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _replace_dir(staged: Path, out_dir: Path) -> None:
    staged.chmod(0o755)  # mkdtemp makes it private; the web process may read it too
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(staged, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, out_dir)


def _process(run: _Run, work: Path, staged: Path) -> ProcessResult:
    import datasets

    cfg = run.config
    run.start("reading", f"Reading {cfg.source.name}")
    src, member = open_source(
        cfg.source,
        work=work,
        fmt=cfg.fmt,
        encoding=cfg.encoding,
        has_header=cfg.has_header,
        max_chars=cfg.max_field_bytes,
        max_extract_bytes=cfg.max_extract_bytes,
    )
    if src.format == "txt" and cfg.schema not in LM_SCHEMAS:
        raise EngineError(
            f"A plain-text file has no columns, so it only suits causal-lm or masked-lm, not "
            f"{cfg.schema}. Upload CSV, TSV, JSON or Parquet for {cfg.schema}.",
            code="format_schema_mismatch",
            param="schema",
        )
    mapping = cfg.mapping
    if mapping is None:
        sample = sample_rows(src, cfg.max_field_bytes, 50)
        mapping = suggest_mapping(cfg.schema, src.columns, sample)
    mapping = check_mapping(cfg.schema, mapping, src.columns)
    extras, left_out = extra_columns(mapping, src.columns)
    checker = RowChecker(cfg.schema, mapping, cfg.max_field_bytes, extras)

    def on_progress(rows: int) -> None:
        if run.reporter.should_stop():
            raise Cancelled("cancelled while reading")
        run.reporter.emit(
            "progress",
            step=0,
            total=len(PHASES),
            phase="reading",
            message=f"Read {rows:,} rows",
            rows=rows,
        )

    records = iter_rows(
        src, limit=cfg.max_field_bytes, txt_mode=cfg.txt_mode, block_chars=cfg.block_chars
    )
    background = BackgroundFacts(cfg.schema, extras)
    try:
        raw = read_rows_fast(
            src, checker, work / "rows.arrow", on_progress=on_progress, on_batch=background
        )
        facts = background.result() if raw is not None else None
        counted_while_reading = facts is not None
    finally:
        background.close()
    if raw is None:  # something needs a closer look: the row-by-row reader reports it
        raw = read_rows(
            records,
            checker,
            work / "rows.arrow",
            max_errors=cfg.max_errors,
            on_progress=on_progress,
        )

    release_memory()  # the reader's buffers: the next passes' peaks then stay below its
    run.start("validating", f"Checking {raw.n_valid + raw.n_invalid:,} rows")
    warnings = _check_rows(raw, src.path.name, bool(src.has_header))
    if left_out:
        warnings.append(
            f"Extra columns not kept: {', '.join(left_out)} (at most {MAX_EXTRA_COLUMNS} are "
            f"kept, and none named like a schema column)"
        )
    names = labels = None
    if cfg.schema in LABELLED:
        names = _check_labels(checker.label_counts, cfg.max_labels)
        labels = raw.label_ids(names)

    run.start("splitting", "Splitting into train, validation and test")
    parts = split_indices(
        raw.n_valid, cfg.split_ratios, cfg.seed, labels if cfg.stratify else None, names
    )
    orders = dict(zip(SPLITS, parts, strict=True))
    which = np.empty(raw.n_valid, dtype=np.int8)
    for j, idx in enumerate(parts):
        which[idx] = j
    label_feature = datasets.ClassLabel(names=names) if names else None
    features = datasets.Features(
        {c: label_feature if c == "label" else datasets.Value("string") for c in checker.columns}
    )
    acc = StatsAccumulator(cfg.schema, names, extras)
    if facts is not None:  # the per-row work was done while reading: only route it
        facts.labels = labels
        acc.extras = background.extras
        acc.add_facts(facts, which, list(orders))
        facts = None  # before the next pass allocates its buffers
    counting = None if counted_while_reading else acc
    write_splits(raw.path, staged, orders, features, which, labels, counting, run.check_stop)
    for name, ratio in zip(SPLITS, cfg.split_ratios, strict=True):
        if ratio > 0 and orders[name].size == 0:
            warnings.append(f"The {name} split is empty: the dataset is too small for its ratio")

    run.start("stats", "Computing statistics")
    stats = acc.result()
    for entry in stats.get("extra_columns", []):
        entry["truncated"] = checker.truncated.get(entry["name"], 0)
    warnings += stats_warnings(stats)
    del acc, labels, which, raw.seen_ids
    release_memory()
    return ProcessResult(
        encoding=src.encoding_label,
        format=src.format,
        mapping=mapping,
        num_rows={name: int(idx.size) for name, idx in orders.items()},
        label_names=names,
        warnings=warnings,
        stats=stats,
        row_errors=raw.errors,
        columns=src.columns,
        has_header=src.has_header,
        member=member,
    )


def _check_rows(raw: RawRows, name: str, has_header: bool) -> list[str]:
    """Apply the invalid-row rule (module docstring); return the warnings it implies."""
    total = raw.n_valid + raw.n_invalid
    if total == 0:
        raise EngineError(
            f"{name} has a header but no data rows." if has_header else f"{name} has no data rows.",
            code="no_rows",
        )
    if raw.n_invalid and (raw.n_valid == 0 or raw.n_invalid > MAX_INVALID_FRACTION * total):
        read = " read" if raw.stopped_early else ""
        raise EngineError(
            f"{raw.n_invalid:,} of {total:,} rows{read} are invalid (more than "
            f"{MAX_INVALID_FRACTION:.0%} allowed); see the row errors. Check the column "
            "mapping and the file format.",
            code="invalid_rows",
            details=raw.errors,
        )
    if raw.n_invalid:
        s = "s" if raw.n_invalid != 1 else ""
        return [f"Dropped {raw.n_invalid:,} invalid row{s} (see row errors)"]
    return []


def _check_labels(counts: dict[str, int], max_labels: int) -> list[str]:
    names = label_names(counts)
    if len(names) < 2:
        raise EngineError(
            f"Only one label ({names[0]!r}) was found; classification needs at least two. "
            "Check the label column in the mapping.",
            code="single_label",
            param="mapping",
        )
    if len(names) > max_labels:
        raise EngineError(
            f"The label column has {len(names):,} distinct values (at most {max_labels:,}); "
            "is a text column mapped as the label?",
            code="too_many_labels",
            param="mapping",
        )
    return names
