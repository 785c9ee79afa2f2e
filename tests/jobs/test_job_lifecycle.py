"""Jobs through the real queue: a Celery worker process trains tiny models and reports."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent
from tests.factories import bundled_model, preset_model, ready_dataset, sms_rows
from tests.support import progress_steps, submit_job, wait_for, wait_job_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_finetune_minilm_classification_end_to_end(worker, api, alice, team):
    sms = ready_dataset(team, "classification", sms_rows(96), name="sms")
    body = submit_job(
        api(alice),
        bundled_model(team),
        sms,
        max_steps=6,
        batch_size=8,
        max_length=48,
        learning_rate=1e-4,
        save_steps=3,
    )
    job = wait_job_status(body["id"])
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    assert job.device == "cpu" and job.step == 6
    assert progress_steps(job.pk) == [1, 2, 3, 4, 5, 6]
    assert 0.0 <= job.metrics["accuracy"] <= 1.0 and "macro_f1" in job.metrics
    model = job.result_model
    assert (
        model.source == "job"
        and model.parent_id == bundled_model(team).id
        and model.dataset_id == sms.id
    )
    assert model.label_names == ["ham", "spam"] and "accuracy" in model.card
    from transformers import AutoModelForSequenceClassification

    loaded = AutoModelForSequenceClassification.from_pretrained(
        model.artifact_dir, use_safetensors=True
    )
    assert loaded.config.num_labels == 2
    # The job page and API agree with the row.
    detail = api(alice).get(f"/api/v1/jobs/{job.pk}/").json()
    assert detail["status"] == "succeeded" and detail["result_model"]["id"] == model.id


SHAKESPEARE = [f"To be or not to be, line {i}, that is the question." for i in range(60)]


@pytest.mark.parametrize(
    ("family", "schema", "rows", "job_type"),
    [
        ("gpt2", "causal-lm", [{"text": t} for t in SHAKESPEARE], "pretrain"),
        ("bert", "masked-lm", [{"text": t} for t in SHAKESPEARE], "pretrain"),
        (
            "t5",
            "seq2seq",
            [{"source": f"say {i}", "target": f"dis {i}"} for i in range(60)],
            "finetune",
        ),
        (
            "bert",
            "pair-classification",
            [
                {"text_a": f"a {i}", "text_b": f"b {i % 3}", "label": "same" if i % 2 else "diff"}
                for i in range(60)
            ],
            "finetune",
        ),
    ],
)
def test_each_task_type_trains_and_yields_a_loadable_model(
    worker, api, alice, team, family, schema, rows, job_type
):
    texts = [" ".join(str(v) for v in r.values()) for r in rows]
    model = preset_model(team, family, texts)
    data = ready_dataset(team, schema, rows, name=schema)
    r = api(alice).post(
        "/api/v1/jobs/",
        {
            "type": job_type,
            "base_model": model.id,
            "dataset": data.id,
            "params": {"max_steps": 3, "batch_size": 8, "max_length": 32},
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    job = wait_job_status(r.json()["id"])
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    assert progress_steps(job.pk) == [1, 2, 3]
    assert (
        job.result_model.status == "ready"
        and (job.result_model.artifact_dir / "config.json").exists()
    )
    from jobs.engine.models import load_for_task

    loaded, tok = load_for_task(
        job.result_model.artifact_dir,
        "classification" if schema == "pair-classification" else schema,
        num_labels=2 if schema == "pair-classification" else None,
        label_names=["diff", "same"] if schema == "pair-classification" else None,
    )
    assert loaded is not None and tok is not None


def test_cancel_while_queued_and_while_running_then_resume_and_retry(worker, api, alice, team):
    sms = ready_dataset(team, "classification", sms_rows(200), name="sms")
    client = api(alice)
    running = submit_job(
        client, bundled_model(team), sms, max_steps=400, batch_size=8, max_length=64, save_steps=2
    )
    queued = submit_job(client, bundled_model(team), sms, max_steps=2, batch_size=8)
    # The single-slot worker is busy, so the second job waits; cancelling it means it never starts.
    wait_for(
        lambda: len(progress_steps(running["id"])) >= 3, timeout=120, what="the first job to train"
    )
    r = client.post(f"/api/v1/jobs/{queued['id']}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    r = client.post(f"/api/v1/jobs/{running['id']}/cancel/")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    job = wait_job_status(running["id"], timeout=60)
    assert job.status == "cancelled" and job.checkpoint_step and job.checkpoint_step >= 2
    assert any(p.name.startswith("checkpoint-") for p in job.checkpoint_dir.iterdir())
    stopped_at = job.step
    assert stopped_at < 400

    never = Job.objects.get(pk=queued["id"])
    assert never.started_at is None and never.status == "cancelled"
    assert client.post(f"/api/v1/jobs/{queued['id']}/cancel/").status_code == 409

    # Resume continues the same job from its checkpoint; shorten it so the test stays quick.
    ckpt = job.checkpoint_step
    Job.objects.filter(pk=job.pk).update(
        params={**job.params, "max_steps": job.checkpoint_step + 2}
    )
    r = client.post(f"/api/v1/jobs/{job.pk}/resume/")
    assert r.status_code == 200 and r.json()["status"] == "queued"
    job = wait_job_status(job.pk)
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    resumed = JobEvent.objects.filter(job=job, kind="resumed").last()
    assert resumed.data["from_step"] == ckpt
    steps_after = [
        e.data["step"]
        for e in JobEvent.objects.filter(job=job, kind="progress", seq__gt=resumed.seq)
    ]
    assert steps_after == list(range(resumed.data["from_step"] + 1, job.step + 1))

    r = client.post(f"/api/v1/jobs/{queued['id']}/retry/")
    assert (
        r.status_code == 201
        and r.json()["id"] != queued["id"]
        and r.json()["retry_of"] == queued["id"]
    )
    assert wait_job_status(r.json()["id"]).status == "succeeded"
