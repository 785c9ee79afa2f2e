"""Compress: an int8 copy of a model for CPU serving, measured against the original.

No training data: the input is a model (role ``source``) and, optionally, an eval dataset
to measure the quality cost on. The result is a new model with the lineage edge
"quantized from" and a report (size, latency at batch 1 and 32, quality delta).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from jobs.engine.compress import BNB_METHODS, CompressConfig
from jobs.engine.schemas import CLASSIFICATION_TASKS
from jobs.errors import JobError
from jobs.kinds.base import Checked, Input, Inputs, JobKind, Outcome, register

if TYPE_CHECKING:
    from jobs.models import Job

# Rough int8 dynamic-quantization speed of small encoders on a few CPU cores: the
# original is measured twice (batch 1 and 32) plus the eval rows, then the copy again.
ROUGH_SECONDS_PER_MPARAM = 0.6


def refuse_bitsandbytes_without_gpu(method: str, *, param: str = "method") -> None:
    """bitsandbytes kernels are CUDA kernels: refuse before a CPU worker takes the job.

    The web process cannot see the workers' devices, so a deployment whose training
    workers have GPUs says so with ``LLMWEB_GPU_WORKERS=1``.
    """
    from django.conf import settings

    if method not in BNB_METHODS:
        return
    if not getattr(settings, "LLMWEB_GPU_WORKERS", False):
        raise JobError(
            f"{method} uses bitsandbytes, which needs a CUDA GPU; this deployment's workers "
            "run on CPU. Choose dynamic-int8 for CPU serving.",
            code="needs_gpu",
            param=param,
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise JobError(
            f"{method} needs the bitsandbytes package, which is not installed here.",
            code="needs_gpu",
            param=param,
        )


def eval_task(model: Any, dataset: Any) -> str:
    """The task to measure with: pair classifiers read pairs; others their own task."""
    if model.task == "classification" and dataset is not None:
        return dataset.schema
    return model.task or "encoder"


@register
class Compress(JobKind):
    name = "compress"
    label = "Compress (int8)"
    description = (
        "An int8 copy of a model for CPU serving: dynamic int8 Linear layers and an int8 "
        "embedding table, stored as safetensors; size, latency and quality before and after."
    )
    queue_setting = "LLMWEB_TRAIN_QUEUE"
    config_class = CompressConfig
    engine = "jobs.engine.compress:run_compress"
    produces = "model"
    lineage_edge = "quantized from"
    inputs = (
        Input("source_model", "model", "source", label="Model to compress"),
        Input(
            "eval_dataset",
            "dataset",
            "eval",
            required=False,
            label="Eval dataset",
            help="Optional, recommended: quality is measured on it before and after.",
        ),
    )

    def check(self, *, team: Any, inputs: Inputs, params: dict[str, Any]) -> Checked:
        model, dataset = inputs.get("source_model"), inputs.get("eval_dataset")
        if model.dtype == "int8":
            raise JobError(
                f"{model} is already int8.", code="already_quantized", param="source_model"
            )
        if dataset is not None:
            self._check_eval_dataset(model, dataset)
        checked = super().check(team=team, inputs=inputs, params=params)
        refuse_bitsandbytes_without_gpu(checked.config.method)
        return checked

    def check_params(self, *, params: dict[str, Any]) -> dict[str, Any]:
        cleaned = super().check_params(params=params)
        refuse_bitsandbytes_without_gpu(cleaned.get("method") or "dynamic-int8")
        return cleaned

    @staticmethod
    def _check_eval_dataset(model: Any, dataset: Any) -> None:
        task = model.task
        fits = (
            dataset.schema in CLASSIFICATION_TASKS
            if task == "classification"
            else dataset.schema == task
        )
        if not fits:
            raise JobError(
                f"Dataset {dataset} is for {dataset.schema}; {model} is a "
                f"{task or 'headless'} model, so it cannot be scored on it.",
                code="task_mismatch",
                param="eval_dataset",
            )
        if task == "classification":
            unknown = sorted(set(dataset.label_names or []) - set(model.label_names or []))
            if unknown:
                raise JobError(
                    f"The dataset has labels {unknown} that {model} does not predict.",
                    code="label_mismatch",
                    param="eval_dataset",
                )

    def fixed_fields(self, *, inputs: Inputs, job: Job | None) -> dict[str, Any]:
        model, dataset = inputs.get("source_model"), inputs.get("eval_dataset")
        fields: dict[str, Any] = {"task": eval_task(model, dataset)}
        if job is None:
            return {**fields, "model_dir": ".", "output_dir": "."}
        fields.update(model_dir=model.artifact_dir, output_dir=job.work_dir / "output")
        # A fixed field is never None (params.from_params refuses it): leave absent ones out.
        if dataset is not None:
            fields["eval_dir"] = dataset.processed_dir
        if model.label_names:
            fields["model_labels"] = model.label_names
        return fields

    def estimate(self, *, config: Any, inputs: Inputs) -> dict[str, Any]:
        model = inputs.get("source_model")
        n = int(model.num_parameters or 0)
        # int8 matmul weights; with the embedding also int8 nearly every weight is a byte.
        return {
            "parameters": n,
            "size_bytes_before": model.size_bytes,
            "size_bytes_after_about": n + n // 50,
            "seconds_cpu": round(10 + ROUGH_SECONDS_PER_MPARAM * n / 1e6, 1),
            "source": "rough: int8 stores one byte per weight (scales add ~2%)",
        }

    def finish(self, job: Job, result: Any) -> Outcome:
        """A new model "quantized from" the source, with the before/after report."""
        from llmweb.catalog.services.models import model_register_from_job

        source = self.inputs_of(job).get("source_model")
        model = model_register_from_job(
            job=job,
            output_dir=result.output_dir,
            metrics=result.metrics,
            parent=source,
            edge=self.lineage_edge,
            report=result.report,
        )
        return Outcome(metrics=result.metrics, result_model=model)
