"""A default model card (README.md) for model folders the service produces."""

from __future__ import annotations

from typing import Any

from jobs.engine.models.info import ModelInfo
from jobs.engine.schemas import AUTO_MODEL_CLASSES

_PIPELINE_TAGS = {
    "classification": "text-classification",
    "causal-lm": "text-generation",
    "seq2seq": "text2text-generation",
    "masked-lm": "fill-mask",
    "encoder": "feature-extraction",
}


def human_count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _cell(value: Any) -> str:
    # A pipe or newline inside a cell would break the table.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
    return lines


def model_card_markdown(info: ModelInfo, *, extra: dict[str, Any] | None = None) -> str:
    """Render a README.md for a model folder.

    ``extra`` may carry ``title`` and ``description`` (free text), and anything else the
    job knows: scalars become rows of the facts table, dicts (metrics, hyperparameters)
    get their own table, lists become bullet lists.
    """
    extra = dict(extra or {})
    title = extra.pop("title", None) or info.architecture
    description = extra.pop("description", None)
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {_PIPELINE_TAGS.get(info.task, 'feature-extraction')}",
        "tags:",
        "- llmweb",
        f"- {info.model_type}",
        "---",
        "",
        f"# {title}",
        "",
    ]
    if description:
        lines += [str(description), ""]
    max_len = str(info.max_length) if info.max_length else "unknown"
    if info.max_length_note:
        max_len += f" ({info.max_length_note})"
    rows: list[tuple[str, Any]] = [
        ("Task", info.task),
        ("Architecture", f"{info.architecture} ({info.model_type})"),
        ("Parameters", f"{human_count(info.num_parameters)} ({info.num_parameters:,})"),
        ("Size on disk", human_bytes(info.size_bytes)),
        ("Weights dtype", info.dtype),
        ("Max sequence length", max_len),
    ]
    if info.tokenizer:
        tok = info.tokenizer
        rows.append(("Tokenizer", f"{tok['class']} ({tok['type']}, {tok['vocab_size']:,} tokens)"))
    sections: list[tuple[str, Any]] = []
    for key, value in extra.items():
        if isinstance(value, dict | list | tuple):
            sections.append((key, value))
        else:
            rows.append((key.replace("_", " ").capitalize(), value))
    lines += _table(rows) + [""]
    if info.label_names:
        lines += ["## Labels", ""]
        lines += [f"- `{i}`: {name}" for i, name in enumerate(info.label_names)] + [""]
    for key, value in sections:
        lines += [f"## {key.replace('_', ' ').capitalize()}", ""]
        if isinstance(value, dict):
            lines += _table(list(value.items()))
        else:
            lines += [f"- {_cell(item)}" for item in value]
        lines.append("")
    auto = AUTO_MODEL_CLASSES.get(info.task, "AutoModel")
    lines += [
        "## Use",
        "",
        "```python",
        f"from transformers import AutoTokenizer, {auto}",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        f'model = {auto}.from_pretrained("path/to/this/folder", use_safetensors=True)',
        "```",
        "",
    ]
    return "\n".join(lines)
