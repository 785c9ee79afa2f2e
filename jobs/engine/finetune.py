"""Fine-tuning (and continued pre-training) with Hugging Face ``Trainer``.

Reads like ``run_glue.py``: config -> seed -> data -> tokenizer/model -> map -> collator
-> Trainer -> train -> evaluate -> save.  The parameter table lives in
:mod:`jobs.engine.train_config` so the web layer can build forms from it without torch.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.engine.base import Cancelled, EngineError, Reporter
from jobs.engine.device import device_description
from jobs.engine.generate import generate_texts
from jobs.engine.metrics import bleu_chrf, classification_metrics, perplexity, rouge
from jobs.engine.train_config import (
    CLASSIFICATION_TASKS,
    GENERATION_SAMPLE,
    TrainConfig,
    param_schema,
)

__all__ = ["TrainConfig", "TrainResult", "device_description", "param_schema", "run_training"]

OOM_MESSAGE = (
    "The GPU ran out of memory. Try a smaller batch_size with gradient accumulation "
    "(e.g. halve batch_size and double grad_accum), a shorter max_length, "
    "gradient_checkpointing, or method=lora."
)


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    train_samples_per_second: float
    train_runtime: float
    global_step: int
    device: str
    resumed_from_step: int | None
    num_parameters: int
    trainable_parameters: int
    train_loss: float | None = None


def _log(reporter: Reporter, message: str, level: str = "info") -> None:
    reporter.emit("log", message=message, level=level)


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def final_metrics(
    config: TrainConfig, trainer: Any, tokenized: Any, raw: Any, labels: list[str] | None
) -> dict[str, Any]:
    """Quality on the held-out split; ``predict`` (not ``evaluate``) so the live chart's
    validation series does not get this point."""
    tokenized = tokenized.remove_columns("length")
    output = trainer.predict(tokenized, metric_key_prefix="eval")
    loss = output.metrics.get("eval_loss")
    metrics: dict[str, Any] = {"eval_loss": loss}
    if config.task in CLASSIFICATION_TASKS:
        assert labels is not None
        metrics.update(
            classification_metrics(output.predictions.tolist(), output.label_ids.tolist(), labels)
        )
        metrics["labels"] = labels
        return metrics
    if loss is not None:
        metrics["perplexity"] = perplexity(loss)
    if config.task == "seq2seq":
        hyps, refs = generate_sample(config, trainer.model, trainer.processing_class, raw)
        metrics.update(bleu_chrf(hyps, refs))
        metrics.update(rouge(hyps, refs))
        metrics["generation_sample"] = len(hyps)
        metrics["examples"] = [
            {"source": s, "reference": r, "output": h}
            for s, r, h in zip(raw["source"][:3], refs[:3], hyps[:3], strict=False)
        ]
    return metrics


def generate_sample(
    config: TrainConfig, model: Any, tokenizer: Any, raw: Any, limit: int = GENERATION_SAMPLE
) -> tuple[list[str], list[str]]:
    """Greedy outputs for the first ``limit`` rows: BLEU/chrF need text, not loss."""
    rows = raw.select(range(min(limit, len(raw))))
    sources, refs = list(rows["source"]), list(rows["target"])
    hyps = generate_texts(
        model,
        tokenizer,
        sources,
        batch_size=config.batch_size,
        max_length=config.max_length,
        max_new_tokens=config.max_length,
    )
    return hyps, refs


def save_final(config: TrainConfig, model: Any, tokenizer: Any) -> None:
    """A plain HF folder (safetensors + tokenizer), or the adapter folder for unmerged LoRA."""
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    if config.method == "lora" and config.lora_merge:
        model = model.merge_and_unload()
    # transformers 5.x save_pretrained always writes safetensors (no safe_serialization flag).
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def run_training(config: TrainConfig, reporter: Reporter) -> TrainResult:
    """Train ``config.model_dir`` on ``config.data_dir`` and save to ``config.output_dir``.

    Resumes from the newest checkpoint in ``config.checkpoint_dir`` if there is one
    (a worker died, or the job was retried).  Raises :class:`Cancelled` when the
    reporter asks to stop (a checkpoint of that step is kept), :class:`EngineError`
    for anything the user can fix (bad params, data, out of GPU memory).
    """
    import time

    import torch

    # A time budget covers the whole run, loading and tokenising included.
    started = config.budget_started or time.monotonic()
    deadline = started + config.max_minutes * 60 if config.max_minutes else None
    from jobs.engine.device import free_cpu_threads
    from jobs.engine.measure import fixed_threads

    threads = torch.get_num_threads() if torch.cuda.is_available() else free_cpu_threads()
    try:
        with fixed_threads(threads):
            return _run(config, reporter, deadline)
    except Exception as exc:
        from jobs.engine.training_steps import prune_incomplete_checkpoints

        # A save cut short (disk full) must not leave half a checkpoint beside the last
        # complete one, which is what a retry resumes from.
        prune_incomplete_checkpoints(config.checkpoint_dir)
        # Model placement, training, evaluation and generation can all run out of memory.
        if _is_oom(exc):
            raise EngineError(OOM_MESSAGE, code="cuda_oom", param="batch_size") from exc
        raise
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _run(config: TrainConfig, reporter: Reporter, deadline: float | None) -> TrainResult:

    import datasets
    import torch
    import transformers

    from jobs.engine import training_steps as t

    # Quiet the libraries: our reporter is the progress channel, not their stderr.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    transformers.set_seed(config.seed)

    device = device_description()
    splits = t.load_splits(config)
    train_rows = len(splits["train"])
    hf_config = t.load_hf_config(config)
    tokenizer = t.load_tokenizer(config)
    _log(reporter, f"loaded {config.model_dir.name}: {hf_config.model_type}")

    with tempfile.TemporaryDirectory(prefix="llmweb-tok-") as scratch:
        from jobs.engine.collate import tokenize_split

        tokenized = {}
        for name, split in splits.items():
            _log(
                reporter, f"tokenizing {len(split):,} {name} rows (max_length {config.max_length})"
            )
            tokenized[name] = tokenize_split(
                split, tokenizer, config.task, config.max_length, f"{scratch}/{name}.arrow"
            )
        if len(tokenized["train"]) == 0:
            raise EngineError(
                "No training rows are left after tokenisation (all were empty).",
                code="empty_dataset",
            )

        label_names = t.label_names_for(config, splits["train"])
        model = t.load_model(config, hf_config, tokenizer, label_names)
        num_parameters = sum(p.numel() for p in model.parameters())
        if config.method == "lora":
            model = t.apply_lora(config, model, hf_config.model_type)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        _log(reporter, f"{num_parameters:,} parameters, {trainable:,} trainable ({config.method})")

        eval_split = t.pick_eval_split(tokenized)
        trainer, callback = t.build_trainer(
            config, model, tokenizer, tokenized, label_names, reporter, deadline=deadline
        )
        t.prune_incomplete_checkpoints(config.checkpoint_dir)  # a save the last try cut short
        last = t.last_checkpoint(config.checkpoint_dir)
        resumed_from = t.checkpoint_step(last) if last else None
        if last:
            _log(reporter, f"resuming from checkpoint at step {resumed_from}")
        if config.max_minutes:
            steps = f"a {config.max_minutes:g}-minute budget of"
        elif trainer.args.max_steps > 0:
            steps = trainer.args.max_steps
        else:
            steps = f"{config.epochs:g} epochs of"
        _log(
            reporter,
            f"training on {device}"
            f"{'' if 'cuda' in device else f' ({torch.get_num_threads()} CPU threads)'}: "
            f"{train_rows:,} rows, {steps} steps, "
            f"precision {config.resolved_precision()}",
        )
        output = trainer.train(resume_from_checkpoint=last)
        if callback.cancelled:
            _log(reporter, f"cancelled at step {trainer.state.global_step}; checkpoint kept")
            raise Cancelled(f"cancelled at step {trainer.state.global_step}")

        metrics: dict[str, Any] = {}
        if eval_split is not None:
            rows = len(tokenized[eval_split])
            _log(reporter, f"evaluating on {eval_split} ({rows:,} rows)")
            callback.begin_phase("final evaluation", total=math.ceil(rows / config.batch_size))
            metrics = final_metrics(
                config, trainer, tokenized[eval_split], splits[eval_split], label_names
            )
            metrics["split"] = eval_split
            reporter.emit("metrics", step=trainer.state.global_step, final=True, **metrics)

        reporter.emit("phase", name="saving", done=0, total=None)
        _log(reporter, "saving the model")
        save_final(config, trainer.model, tokenizer)

    train_metrics = output.metrics
    loss = train_metrics.get("train_loss")
    return TrainResult(
        output_dir=config.output_dir,
        metrics=metrics,
        train_samples_per_second=float(train_metrics.get("train_samples_per_second", 0.0)),
        train_runtime=float(train_metrics.get("train_runtime", 0.0)),
        global_step=trainer.state.global_step,
        device=device,
        resumed_from_step=resumed_from,
        num_parameters=num_parameters,
        trainable_parameters=trainable,
        train_loss=float(loss) if loss is not None and math.isfinite(loss) else None,
    )
