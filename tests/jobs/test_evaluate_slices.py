"""Slices through the whole stack: an upload with a ``domain`` column keeps it (the API
and the pages list it), a fine-tune on it ignores it, and an evaluation broken down by it
stores per-slice metrics and warns when one domain is clearly worse."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from llmweb.evaluations.models import Evaluation
from tests.factories import classifier_model, sms_rows
from tests.support import post_dataset, wait_dataset_settled, wait_job_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def domain_csv() -> bytes:
    """60 SMS texts: ``news`` rows all ham, ``chat`` rows half ham, half spam (label noise
    in one domain), so a model that always answers ham scores 1.0 and 0.5 by domain."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label", "domain"])
    for i, row in enumerate(sms_rows(60)):
        domain = "news" if i % 2 == 0 else "chat"
        label = "ham" if domain == "news" or i % 4 == 1 else "spam"
        writer.writerow([row["text"], label, domain])
    return out.getvalue().encode()


def evaluate(client, model, dataset, **params):
    return client.post(
        "/api/v1/evaluations/",
        {
            "models": [model.pk],
            "dataset": dataset.pk,
            "params": {"max_length": 32, "latency_runs": 3, "threads": 1, **params},
        },
        format="json",
    )


def test_a_domain_column_is_kept_trained_past_and_sliced_by(worker, api, alice, team):
    client = api(alice)
    r = post_dataset(client, "mixed.csv", domain_csv(), name="mixed")
    assert r.status_code == 201, r.json()
    data = wait_dataset_settled(r.json()["id"])
    assert data.status == "ready", data.error
    body = client.get(f"/api/v1/datasets/{data.pk}/").json()
    assert body["extra_columns"] == ["domain"] and body["mapping"] == {
        "text": "text",
        "label": "label",
    }
    rows = client.get(f"/api/v1/datasets/{data.pk}/rows/?split=train").json()
    assert "domain" in rows["columns"]
    assert {r["domain"] for r in rows["results"]} == {"news", "chat"}

    # Training reads only the schema's columns: the extra one is dropped when tokenising.
    base = classifier_model(team, ["ham", "spam"], name="base-clf")
    r = client.post(
        "/api/v1/jobs/",
        {
            "type": "finetune",
            "base_model": base.pk,
            "dataset": data.pk,
            "params": {"max_steps": 2, "batch_size": 8, "max_length": 32, "eval_steps": 1},
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    tuned = wait_job_status(r.json()["id"])
    assert tuned.status == "succeeded", (tuned.error, worker.output()[-3000:])

    for column in ("nope", "text"):
        refused = evaluate(client, base, data, slice_column=column)
        assert refused.status_code == 400, refused.json()
        assert refused.json()["param"] == "slice_column" and "domain" in refused.json()["detail"]

    always_ham = classifier_model(team, ["ham", "spam"], name="always-ham", always="ham")
    r = evaluate(client, always_ham, data, split="all", slice_column="domain", slice_warn_gap=0.2)
    assert r.status_code == 202, r.json()
    job = wait_job_status(r.json()["id"])
    assert job.status == "succeeded", (job.error, worker.output()[-3000:])
    evaluation = Evaluation.objects.get(job=job)
    slices = evaluation.metrics["slices"]
    assert slices["column"] == "domain" and slices["metric"] == "accuracy"
    by_value = {v["value"]: (v["n"], v["accuracy"]) for v in slices["values"]}
    assert by_value == {"news": (30, 1.0), "chat": (30, 0.5)}
    assert slices["gap"] == pytest.approx(0.5) and slices["warning"] is True

    page = Client()
    page.force_login(alice)
    html = page.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="slice-warning"' in html and "Slices by domain" in html
    html = page.get(f"/datasets/{data.pk}/").content.decode()
    assert 'id="extra-columns"' in html and "<code>domain</code>" in html
    # The New-job form offers the dataset's extra columns for slice_column.
    html = page.get("/jobs/new/").content.decode()
    assert 'name="p_slice_column"' in html and "data-options-from" in html
    assert f"&quot;{data.pk}&quot;: [&quot;domain&quot;]" in html
