"""Checks before any GPU time: the dataset is ready and fits the model, the params are sane.

Runs in the web process, so it must not import torch (train_config does not).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from jobs.engine.base import EngineError
from jobs.engine.train_config import PATH_FIELDS, TrainConfig

SUPPORTED = ("finetune", "pretrain")
# Which model tasks can be trained on which dataset schema.
COMPATIBLE = {
    "classification": ("classification", "encoder", "masked-lm"),
    "pair-classification": ("classification", "encoder", "masked-lm"),
    "causal-lm": ("causal-lm",),
    "masked-lm": ("masked-lm", "encoder"),
    "seq2seq": ("seq2seq",),
}
# Rough sustained training throughput used for the estimate (FLOP/s).
DEVICE_FLOPS = {"cpu": 2e10, "cuda": 2e14}


@dataclass
class Checked:
    params: dict[str, Any]
    estimate: dict[str, Any]
    config: TrainConfig


def _refuse(message: str, param: str, code: str = "invalid_param"):
    from jobs.services import JobError

    return JobError(message, code=code, param=param)


def check(*, job_type: str, team, base_model, dataset, params: dict[str, Any] | None) -> Checked:
    if job_type not in SUPPORTED:
        raise _refuse(
            f"Job type {job_type!r} is not available; choose one of {', '.join(SUPPORTED)}.",
            "type",
            "invalid_type",
        )
    if not isinstance(params, dict):
        raise _refuse("params must be a JSON object of parameter names to values.", "params")
    if base_model is None or base_model.team_id != team.pk:
        raise _refuse("Choose a base model of this team.", "base_model", "invalid_model")
    if base_model.status != "ready":
        raise _refuse(
            f"Model {base_model} is {base_model.status}, not ready.",
            "base_model",
            "model_not_ready",
        )
    if dataset is None or dataset.team_id != team.pk:
        raise _refuse("Choose a dataset of this team.", "dataset", "invalid_dataset")
    if dataset.status != "ready":
        raise _refuse(
            f"Dataset {dataset} is {dataset.status}; wait until it is ready.",
            "dataset",
            "dataset_not_ready",
        )
    task = dataset.schema
    allowed = COMPATIBLE.get(task, ())
    if base_model.task not in allowed:
        raise _refuse(
            f"Dataset {dataset} is for {task}, but model {base_model} is a {base_model.task or 'unknown'} model; "
            f"{task} needs a {' or '.join(allowed)} model.",
            "dataset",
            "task_mismatch",
        )
    if job_type == "pretrain" and task not in ("causal-lm", "masked-lm"):
        raise _refuse(
            "Pretraining needs a causal-lm or masked-lm dataset.", "dataset", "task_mismatch"
        )
    dummy = {name: "." for name in PATH_FIELDS}
    try:
        config = TrainConfig.from_params(
            {k: v for k, v in params.items() if k not in ("job_type", "task")},
            job_type=job_type,
            task=task,
            **dummy,
        )
    except EngineError as exc:
        raise _refuse(exc.message, exc.param or "params", exc.code) from None
    unknown = set(params) & {"job_type", "task"}
    if unknown:
        raise _refuse(
            f"{sorted(unknown)[0]!r} is set by the job and dataset, not in params.",
            sorted(unknown)[0],
            "unknown_param",
        )
    if base_model.max_length and config.max_length > base_model.max_length:
        raise _refuse(
            f"max_length {config.max_length} is longer than the model's {base_model.max_length} positions.",
            "max_length",
        )
    if task in ("classification", "pair-classification"):
        names = dataset.label_names or []
        if len(names) < 2:
            raise _refuse(
                "A classification dataset needs at least two labels.", "dataset", "too_few_labels"
            )
        if (
            base_model.task == "classification"
            and base_model.label_names
            and sorted(base_model.label_names) != sorted(names)
        ):
            raise _refuse(
                f"The model classifies into {base_model.label_names} but the dataset's labels are {names}.",
                "dataset",
                "label_mismatch",
            )
    clean = {
        k: v
        for k, v in asdict(config).items()
        if k not in (*PATH_FIELDS, "job_type", "task", "label_names")
    }
    return Checked(
        params=clean,
        estimate=estimate(config=config, base_model=base_model, dataset=dataset),
        config=config,
    )


def estimate(*, config: TrainConfig, base_model, dataset) -> dict[str, Any]:
    """What the form shows before launch: parameters, tokens, steps, memory, time."""
    rows = int((dataset.num_rows or {}).get("train") or 0)
    stats = dataset.stats or {}
    mean_chars = stats.get("mean_chars") or stats.get("text_length", {}).get("mean") or 200
    tokens_per_row = min(config.max_length, max(1, int(float(mean_chars) / 4)))
    tokens_per_epoch = rows * tokens_per_row
    per_step = config.batch_size * config.grad_accum
    steps_per_epoch = max(1, math.ceil(rows / per_step)) if rows else 0
    steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    n_params = int(base_model.num_parameters or 0)
    trained_tokens = steps * per_step * tokens_per_row
    flops = 6 * n_params * trained_tokens
    bytes_per_param = 16 if config.method == "full" else 4  # weights+grads+Adam vs frozen weights
    memory = n_params * bytes_per_param + config.batch_size * config.max_length * 4 * 1024 * 12
    return {
        "parameters": n_params,
        "train_rows": rows,
        "tokens_per_epoch": tokens_per_epoch,
        "steps": steps,
        "memory_bytes": int(memory),
        "seconds_cpu": round(flops / DEVICE_FLOPS["cpu"], 1),
        "seconds_gpu": round(flops / DEVICE_FLOPS["cuda"], 1),
    }
