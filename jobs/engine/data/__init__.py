"""Datasets: read an upload (any common format and encoding), map it to a schema's
canonical columns, split it and describe it. See ``process.py`` for the pipeline."""

from __future__ import annotations

from jobs.engine.data.encoding import detect_encoding, resolve_encoding, transcode_to_utf8
from jobs.engine.data.mapping import SCHEMAS, canonical_columns, suggest_mapping
from jobs.engine.data.process import (
    MAX_INVALID_FRACTION,
    ProcessConfig,
    ProcessResult,
    process_dataset,
)
from jobs.engine.data.readers import FORMATS
from jobs.engine.data.source import FileInfo, inspect_file
from jobs.engine.data.stats import compute_stats, stats_warnings

__all__ = [
    "FORMATS",
    "MAX_INVALID_FRACTION",
    "SCHEMAS",
    "FileInfo",
    "ProcessConfig",
    "ProcessResult",
    "canonical_columns",
    "compute_stats",
    "detect_encoding",
    "inspect_file",
    "process_dataset",
    "resolve_encoding",
    "stats_warnings",
    "suggest_mapping",
    "transcode_to_utf8",
]
