"""Evaluate: up to six models of the team scored on one split of one dataset.

The dataset input has role ``eval`` (stored as ``Job.eval_dataset``): it is read, never
trained on, and may be a split of a ready dataset or a whole dataset uploaded as a test
set (``split=all``). Every model must fit the data's schema, and a classifier's labels
must be the dataset's labels (in any order: classes are matched by name). The result is
one Evaluation record per model; no model is registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.engine.eval_config import EVALUABLE, EvaluateConfig
from jobs.engine.schemas import CLASSIFICATION_TASKS
from jobs.errors import JobError
from jobs.kinds.base import Checked, Input, Inputs, JobKind, Outcome, register

if TYPE_CHECKING:
    from jobs.models import Job

MAX_MODELS = 6
# Rough scoring speed for the estimate (rows/s per model, plus a fixed load + timing cost).
ROWS_PER_SECOND = {"cpu": 50.0, "cuda": 1000.0}
GENERATION_SLOWDOWN = 20.0
SECONDS_PER_MODEL = 10.0


def label_refusal(model: Any, dataset: Any) -> str | None:
    """Why a classifier cannot be scored on the dataset's labels, naming them; or None."""
    if model.task != "classification" or not model.label_names:
        return None
    ours, theirs = [str(x) for x in model.label_names], [str(x) for x in dataset.label_names or []]
    if sorted(ours) == sorted(theirs):
        return None
    if all(name == f"LABEL_{i}" for i, name in enumerate(ours)) and len(ours) == len(theirs):
        return None  # an unnamed head: classes are taken in id order
    missing = [x for x in theirs if x not in ours]
    extra = [x for x in ours if x not in theirs]
    parts = []
    if missing:
        parts.append(f"the model has no class {', '.join(missing)}")
    if extra:
        parts.append(f"the dataset has no label {', '.join(extra)}")
    return (
        f"Model {model} classifies into {ours} but dataset {dataset} has labels {theirs}: "
        f"{'; '.join(parts)}."
    )


@register
class Evaluate(JobKind):
    name = "evaluate"
    label = "Evaluate"
    description = (
        "Score models on a split of a dataset: accuracy, F1, confusion and calibration; "
        "perplexity and bits per byte; BLEU, chrF++ and ROUGE; latency, throughput and size."
    )
    queue_setting = "LLMWEB_TRAIN_QUEUE"
    config_class = EvaluateConfig
    engine = "jobs.engine.evaluate:run_evaluation"
    produces = "evaluation"
    inputs = (
        Input(
            "models",
            "model",
            "evaluated",
            many=True,
            max_items=MAX_MODELS,
            label="Models",
            help=f"Up to {MAX_MODELS} models of one task, scored the same way.",
        ),
        Input(
            "dataset",
            "dataset",
            "eval",
            label="Evaluation set",
            help="A ready dataset whose schema fits the models; pick its split below.",
        ),
    )

    def check(self, *, team: Any, inputs: Inputs, params: dict[str, Any]) -> Checked:
        models, dataset = inputs.get("models") or [], inputs.get("dataset")
        if len({m.pk for m in models}) != len(models):
            raise JobError("Each model can be evaluated once per job.", param="models")
        allowed = EVALUABLE.get(dataset.schema, ())
        for model in models:
            if model.task not in allowed:
                raise JobError(
                    f"Dataset {dataset} is for {dataset.schema}, but model {model} is a "
                    f"{model.task or 'unknown'} model; {dataset.schema} data is scored with "
                    f"a {' or '.join(allowed)} model.",
                    code="task_mismatch",
                    param="models",
                )
            if dataset.schema in CLASSIFICATION_TASKS and (why := label_refusal(model, dataset)):
                raise JobError(why, code="label_mismatch", param="models")
        checked = super().check(team=team, inputs=inputs, params=params)
        config = checked.config
        if config.slice_column and config.slice_column not in dataset.extra_columns:
            have = ", ".join(dataset.extra_columns)
            raise JobError(
                f"Dataset {dataset} has no extra column {config.slice_column!r} to slice by; "
                + (f"its extra columns are {have}." if have else "it has no extra columns."),
                code="invalid_param",
                param="slice_column",
            )
        split = config.split
        rows = dataset.num_rows or {}
        if split not in ("auto", "all") and not rows.get(split):
            have = ", ".join(name for name, n in rows.items() if n) or "none"
            raise JobError(
                f"Dataset {dataset} has no {split} rows (rows in: {have}); choose another "
                "split, or all for a dataset uploaded as a test set.",
                code="empty_split",
                param="split",
            )
        if split == "auto" and not (rows.get("test") or rows.get("validation")):
            raise JobError(
                f"Dataset {dataset} has no test or validation rows; choose split all to "
                "score every row.",
                code="empty_split",
                param="split",
            )
        return checked

    def fixed_fields(self, *, inputs: Inputs, job: Job | None) -> dict[str, Any]:
        models, dataset = inputs.get("models") or [], inputs.get("dataset")
        fixed: dict[str, Any] = {
            "task": dataset.schema,
            "data_dir": dataset.processed_dir if job else ".",
            "output_dir": job.work_dir / "output" if job else ".",
            "models": [
                {
                    "key": str(m.pk),
                    # the web process must not resolve a bundled path (it imports torch)
                    "path": str(m.artifact_dir) if job else ".",
                    "task": m.task,
                    "name": str(m),
                }
                for m in models
            ],
        }
        if dataset.label_names:
            fixed["label_names"] = list(dataset.label_names)
        return fixed

    def estimate(self, *, config: Any, inputs: Inputs) -> dict[str, Any]:
        dataset = inputs.get("dataset")
        rows_by_split = dataset.num_rows or {}
        if config.split == "all":
            rows = sum(int(n or 0) for n in rows_by_split.values())
        elif config.split == "auto":
            rows = int(rows_by_split.get("test") or rows_by_split.get("validation") or 0)
        else:
            rows = int(rows_by_split.get(config.split) or 0)
        if config.max_rows:
            rows = min(rows, config.max_rows)
        models = len(inputs.get("models") or [])
        slow = GENERATION_SLOWDOWN if dataset.schema == "seq2seq" else 1.0
        return {
            "models": models,
            "rows": rows,
            # what the job page's progress counts: rows scored, over all models
            "steps": rows * models,
            "parameters": sum(int(m.num_parameters or 0) for m in inputs.get("models") or []),
            "seconds_cpu": round(
                models * (SECONDS_PER_MODEL + rows * slow / ROWS_PER_SECOND["cpu"]), 1
            ),
            "seconds_gpu": round(
                models * (SECONDS_PER_MODEL + rows * slow / ROWS_PER_SECOND["cuda"]), 1
            ),
        }

    def finish(self, job: Job, result: Any) -> Outcome:
        """One Evaluation per model; the job's metrics list them with their headlines."""
        from llmweb.evaluations.services import evaluations_record_from_job

        records = evaluations_record_from_job(job=job, result=result)
        return Outcome(
            metrics={
                "split": result.split,
                "rows": result.rows,
                "device": result.device,
                "evaluations": [
                    {
                        "id": r.pk,
                        "model": r.model_id,
                        "measure": r.measure,
                        **{k: v for k, v in r.metrics.items() if isinstance(v, int | float)},
                    }
                    for r in records
                ],
            }
        )
