"""Schemas, canonical columns, mapping suggestions and per-row value checks.

The training engines read only canonical column names, so every dataset is rewritten
to them here, whatever its source columns were called. Columns the mapping leaves out
("extra" columns: a domain, a source) are kept beside them as short strings, a bounded
number of them, so an evaluation can break its metrics down by their values; training
never reads them (tokenising drops every column it did not make).
"""

from __future__ import annotations

import json
import re
from typing import Any

from jobs.engine.base import EngineError
from jobs.engine.schemas import CLASSIFICATION_TASKS, LM_TASKS, SCHEMAS

LABELLED = frozenset(CLASSIFICATION_TASKS)
LM_SCHEMAS = frozenset(LM_TASKS)

# Ordered by preference: the first synonym present wins.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "text": (
        "text",
        "sentence",
        "content",
        "message",
        "sms",
        "body",
        "document",
        "review",
        "comment",
        "tweet",
        "utterance",
        "query",
        "question",
        "input",
        "prompt",
    ),
    "label": (
        "label",
        "labels",
        "class",
        "category",
        "target",
        "y",
        "tag",
        "intent",
        "sentiment",
        "gold_label",
        "labelname",
    ),
    "text_a": (
        "text_a",
        "texta",
        "sentence1",
        "sentence_1",
        "premise",
        "question1",
        "text1",
        "sentence_a",
        "query",
        "question",
        "anchor",
    ),
    "text_b": (
        "text_b",
        "textb",
        "sentence2",
        "sentence_2",
        "hypothesis",
        "question2",
        "text2",
        "sentence_b",
        "passage",
        "context",
        "answer",
        "positive",
    ),
    "source": (
        "source",
        "src",
        "en",
        "eng",
        "english",
        "input",
        "prompt",
        "question",
        "instruction",
        "document",
        "article",
        "text",
        "dialogue",
        "context",
    ),
    "target": (
        "target",
        "tgt",
        "output",
        "response",
        "answer",
        "summary",
        "completion",
        "highlights",
        "translation",
        "fr",
        "zh",
        "de",
        "es",
        "reference",
    ),
}
ALL_SYNONYMS = {s for names in SYNONYMS.values() for s in names}
LABEL_LIKE_MAX_DISTINCT = 20
# Extra columns: at most this many are kept, each value cut to EXTRA_MAX_CHARS characters,
# so they add at most ~2 KiB a row whatever the upload holds.
MAX_EXTRA_COLUMNS = 8
EXTRA_MAX_CHARS = 256
# Names an extra column may not take: any schema's canonical columns (a "label" next to a
# causal-lm "text" would become training labels) and what tokenising and previews add.
RESERVED_NAMES = frozenset(
    {c for cols in SCHEMAS.values() for c in cols}
    | {"labels", "length", "input_ids", "attention_mask", "token_type_ids", "_row"}
)


def normalize_name(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.strip().casefold())


def canonical_columns(schema: str) -> tuple[str, ...]:
    try:
        return SCHEMAS[schema]
    except KeyError:
        raise EngineError(
            f"Unknown schema {schema!r}; choose one of {', '.join(SCHEMAS)}.",
            code="invalid_config",
            param="schema",
        ) from None


def _is_stringish(values: list[Any]) -> bool:
    return bool(values) and all(isinstance(v, str) for v in values)


def suggest_mapping(
    schema: str, columns: list[str], sample: list[dict[str, Any]]
) -> dict[str, str]:
    """Guess which source column feeds each canonical column.

    Names decide first (``sms`` -> ``text``, ``class`` -> ``label``...). Then value
    shape: the column with few, short distinct values is the label; the longest string
    column is the text. For two-text schemas (pairs, seq2seq) leftover columns are taken
    in file order, since "English<TAB>French" puts the source first. Canonical columns
    that cannot be guessed are left out; the caller asks the person.
    """
    wanted = canonical_columns(schema)
    mapping: dict[str, str] = {}
    by_norm = {normalize_name(c): c for c in reversed(columns)}
    for canon in wanted:
        for syn in SYNONYMS.get(canon, ()):
            col = by_norm.get(syn)
            if col is not None and col not in mapping.values():
                mapping[canon] = col
                break
    free = [c for c in columns if c not in mapping.values()]
    values = {c: [r.get(c) for r in sample if r.get(c) is not None] for c in free}

    if "label" in wanted and "label" not in mapping:
        candidates = []
        for c in free:
            vals = [str(v).strip() for v in values[c] if not isinstance(v, (dict, list))]
            distinct = set(vals)
            if not vals or len(distinct) > min(LABEL_LIKE_MAX_DISTINCT, max(2, len(vals) // 2)):
                continue
            mean_len = sum(map(len, vals)) / len(vals)
            if mean_len <= 30:
                candidates.append((len(distinct), mean_len, columns.index(c), c))
        if candidates:
            mapping["label"] = min(candidates)[3]
            free.remove(mapping["label"])

    text_slots = [c for c in wanted if c != "label" and c not in mapping]
    stringy = [c for c in free if _is_stringish(values[c])] or free
    if len(text_slots) == 1 and stringy:
        longest = max(
            stringy, key=lambda c: sum(len(str(v)) for v in values[c]) / max(len(values[c]), 1)
        )
        mapping[text_slots[0]] = longest
    else:
        for slot, col in zip(text_slots, stringy, strict=False):
            mapping[slot] = col
    return {c: mapping[c] for c in wanted if c in mapping}


def check_mapping(schema: str, mapping: dict[str, str], columns: list[str]) -> dict[str, str]:
    """Validate a mapping against the schema and the file's columns; return it ordered."""
    wanted = canonical_columns(schema)
    unknown = sorted(set(mapping) - set(wanted))
    if unknown:
        raise EngineError(
            f"The mapping names {', '.join(unknown)}, which {schema} does not use; "
            f"it needs {', '.join(wanted)}.",
            code="invalid_mapping",
            param="mapping",
        )
    missing = [c for c in wanted if not mapping.get(c)]
    if missing:
        raise EngineError(
            f"Choose a source column for {', '.join(missing)} (columns in the file: "
            f"{', '.join(columns) or 'none'}).",
            code="mapping_incomplete",
            param="mapping",
        )
    absent = [f"{c} -> {mapping[c]!r}" for c in wanted if mapping[c] not in columns]
    if absent:
        raise EngineError(
            f"Mapped column not found: {'; '.join(absent)}. Available columns: "
            f"{', '.join(columns) or 'none'}.",
            code="missing_column",
            param="mapping",
        )
    used = [mapping[c] for c in wanted]
    if len(set(used)) != len(used):
        raise EngineError(
            "Each canonical column needs its own source column.",
            code="invalid_mapping",
            param="mapping",
        )
    return {c: mapping[c] for c in wanted}


def extra_columns(mapping: dict[str, str], columns: list[str]) -> tuple[list[str], list[str]]:
    """``(kept, dropped)``: the file's unmapped columns, in file order, split into the
    first ``MAX_EXTRA_COLUMNS`` usable ones and the rest (reserved names, overflow)."""
    used = set(mapping.values())
    kept: list[str] = []
    dropped: list[str] = []
    for col in columns:
        if col in used:
            continue
        fits = col not in RESERVED_NAMES and 0 < len(col) <= 64
        (kept if fits and len(kept) < MAX_EXTRA_COLUMNS else dropped).append(col)
    return kept, dropped


def extra_value(value: Any) -> tuple[str, bool]:
    """``(text, was cut)``: an extra column's value as a string of at most
    ``EXTRA_MAX_CHARS`` characters; a missing value is the empty string, never an error."""
    if value is None or (isinstance(value, float) and value != value):
        return "", False
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    if len(text) > EXTRA_MAX_CHARS:
        return text[:EXTRA_MAX_CHARS], True
    return text, False


def _label_value(value: Any) -> tuple[str | None, str, str | None]:
    """(label string, kind, error). Numbers keep their kind so a later "spam" stands out."""
    if isinstance(value, bool):
        return str(value).lower(), "boolean", None
    if isinstance(value, int):
        return str(value), "number", None
    if isinstance(value, float):
        if value != value:  # NaN, e.g. an empty Parquet cell
            return None, "", "label is empty"
        return (str(int(value)) if value.is_integer() else repr(value)), "number", None
    if isinstance(value, str):
        text = value.strip()
        return (text, "text", None) if text else (None, "", "label is empty")
    if value is None:
        return None, "", "label is empty (null)"
    return None, "", f"label is a {type(value).__name__}, expected text or a number"


def _text_value(value: Any, column: str) -> tuple[str | None, str | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value), None
    if value is None:
        return None, f"{column} is empty (null)"
    return None, f"{column} is a {type(value).__name__}, expected text"


class RowChecker:
    """Turns a source row into a canonical row, or into row errors.

    Label kinds (text / number / boolean) are fixed by the first valid label, so a
    column of numbers with a stray word is reported on the stray rows. ``extras`` are
    source columns copied as they are (see :func:`extra_value`); they never make a row
    invalid, and ``truncated`` counts the values cut short per column.
    """

    def __init__(
        self,
        schema: str,
        mapping: dict[str, str],
        max_chars: int,
        extras: list[str] | None = None,
    ):
        self.schema = schema
        self.mapping = mapping
        self.max_chars = max_chars
        self.extras = list(extras or [])
        self.label_kind: str | None = None
        self.label_counts: dict[str, int] = {}
        self.truncated: dict[str, int] = dict.fromkeys(self.extras, 0)

    @property
    def columns(self) -> list[str]:
        """The columns of a checked row: canonical ones in schema order, then the extras."""
        return [*self.mapping, *self.extras]

    def __call__(self, row: dict[str, Any]) -> tuple[dict[str, str] | None, list[tuple[str, str]]]:
        out: dict[str, str] = {}
        errors: list[tuple[str, str]] = []
        kind_seen = ""
        for canon, src in self.mapping.items():
            if src not in row:
                errors.append((src, f"{src} is missing"))
                continue
            if canon == "label":
                label, kind, err = _label_value(row[src])
                if err is None and self.label_kind not in (None, kind):
                    err = f"label {label!r} is {kind}, but earlier labels are {self.label_kind}"
                if err is None:
                    out[canon] = label  # type: ignore[assignment]
                    kind_seen = kind
                else:
                    errors.append((src, err))
                continue
            text, err = _text_value(row[src], src)
            if err is None and len(text or "") > self.max_chars:
                err = f"{src} is longer than {self.max_chars:,} characters"
            if err is not None:
                errors.append((src, err))
            else:
                out[canon] = text  # type: ignore[assignment]
        if errors:
            return None, errors
        for col in self.extras:
            out[col], cut = extra_value(row.get(col))
            if cut:
                self.truncated[col] += 1
        if "label" in out:
            self.label_kind = self.label_kind or kind_seen
            self.label_counts[out["label"]] = self.label_counts.get(out["label"], 0) + 1
        return out, []


def label_names(counts: dict[str, int]) -> list[str]:
    """Sorted label strings; numerically when every label is a number ("2" before "10")."""
    try:
        return sorted(counts, key=float)
    except ValueError:
        return sorted(counts)
