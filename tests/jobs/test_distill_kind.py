"""The distill kind: a student "distilled from" its teacher on the real worker, teacher
logits paid for once per dataset version, and the refusals before any worker time."""

from __future__ import annotations

import pytest

from jobs.models import Job
from llmweb.catalog.model_selectors import model_lineage
from tests.factories import (
    bundled_model,
    en_fr_rows,
    preset_model,
    ready_dataset,
    sms_rows,
    tiny_classifier,
)
from tests.support import wait_job_status

FAST = {"max_steps": 3, "batch_size": 8, "max_length": 32, "latency_repeats": 1, "eval_rows": 16}


def submit(client, **body):
    return client.post("/api/v1/jobs/", {"type": "distill", **body}, format="json")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_distill_job_makes_a_student_distilled_from_the_teacher_and_reuses_its_logits(
    worker, api, alice, team, teacher_and_data
):
    teacher, sms = teacher_and_data
    body = {"type": "distill", "teacher_model": teacher.id, "dataset": sms.id, "params": FAST}
    estimate = api(alice).post("/api/v1/jobs/estimate/", body, format="json").json()["estimate"]
    assert estimate["student_parameters"] < teacher.num_parameters  # the form shows both
    assert estimate["speedup_about"] == 2.0
    r = submit(api(alice), teacher_model=teacher.id, dataset=sms.id, params=FAST)
    assert r.status_code == 201, r.json()
    job = wait_job_status(r.json()["id"], timeout=300)
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    student = job.result_model
    assert student.parent_id == teacher.id and student.lineage_edge == "distilled from"
    assert student.config_summary["num_hidden_layers"] == 1
    assert student.num_parameters < teacher.num_parameters
    report = student.report
    assert report["kind"] == "distill" and report["teacher_logits"] == "computed"
    assert {"quality_retained", "parameters_ratio", "latency_ratio_b32"} <= set(report["ratios"])
    assert job.metrics["teacher_logits_cached"] is False
    edge = next(e for e in model_lineage(model=student)["edges"] if e["to"] == student.id)
    assert edge["kind"] == "distilled from"

    again = submit(api(alice), teacher_model=teacher.id, dataset=sms.id, params=FAST)
    second = wait_job_status(again.json()["id"], timeout=300)
    assert second.status == "succeeded", second.error
    assert second.metrics["teacher_logits_cached"] is True
    assert second.result_model.report["teacher_logits"] == "cached"


@pytest.mark.django_db
def test_a_teacher_without_a_head_is_refused(api, alice, team, teacher_and_data):
    _, sms = teacher_and_data
    r = submit(api(alice), teacher_model=bundled_model(team).id, dataset=sms.id, params={})
    assert r.status_code == 400
    assert r.json()["param"] == "teacher_model" and "no task head" in r.json()["detail"]


@pytest.mark.django_db
def test_token_level_kd_with_a_student_of_another_tokenizer_is_refused(api, alice, team):
    texts = [r["text"] for r in sms_rows(40)]
    teacher = preset_model(team, "gpt2", texts, name="lm-teacher")
    student = preset_model(team, "gpt2", [t.upper() + " xyz" for t in texts], name="lm-student")
    assert teacher.tokenizer and teacher.tokenizer != student.tokenizer
    data = ready_dataset(team, "causal-lm", [{"text": t} for t in texts], name="lm")
    r = submit(
        api(alice),
        teacher_model=teacher.id,
        dataset=data.id,
        student_model=student.id,
        params={"student": "model", "lm_kd": "token"},
    )
    assert r.status_code == 400
    assert r.json()["param"] == "student_model" and "tokenizer" in r.json()["detail"]


@pytest.mark.django_db
def test_a_bitsandbytes_teacher_on_cpu_workers_is_refused(api, alice, team, teacher_and_data):
    teacher, sms = teacher_and_data
    r = submit(
        api(alice),
        teacher_model=teacher.id,
        dataset=sms.id,
        params={"teacher_precision": "bnb-nf4"},
    )
    assert r.status_code == 400
    assert r.json()["param"] == "teacher_precision" and "CUDA GPU" in r.json()["detail"]
    assert not Job.objects.exists()


# --- sequence-level KD (seq2seq and causal-LM teachers) ------------------------------------

SEQ_FAST = {
    "max_steps": 2,
    "batch_size": 8,
    "max_length": 24,
    "max_new_tokens": 6,
    "latency_repeats": 1,
    "eval_rows": 8,
    "mix_references": 0.5,
}


@pytest.fixture
def t5_teacher_and_en_fr(team):
    rows = en_fr_rows(40)
    texts = [r["source"] for r in en_fr_rows(300)] + [r["target"] for r in en_fr_rows(300)]
    teacher = preset_model(team, "t5", texts, name="t5-teacher")
    return teacher, ready_dataset(team, "seq2seq", rows, name="en-fr")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_seq2seq_distill_saves_the_teachers_outputs_as_a_dataset_and_trains_a_student(
    worker, api, alice, team, t5_teacher_and_en_fr
):
    from django.test import Client

    from llmweb.catalog.models import Dataset

    teacher, en_fr = t5_teacher_and_en_fr
    r = submit(api(alice), teacher_model=teacher.id, dataset=en_fr.id, params=SEQ_FAST)
    assert r.status_code == 201, r.json()
    job = wait_job_status(r.json()["id"], timeout=300)
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    phases = {e.data.get("name") for e in job.events.filter(kind="phase")}
    assert "teacher generating" in phases

    # The teacher's outputs: a new ready version of the dataset, "generated by" the teacher.
    generated = Dataset.objects.get(pk=job.metrics["generated_dataset"])
    assert (generated.name, generated.version, generated.status) == ("en-fr", 2, "ready")
    assert generated.generated_by_id == teacher.id and generated.derived_from_id == en_fr.id
    assert generated.num_rows == en_fr.num_rows
    assert generated.stats["generation"]["job"] == job.id
    assert generated.stats["generation"]["max_new_tokens"] == 6
    from datasets import load_from_disk

    train, refs = (load_from_disk(str(d.processed_dir / "train")) for d in (generated, en_fr))
    assert train["source"] == refs["source"]  # the same inputs...
    assert train["target"] != refs["target"]  # ...with the teacher's outputs as targets
    body = api(alice).get(f"/api/v1/datasets/{generated.id}/").json()
    assert body["generated_by"] == teacher.id
    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/datasets/{generated.id}/").content.decode()
    assert "Generated by model" in page and f"/models/{teacher.id}/" in page

    # The student: "distilled from" the teacher, trained on the generated version.
    student = job.result_model
    assert student.parent_id == teacher.id and student.lineage_edge == "distilled from"
    assert student.dataset_id == generated.id and student.task == "seq2seq"
    assert student.num_parameters < teacher.num_parameters
    report = student.report
    assert report["level"] == "sequence" and report["generated_dataset"]["id"] == generated.id
    assert report["ratios"]["quality_metric"] == "chrf"
    assert {"quality_retained", "parameters_ratio", "latency_ratio_b1"} <= set(report["ratios"])
    assert "chrf" in report["before"]["quality"] and "perplexity" in report["after"]["quality"]
    edge = next(e for e in model_lineage(model=student)["edges"] if e["to"] == student.id)
    assert edge["kind"] == "distilled from"


@pytest.mark.django_db
def test_a_classifier_teacher_on_seq2seq_data_is_refused_as_not_generative(
    api, alice, team, t5_teacher_and_en_fr, teacher_and_data
):
    _, en_fr = t5_teacher_and_en_fr
    classifier, _ = teacher_and_data
    r = submit(api(alice), teacher_model=classifier.id, dataset=en_fr.id, params={})
    assert r.status_code == 400
    body = r.json()
    assert (body["code"], body["param"]) == ("teacher_not_generative", "teacher_model")
    assert "generative head" in body["detail"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_seq2seq_teacher_on_classification_data_is_refused(
    api, alice, team, t5_teacher_and_en_fr, teacher_and_data
):
    teacher, _ = t5_teacher_and_en_fr
    _, sms = teacher_and_data
    r = submit(api(alice), teacher_model=teacher.id, dataset=sms.id, params={})
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["param"]) == ("task_mismatch", "dataset")


@pytest.mark.django_db
def test_a_student_of_another_task_and_beams_past_four_are_refused(
    api, alice, team, t5_teacher_and_en_fr
):
    teacher, en_fr = t5_teacher_and_en_fr
    gpt2 = preset_model(team, "gpt2", [r["source"] for r in en_fr_rows(100)], name="gpt2")
    r = submit(
        api(alice),
        teacher_model=teacher.id,
        dataset=en_fr.id,
        student_model=gpt2.id,
        params={"student": "model"},
    )
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["param"]) == ("task_mismatch", "student_model")
    r = submit(api(alice), teacher_model=teacher.id, dataset=en_fr.id, params={"num_beams": 5})
    assert r.status_code == 400 and r.json()["param"] == "num_beams"


@pytest.mark.django_db
def test_the_hidden_state_loss_is_refused_without_the_teachers_tokenizer_or_for_lm_teachers(
    api, alice, team, teacher_and_data, t5_teacher_and_en_fr
):
    teacher, sms = teacher_and_data
    other = tiny_classifier(team, [r["text"] for r in sms_rows(40)], ["ham", "spam"], name="o")
    r = submit(
        api(alice),
        teacher_model=teacher.id,
        dataset=sms.id,
        student_model=other.id,
        params={"student": "model", "hidden_loss_weight": 0.5},
    )
    assert r.status_code == 400 and r.json()["param"] == "hidden_loss_weight"
    t5, en_fr = t5_teacher_and_en_fr
    r = submit(api(alice), teacher_model=t5.id, dataset=en_fr.id, params={"hidden_loss_weight": 1})
    assert r.status_code == 400 and r.json()["param"] == "hidden_loss_weight"
