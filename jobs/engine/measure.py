"""Before/after figures for a model: size, parameters, latency at batch 1 and 32, quality.

Distill and compress report how much smaller, faster and worse their output is than
their input; both measure through here so the figures mean the same thing. Quality is
computed on rows the caller hands over (an eval split), with the same metric functions
fine-tuning uses. Latency is the median wall time of one forward pass over a fixed batch
(after a warm-up pass), on the CPU unless the model sits elsewhere: it is what serving
that model on this worker costs, not a benchmark of the machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.engine.metrics import classification_metrics, perplexity
from jobs.engine.models.info import weight_files
from jobs.engine.schemas import CLASSIFICATION_TASKS

# Sentences of varied length for latency when no eval rows are given: SMS-like text, the
# length range our datasets have (a few words to a few lines).
_SAMPLE_WORDS = (
    "please call me back when you get this message about the meeting tomorrow at noon "
    "congratulations you have won a free prize reply now to claim your reward before friday"
).split()
LATENCY_BATCHES = (1, 32)


def sample_texts(n: int = 32) -> list[str]:
    """``n`` deterministic texts of 4 to 60 words."""
    words = _SAMPLE_WORDS
    return [
        " ".join(words[(i * 7 + j) % len(words)] for j in range(4 + (i * 13) % 57))
        for i in range(n)
    ]


def weights_bytes(folder: str | Path) -> int:
    """Bytes of the weight files a loader reads (not the tokenizer or the card)."""
    return sum(p.stat().st_size for p in weight_files(Path(folder)))


def count_parameters(model: Any) -> int:
    """Distinct weights, int8 ones included (a quantized Linear hides them from
    ``parameters()`` inside packed params)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, DynamicLinear):
            weight, bias = module._weight_bias()
            total += weight.numel() + (bias.numel() if bias is not None else 0)
        elif type(module).__name__ == "Int8Embedding":
            total += module.weight.numel()
    return total


def _encode(tokenizer: Any, texts: Sequence[Any], max_length: int) -> dict[str, Any]:
    if texts and isinstance(texts[0], tuple | list):
        firsts, seconds = [t[0] for t in texts], [t[1] for t in texts]
        enc = tokenizer(
            firsts,
            seconds,
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
    else:
        enc = tokenizer(
            list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
    return dict(enc)


def latency_ms(
    model: Any,
    tokenizer: Any,
    texts: Sequence[Any],
    *,
    batch_size: int,
    max_length: int = 128,
    repeats: int = 3,
) -> float:
    """Median milliseconds of one forward pass over the first ``batch_size`` texts."""
    import torch

    batch = list(texts[:batch_size])
    while len(batch) < batch_size:  # fewer rows than the batch: repeat them
        batch.extend(texts[: batch_size - len(batch)])
    enc = _encode(tokenizer, batch, max_length)
    device = next(iter(model.buffers()), torch.zeros(0)).device
    enc = {k: v.to(device) for k, v in enc.items()}
    if getattr(model.config, "is_encoder_decoder", False):
        enc["decoder_input_ids"] = enc["input_ids"][:, :1]
    times = []
    with torch.inference_mode():
        model(**enc)  # warm-up: first calls allocate and pick kernels
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            model(**enc)
            times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def classification_quality(
    model: Any,
    tokenizer: Any,
    texts: Sequence[Any],
    labels: Sequence[int],
    label_names: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 128,
) -> dict[str, Any]:
    """Accuracy and macro-F1 of ``model`` on ``texts`` (labels in the model's id order)."""
    preds = predict_logits(
        model, tokenizer, texts, batch_size=batch_size, max_length=max_length
    ).argmax(-1)
    out = classification_metrics(preds.tolist(), list(labels), list(label_names))
    return {"accuracy": out["accuracy"], "macro_f1": out["macro_f1"], "rows": len(labels)}


def predict_logits(
    model: Any, tokenizer: Any, texts: Sequence[Any], *, batch_size: int, max_length: int
) -> Any:
    """(N, C) float32 logits, batch by batch, in input order."""
    import torch

    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = _encode(tokenizer, texts[start : start + batch_size], max_length)
            chunks.append(model(**enc).logits.float())
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def lm_quality(
    model: Any,
    tokenizer: Any,
    rows: dict[str, list[str]],
    *,
    batch_size: int = 16,
    max_length: int = 128,
) -> dict[str, Any]:
    """Mean token loss and perplexity: ``rows`` has ``text`` (causal) or ``source`` and
    ``target`` (seq2seq)."""
    import torch

    model.eval()
    losses, weights = [], []
    seq2seq = "source" in rows
    n = len(rows["source" if seq2seq else "text"])
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            if seq2seq:
                enc = tokenizer(
                    rows["source"][start : start + batch_size],
                    text_target=rows["target"][start : start + batch_size],
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                labels = enc["labels"]
                labels[labels == tokenizer.pad_token_id] = -100
            else:
                enc = tokenizer(
                    rows["text"][start : start + batch_size],
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                labels = enc["input_ids"].clone()
                labels[enc["attention_mask"] == 0] = -100
                enc["labels"] = labels
            enc.pop("token_type_ids", None)
            count = int((labels != -100).sum())
            if count == 0:
                continue
            losses.append(float(model(**enc).loss) * count)
            weights.append(count)
    loss = sum(losses) / sum(weights) if weights else float("nan")
    return {"eval_loss": round(loss, 5), "perplexity": perplexity(loss), "rows": n}


@dataclass
class EvalRows:
    """Rows to score on, already in the model's terms.

    ``texts``: strings, or (a, b) pairs; ``labels``: class ids in the *model's* order
    (classification); ``columns``: raw ``text`` or ``source``/``target`` lists (LM tasks).
    """

    texts: list[Any]
    labels: list[int] | None = None
    columns: dict[str, list[str]] | None = None


def measure(
    model: Any,
    tokenizer: Any,
    *,
    task: str,
    folder: str | Path | None,
    rows: EvalRows | None,
    label_names: Sequence[str] | None = None,
    max_length: int = 128,
    repeats: int = 3,
) -> dict[str, Any]:
    """The figures of one model: parameters, size on disk, latency per batch, quality."""
    texts = rows.texts if rows and rows.texts else sample_texts()
    figures: dict[str, Any] = {
        "parameters": count_parameters(model),
        "size_bytes": weights_bytes(folder) if folder else None,
    }
    for batch in LATENCY_BATCHES:
        figures[f"latency_ms_b{batch}"] = latency_ms(
            model, tokenizer, texts, batch_size=batch, max_length=max_length, repeats=repeats
        )
    if rows is not None:
        if task in CLASSIFICATION_TASKS and rows.labels is not None and label_names:
            figures["quality"] = classification_quality(
                model, tokenizer, rows.texts, rows.labels, label_names, max_length=max_length
            )
        elif rows.columns:
            figures["quality"] = lm_quality(model, tokenizer, rows.columns, max_length=max_length)
    return figures


def headline(quality: dict[str, Any] | None) -> tuple[str, float] | None:
    """The one number to compare: accuracy for classifiers, chrF for generated text (when
    measured), else perplexity for LMs."""
    if not quality:
        return None
    for key in ("accuracy", "chrf", "perplexity"):
        if isinstance(quality.get(key), int | float):
            return key, float(quality[key])
    return None


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """after ÷ before for size, parameters and latency; quality retained and its delta.

    ``quality_retained`` is after ÷ before for accuracy (higher is better) and
    before ÷ after for perplexity (lower is better), so 1.0 always means "as good".
    """

    def ratio(key: str) -> float | None:
        a, b = after.get(key), before.get(key)
        return round(a / b, 4) if isinstance(a, int | float) and b else None

    out: dict[str, Any] = {
        "size_ratio": ratio("size_bytes"),
        "parameters_ratio": ratio("parameters"),
    }
    for batch in LATENCY_BATCHES:
        out[f"latency_ratio_b{batch}"] = ratio(f"latency_ms_b{batch}")
    b, a = headline(before.get("quality")), headline(after.get("quality"))
    if a and b and a[0] == b[0]:
        name = a[0]
        out["quality_metric"] = name
        out["quality_delta"] = round(a[1] - b[1], 5)
        if name == "perplexity":
            out["quality_retained"] = round(b[1] / a[1], 4) if a[1] else None
        else:
            out["quality_retained"] = round(a[1] / b[1], 4) if b[1] else None
    return out


def load_eval_rows(
    data_dir: str | Path,
    *,
    split: str,
    task: str,
    limit: int,
    model_labels: Sequence[str] | None = None,
) -> EvalRows:
    """The first ``limit`` rows of a processed split, labels mapped to the model's ids.

    Raises:
        EngineError: ``missing_split`` (the split is absent or empty), ``label_mismatch``
            (a dataset label the model has no class for).
    """
    import json

    from datasets import Dataset

    from jobs.engine.base import EngineError

    folder = Path(data_dir) / split
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    if not state.get("_data_files"):
        raise EngineError(
            f"The eval dataset has no {split} rows.", code="missing_split", param="eval_split"
        )
    data = Dataset.load_from_disk(str(folder))
    data = data.select(range(min(limit, len(data))))
    if task in CLASSIFICATION_TASKS:
        cols = ("text",) if task == "classification" else ("text_a", "text_b")
        texts: list[Any] = (
            list(data["text"])
            if len(cols) == 1
            else list(zip(data["text_a"], data["text_b"], strict=True))
        )
        names = data.features["label"].names if hasattr(data.features["label"], "names") else None
        raw = list(data["label"])
        as_names = [names[i] for i in raw] if names else [str(v) for v in raw]
        wanted = list(model_labels or [])
        unknown = sorted(set(as_names) - set(wanted))
        if unknown:
            raise EngineError(
                f"The eval dataset has labels {unknown} the model does not predict "
                f"(it predicts {wanted}).",
                code="label_mismatch",
                param="eval_dataset",
            )
        return EvalRows(texts=texts, labels=[wanted.index(n) for n in as_names])
    if task == "seq2seq":
        columns = {"source": list(data["source"]), "target": list(data["target"])}
        return EvalRows(texts=columns["source"], columns=columns)
    if task == "masked-lm":  # a loss over unmasked tokens says nothing; latency only
        return EvalRows(texts=list(data["text"]))
    return EvalRows(texts=list(data["text"]), columns={"text": list(data["text"])})
