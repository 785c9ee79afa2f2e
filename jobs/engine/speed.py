"""Speed and size, measured the same way for every model so numbers compare.

Protocol: fixed CPU thread count; three warm-up passes; CUDA synchronised around every
timed call; latency = p50/p95 over ``runs`` forward passes at batch 1 on one real row;
throughput = rows/s at batch 32; generation adds time to first token and tokens/s at
batch 1 (``min_new_tokens`` forces the full length so a model that stops early is not
"faster"). Size is the safetensors bytes on disk; peak memory is CUDA allocator peak on a
GPU, else the growth of the process's resident memory while the model was loaded and run.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

WARMUP = 3
THROUGHPUT_BATCH = 32


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any]) -> float:
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


class MemoryWatch:
    """Peak memory while a model is loaded and scored (see the module docstring)."""

    def __init__(self) -> None:
        self.cuda = torch.cuda.is_available()
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0

    def __enter__(self) -> MemoryWatch:
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
        if self.cuda:
            peak = torch.cuda.max_memory_allocated() - self._base
            return {"peak_memory_bytes": int(peak), "memory_kind": "cuda-allocated"}
        return {"peak_memory_bytes": int(self._peak - self._base), "memory_kind": "cpu-rss-growth"}


def size_on_disk(folder: Path) -> int:
    """Bytes of the weights (safetensors files), what loading and shipping cost."""
    return sum(f.stat().st_size for f in Path(folder).glob("*.safetensors"))


def measure(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[Any],
    *,
    max_length: int,
    runs: int,
    generate_tokens: int = 0,
) -> dict[str, Any]:
    """Latency (ms, batch 1), throughput (rows/s, batch 32) and generation speed.

    ``inputs`` are real rows: a string, or a ``(text_a, text_b)`` pair. The forward pass
    is the same for every task (an encoder-decoder also gets one decoder start token), so
    latency compares models of any head. ``generate_tokens`` > 0 adds generation figures.
    """
    model.eval()
    device = next(model.parameters()).device
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))

    def encode(rows: Sequence[Any]) -> dict[str, Any]:
        if rows and isinstance(rows[0], tuple | list):
            a, b = [r[0] for r in rows], [r[1] for r in rows]
            enc = tokenizer(
                a, b, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
        else:
            enc = tokenizer(
                list(rows),
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
        enc = {k: v.to(device) for k, v in enc.items()}
        if seq2seq:
            start = model.config.decoder_start_token_id or 0
            enc["decoder_input_ids"] = torch.full(
                (enc["input_ids"].shape[0], 1), start, dtype=torch.long, device=device
            )
        return enc

    one = encode([inputs[0]])
    batch = encode([inputs[i % len(inputs)] for i in range(THROUGHPUT_BATCH)])

    def forward(enc: dict[str, Any]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return model(**enc)

        return run

    for _ in range(WARMUP):
        forward(one)()
    latencies = [_timed(forward(one)) * 1000 for _ in range(runs)]
    forward(batch)()
    batch_runs = max(3, runs // 5)
    batch_seconds = sum(_timed(forward(batch)) for _ in range(batch_runs))
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
    device = next(model.parameters()).device
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
