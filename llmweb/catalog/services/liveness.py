"""Datasets and model arrivals whose task is lost: the same heartbeat + reaper rule as jobs.

(What the page shows while a record waits is ``selectors.catalog_waiting_message``.)

A dataset stayed "Waiting for a worker" forever when its message went to another
deployment's worker, and a file stays ``processing`` forever when its worker is killed
(Redis gives an unacknowledged message back only after the 7-day visibility timeout). The
database is the truth, as for jobs:

- the claim is one conditional UPDATE that records a heartbeat (``*_claim``), and a
  thread beside the work keeps it fresh (``heartbeat``);
- the reaper (beat, ``catalog_requeue_lost``) sends the task again for work whose
  heartbeat is stale, or that no worker claimed within ``unclaimed_after``; after
  ``max_requeues`` it fails the record with a message that says what happened;
- a duplicate delivery finds the record claimed (fresh heartbeat) or settled and exits.

Only records that a task processes take part: datasets, and uploaded, preset and hub
models (a model made by a job is written by the job's own task).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from llmweb.catalog.models import (
    Dataset,
    DatasetStatus,
    ModelSource,
    ModelStatus,
    RegisteredModel,
)

log = logging.getLogger(__name__)

# The task that processes a model of each source (module:attribute, imported when sent).
MODEL_TASKS = {
    ModelSource.UPLOAD: "llmweb.catalog.tasks.models:model_validate_upload_task",
    ModelSource.PRESET: "llmweb.catalog.tasks.models:model_build_preset_task",
    ModelSource.HUB: "llmweb.catalog.tasks.models:model_download_hub_task",
}
DATASET_TASK = "llmweb.catalog.tasks.datasets:process_dataset_task"
# A clean version has no upload; it is made from its source's splits by another task.
CLEAN_TASK = "llmweb.catalog.tasks.cleaning:clean_dataset_task"


def _stale_cutoff():
    return timezone.now() - timedelta(seconds=settings.LLMWEB_HEARTBEAT_STALE_SECONDS)


# ---------------------------------------------------------------- claim and heartbeat


def dataset_claim(*, dataset_id: int) -> bool:
    """Take an uploaded dataset (or one whose worker stopped beating) for processing."""
    now = timezone.now()
    takeable = Q(status=DatasetStatus.UPLOADED) | Q(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=_stale_cutoff()),
        status=DatasetStatus.PROCESSING,
    )
    return (
        Dataset.objects.filter(takeable, pk=dataset_id).update(
            status=DatasetStatus.PROCESSING,
            progress=0.0,
            progress_message="Starting",
            heartbeat_at=now,
        )
        == 1
    )


def model_claim(*, model_id: int) -> bool:
    """Take a pending model nobody holds (no heartbeat, or a stale one)."""
    takeable = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=_stale_cutoff())
    return (
        RegisteredModel.objects.filter(takeable, pk=model_id, status=ModelStatus.PENDING).update(
            heartbeat_at=timezone.now()
        )
        == 1
    )


@contextmanager
def heartbeat(
    record: Dataset | RegisteredModel, *, interval: float | None = None
) -> Iterator[None]:
    """Refresh the record's heartbeat from a thread while the body runs.

    A thread rather than the progress reports, because some phases (opening a parquet
    file, loading a model) report nothing for longer than the staleness limit.
    """
    interval = interval or max(1.0, settings.LLMWEB_HEARTBEAT_STALE_SECONDS / 6)
    active = DatasetStatus.PROCESSING if isinstance(record, Dataset) else ModelStatus.PENDING
    rows = type(record).objects.filter(pk=record.pk, status=active)
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    rows.update(heartbeat_at=timezone.now())
                except Exception:  # noqa: BLE001 - a missed beat is retried; never kill the work
                    log.warning("heartbeat of %s %s failed", type(record).__name__, record.pk)
        finally:
            close_old_connections()

    thread = threading.Thread(target=beat, name=f"heartbeat-{record.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


# ---------------------------------------------------------------- the reaper


def _send(task_path: str, record_id: int, on_error) -> None:
    from llmweb.core.queue import enqueue_on_commit

    enqueue_on_commit(task_path, record_id, on_error=on_error)


def _dataset_messages(*, stale: bool, requeues: int, limit: int, unclaimed: timedelta) -> dict:
    minutes = max(1, round(unclaimed.total_seconds() / 60))
    if stale:
        retry = (
            "The worker processing this file stopped answering (no heartbeat); it was sent "
            f"to a worker again (attempt {requeues + 1} of {limit + 1})."
        )
        final = (
            f"Processing was lost {limit + 1} times: the worker stopped answering each time "
            "(a crash or the out-of-memory killer are likely). Nothing was kept; ask an admin "
            "to read the workers' logs, then upload the file again."
        )
    else:
        retry = (
            f"No worker took this file within {minutes} min; it was sent again "
            f"({requeues + 1} of {limit + 1})."
        )
        final = (
            f"No worker took this file in {minutes * (limit + 1)} min (it was sent {limit + 1} "
            "times). Is a worker running on queue 'default' for this deployment? Upload the "
            "file again once one is."
        )
    return {"retry": retry, "final": final}


def catalog_requeue_lost(
    *,
    stale_after: timedelta | None = None,
    unclaimed_after: timedelta | None = None,
    max_requeues: int | None = None,
) -> dict[str, list[int]]:
    """Send lost dataset and model tasks again, or fail records that used up their tries.

    Returns:
        ids by outcome: ``requeued_datasets``, ``failed_datasets``, ``requeued_models``,
        ``failed_models``.
    """
    from llmweb.catalog.services.datasets import dataset_mark_failed
    from llmweb.catalog.services.model_common import model_mark_failed

    stale_after = stale_after or timedelta(seconds=settings.LLMWEB_HEARTBEAT_STALE_SECONDS)
    unclaimed_after = unclaimed_after or timedelta(
        seconds=settings.LLMWEB_UNCLAIMED_REQUEUE_SECONDS
    )
    limit = settings.LLMWEB_LOST_WORK_MAX_REQUEUES if max_requeues is None else max_requeues
    now = timezone.now()
    stale_q = Q(heartbeat_at__lt=now - stale_after)
    unclaimed_q = Q(heartbeat_at__isnull=True, waiting_since__lt=now - unclaimed_after)
    out: dict[str, list[int]] = {
        "requeued_datasets": [],
        "failed_datasets": [],
        "requeued_models": [],
        "failed_models": [],
    }

    datasets = Dataset.objects.annotate(waiting_since=Coalesce("queued_at", "created_at"))
    lost = (Q(status=DatasetStatus.PROCESSING) & (stale_q | Q(heartbeat_at__isnull=True))) | (
        Q(status=DatasetStatus.UPLOADED) & unclaimed_q
    )
    for dataset_id in datasets.filter(lost).values_list("pk", flat=True):
        with transaction.atomic():
            ds = datasets.select_for_update().filter(lost, pk=dataset_id).first()
            if ds is None:
                continue  # claimed or settled meanwhile
            stale = ds.status == DatasetStatus.PROCESSING
            text = _dataset_messages(
                stale=stale, requeues=ds.requeues, limit=limit, unclaimed=unclaimed_after
            )
            if ds.requeues >= limit:
                code = "worker_lost" if stale else "no_worker"
                transaction.on_commit(
                    lambda i=ds.pk, c=code, m=text["final"]: dataset_mark_failed(
                        dataset_id=i, error={"code": c, "message": m}
                    )
                )
                out["failed_datasets"].append(ds.pk)
                continue
            Dataset.objects.filter(pk=ds.pk).update(
                status=DatasetStatus.UPLOADED,
                heartbeat_at=None,
                queued_at=now,
                requeues=ds.requeues + 1,
                progress=0.0,
                progress_message=text["retry"][:200],
            )
            _send(
                CLEAN_TASK if ds.derived_from_id else DATASET_TASK,
                ds.pk,
                on_error=lambda exc, i=ds.pk: log.warning("requeue of dataset %s failed", i),
            )
            out["requeued_datasets"].append(ds.pk)
            log.warning("dataset %s: %s", ds.pk, text["retry"])

    models = RegisteredModel.objects.annotate(
        waiting_since=Coalesce("queued_at", "created_at")
    ).filter(status=ModelStatus.PENDING, source__in=list(MODEL_TASKS))
    for model_id in models.filter(stale_q | unclaimed_q).values_list("pk", flat=True):
        with transaction.atomic():
            model = models.select_for_update().filter(stale_q | unclaimed_q, pk=model_id).first()
            if model is None:
                continue
            stale = model.heartbeat_at is not None
            if model.requeues >= limit:
                if stale:
                    message = (
                        f"The worker preparing this model stopped answering {limit + 1} times "
                        "(a crash or the out-of-memory killer are likely). Nothing was kept; "
                        "ask an admin to read the workers' logs, then try again."
                    )
                else:
                    message = (
                        f"No worker took this model in {limit + 1} tries "
                        f"({round(unclaimed_after.total_seconds() / 60)} min each). Is a worker "
                        "running on queue 'default' for this deployment? Try again once one is."
                    )
                code = "worker_lost" if stale else "no_worker"
                transaction.on_commit(
                    lambda i=model.pk, c=code, m=message: model_mark_failed(
                        model_id=i, error={"code": c, "message": m}
                    )
                )
                out["failed_models"].append(model.pk)
                continue
            RegisteredModel.objects.filter(pk=model.pk).update(
                heartbeat_at=None, queued_at=now, requeues=model.requeues + 1
            )
            _send(
                MODEL_TASKS[model.source],
                model.pk,
                on_error=lambda exc, i=model.pk: log.warning("requeue of model %s failed", i),
            )
            out["requeued_models"].append(model.pk)
            log.warning(
                "model %s: task lost (%s); sent again", model.pk, "stale" if stale else "unclaimed"
            )
    return out
