"""A disk that fills up while a dataset's splits are written: the dataset fails with
"disk full" and no partial split (nor any other file of it) is left behind."""

from __future__ import annotations

import pytest
from django.conf import settings

from llmweb.catalog.models import Dataset
from tests.factories import csv_bytes
from tests.support import Worker, celery_app_for, database_files_size, files_under
from tests.support import wait_dataset_settled as settled

MiB = 1024 * 1024


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(300)
def test_disk_full_while_writing_splits_fails_the_dataset_and_leaves_no_file(team, alice):
    # Past the database files (they must still grow) and far short of what the splits
    # need: about 20 bytes of CSV per row, more once it is Arrow.
    limit = database_files_size() + 8 * MiB
    rows = limit // 10
    ds = Dataset.objects.create(
        team=team,
        name="big",
        schema="classification",
        original_filename="big.csv",
        status="uploaded",
        created_by=alice,
    )
    ds.upload_path.parent.mkdir(parents=True)
    ds.upload_path.write_bytes(csv_bytes(rows))
    Dataset.objects.filter(pk=ds.pk).update(size_bytes=ds.upload_path.stat().st_size)

    # An instance of its own, so only this worker, whose files are capped, takes the task.
    other = f"{settings.LLMWEB_INSTANCE}-diskfull"
    worker = Worker(queues="default", env={"LLMWEB_INSTANCE": other, "LLMWEB_PRELOAD": "0"})
    try:
        worker.wait_ready(timeout=120)
        assert worker.limit_file_size(limit) >= 2, "the worker and its pool child"
        celery_app_for(other).send_task(
            "llmweb.catalog.tasks.process_dataset", args=[ds.pk], queue="default"
        )
        ds = settled(ds.pk, timeout=240)
    finally:
        worker.stop()
    assert ds.status == "failed", ds.status
    assert ds.error["code"] == "disk_full", (ds.error, worker.output()[-3000:])
    assert "disk is full" in ds.error["message"]
    assert not ds.processed_dir.exists(), "no partial split folder"
    assert files_under(ds.storage_dir) == []
