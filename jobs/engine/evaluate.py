"""Evaluate: score models on one split of one dataset, the same way for every model.

Reads like a recipe: config -> rows of the split -> for each model: load -> score by task
(classification, language-model likelihood, or generation) -> per-sample JSONL ->
speed and size. The parameter table lives in :mod:`jobs.engine.eval_config` so the web
process can validate and build forms without torch. Metrics come from
:mod:`jobs.engine.metrics` (scikit-learn, sacrebleu, rouge-score) and
:mod:`jobs.engine.lm_scoring`; nothing is fetched from a hub.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine.base import Cancelled, EngineError, Reporter
from jobs.engine.eval_config import EvalModel, EvaluateConfig
from jobs.engine.eval_scoring import (
    score_causal_lm,
    score_classification,
    score_generation,
    score_masked_lm,
    slice_report,
)
from jobs.engine.jsonable import jsonable
from jobs.engine.schemas import CLASSIFICATION_TASKS

__all__ = ["EvaluateConfig", "EvaluateResult", "ModelEvaluation", "run_evaluation"]


@dataclass
class ModelEvaluation:
    """One model's scores. ``measure`` says what kind of numbers ``metrics`` holds."""

    key: str
    measure: str  # "classification" | "perplexity" | "pseudo-perplexity" | "generation"
    metrics: dict[str, Any]
    signatures: dict[str, str]
    speed: dict[str, Any]
    samples_path: Path
    num_samples: int


@dataclass
class EvaluateResult:
    split: str
    device: str
    rows: int
    evaluations: list[ModelEvaluation] = field(default_factory=list)


# --- data ------------------------------------------------------------------------------


def load_rows(config: EvaluateConfig) -> tuple[str, list[dict[str, Any]], list[str] | None]:
    """``(split name, rows, label names)`` of the split the config asks for."""
    from datasets import ClassLabel, concatenate_datasets

    from jobs.engine.training_steps import load_dataset_dict

    splits = {name: s for name, s in load_dataset_dict(config.data_dir).items() if len(s) > 0}
    if config.split == "all":
        if not splits:
            raise EngineError("The dataset has no rows.", code="empty_dataset", param="split")
        name, data = "all", concatenate_datasets(list(splits.values()))
    else:
        order = ("test", "validation") if config.split == "auto" else (config.split,)
        name = next((n for n in order if n in splits), "")
        if not name:
            raise EngineError(
                f"The dataset has no {' or '.join(order)} rows to evaluate on; choose another "
                f"split ({', '.join(splits) or 'none'} have rows) or all.",
                code="empty_split",
                param="split",
            )
        data = splits[name]
    if config.max_rows is not None:
        data = data.select(range(min(config.max_rows, len(data))))
    labels = config.label_names
    if config.task in CLASSIFICATION_TASKS:
        feature = data.features.get("label")
        if isinstance(feature, ClassLabel):
            labels = list(feature.names)
        if not labels:
            raise EngineError("The dataset's labels are unknown.", code="invalid_dataset")
    return name, data.to_list(), labels


# --- the recipe -------------------------------------------------------------------------


def _load(entry: EvalModel, task: str) -> tuple[Any, Any]:
    import torch

    from jobs.engine.models.loading import load_for_task

    load_task = "classification" if task in CLASSIFICATION_TASKS else entry.task
    model, tokenizer = load_for_task(entry.path, load_task, dtype=torch.float32)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model, tokenizer


def _speed_inputs(task: str, rows: list[dict[str, Any]]) -> list[Any]:
    rows = rows[:64]
    if task == "pair-classification":
        return [(r["text_a"], r["text_b"]) for r in rows]
    if task == "seq2seq":
        return [r["source"] for r in rows]
    return [r["text"] for r in rows]


def evaluate_model(
    entry: EvalModel,
    config: EvaluateConfig,
    rows: list[dict[str, Any]],
    labels: list[str] | None,
    tick: Callable[[int], None],
) -> ModelEvaluation:
    """Load one model, score it on ``rows``, write its samples, time it."""
    from jobs.engine.measure import (
        MemoryWatch,
        count_parameters,
        fixed_threads,
        speed,
        weights_bytes,
    )

    with MemoryWatch() as memory, fixed_threads(config.threads):
        model, tokenizer = _load(entry, config.task)
        if config.task in CLASSIFICATION_TASKS:
            assert labels is not None
            measure = "classification"
            metrics, sigs, samples = score_classification(
                model, tokenizer, rows, labels, config, tick
            )
        elif config.task == "seq2seq":
            measure = "generation"
            metrics, sigs, samples = score_generation(model, tokenizer, rows, config, tick)
        else:
            rows = [r for r in rows if r.get("text")]  # samples stay aligned with rows
            texts = [r["text"] for r in rows]
            if entry.task == "masked-lm":
                measure = "pseudo-perplexity"
                metrics, sigs, samples = score_masked_lm(model, tokenizer, texts, config, tick)
            else:
                measure = "perplexity"
                metrics, sigs, samples = score_causal_lm(model, tokenizer, texts, config, tick)
        if config.slice_column:
            metrics["slices"] = slice_report(
                samples,
                rows,
                column=config.slice_column,
                measure=measure,
                warn_gap=config.slice_warn_gap,
            )
        timing: dict[str, Any] = {}
        # Loading and scoring set the memory peak; the sampler thread must not compete
        # with the timed passes (on one CPU thread it shows in the latency).
        memory.stop()
        if config.measure_speed and rows:
            generates = entry.task in ("causal-lm", "seq2seq")
            timing = speed(
                model,
                tokenizer,
                _speed_inputs(config.task, rows),
                max_length=config.max_length,
                runs=config.latency_runs,
                generate_tokens=min(config.max_new_tokens, 32) if generates else 0,
            )
        num_parameters = count_parameters(model)
    timing.update(memory.result())
    timing.update(
        {
            "num_parameters": int(num_parameters),
            "size_bytes": weights_bytes(entry.path),
            "threads": config.threads,
        }
    )
    path = config.output_dir / f"samples-{entry.key}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i, sample in enumerate(samples):
            f.write(json.dumps(jsonable({"i": i, **sample}), ensure_ascii=False) + "\n")
    del model
    gc.collect()
    return ModelEvaluation(
        key=entry.key,
        measure=measure,
        metrics=metrics,
        signatures=sigs,
        speed=timing,
        samples_path=path,
        num_samples=len(samples),
    )


def run_evaluation(config: EvaluateConfig, reporter: Reporter) -> EvaluateResult:
    """Score every model of ``config`` on its split; write samples under ``output_dir``.

    Raises :class:`Cancelled` between batches when the reporter asks to stop, and
    :class:`EngineError` for what the person can fix (no rows, labels that differ).
    """
    import torch
    import transformers

    from jobs.engine.device import device_description

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(config.seed)
    if not config.models:
        raise EngineError("Choose at least one model to evaluate.", param="models")
    split, rows, labels = load_rows(config)
    if not rows:
        raise EngineError(f"The {split} split has no rows.", code="empty_split", param="split")
    if config.slice_column and config.slice_column not in rows[0]:
        # Refused before any model runs (the kind checks the dataset's extra columns first).
        raise EngineError(
            f"The {split} rows have no column {config.slice_column!r} to slice by "
            f"(they have {', '.join(rows[0])}).",
            code="invalid_param",
            param="slice_column",
        )
    config.output_dir.mkdir(parents=True, exist_ok=True)
    device = device_description()
    total = len(rows) * len(config.models)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        reporter.emit("progress", step=min(done, total), total=total)
        if reporter.should_stop():
            raise Cancelled(f"cancelled after {done} of {total} rows")

    reporter.emit(
        "log",
        message=f"evaluating {len(config.models)} model(s) on {len(rows):,} {split} rows "
        f"on {device}",
        level="info",
    )
    result = EvaluateResult(split=split, device=device, rows=len(rows))
    for entry in config.models:
        reporter.emit("log", message=f"scoring {entry.name or entry.key}", level="info")
        evaluation = evaluate_model(entry, config, rows, labels, tick)
        headline = {k: v for k, v in evaluation.metrics.items() if isinstance(v, int | float)}
        reporter.emit("metrics", model=entry.key, step=done, split=split, final=True, **headline)
        result.evaluations.append(evaluation)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result
