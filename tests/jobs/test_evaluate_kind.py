"""Evaluate jobs through the real queue: a worker fine-tunes a tiny classifier, then
scores base and fine-tuned side by side; every number lands in an Evaluation record."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent
from llmweb.evaluations.models import Evaluation
from tests.factories import classifier_model, preset_model, ready_dataset, sms_rows
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
            "params": {"max_steps": 3, "batch_size": 8, "max_length": 32, "eval_steps": 1},
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
    # The fine-tuned model's curve is its job's logged losses; the base model has no job.
    history = [(e.kind, e.data) for e in JobEvent.objects.filter(job=tuned_job).order_by("seq")]
    train = [(d["step"], d["loss"]) for kind, d in history if kind == "progress"]
    val = [(d["step"], d["loss"]) for kind, d in history if d.get("split") == "validation"]
    assert len(train) == 3 and len(val) == 3, history
    curve = compare["curves"][str(tuned.pk)]
    assert [(p["step"], p["loss"]) for p in curve] == train
    assert [(p["step"], p["eval_loss"]) for p in curve] == val
    assert all(0 < p["epoch"] for p in curve)
    assert list(compare["curves"]) == [str(tuned.pk)]
    assert compare["outputs"] is None  # classifiers generate nothing
    samples = client.get(f"/api/v1/evaluations/{records[0].pk}/samples/").json()
    losses = [row["loss"] for row in samples["results"]]
    assert losses == sorted(losses, reverse=True)


def test_two_generation_models_outputs_are_compared_on_the_same_inputs(worker, api, alice, team):
    client = api(alice)
    pairs = [
        {"source": f"translate {i} the quick fox", "target": f"traduire {i} le renard"}
        for i in range(40)
    ]
    texts = [p["source"] for p in pairs] + [p["target"] for p in pairs]
    data = ready_dataset(team, "seq2seq", pairs, name="pairs")
    first = preset_model(team, "t5", texts, name="t5-a")
    second = preset_model(team, "t5", texts, name="t5-b")

    r = client.post(
        "/api/v1/evaluations/",
        {
            "models": [first.pk, second.pk],
            "dataset": data.pk,
            "params": {"max_length": 32, "max_new_tokens": 4, "latency_runs": 3, "threads": 1},
        },
        format="json",
    )
    assert r.status_code == 202, r.json()
    job = wait_status(r.json()["id"])
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    records = {e.model_id: e for e in Evaluation.objects.filter(job=job)}
    saved = {
        model: client.get(f"/api/v1/evaluations/{e.pk}/samples/?ordering=i&limit=100").json()
        for model, e in records.items()
    }

    compare = client.get(
        f"/api/v1/compare/?models={first.pk},{second.pk}&dataset={data.pk}&outputs_limit=3"
    ).json()

    outputs = compare["outputs"]
    assert [c["model"] for c in outputs["columns"]] == [first.pk, second.pk]
    assert outputs["total"] == data.num_rows["test"] and outputs["next_offset"] == 3
    assert [row["i"] for row in outputs["rows"]] == [0, 1, 2]
    for row in outputs["rows"]:
        for model in (first.pk, second.pk):
            sample = saved[model]["results"][row["i"]]
            assert row["input"] == sample["input"] and row["reference"] == sample["reference"]
            cell = row["outputs"][str(records[model].pk)]
            assert cell["prediction"] == sample["prediction"]
    page = client.get(
        f"/api/v1/compare/?models={first.pk},{second.pk}&dataset={data.pk}"
        "&outputs_offset=3&outputs_limit=100"
    ).json()["outputs"]
    assert [row["i"] for row in page["rows"]] == list(range(3, outputs["total"]))
    assert page["next_offset"] is None
