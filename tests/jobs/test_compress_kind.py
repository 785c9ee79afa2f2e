"""The compress kind through the API and the real worker: a new int8 model "quantized
from" its source, with the before/after report; refusals before any worker time."""

from __future__ import annotations

import pytest

from jobs.models import Job
from llmweb.catalog.model_selectors import model_lineage
from tests.factories import ready_dataset, sms_rows, tiny_classifier
from tests.support import wait_for

FINISHED = ("succeeded", "failed", "cancelled")


def wait_status(job_id: int, timeout: float = 240) -> Job:
    def check():
        job = Job.objects.get(pk=job_id)
        return job if job.status in FINISHED else None

    return wait_for(check, timeout=timeout, interval=0.2, what=f"job {job_id} finished")


def submit(client, **body):
    return client.post("/api/v1/jobs/", {"type": "compress", **body}, format="json")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_compress_job_registers_an_int8_model_quantized_from_its_source(worker, api, alice, team):
    rows = sms_rows(60)
    source = tiny_classifier(team, [r["text"] for r in rows], ["ham", "spam"])
    sms = ready_dataset(team, "classification", rows, name="sms")
    r = submit(
        api(alice),
        source_model=source.id,
        eval_dataset=sms.id,
        params={"eval_rows": 16, "latency_repeats": 1, "max_length": 32},
    )
    assert r.status_code == 201, r.json()
    job = wait_status(r.json()["id"])
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    model = job.result_model
    assert model.parent_id == source.id and model.lineage_edge == "quantized from"
    assert model.dtype == "int8" and model.label_names == ["ham", "spam"]
    assert model.size_bytes < source.size_bytes
    report = model.report
    assert report["kind"] == "compress" and report["eval"] == {"split": "test", "rows": 6}
    assert report["ratios"]["size_ratio"] < 0.5
    assert {"latency_ratio_b1", "latency_ratio_b32", "quality_delta"} <= set(report["ratios"])
    assert job.metrics["size_ratio"] == report["ratios"]["size_ratio"]
    edge = next(e for e in model_lineage(model=model)["edges"] if e["to"] == model.id)
    assert edge["kind"] == "quantized from" and edge["label"].startswith("quantized from")
    assert "quantized from tiny-clf v1" in model.card


@pytest.mark.django_db
def test_bitsandbytes_on_cpu_workers_is_a_400_naming_the_method(api, alice, team):
    source = tiny_classifier(team, [r["text"] for r in sms_rows(30)], ["ham", "spam"])
    r = submit(api(alice), source_model=source.id, params={"method": "bnb-int8"})
    assert r.status_code == 400
    assert r.json()["param"] == "method" and "CUDA GPU" in r.json()["detail"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_an_eval_dataset_with_other_labels_is_refused(api, alice, team):
    rows = sms_rows(30)
    source = tiny_classifier(team, [r["text"] for r in rows], ["ham", "spam"])
    other = ready_dataset(
        team, "classification", [{**r, "label": "x" + r["label"]} for r in rows], name="o"
    )
    r = submit(api(alice), source_model=source.id, eval_dataset=other.id, params={})
    assert r.status_code == 400 and r.json()["param"] == "eval_dataset"


@pytest.mark.django_db
def test_without_an_eval_dataset_the_worker_config_measures_speed_and_size_only(team):
    from jobs.kinds import Inputs, get_kind

    source = tiny_classifier(team, [r["text"] for r in sms_rows(30)], ["ham", "spam"])
    kind = get_kind("compress")
    inputs = Inputs(specs=[(kind.inputs[0], source), (kind.inputs[1], None)])
    job = Job.objects.create(team=team, type="compress", status="running")
    config = kind.config(inputs=inputs, params={}, job=job)
    assert config.eval_dir is None and config.model_dir == source.artifact_dir
    assert config.model_labels == ["ham", "spam"] and config.task == "classification"


@pytest.mark.django_db
def test_an_int8_model_cannot_be_fine_tuned(api, alice, team):
    rows = sms_rows(30)
    int8 = tiny_classifier(team, [r["text"] for r in rows], ["ham", "spam"])
    int8.dtype = "int8"
    int8.save()
    sms = ready_dataset(team, "classification", rows, name="sms")
    r = api(alice).post(
        "/api/v1/jobs/",
        {"type": "finetune", "base_model": int8.id, "dataset": sms.id, "params": {}},
        format="json",
    )
    assert r.status_code == 400 and r.json()["param"] == "base_model"
    assert "int8" in r.json()["detail"]
