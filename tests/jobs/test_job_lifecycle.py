"""Jobs through the real queue: a Celery worker process trains tiny models and reports."""

from __future__ import annotations

import math

import pytest

from jobs.models import Job, JobEvent
from tests.factories import (
    bundled_model,
    preset_model,
    ready_dataset,
    sms_rows,
    sms_rows_balanced_held_out,
)
from tests.support import JOB_TIMEOUT, Worker, progress_steps, submit_job, wait_for, wait_job_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _changed_tensors(before_dir, after_dir) -> tuple[int, int]:
    """(shared tensors, of which changed) between two safetensors folders, matched by name.

    A base encoder saves ``encoder.layer.0...``; the classifier built on it saves
    ``bert.encoder.layer.0...``: names are matched by suffix.
    """
    import torch
    from safetensors.torch import load_file

    before = load_file(str(before_dir / "model.safetensors"))
    after = load_file(str(after_dir / "model.safetensors"))
    shared = changed = 0
    for name, tensor in after.items():
        base = next((b for k, b in before.items() if name.endswith(k) or k.endswith(name)), None)
        if base is None or base.shape != tensor.shape:
            continue
        shared += 1
        changed += not torch.equal(base.float(), tensor.float())
    return shared, changed


@pytest.mark.timeout(480)  # 20 real optimizer steps of MiniLM on a shared 2-core CPU
def test_finetune_minilm_classification_end_to_end(worker, api, alice, team):
    from jobs.engine.finetune import device_description

    rows = sms_rows_balanced_held_out(16)  # 128 train rows, then 16 + 16 half-spam held out
    sms = ready_dataset(team, "classification", rows, name="sms")
    body = submit_job(
        api(alice),
        bundled_model(team),
        sms,
        max_steps=20,
        batch_size=8,
        max_length=48,
        learning_rate=5e-4,
        save_steps=10,
    )
    job = wait_job_status(body["id"], timeout=420)
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    # Trained where the worker runs: "cpu" here, "cuda:0 <name>" on a GPU host.
    assert job.device == device_description() and job.step == 20
    assert progress_steps(job.pk) == list(range(1, 21))

    # It learned. The training loss fell; on the balanced test split a constant answer
    # scores 50% and a loss of at least ln 2, and the model beats both.
    losses = [
        e.data["loss"] for e in JobEvent.objects.filter(job=job, kind="progress").order_by("seq")
    ]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    test_rows = rows[-16:]
    majority = max(sum(r["label"] == c for r in test_rows) for c in ("ham", "spam"))
    assert majority == 8 and job.metrics["split"] == "test"
    assert job.metrics["accuracy"] > majority / 16, job.metrics
    assert job.metrics["eval_loss"] < math.log(2), job.metrics
    assert 0.5 < job.metrics["macro_f1"] <= 1.0

    model = job.result_model
    assert (
        model.source == "job"
        and model.parent_id == bundled_model(team).id
        and model.dataset_id == sms.id
    )
    shared, changed = _changed_tensors(bundled_model(team).artifact_dir, model.artifact_dir)
    assert shared >= 50 and changed >= shared // 2, (shared, changed)
    assert model.label_names == ["ham", "spam"] and "accuracy" in model.card
    from transformers import AutoModelForSequenceClassification

    loaded = AutoModelForSequenceClassification.from_pretrained(
        model.artifact_dir, use_safetensors=True
    )
    assert loaded.config.num_labels == 2
    # The job page and API agree with the row.
    detail = api(alice).get(f"/api/v1/jobs/{job.pk}/").json()
    assert detail["status"] == "succeeded" and detail["result_model"]["id"] == model.id


def test_a_job_that_crashes_in_the_worker_fails_with_one_error_shape(worker, api, alice, bob, team):
    texts = [f"line {i} of a tiny corpus" for i in range(60)]
    model = preset_model(team, "gpt2", texts)
    corpus = ready_dataset(team, "causal-lm", [{"text": t} for t in texts], name="corpus")
    (model.artifact_dir / "config.json").write_text("{ not json")  # a bug, not a bad input
    body = submit_job(api(alice), model, corpus, max_steps=2, batch_size=8, max_length=32)
    job = wait_job_status(body["id"])
    assert job.status == "failed" and job.finished_at is not None
    assert job.error["code"] == "internal_error" and set(job.error) == {"code", "message", "param"}
    assert "An admin can read the traceback" in job.error["message"]
    assert "Traceback (most recent call last)" in job.error_traceback
    mine = api(alice).get(f"/api/v1/jobs/{job.pk}/").json()["error"]
    assert mine == job.error  # the owner reads the message, not the traceback
    bob.is_staff = True
    bob.save()
    admin = api(bob).get(f"/api/v1/jobs/{job.pk}/").json()["error"]
    assert admin["traceback"] == job.error_traceback
    assert Job.objects.get(pk=job.pk).result_model is None


def test_a_job_whose_data_is_gone_fails_with_a_message_a_person_can_act_on(
    worker, api, alice, team
):
    import shutil

    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    shutil.rmtree(sms.processed_dir)
    body = submit_job(api(alice), bundled_model(team), sms, max_steps=2, batch_size=8)
    job = wait_job_status(body["id"])
    assert job.status == "failed" and job.error["code"] == "invalid_dataset"
    assert job.error_traceback == ""  # an expected refusal keeps no traceback
    events = JobEvent.objects.filter(job=job, kind="status").order_by("seq")
    assert [e.data["status"] for e in events][-2:] == ["running", "failed"]
    assert events.last().data["error"]["code"] == "invalid_dataset"


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


@pytest.mark.timeout(600)  # three jobs, one after another, on one worker slot
def test_cancel_while_queued_and_while_running_then_resume_and_retry(worker, api, alice, team):
    sms = ready_dataset(team, "classification", sms_rows(200), name="sms")
    client = api(alice)
    running = submit_job(
        client, bundled_model(team), sms, max_steps=400, batch_size=8, max_length=64, save_steps=2
    )
    queued = submit_job(client, bundled_model(team), sms, max_steps=2, batch_size=8)
    # The single-slot worker is busy, so the second job waits; cancelling it means it never starts.
    wait_for(
        lambda: len(progress_steps(running["id"])) >= 3,
        timeout=JOB_TIMEOUT,
        what="the first job to train",
    )
    r = client.post(f"/api/v1/jobs/{queued['id']}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    r = client.post(f"/api/v1/jobs/{running['id']}/cancel/")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    job = wait_job_status(running["id"])
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


def test_a_higher_priority_job_starts_before_an_older_lower_priority_one(
    settings, api, alice, team
):
    # Both wait on a queue of their own until a worker for it starts: then the broker's
    # order, not the submission order, decides which runs first.
    settings.LLMWEB_TRAIN_QUEUE = "gpu-prioritytest"
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    client, model = api(alice), bundled_model(team)

    def submit(priority: int) -> int:
        r = client.post(
            "/api/v1/jobs/",
            {
                "base_model": model.id,
                "dataset": sms.id,
                "params": {"max_steps": 1, "batch_size": 8, "max_length": 32},
                "priority": priority,
            },
            format="json",
        )
        assert r.status_code == 201, r.json()
        return r.json()["id"]

    low, high = submit(-5), submit(5)
    assert client.get(f"/api/v1/jobs/{high}/").json()["queue_position"] == 1
    w = Worker(queues="gpu-prioritytest").wait_ready()
    try:
        jobs = [wait_job_status(job_id) for job_id in (low, high)]
    finally:
        w.stop()
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]
    assert jobs[1].started_at < jobs[0].started_at, "the queue position the API shows must hold"
