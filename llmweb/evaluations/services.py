"""Writers of evaluation records; the evaluate kind and the fine-tune kind call them in
the worker, once the engine has finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from jobs.engine.base import EngineError
from jobs.engine.jsonable import jsonable
from jobs.engine.rescoring import rescore
from llmweb.accounts.selectors import can_write
from llmweb.core.errors import DomainError
from llmweb.evaluations.models import Evaluation, EvaluationSource
from llmweb.evaluations.selectors import evaluation_sample_rows

# Fine-tune metrics that are bookkeeping, not measurements.
_NOT_METRICS = ("split", "examples", "labels", "step", "final", "generation_sample")


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).relative_to(settings.STORAGE_DIR))
    except ValueError:
        return str(path)


def evaluation_record(
    *,
    job,
    model,
    dataset,
    split: str,
    measure: str,
    metrics: dict[str, Any],
    signatures: dict[str, str],
    device: str,
    speed: dict[str, Any] | None = None,
    samples_path: str | Path | None = None,
    num_samples: int = 0,
    source: str = EvaluationSource.EVALUATE,
) -> Evaluation:
    """Store one model's scores on one split. Redelivery-safe: a job writes each model's
    record once, and a second delivery gets the first record back."""
    if job is not None:
        existing = Evaluation.objects.filter(job=job, model=model).first()
        if existing is not None:
            return existing
    return Evaluation.objects.create(
        team=model.team,
        model=model,
        dataset=dataset,
        split=split,
        task=dataset.schema,
        measure=measure,
        metrics=jsonable(metrics),
        signatures=jsonable(signatures),
        device=device,
        speed=jsonable(speed or {}),
        samples_path=_relative(samples_path) if samples_path else "",
        num_samples=num_samples,
        source=source,
        job=job,
    )


def evaluations_record_from_job(*, job, result: Any) -> list[Evaluation]:
    """One record per model an evaluate job scored (``result`` is the engine's
    ``EvaluateResult``; each evaluation's ``key`` is the model's id)."""
    models = {str(m.pk): m for m in job.models_in_role("evaluated")}
    with transaction.atomic():
        return [
            evaluation_record(
                job=job,
                model=models[each.key],
                dataset=job.eval_dataset,
                split=result.split,
                measure=each.measure,
                metrics=each.metrics,
                signatures=each.signatures,
                device=result.device,
                speed=each.speed,
                samples_path=each.samples_path,
                num_samples=each.num_samples,
            )
            for each in result.evaluations
        ]


def evaluation_record_from_training(
    *, job, model, metrics: dict[str, Any], device: str
) -> Evaluation | None:
    """A fine-tune's final held-out metrics as an evaluation of the model it produced, so
    every number has one home. None when the run had no held-out split."""
    if not metrics or not metrics.get("split") or job.dataset is None:
        return None
    if "accuracy" in metrics:
        measure = "classification"
    elif "bleu" in metrics:
        measure = "generation"
    else:
        measure = "perplexity"
    kept = {k: v for k, v in metrics.items() if k not in _NOT_METRICS}
    if measure == "classification":
        kept["labels"] = metrics.get("labels")
    signature = (
        f"trainer.predict on {metrics['split']}|max_length:{job.params.get('max_length', '')}"
        + ("|perplexity=exp(mean token loss), no sliding window" if "perplexity" in kept else "")
        + ("|sacrebleu corpus_bleu/corpus_chrf, generation sample" if "bleu" in kept else "")
    )
    return evaluation_record(
        job=job,
        model=model,
        dataset=job.dataset,
        split=metrics["split"],
        measure=measure,
        metrics=kept,
        signatures={"finetune": signature},
        device=device,
        source=EvaluationSource.FINETUNE,
    )


def evaluation_rescore(*, user, evaluation: Evaluation, metric: str) -> Evaluation:
    """Score the saved predictions again with ``metric`` (no model runs) and keep the
    value under ``metrics["rescored"]`` with its signature beside the others.

    Raises:
        PermissionDenied: a viewer of the team.
        DomainError: a metric that does not fit the evaluation, or no saved rows.
    """
    if not can_write(user=user, team=evaluation.team):
        raise PermissionDenied("Viewers cannot re-score; ask an owner for the member role.")
    rows = evaluation_sample_rows(evaluation=evaluation)
    try:
        value, signature = rescore(
            rows,
            measure=evaluation.measure,
            metric=metric,
            label_names=(evaluation.metrics or {}).get("labels") or [],
        )
    except EngineError as exc:
        raise DomainError(exc.message, code=exc.code, param=exc.param or "metric") from None
    with transaction.atomic():
        locked = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
        metrics = dict(locked.metrics or {})
        metrics["rescored"] = {**metrics.get("rescored", {}), metric: value}
        locked.metrics = jsonable(metrics)
        locked.signatures = {**(locked.signatures or {}), f"rescored:{metric}": signature}
        locked.save(update_fields=["metrics", "signatures"])
    return locked
