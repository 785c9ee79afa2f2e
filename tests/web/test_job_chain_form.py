"""The New-job form's "Then" section: a chain's follow-up is posted with the first job,
its params checked at submit and refused beside the field that is wrong."""

from __future__ import annotations

import re

import pytest

from jobs.models import Job
from tests.factories import ready_dataset, sms_rows, tiny_classifier

DISTILL = {"p_max_steps": "3", "p_batch_size": "8", "p_max_length": "32"}


@pytest.fixture
def chain_form(client, alice, team):
    client.force_login(alice)
    rows = sms_rows(60)
    teacher = tiny_classifier(team, [r["text"] for r in rows], ["ham", "spam"], name="teacher")
    sms = ready_dataset(team, "classification", rows, name="sms")
    return {
        "type": "distill",
        "teacher_model": teacher.pk,
        "dataset": sms.pk,
        **DISTILL,
        "then": "compress",
        "then_in_eval_dataset": sms.pk,
        "then_p_method": "dynamic-int8",
        "then_p_eval_rows": "16",
        "then_p_latency_repeats": "1",
        "then_p_quantize_embeddings": "on",
    }


@pytest.mark.django_db
def test_the_form_submits_the_first_job_with_its_follow_up(client, chain_form):
    r = client.post("/jobs/new/", chain_form)
    assert r.status_code == 302, r.content.decode()[-2000:]
    job = Job.objects.get()
    assert job.type == "distill" and job.params["max_steps"] == 3
    assert job.then["type"] == "compress"
    assert job.then["inputs"] == {"eval_dataset": chain_form["dataset"]}
    assert job.then["params"]["eval_rows"] == 16 and "quantize_embeddings" not in job.then["params"]
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="follow-up-pending"' in page and "compress" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("then_p_eval_rows", "2", "greater than or equal to 8"),  # the form's own bound
        ("then_p_method", "bnb-nf4", "needs a CUDA GPU"),  # the service's check_params
    ],
)
def test_a_bad_follow_up_param_is_refused_beside_its_field(client, chain_form, field, value, words):
    r = client.post("/jobs/new/", {**chain_form, field: value})
    assert r.status_code == 400
    html = r.content.decode()
    row = re.search(rf'<p data-then-kinds="compress">[^\n]*name="{field}".*?</p>', html, re.S)
    assert row and words in row.group(0), html[-3000:]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_choosing_nothing_submits_no_follow_up(client, chain_form):
    assert client.post("/jobs/new/", {**chain_form, "then": ""}).status_code == 302
    assert Job.objects.get().then is None
