"""Evaluate jobs through the real queue: a worker fine-tunes a tiny classifier, then
scores base and fine-tuned side by side; every number lands in an Evaluation record."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent
from llmweb.evaluations.models import Evaluation
from tests.factories import classifier_model, ready_dataset, sms_rows
from tests.support import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
FINISHED = ("succeeded", "failed", "cancelled")


def wait_status(job_id: int, timeout: float = 180) -> Job:
    def check():
        job = Job.objects.get(pk=job_id)
        return job if job.status in FINISHED else None

    return wait_for(check, timeout=timeout, interval=0.2, what=f"job {job_id} to finish")


def test_base_and_finetuned_are_evaluated_side_by_side(worker, api, alice, team):
    client = api(alice)
    sms = ready_dataset(team, "classification", sms_rows(60), name="sms")
    base = classifier_model(team, ["ham", "spam"], name="tiny-clf")
    r = client.post(
        "/api/v1/jobs/",
        {
            "type": "finetune",
            "base_model": base.pk,
            "dataset": sms.pk,
            "params": {"max_steps": 2, "batch_size": 8, "max_length": 32},
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    tuned_job = wait_status(r.json()["id"])
    assert tuned_job.status == "succeeded", (tuned_job.error, worker.output()[-3000:])
    tuned = tuned_job.result_model
    own = Evaluation.objects.get(model=tuned)
    assert own.source == "finetune" and own.dataset == sms and own.split == "test"
    assert own.metrics["accuracy"] == tuned_job.metrics["accuracy"]

    r = client.post(
        "/api/v1/evaluations/",
        {
            "models": [base.pk, tuned.pk],
            "dataset": sms.pk,
            "params": {"max_length": 32, "latency_runs": 3, "threads": 1},
        },
        format="json",
    )
    assert r.status_code == 202, r.json()
    job = wait_status(r.json()["id"])
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    assert job.result_model is None
    records = list(Evaluation.objects.filter(job=job).order_by("model_id"))
    assert [e.model for e in records] == [base, tuned]
    for evaluation in records:
        assert evaluation.split == "test" and evaluation.num_samples == sms.num_rows["test"]
        assert evaluation.samples_file.is_file()
        assert evaluation.speed["latency_p50_ms"] > 0 and evaluation.speed["threads"] == 1
        assert evaluation.signatures["classification"].startswith("sklearn:")
        assert len(evaluation.metrics["confusion_matrix"]) == 2
    assert [e["id"] for e in job.metrics["evaluations"]] == [e.pk for e in records]
    assert JobEvent.objects.filter(job=job, kind="progress").exists()

    compare = client.get(f"/api/v1/compare/?models={base.pk},{tuned.pk}&dataset={sms.pk}").json()
    assert [row["model"] for row in compare["evaluations"]] == [base.pk, tuned.pk]
    assert {row["source"] for row in compare["evaluations"]} == {"evaluate"}
    samples = client.get(f"/api/v1/evaluations/{records[0].pk}/samples/").json()
    losses = [row["loss"] for row in samples["results"]]
    assert losses == sorted(losses, reverse=True)
