"""Fine-tune and pretrain share one recipe: a base model trained on a dataset, giving a
new model with a lineage edge. The two kinds differ only in what data they accept."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from jobs import selectors
from jobs.engine.schemas import CLASSIFICATION_TASKS
from jobs.engine.train_config import TrainConfig
from jobs.errors import JobError
from jobs.kinds.base import Checked, Input, Inputs, JobKind, Outcome

if TYPE_CHECKING:
    from jobs.models import Job

# Which model tasks can be trained on which dataset schema.
COMPATIBLE = {
    "classification": ("classification", "encoder", "masked-lm"),
    "pair-classification": ("classification", "encoder", "masked-lm"),
    "causal-lm": ("causal-lm",),
    "masked-lm": ("masked-lm", "encoder"),
    "seq2seq": ("seq2seq",),
}
# Rough sustained training throughput for the estimate until a similar job has run here
# (FLOP/s): the CPU figure is what 2 cores sustained on MiniLM (2e10 overestimated 8-15x).
DEVICE_FLOPS = {"cpu": 1.5e11, "cuda": 2e14}
# Loading, final evaluation and saving: seconds no FLOP count sees.
ROUGH_OVERHEAD_SECONDS = 5.0
PLACEHOLDER = "."


class TrainingKind(JobKind):
    queue_setting = "LLMWEB_TRAIN_QUEUE"
    config_class = TrainConfig
    engine = "jobs.engine.finetune:run_training"
    produces = "model"
    inputs = (
        Input("base_model", "model", "base", label="Base model"),
        Input("dataset", "dataset", "train", label="Dataset"),
    )
    # Dataset schemas this kind accepts (None: any).
    dataset_tasks: tuple[str, ...] | None = None

    def check(self, *, team: Any, inputs: Inputs, params: dict[str, Any]) -> Checked:
        base_model, dataset = inputs.get("base_model"), inputs.get("dataset")
        if base_model.dtype == "int8":
            raise JobError(
                f"{base_model} is an int8 copy for serving; int8 weights cannot be trained. "
                "Train the model it was quantized from.",
                code="quantized_model",
                param="base_model",
            )
        task = dataset.schema
        allowed = COMPATIBLE.get(task, ())
        if base_model.task not in allowed:
            raise JobError(
                f"Dataset {dataset} is for {task}, but model {base_model} is a "
                f"{base_model.task or 'unknown'} model; {task} needs a {' or '.join(allowed)} model.",
                code="task_mismatch",
                param="dataset",
            )
        if self.dataset_tasks is not None and task not in self.dataset_tasks:
            raise JobError(self.dataset_refusal, code="task_mismatch", param="dataset")
        checked = super().check(team=team, inputs=inputs, params=params)
        config = checked.config
        if base_model.max_length and config.max_length > base_model.max_length:
            raise JobError(
                f"max_length {config.max_length} is longer than the model's "
                f"{base_model.max_length} positions.",
                code="invalid_param",
                param="max_length",
            )
        if task in CLASSIFICATION_TASKS:
            names = dataset.label_names or []
            if len(names) < 2:
                raise JobError(
                    "A classification dataset needs at least two labels.",
                    code="too_few_labels",
                    param="dataset",
                )
            if (
                base_model.task == "classification"
                and base_model.label_names
                and sorted(base_model.label_names) != sorted(names)
            ):
                raise JobError(
                    f"The model classifies into {base_model.label_names} but the dataset's "
                    f"labels are {names}.",
                    code="label_mismatch",
                    param="dataset",
                )
        return checked

    dataset_refusal = ""

    def fixed_fields(self, *, inputs: Inputs, job: Job | None) -> dict[str, Any]:
        base_model, dataset = inputs.get("base_model"), inputs.get("dataset")
        if job is None:
            paths = dict.fromkeys(("model_dir", "data_dir", "output_dir", "checkpoint_dir"), ".")
        else:
            paths = {
                "model_dir": base_model.artifact_dir,
                "data_dir": dataset.processed_dir,
                "output_dir": job.work_dir / "output",
                "checkpoint_dir": job.checkpoint_dir,
            }
        return {"job_type": self.name, "task": dataset.schema, **paths}

    def config(self, *, inputs: Inputs, params: dict[str, Any], job: Job | None) -> Any:
        config = super().config(inputs=inputs, params=params, job=job)
        if job is not None:
            config.label_names = inputs.get("dataset").label_names
            if config.max_minutes:
                config.budget_started = time.monotonic()
                base_model = inputs.get("base_model")
                measured = selectors.training_throughput(
                    model_type=base_model.model_type or "",
                    num_parameters=max(1, int(base_model.num_parameters or 0)),
                    max_length=config.max_length,
                )
                config.throughput_hint = {
                    device: m["samples_per_second"] for device, m in measured.items()
                } or None
        return config

    def estimate(self, *, config: Any, inputs: Inputs) -> dict[str, Any]:
        """What the form shows before launch: parameters, tokens, steps, memory, time."""
        base_model, dataset = inputs.get("base_model"), inputs.get("dataset")
        rows = int((dataset.num_rows or {}).get("train") or 0)
        stats = dataset.stats or {}
        mean_chars = stats.get("mean_chars") or stats.get("text_length", {}).get("mean") or 200
        tokens_per_row = min(config.max_length, max(1, int(float(mean_chars) / 4)))
        per_step = config.batch_size * config.grad_accum
        steps_per_epoch = max(1, math.ceil(rows / per_step)) if rows else 0
        steps = (
            config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
        )
        n_params = int(base_model.num_parameters or 0)
        flops = 6 * n_params * steps * per_step * tokens_per_row
        # weights + grads + Adam moments (full) vs frozen weights (LoRA), plus activations
        bytes_per_param = 16 if config.method == "full" else 4
        memory = n_params * bytes_per_param + config.batch_size * config.max_length * 4 * 1024 * 12
        out = {
            "parameters": n_params,
            "train_rows": rows,
            "tokens_per_epoch": rows * tokens_per_row,
            "steps": steps,
            "memory_bytes": int(memory),
            "seconds_cpu": round(ROUGH_OVERHEAD_SECONDS + flops / DEVICE_FLOPS["cpu"], 1),
            "seconds_gpu": round(ROUGH_OVERHEAD_SECONDS + flops / DEVICE_FLOPS["cuda"], 1),
            "source": "rough: FLOP count at a typical speed (no finished job to learn from)",
        }
        measured = selectors.training_throughput(
            model_type=base_model.model_type or "",
            num_parameters=max(1, n_params),
            max_length=config.max_length,
        )
        if measured:
            # Calibrated: the same family/size/length trained here before, on these devices.
            out["by_device"] = {
                device: {
                    "seconds": round(
                        m["overhead_seconds"] + steps * per_step / m["samples_per_second"], 1
                    ),
                    "jobs": m["jobs"],
                }
                for device, m in measured.items()
            }
            for device, figure in out["by_device"].items():
                key = "seconds_cpu" if device == "cpu" else "seconds_gpu"
                out[key] = figure["seconds"]
            counts = ", ".join(f"{m['jobs']} on {d}" for d, m in measured.items())
            out["source"] = f"measured: similar finished jobs ({counts})"
        if config.max_minutes:
            step_flops = 6 * n_params * per_step * tokens_per_row
            _fit_to_budget(out, config.max_minutes * 60, per_step, step_flops, measured)
        return out

    def finish(self, job: Job, result: Any) -> Outcome:
        """A new ready model with lineage (base model, dataset, job) and its card."""
        from llmweb.catalog.services.models import model_register_from_job
        from llmweb.evaluations.services import evaluation_record_from_training

        metrics = {
            **result.metrics,
            "train_samples_per_second": result.train_samples_per_second,
            "train_runtime": result.train_runtime,
            "global_step": result.global_step,
        }
        model = model_register_from_job(
            job=job, output_dir=result.output_dir, metrics=metrics, edge=self.lineage_edge
        )
        # The run's own held-out metrics are an evaluation of the new model too, so the
        # model page, comparisons and leaderboards find every number in one place.
        evaluation_record_from_training(
            job=job, model=model, metrics=result.metrics, device=result.device
        )
        return Outcome(metrics=metrics, result_model=model)


def _fit_to_budget(
    out: dict[str, Any], budget: float, per_step: int, step_flops: float, measured: dict
) -> None:
    """A ``max_minutes`` run lasts its budget; the steps are what fits in it (the worker
    times its own first steps and plans again: this is the form's expectation)."""

    def fits(seconds_per_step: float, overhead: float) -> int:
        return max(0, math.floor((budget - overhead) / max(seconds_per_step, 1e-9)))

    rough = {
        "cpu": fits(step_flops / DEVICE_FLOPS["cpu"], ROUGH_OVERHEAD_SECONDS),
        "cuda": fits(step_flops / DEVICE_FLOPS["cuda"], ROUGH_OVERHEAD_SECONDS),
    }
    for device, m in measured.items():
        steps = fits(per_step / m["samples_per_second"], m["overhead_seconds"])
        out["by_device"][device] = {"seconds": round(budget, 1), "jobs": m["jobs"], "steps": steps}
        rough["cpu" if device == "cpu" else "cuda"] = steps
    out["steps"] = rough["cpu"]
    out["steps_by_device"] = rough
    out["seconds_cpu"] = out["seconds_gpu"] = round(budget, 1)
