"""Datasets and model arrivals whose task is lost are sent again, then failed with a reason."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from llmweb.catalog.models import Dataset, ModelSource, RegisteredModel
from llmweb.catalog.selectors import catalog_waiting_message as waiting_message
from llmweb.catalog.services.liveness import catalog_requeue_lost, dataset_claim, model_claim
from llmweb.catalog.tasks import reap_lost_catalog_work_task
from tests.factories import csv_bytes
from tests.support import Worker, celery_app_for, files_under, wait_for
from tests.support import wait_dataset_settled as settled

TEN_MINUTES = timedelta(minutes=10)


def make_dataset(team, name="sms", **fields) -> Dataset:
    fields.setdefault("status", "uploaded")
    return Dataset.objects.create(
        team=team, name=name, schema="classification", original_filename="sms.csv", **fields
    )


def age(record, **delta) -> None:
    type(record).objects.filter(pk=record.pk).update(
        created_at=timezone.now() - timedelta(**delta),
        queued_at=timezone.now() - timedelta(**delta),
    )


@pytest.mark.django_db
def test_unclaimed_dataset_is_sent_again_then_failed_with_a_reason(
    team, django_capture_on_commit_callbacks
):
    ds = make_dataset(team)
    age(ds, minutes=11)
    for attempt in (1, 2):
        with django_capture_on_commit_callbacks(execute=False) as sent:
            out = catalog_requeue_lost(unclaimed_after=TEN_MINUTES, max_requeues=2)
        assert out["requeued_datasets"] == [ds.pk] and len(sent) == 1
        ds.refresh_from_db()
        assert ds.status == "uploaded" and ds.requeues == attempt
        # Just sent: not lost again until another ten minutes pass.
        assert catalog_requeue_lost(unclaimed_after=TEN_MINUTES)["requeued_datasets"] == []
        age(ds, minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        out = catalog_requeue_lost(unclaimed_after=TEN_MINUTES, max_requeues=2)
    assert out["failed_datasets"] == [ds.pk]
    ds.refresh_from_db()
    assert ds.status == "failed" and ds.error["code"] == "no_worker"
    assert "No worker took this file in 30 min" in ds.error["message"]


@pytest.mark.django_db
def test_a_dataset_whose_worker_stopped_beating_goes_back_to_the_queue(
    team, django_capture_on_commit_callbacks
):
    live = make_dataset(team, "live", status="processing", heartbeat_at=timezone.now())
    dead = make_dataset(
        team, "dead", status="processing", heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    with django_capture_on_commit_callbacks(execute=False):
        out = catalog_requeue_lost()
    assert out["requeued_datasets"] == [dead.pk]
    dead.refresh_from_db()
    live.refresh_from_db()
    assert live.status == "processing"
    assert dead.status == "uploaded" and dead.heartbeat_at is None and dead.requeues == 1
    assert "stopped answering" in dead.progress_message


@pytest.mark.django_db
def test_claims_are_exclusive_until_the_heartbeat_goes_stale(team):
    ds = make_dataset(team)
    assert dataset_claim(dataset_id=ds.pk)
    assert not dataset_claim(dataset_id=ds.pk)  # a duplicate delivery exits
    Dataset.objects.filter(pk=ds.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert dataset_claim(dataset_id=ds.pk)

    model = RegisteredModel.objects.create(team=team, name="m", source=ModelSource.UPLOAD)
    assert model_claim(model_id=model.pk) and not model_claim(model_id=model.pk)


@pytest.mark.django_db
def test_a_lost_model_arrival_is_failed_after_its_tries(team, django_capture_on_commit_callbacks):
    model = RegisteredModel.objects.create(
        team=team,
        name="m",
        source=ModelSource.PRESET,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
        requeues=3,
    )
    job_model = RegisteredModel.objects.create(team=team, name="j", source=ModelSource.JOB)
    age(job_model, hours=2)  # written by its job's task, not by a catalog task
    with django_capture_on_commit_callbacks(execute=True):
        out = catalog_requeue_lost()
    assert out["failed_models"] == [model.pk] and out["requeued_models"] == []
    model.refresh_from_db()
    assert model.status == "failed" and model.error["code"] == "worker_lost"
    assert "stopped answering 4 times" in model.error["message"]


@pytest.mark.django_db
def test_waiting_shows_a_position_and_an_age(team):
    first, second = make_dataset(team, "a"), make_dataset(team, "b")
    age(first, minutes=3)
    age(second, seconds=20)
    first.refresh_from_db()
    second.refresh_from_db()
    assert waiting_message(first).startswith("Waiting for a worker: next in line, queued 3")
    assert waiting_message(second).startswith("Waiting for a worker: 1 ahead of it, queued 2")
    Dataset.objects.filter(pk=first.pk).update(status="processing")
    first.refresh_from_db()
    assert waiting_message(first) is None


@pytest.mark.django_db(transaction=True)
def test_a_dataset_left_processing_by_a_killed_worker_is_processed_again(worker, team, alice):
    """The state a SIGKILL leaves: processing, a stale heartbeat, half an output, no message."""
    ds = make_dataset(
        team,
        status="processing",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
        created_by=alice,
    )
    ds.upload_path.parent.mkdir(parents=True)
    ds.upload_path.write_bytes(csv_bytes(60))
    Dataset.objects.filter(pk=ds.pk).update(size_bytes=ds.upload_path.stat().st_size)
    partial = ds.processed_dir / "train" / "data-00000-of-00001.arrow"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half a split")

    assert reap_lost_catalog_work_task.delay().get(timeout=60)["requeued_datasets"] == [ds.pk]
    ds = settled(ds.pk)
    assert ds.status == "ready", ds.error
    assert sum(ds.num_rows.values()) == 60 and ds.requeues == 1
    assert b"half a split" not in b"".join(p.read_bytes() for p in files_under(ds.processed_dir))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_of_a_worker_mid_file_then_the_next_worker_finishes_it(team, alice):
    """A real kill: one worker (its own instance, so no other worker takes the message)
    is SIGKILLed while it parses a large file; the reaper requeues; another worker of this
    deployment processes the file again and it ends ready with every row, no leftovers."""
    rows = 300_000
    ds = make_dataset(team, created_by=alice)
    ds.upload_path.parent.mkdir(parents=True)
    ds.upload_path.write_bytes(csv_bytes(rows))
    Dataset.objects.filter(pk=ds.pk).update(size_bytes=ds.upload_path.stat().st_size)

    other = f"{settings.LLMWEB_INSTANCE}-doomed"
    doomed = Worker(queues="default", env={"LLMWEB_INSTANCE": other, "LLMWEB_PRELOAD": "0"})
    try:
        doomed.wait_ready(timeout=120)
        celery_app_for(other).send_task(
            "llmweb.catalog.tasks.process_dataset", args=[ds.pk], queue="default"
        )
        wait_for(
            lambda: Dataset.objects.filter(
                pk=ds.pk, status="processing", progress__gt=0.02
            ).exists(),
            timeout=120,
            interval=0.05,
            what="processing to be under way",
        )
        doomed.kill()  # SIGKILL to the main process and its pool
        killed_at = time.monotonic()
    finally:
        doomed.stop()
    assert Dataset.objects.get(pk=ds.pk).status == "processing"

    time.sleep(1.5)
    assert catalog_requeue_lost(stale_after=timedelta(seconds=1))["requeued_datasets"] == [ds.pk]
    successor = Worker(queues="default", env={"LLMWEB_PRELOAD": "0"})
    try:
        ds = settled(ds.pk, timeout=300)
    finally:
        successor.stop()
    recovered = time.monotonic() - killed_at
    print(f"dataset {rows:,} rows: ready {recovered:.1f} s after the SIGKILL")
    assert ds.status == "ready", ds.error
    assert sum(ds.num_rows.values()) == rows and ds.requeues == 1
    leftovers = [
        p
        for p in files_under(ds.storage_dir)
        if p != ds.upload_path and ds.processed_dir not in p.parents
    ]
    assert leftovers == []
