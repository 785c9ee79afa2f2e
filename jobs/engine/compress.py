"""Compress: an int8 copy of a model for CPU serving, with the before/after evidence.

Recipe: config -> load the float model -> measure it -> quantize -> save (safetensors:
int8 weights + scales, see :mod:`jobs.engine.models.quantized`) -> reload the saved
folder through the one loader (what serving will do) -> measure that -> report.
Importing this module does not import torch: the web process reads its parameter table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.engine import params as p
from jobs.engine.base import EngineError, Reporter
from jobs.engine.schemas import CLASSIFICATION_TASKS, TASKS

METHODS = ("dynamic-int8", "bnb-int8", "bnb-nf4")
BNB_METHODS = ("bnb-int8", "bnb-nf4")
SPLITS = ("test", "validation", "train")


@dataclass
class CompressConfig:
    """One compression run. ``task``, the paths and the labels come from the job."""

    task: str
    model_dir: Path
    output_dir: Path
    eval_dir: Path | None = None
    model_labels: list[str] | None = None
    method: str = p.param(
        "str",
        "dynamic-int8",
        "dynamic-int8: int8 Linear layers for CPU serving (torch.ao); bnb-int8 / bnb-nf4: "
        "bitsandbytes 8-bit or 4-bit for GPU memory (needs a CUDA worker).",
        choices=list(METHODS),
        basic=True,
    )
    quantize_embeddings: bool = p.param(
        "bool",
        True,
        "Also store the input embedding table as int8 rows (weight-only; half of MiniLM's "
        "bytes). Tables tied to an LM head stay float.",
        basic=True,
    )
    eval_split: str = p.param(
        "str", "test", "Split of the eval dataset to measure quality on.", choices=list(SPLITS)
    )
    eval_rows: int = p.param(
        "int", 500, "Rows of that split scored before and after.", min=8, max=100_000
    )
    max_length: int = p.param("int", 128, "Tokens kept per row when measuring.", min=8, max=131_072)
    latency_repeats: int = p.param(
        "int", 3, "Timed passes per batch size (the median is reported).", min=1, max=50
    )

    def __post_init__(self) -> None:
        if self.task not in (*TASKS, "encoder"):
            raise p.invalid("task", f"must be one of {', '.join(TASKS)}")
        self.model_dir, self.output_dir = Path(self.model_dir), Path(self.output_dir)
        self.eval_dir = Path(self.eval_dir) if self.eval_dir else None
        p.validate(self)


@dataclass
class CompressResult:
    output_dir: Path
    metrics: dict[str, Any]
    report: dict[str, Any]


def refuse_bitsandbytes(method: str, *, cuda: bool, param: str = "method") -> None:
    """bitsandbytes kernels are CUDA kernels; on a CPU worker the request is refused."""
    if method in BNB_METHODS and not cuda:
        raise EngineError(
            f"{method} (bitsandbytes) needs a CUDA GPU; this worker runs on CPU.",
            code="needs_gpu",
            param=param,
        )


def run_compress(config: CompressConfig, reporter: Reporter) -> CompressResult:
    """Quantize ``config.model_dir`` into ``config.output_dir`` and measure both.

    Raises:
        EngineError: ``needs_gpu`` (bitsandbytes on CPU), ``not_built`` (bitsandbytes on
            GPU: not offered yet), ``label_mismatch``/``missing_split`` (eval dataset).
    """
    import torch

    from jobs.engine.device import device_description
    from jobs.engine.measure import compare, load_eval_rows, measure
    from jobs.engine.models.loading import load_for_task
    from jobs.engine.models.quantized import quantize_model, save_quantized

    refuse_bitsandbytes(config.method, cuda=torch.cuda.is_available())
    if config.method in BNB_METHODS:
        raise EngineError(
            "bitsandbytes export is not built yet; use dynamic-int8.",
            code="not_built",
            param="method",
        )
    log = lambda message: reporter.emit("log", message=message, level="info")  # noqa: E731
    task = config.task
    model, tokenizer = load_for_task(config.model_dir, task, label_names=config.model_labels)
    model = model.to("cpu").float().eval()
    labels = config.model_labels
    if task in CLASSIFICATION_TASKS and not labels:
        labels = [str(model.config.id2label[i]) for i in sorted(model.config.id2label)]
    rows = None
    if config.eval_dir is not None:
        rows = load_eval_rows(
            config.eval_dir,
            split=config.eval_split,
            task=task,
            limit=config.eval_rows,
            model_labels=labels,
        )
        log(f"scoring on {len(rows.texts)} {config.eval_split} rows before and after")
    total = 4
    reporter.emit("phase", name="measuring the original", done=0, total=total)
    kwargs = {"task": task, "rows": rows, "label_names": labels}
    kwargs.update(max_length=config.max_length, repeats=config.latency_repeats)
    before = measure(model, tokenizer, folder=config.model_dir, **kwargs)
    log(f"original: {before['latency_ms_b32']} ms at batch 32")
    reporter.emit("phase", name="quantizing", done=1, total=total)
    if reporter.should_stop():
        from jobs.engine.base import Cancelled

        raise Cancelled("cancelled before quantizing")
    qmodel, description = quantize_model(model, embeddings=config.quantize_embeddings)
    log(
        f"int8: {len(description['linear'])} Linear layers"
        + (", the embedding table" if description["embedding"] else "")
    )
    reporter.emit("phase", name="saving", done=2, total=total)
    save_quantized(qmodel, tokenizer, description, config.output_dir)
    del qmodel
    # Measure what serving will load, not the object in memory.
    reloaded, tokenizer = load_for_task(config.output_dir, task, label_names=labels)
    reporter.emit("phase", name="measuring the int8 model", done=3, total=total)
    after = measure(reloaded, tokenizer, folder=config.output_dir, **kwargs)
    ratios = compare(before, after)
    log(
        f"int8: size x{ratios['size_ratio']}, batch-32 latency x{ratios['latency_ratio_b32']}"
        + (
            f", {ratios['quality_metric']} {ratios['quality_delta']:+.4f}"
            if "quality_delta" in ratios
            else ""
        )
    )
    report = {
        "kind": "compress",
        "method": config.method,
        "backend": description["backend"],
        "backend_reason": (
            "torch.ao dynamic int8 kernels ran several times faster than torchao's int8 "
            "configs on CPU (bench/quantize_backends.py); torchao stays out of the path"
        ),
        "schemes": {
            "linear": description["linear_scheme"],
            "embedding": description["embedding_scheme"],
        },
        "quantized_linear": len(description["linear"]),
        "quantized_embedding": bool(description["embedding"]),
        "device": device_description(),
        "eval": {"split": config.eval_split, "rows": len(rows.texts)} if rows else None,
        "before": before,
        "after": after,
        "ratios": ratios,
    }
    metrics = {k: v for k, v in ratios.items() if v is not None}
    if after.get("quality"):
        metrics.update({k: v for k, v in after["quality"].items() if k != "rows"})
    metrics["size_bytes"] = after["size_bytes"]
    metrics["latency_ms_b32"] = after["latency_ms_b32"]
    reporter.emit("metrics", step=0, final=True, **metrics)
    return CompressResult(output_dir=config.output_dir, metrics=metrics, report=report)
