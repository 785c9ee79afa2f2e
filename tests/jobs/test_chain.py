"""Chains: a job carries a follow-up (``then``) that its success submits with its result
model. Distill, then quantize the student, on the real worker; a follow-up refused at
submit (400 naming the param) or at start (an event on the first job); a failed first job
starts nothing."""

from __future__ import annotations

import shutil

import pytest

from jobs import services
from jobs.models import Job, JobEvent
from llmweb.catalog.model_selectors import model_lineage
from tests.factories import ready_dataset
from tests.support import wait_job_status

DISTILL = {"max_steps": 3, "batch_size": 8, "max_length": 32, "latency_repeats": 1, "eval_rows": 16}
COMPRESS = {"eval_rows": 16, "latency_repeats": 1, "max_length": 32}


def submit(client, **body):
    return client.post("/api/v1/jobs/", {"type": "distill", **body}, format="json")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_distill_then_compress_makes_a_student_and_its_int8_copy_each_with_its_edge(
    worker, api, alice, team, teacher_and_data
):
    teacher, sms = teacher_and_data
    then = {"type": "compress", "params": COMPRESS, "inputs": {"eval_dataset": sms.id}}
    r = submit(api(alice), teacher_model=teacher.id, dataset=sms.id, params=DISTILL, then=then)
    assert r.status_code == 201, r.json()
    assert r.json()["then"]["type"] == "compress" and r.json()["followed_by"] is None
    first = wait_job_status(r.json()["id"], timeout=300)
    assert first.status == "succeeded", (first.error, worker.output()[-3000:])

    shown = api(alice).get(f"/api/v1/jobs/{first.pk}/").json()
    assert shown["followed_by"] is not None
    follow_up = wait_job_status(shown["followed_by"], timeout=300)
    assert follow_up.status == "succeeded", (follow_up.error, worker.output()[-3000:])
    assert api(alice).get(f"/api/v1/jobs/{follow_up.pk}/").json()["follows"] == first.pk
    assert follow_up.created_by == alice and follow_up.team == team
    assert follow_up.params["eval_rows"] == 16 and follow_up.eval_dataset == sms

    student, quantized = first.result_model, follow_up.result_model
    assert student.parent_id == teacher.id and student.lineage_edge == "distilled from"
    assert quantized.parent_id == student.id and quantized.lineage_edge == "quantized from"
    assert quantized.dtype == "int8"
    edges = {(e["from"], e["to"]): e["kind"] for e in model_lineage(model=quantized)["edges"]}
    assert edges[(teacher.id, student.id)] == "distilled from"
    assert edges[(student.id, quantized.id)] == "quantized from"
    started = JobEvent.objects.get(job=first, kind="follow_up").data
    assert started == {"status": "started", "type": "compress", "job": follow_up.pk}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("then", "param", "words"),
    [
        ({"type": "compress", "params": {"eval_rows": 2}}, "then.params.eval_rows", "at least 8"),
        ({"type": "compress", "params": {"evl_rows": 16}}, "then.params.evl_rows", "Unknown"),
        ({"type": "compress", "params": {"method": "bnb-nf4"}}, "then.params.method", "CUDA"),
        (
            {"type": "compress", "inputs": {"source_model": 1}},
            "then.inputs.source_model",
            "filled with this job's result",
        ),
        ({"type": "compress", "inputs": {"eval_dataset": 10**9}}, "then.inputs.eval_dataset", ""),
    ],
)
def test_a_bad_follow_up_is_a_400_at_submit_naming_it(
    api, alice, team, teacher_and_data, then, param, words
):
    teacher, sms = teacher_and_data
    r = submit(api(alice), teacher_model=teacher.id, dataset=sms.id, params=DISTILL, then=then)
    assert r.status_code == 400, r.json()
    assert r.json()["param"] == param and words in r.json()["detail"]
    assert not Job.objects.exists()  # nothing half-written
    estimate = {"type": "distill", "teacher_model": teacher.id, "dataset": sms.id, "then": then}
    r = api(alice).post("/api/v1/jobs/estimate/", estimate, format="json")
    assert r.status_code == 400 and r.json()["param"] == param


@pytest.mark.django_db
def test_a_kind_that_makes_no_model_takes_no_follow_up(api, alice, team, teacher_and_data):
    teacher, sms = teacher_and_data
    r = api(alice).post(
        "/api/v1/jobs/",
        {
            "type": "evaluate",
            "models": [teacher.id],
            "dataset": sms.id,
            "then": {"type": "compress"},
        },
        format="json",
    )
    assert r.status_code == 400 and r.json()["param"] == "then"


@pytest.mark.django_db
def test_a_follow_up_refused_at_start_leaves_an_event_on_the_first_job(
    api, client, alice, team, teacher_and_data
):
    teacher, sms = teacher_and_data
    other = ready_dataset(
        team, "classification", [{"text": f"t{i}", "label": "x"} for i in range(20)], name="xy"
    )
    then = {"type": "compress", "inputs": {"eval_dataset": other.id}}
    r = submit(api(alice), teacher_model=teacher.id, dataset=sms.id, params=DISTILL, then=then)
    assert r.status_code == 201, r.json()  # which labels the student predicts is known later
    first = Job.objects.get(pk=r.json()["id"])
    Job.objects.filter(pk=first.pk).update(status="running", worker="w")
    # As the worker does when the distill finishes: its student stands in as the teacher.
    assert services.job_succeed(job_id=first.pk, worker="w", metrics={}, result_model=teacher)
    assert Job.objects.count() == 1
    first.refresh_from_db()
    assert first.status == "succeeded" and first.follow_up is None
    refused = JobEvent.objects.get(job=first, kind="follow_up").data
    assert refused["status"] == "refused" and refused["param"] == "eval_dataset"
    assert "was not started" in refused["message"] and "label" in refused["message"]
    client.force_login(alice)
    page = client.get(f"/jobs/{first.pk}/").content.decode()
    assert 'id="follow-up-refused"' in page and "was not started" in page


@pytest.mark.django_db
def test_success_submits_the_follow_up_once_as_the_same_person(api, alice, team, teacher_and_data):
    teacher, sms = teacher_and_data
    then = {"type": "compress", "params": {"eval_rows": 16}}
    first_id = submit(
        api(alice), teacher_model=teacher.id, dataset=sms.id, params=DISTILL, then=then
    ).json()["id"]
    Job.objects.filter(pk=first_id).update(status="running", worker="w")
    assert services.job_succeed(job_id=first_id, worker="w", metrics={}, result_model=teacher)
    assert not services.job_succeed(job_id=first_id, worker="w", metrics={}, result_model=teacher)
    assert services.job_follow_up_start(job_id=first_id) is None  # a second start: nothing
    follow_up = Job.objects.get(follows_id=first_id)
    assert Job.objects.count() == 2
    assert (follow_up.type, follow_up.status, follow_up.created_by) == ("compress", "queued", alice)
    assert follow_up.models_in_role("source") == [teacher]
    assert follow_up.then is None and follow_up.params["eval_rows"] == 16


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_failed_first_job_never_starts_the_follow_up(
    worker, api, client, alice, team, teacher_and_data
):
    teacher, sms = teacher_and_data
    shutil.rmtree(teacher.artifact_dir)  # the worker cannot load the teacher: the job fails
    then = {"type": "compress", "params": COMPRESS}
    r = submit(api(alice), teacher_model=teacher.id, dataset=sms.id, params=DISTILL, then=then)
    assert r.status_code == 201, r.json()
    first = wait_job_status(r.json()["id"], timeout=300)
    assert first.status == "failed"
    assert Job.objects.count() == 1 and first.follow_up is None
    assert not JobEvent.objects.filter(job=first, kind="follow_up").exists()
    assert api(alice).get(f"/api/v1/jobs/{first.pk}/").json()["followed_by"] is None
    client.force_login(alice)
    page = client.get(f"/jobs/{first.pk}/").content.decode()
    assert 'id="follow-up-not-started"' in page and "this job failed" in page


@pytest.mark.django_db
def test_retry_and_clone_keep_the_follow_up(api, client, alice, team, teacher_and_data):
    teacher, sms = teacher_and_data
    then = {"type": "compress", "params": {"eval_rows": 16}}
    first_id = submit(
        api(alice), teacher_model=teacher.id, dataset=sms.id, params=DISTILL, then=then
    ).json()["id"]
    assert api(alice).post(f"/api/v1/jobs/{first_id}/cancel/").status_code == 200
    retried = api(alice).post(f"/api/v1/jobs/{first_id}/retry/").json()
    cloned = api(alice).post(f"/api/v1/jobs/{first_id}/clone/", {}, format="json").json()
    for job in (retried, cloned):
        assert job["then"] == {"type": "compress", "params": {"eval_rows": 16}, "inputs": {}}
    client.force_login(alice)
    page = client.get(f"/jobs/{first_id}/").content.decode()
    assert "not started: this job cancelled" in page
