"""Deleting a dataset or model that jobs used: the refusal lists them; asked, they go too."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent, JobStatus
from llmweb.catalog.models import Dataset, RegisteredModel
from tests.factories import bundled_model, job_record

pytestmark = pytest.mark.django_db


def _dataset(team, name="sms") -> Dataset:
    return Dataset.objects.create(
        team=team, name=name, schema="classification", original_filename="sms.tsv", status="ready"
    )


def _finished_job_with_a_result(team, base, dataset) -> tuple[Job, RegisteredModel]:
    job = job_record(team=team, base_model=base, dataset=dataset)
    JobEvent.objects.create(job=job, seq=1, kind="status", data={"status": "succeeded"})
    job.work_dir.mkdir(parents=True, exist_ok=True)
    (job.work_dir / "log.txt").write_text("done")
    result = RegisteredModel.objects.create(
        team=team, name="spam", source="job", status="ready", parent=base, dataset=dataset, job=job
    )
    Job.objects.filter(pk=job.pk).update(result_model=result)
    return job, result


def test_a_used_dataset_answers_409_with_the_jobs_listed(api, alice, team):
    ds = _dataset(team)
    job, _ = _finished_job_with_a_result(team, bundled_model(team), ds)
    r = api(alice).delete(f"/api/v1/datasets/{ds.pk}/")
    assert r.status_code == 409, r.json()
    body = r.json()
    assert body["code"] == "dataset_in_use" and f"#{job.pk}" in body["detail"]
    assert body["jobs"] == [
        {
            "id": job.pk,
            "name": "",
            "type": "finetune",
            "status": "succeeded",
            "url": f"/jobs/{job.pk}/",
        }
    ]
    assert Dataset.objects.filter(pk=ds.pk).exists()


def test_delete_jobs_true_deletes_the_dataset_and_its_jobs_but_keeps_their_models(
    api, alice, team, django_capture_on_commit_callbacks
):
    ds = _dataset(team)
    job, result = _finished_job_with_a_result(team, bundled_model(team), ds)
    folder = job.work_dir
    with django_capture_on_commit_callbacks(execute=True):
        r = api(alice).delete(f"/api/v1/datasets/{ds.pk}/?delete_jobs=true")
    assert r.status_code == 204
    assert not Dataset.objects.filter(pk=ds.pk).exists()
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not JobEvent.objects.filter(job_id=job.pk).exists() and not folder.exists()
    result.refresh_from_db()
    assert result.job_id is None and result.dataset_id is None


def test_a_running_job_blocks_even_with_delete_jobs(api, alice, team):
    ds = _dataset(team)
    job = job_record(
        team=team, base_model=bundled_model(team), dataset=ds, status=JobStatus.RUNNING
    )
    r = api(alice).delete(f"/api/v1/datasets/{ds.pk}/?delete_jobs=true")
    assert r.status_code == 409 and f"#{job.pk} (running)" in r.json()["detail"]
    assert Job.objects.filter(pk=job.pk).exists() and Dataset.objects.filter(pk=ds.pk).exists()


def test_a_used_model_lists_its_jobs_and_goes_with_them_when_asked(api, alice, team):
    base = RegisteredModel.objects.create(
        team=team, name="uploaded", source="upload", status="ready", task="encoder"
    )
    ds = _dataset(team)
    job, result = _finished_job_with_a_result(team, base, ds)
    r = api(alice).delete(f"/api/v1/models/{base.pk}/")
    assert r.status_code == 409 and [j["id"] for j in r.json()["jobs"]] == [job.pk]
    assert api(alice).delete(f"/api/v1/models/{base.pk}/?delete_jobs=1").status_code == 204
    assert not RegisteredModel.objects.filter(pk=base.pk).exists()
    assert not Job.objects.filter(pk=job.pk).exists()
    assert RegisteredModel.objects.filter(pk=result.pk).exists()


def test_charlie_cannot_delete_alices_jobs_through_his_dataset(
    api, alice, team, charlie, charlie_team
):
    theirs = _dataset(charlie_team, "charlies")
    job, _ = _finished_job_with_a_result(team, bundled_model(team), _dataset(team))
    assert api(charlie).delete(f"/api/v1/datasets/{theirs.pk}/?delete_jobs=true").status_code == 204
    assert Job.objects.filter(pk=job.pk).exists()
