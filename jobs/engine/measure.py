"""How big, how fast and how good a model is, measured one way for every job.

Evaluate times each model it scores; compress and distill report how much smaller, faster
and worse their output is than their input. All three measure through here, so a latency
on the compare page, in a compress report and in a distill report means the same thing.
Past ~400 lines on purpose: it was two modules (speed, measure) that drifted apart in
warm-up, threads and size counting; one protocol is only one if it is read in one place.

Timing protocol: a fixed CPU thread count where the caller asks for one
(``fixed_threads``); three warm-up passes; CUDA synchronised around every timed call; a
forward pass is the same for every head (an encoder-decoder also gets one decoder start
token), so latency compares models of any task. ``speed`` reports p50/p95 over ``runs``
passes at batch 1 on one real row, rows/s at batch 32 and, for generation, time to first
token and tokens/s at batch 1 (``min_new_tokens`` forces the full length so a model that
stops early is not "faster"). ``measure`` reports the median pass at batch 1 and 32 for
before/after ratios. It is what serving the model on this worker costs, not a benchmark
of the machine.

Size is the bytes of the safetensors files a loader reads; parameters count int8 ones too.
Peak memory is the CUDA allocator peak on a GPU, else the growth of the process's resident
memory while the model was loaded and run. Quality is computed on rows the caller hands
over (an eval split), with the same metric functions fine-tuning uses.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.engine.data.order import in_seeded_order
from jobs.engine.metrics import classification_metrics, perplexity
from jobs.engine.models.info import weight_files
from jobs.engine.schemas import CLASSIFICATION_TASKS

WARMUP = 3
THROUGHPUT_BATCH = 32
LATENCY_BATCHES = (1, THROUGHPUT_BATCH)
# Sentences of varied length for latency when no eval rows are given: SMS-like text, the
# length range our datasets have (a few words to a few lines).
_SAMPLE_WORDS = (
    "please call me back when you get this message about the meeting tomorrow at noon "
    "congratulations you have won a free prize reply now to claim your reward before friday"
).split()


def sample_texts(n: int = 32) -> list[str]:
    """``n`` deterministic texts of 4 to 60 words."""
    words = _SAMPLE_WORDS
    return [
        " ".join(words[(i * 7 + j) % len(words)] for j in range(4 + (i * 13) % 57))
        for i in range(n)
    ]


# --- size ------------------------------------------------------------------------------------


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


class MemoryWatch:
    """Peak memory while a model is loaded and scored (see the module docstring)."""

    def __init__(self) -> None:
        import torch

        self.cuda = torch.cuda.is_available()
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0

    def __enter__(self) -> MemoryWatch:
        import torch

        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            import psutil

            proc = psutil.Process(os.getpid())
            self._base = self._peak = proc.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(0.02):
                    self._peak = max(self._peak, proc.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sampling (idempotent): timing must not share the CPU with our sampler."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def result(self) -> dict[str, Any]:
        import torch

        if self.cuda:
            peak = torch.cuda.max_memory_allocated() - self._base
            return {"peak_memory_bytes": int(peak), "memory_kind": "cuda-allocated"}
        return {"peak_memory_bytes": int(self._peak - self._base), "memory_kind": "cpu-rss-growth"}


# --- the timing protocol ---------------------------------------------------------------------


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads, then restore the previous setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any]) -> float:
    """Seconds of one call, with queued GPU work finished on both sides."""
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``q`` in 0-100."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _device(model: Any) -> Any:
    """Where the model's tensors are: a parameter's device, else a buffer's (an int8
    model keeps its weights in packed params), else the CPU."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _encode(tokenizer: Any, texts: Sequence[Any], max_length: int) -> dict[str, Any]:
    """Tokenized rows: strings, or ``(text_a, text_b)`` pairs, padded to the longest."""
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


def _model_inputs(
    model: Any, tokenizer: Any, rows: Sequence[Any], max_length: int
) -> dict[str, Any]:
    """A forward pass's inputs on the model's device; an encoder-decoder gets one
    decoder start token, so every head does the same work: encode and score once."""
    import torch

    device = _device(model)
    enc = {k: v.to(device) for k, v in _encode(tokenizer, rows, max_length).items()}
    if getattr(model.config, "is_encoder_decoder", False):
        start = model.config.decoder_start_token_id or 0
        enc["decoder_input_ids"] = torch.full(
            (enc["input_ids"].shape[0], 1), start, dtype=torch.long, device=device
        )
    return enc


def _batch_of(rows: Sequence[Any], size: int) -> list[Any]:
    """``size`` rows, repeating them when there are fewer."""
    return [rows[i % len(rows)] for i in range(size)]


def _forward_ms(model: Any, enc: dict[str, Any], runs: int, warmup: int = WARMUP) -> list[float]:
    """Milliseconds of ``runs`` forward passes after ``warmup`` untimed ones (the first
    calls allocate and pick kernels)."""
    import torch

    def forward() -> Any:
        with torch.inference_mode():
            return model(**enc)

    for _ in range(warmup):
        forward()
    return [_timed(forward) * 1000 for _ in range(runs)]


def speed(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[Any],
    *,
    max_length: int,
    runs: int,
    generate_tokens: int = 0,
) -> dict[str, Any]:
    """Latency (ms, batch 1), throughput (rows/s, batch 32) and generation speed.

    ``inputs`` are real rows: a string, or a ``(text_a, text_b)`` pair.
    ``generate_tokens`` > 0 adds generation figures.
    """
    model.eval()
    latencies = _forward_ms(model, _model_inputs(model, tokenizer, inputs[:1], max_length), runs)
    batch = _model_inputs(model, tokenizer, _batch_of(inputs, THROUGHPUT_BATCH), max_length)
    batch_runs = max(3, runs // 5)
    batch_seconds = sum(_forward_ms(model, batch, batch_runs, warmup=1)) / 1000
    out: dict[str, Any] = {
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_runs": runs,
        "throughput_rows_per_s": THROUGHPUT_BATCH * batch_runs / batch_seconds,
        "throughput_batch": THROUGHPUT_BATCH,
        "max_length": max_length,
    }
    if generate_tokens > 0:
        out.update(_generation_speed(model, tokenizer, inputs[0], max_length, generate_tokens))
    return out


def _generation_speed(
    model: Any, tokenizer: Any, prompt: str, max_length: int, new_tokens: int
) -> dict[str, Any]:
    import torch

    device = _device(model)
    enc = tokenizer([prompt], truncation=True, max_length=max_length, return_tensors="pt")
    enc.pop("token_type_ids", None)
    enc = {k: v.to(device) for k, v in enc.items()}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def gen(n: int) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return model.generate(
                    **enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad
                )

        return run

    gen(2)()  # warm-up
    first = statistics.median(_timed(gen(1)) for _ in range(5))
    full = statistics.median(_timed(gen(new_tokens)) for _ in range(3))
    return {
        "time_to_first_token_ms": first * 1000,
        "tokens_per_s": new_tokens / full,
        "generated_tokens": new_tokens,
    }


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
    enc = _model_inputs(model, tokenizer, _batch_of(texts, batch_size), max_length)
    return round(statistics.median(_forward_ms(model, enc, max(1, repeats))), 2)


# --- quality ---------------------------------------------------------------------------------


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
    data = in_seeded_order(Dataset.load_from_disk(str(folder)), folder)
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
