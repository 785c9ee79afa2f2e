"""Pre-flight: bad submissions are clear 400s naming the parameter, before any GPU time."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.factories import bundled_model, ready_dataset, sms_rows


@pytest.fixture
def sms(team):
    return ready_dataset(team, "classification", sms_rows(40), name="sms")


def submit(client, **body):
    return client.post("/api/v1/jobs/", body, format="json")


def test_unknown_param_is_named(api, alice, team, sms):
    r = submit(
        api(alice), base_model=bundled_model(team).id, dataset=sms.id, params={"learning_rat": 1e-4}
    )
    assert r.status_code == 400
    assert r.json()["param"] == "learning_rat" and "Unknown parameter" in r.json()["detail"]
    assert not Job.objects.exists()


def test_negative_learning_rate_is_refused(api, alice, team, sms):
    r = submit(
        api(alice),
        base_model=bundled_model(team).id,
        dataset=sms.id,
        params={"learning_rate": -0.1},
    )
    assert r.status_code == 400 and r.json()["param"] == "learning_rate"
    assert "greater than 0" in r.json()["detail"]


def test_dataset_of_the_wrong_task_is_refused(api, alice, team):
    corpus = ready_dataset(
        team, "causal-lm", [{"text": f"line {i}"} for i in range(20)], name="corpus"
    )
    r = submit(api(alice), base_model=bundled_model(team).id, dataset=corpus.id, params={})
    assert r.status_code == 400 and r.json()["param"] == "dataset"
    assert "causal-lm" in r.json()["detail"]


def test_model_of_another_team_is_refused_without_leaking_it(api, alice, team, sms, charlie_team):
    r = submit(api(alice), base_model=bundled_model(charlie_team).id, dataset=sms.id, params={})
    assert r.status_code == 400 and r.json()["param"] == "base_model"
    assert "No model with id" in r.json()["detail"]


def test_max_length_beyond_the_model_is_refused(api, alice, team, sms):
    r = submit(
        api(alice), base_model=bundled_model(team).id, dataset=sms.id, params={"max_length": 4096}
    )
    assert r.status_code == 400 and r.json()["param"] == "max_length"


def test_dataset_not_ready_is_refused(api, alice, team, sms):
    sms.status = "processing"
    sms.save()
    r = submit(api(alice), base_model=bundled_model(team).id, dataset=sms.id, params={})
    assert r.status_code == 400 and r.json()["code"] == "dataset_not_ready"


def test_viewer_cannot_submit(api, team, sms, charlie, alice):
    from llmweb.accounts import services

    services.team_invite(by=alice, team=team, username="charlie", role="viewer")
    r = submit(api(charlie), base_model=bundled_model(team).id, dataset=sms.id, params={})
    assert r.status_code == 403 and "Viewers" in r.json()["detail"]


def test_estimate_reports_steps_and_memory(api, alice, team, sms):
    r = api(alice).post(
        "/api/v1/jobs/estimate/",
        {
            "base_model": bundled_model(team).id,
            "dataset": sms.id,
            "params": {"batch_size": 8, "epochs": 2},
        },
        format="json",
    )
    est = r.json()["estimate"]
    assert r.status_code == 200
    assert est["train_rows"] == 32 and est["steps"] == 8
    assert est["parameters"] > 20_000_000 and est["memory_bytes"] > est["parameters"]


def test_other_teams_jobs_are_404(api, alice, team, sms, charlie):
    from jobs import services

    job = services.job_submit(
        user=alice,
        team=team,
        job_type="finetune",
        base_model=bundled_model(team),
        dataset=sms,
        params={"max_steps": 1},
    )
    for method, url in [
        ("get", f"/api/v1/jobs/{job.id}/"),
        ("get", f"/api/v1/jobs/{job.id}/events/"),
        ("post", f"/api/v1/jobs/{job.id}/cancel/"),
        ("post", f"/api/v1/jobs/{job.id}/retry/"),
    ]:
        assert getattr(api(charlie), method)(url).status_code == 404
    assert api(charlie).get("/api/v1/jobs/").json()["count"] == 0
    # Events: the submission recorded validating → queued with a dense sequence.
    events = api(alice).get(f"/api/v1/jobs/{job.id}/events/").json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["data"].get("status") for e in events if e["kind"] == "status"] == [
        "validating",
        "queued",
    ]
