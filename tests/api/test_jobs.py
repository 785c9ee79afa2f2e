"""Pre-flight: bad submissions are clear 400s naming the parameter, before any GPU time."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent
from llmweb.accounts import services as accounts
from llmweb.accounts.models import Role
from tests.factories import bundled_model, job_history, ready_dataset, sms_rows
from tests.support import submit_job


@pytest.fixture
def sms(team):
    return ready_dataset(team, "classification", sms_rows(40), name="sms")


@pytest.fixture(autouse=True)
def _no_worker(settings):
    # Jobs here wait on a queue no worker reads, whatever else runs on this Redis.
    settings.LLMWEB_TRAIN_QUEUE = "gpu-no-worker"


def submit(client, **body):
    return client.post("/api/v1/jobs/", body, format="json")


@pytest.fixture
def queued(api, alice, team, sms) -> dict:
    return submit_job(api(alice), bundled_model(team), sms, max_steps=5, batch_size=8)


def _set(job_id: int, **fields) -> None:
    """Put a job in a state for the test (a worker would have got it there)."""
    Job.objects.filter(pk=job_id).update(**fields)


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


# --- controls: retry, resume, cancel -------------------------------------------------------


def test_retry_of_a_failed_job_is_a_new_queued_job_with_the_same_params(api, alice, queued):
    _set(queued["id"], status="failed", error={"code": "internal_error", "message": "boom"})
    r = api(alice).post(f"/api/v1/jobs/{queued['id']}/retry/")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["id"] != queued["id"] and body["retry_of"] == queued["id"]
    assert body["status"] == "queued" and body["params"] == queued["params"]
    assert Job.objects.get(pk=queued["id"]).status == "failed"  # the old one keeps its history
    assert Job.objects.get(pk=body["id"]).retry_of_id == queued["id"]


@pytest.mark.parametrize("status", ["queued", "running", "succeeded"])
def test_retry_of_a_job_that_did_not_fail_or_stop_is_409_not_retryable(api, alice, queued, status):
    _set(queued["id"], status=status)
    r = api(alice).post(f"/api/v1/jobs/{queued['id']}/retry/")
    assert r.status_code == 409 and r.json()["code"] == "not_retryable"
    assert Job.objects.count() == 1


@pytest.mark.parametrize("status", ["queued", "running", "failed", "succeeded"])
def test_resume_of_a_job_that_was_not_cancelled_is_409_not_resumable(api, alice, queued, status):
    _set(queued["id"], status=status, checkpoint_step=2)
    r = api(alice).post(f"/api/v1/jobs/{queued['id']}/resume/")
    assert r.status_code == 409 and r.json()["code"] == "not_resumable"
    assert Job.objects.get(pk=queued["id"]).status == status


def test_resume_without_a_checkpoint_is_409_no_checkpoint(api, alice, queued):
    r = api(alice).post(f"/api/v1/jobs/{queued['id']}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = api(alice).post(f"/api/v1/jobs/{queued['id']}/resume/")
    assert r.status_code == 409 and r.json()["code"] == "no_checkpoint"
    assert "retry it instead" in r.json()["detail"]
    assert Job.objects.get(pk=queued["id"]).status == "cancelled"


def test_a_viewer_gets_403_on_every_job_control(api, alice, team, charlie, queued):
    accounts.team_invite(by=alice, team=team, username="charlie", role=Role.VIEWER)
    viewer = api(charlie)
    assert viewer.get(f"/api/v1/jobs/{queued['id']}/").status_code == 200  # viewers may look
    for action in ("cancel", "retry", "resume"):
        r = viewer.post(f"/api/v1/jobs/{queued['id']}/{action}/")
        assert r.status_code == 403, (action, r.json())
        assert r.json()["code"] == "forbidden" and "Viewers" in r.json()["detail"]
    job = Job.objects.get(pk=queued["id"])
    assert job.status == "queued" and not job.cancel_requested and Job.objects.count() == 1


def test_cross_team_resume_and_estimate_are_refused_without_leaking(
    api, alice, team, sms, charlie, charlie_team, queued
):
    _set(queued["id"], status="cancelled", checkpoint_step=2)
    assert api(charlie).post(f"/api/v1/jobs/{queued['id']}/resume/").status_code == 404
    assert Job.objects.get(pk=queued["id"]).status == "cancelled"
    theirs = ready_dataset(charlie_team, "classification", sms_rows(40), name="theirs")
    r = api(charlie).post(
        "/api/v1/jobs/estimate/",
        {"base_model": bundled_model(team).id, "dataset": theirs.id, "params": {}},
        format="json",
    )
    assert r.status_code == 400 and r.json()["param"] == "base_model"
    r = api(charlie).post(
        "/api/v1/jobs/estimate/",
        {"base_model": bundled_model(charlie_team).id, "dataset": sms.id, "params": {}},
        format="json",
    )
    assert r.status_code == 400 and r.json()["param"] == "dataset"
    assert "No dataset with id" in r.json()["detail"]


def test_a_model_of_one_team_with_a_dataset_of_another_is_refused(
    api, alice, team, charlie, charlie_team
):
    # Alice is in both teams, so she can see both records; a job still lives in one team.
    accounts.team_invite(by=charlie, team=charlie_team, username="alice", role=Role.MEMBER)
    theirs = ready_dataset(charlie_team, "classification", sms_rows(40), name="theirs")
    r = submit(
        api(alice), base_model=bundled_model(team).id, dataset=theirs.id, params={"max_steps": 1}
    )
    assert r.status_code == 400, r.json()
    assert r.json()["param"] == "dataset" and "of this team" in r.json()["detail"]
    assert not Job.objects.exists()


# --- what a person reads: errors, queue, events ---------------------------------------------


def test_a_failed_jobs_error_has_one_shape_and_the_traceback_is_for_admins(
    api, alice, bob, team, queued
):
    from jobs import services

    services.job_fail(
        job_id=queued["id"],
        error={"code": "internal_error", "message": "The job stopped on an internal error."},
        traceback="Traceback (most recent call last):\n  ValueError: secret detail",
    )
    mine = api(alice).get(f"/api/v1/jobs/{queued['id']}/").json()
    assert mine["status"] == "failed"
    assert mine["error"] == {
        "code": "internal_error",
        "message": "The job stopped on an internal error.",
        "param": None,
    }
    bob.is_staff = True
    bob.save()
    admin = api(bob).get(f"/api/v1/jobs/{queued['id']}/").json()
    assert admin["error"]["traceback"].startswith("Traceback (most recent call last)")
    events = api(alice).get(f"/api/v1/jobs/{queued['id']}/events/").json()["events"]
    failed = [e for e in events if e["kind"] == "status"][-1]["data"]
    assert failed["status"] == "failed" and "traceback" not in str(failed)


def test_queue_position_puts_higher_priority_first_then_older(api, alice, team, sms):
    client, model = api(alice), bundled_model(team)
    first = submit_job(client, model, sms, max_steps=1)
    second = submit_job(client, model, sms, max_steps=1)
    urgent = client.post(
        "/api/v1/jobs/",
        {"base_model": model.id, "dataset": sms.id, "params": {"max_steps": 1}, "priority": 5},
        format="json",
    ).json()

    def position(job):
        return client.get(f"/api/v1/jobs/{job['id']}/").json()["queue_position"]

    assert [position(j) for j in (urgent, first, second)] == [1, 2, 3]
    assert urgent["priority"] == 5 and urgent["queue_eta_seconds"] is None  # no history yet
    _set(urgent["id"], status="running")
    assert position(urgent) is None and [position(first), position(second)] == [1, 2]


def test_jobs_queued_in_the_same_clock_tick_get_distinct_positions(api, alice, team, sms):
    """Many submissions at once can share a timestamp; positions must still be 1..N."""
    client, model = api(alice), bundled_model(team)
    jobs = [submit_job(client, model, sms, max_steps=1) for _ in range(4)]
    Job.objects.filter(pk__in=[j["id"] for j in jobs]).update(
        queued_at=Job.objects.get(pk=jobs[0]["id"]).queued_at
    )
    positions = [client.get(f"/api/v1/jobs/{j['id']}/").json()["queue_position"] for j in jobs]
    assert positions == [1, 2, 3, 4]


def test_events_after_n_returns_only_the_later_events(api, alice, queued):
    url = f"/api/v1/jobs/{queued['id']}/events/"
    everything = api(alice).get(url).json()
    seqs = [e["seq"] for e in everything["events"]]
    assert seqs == list(range(1, everything["last_seq"] + 1)) and len(seqs) >= 3
    assert [e["seq"] for e in api(alice).get(url + "?after=1").json()["events"]] == seqs[1:]
    assert api(alice).get(url + f"?after={seqs[-1]}").json()["events"] == []
    assert [e["seq"] for e in api(alice).get(url + "?after=-4").json()["events"]] == seqs


@pytest.mark.parametrize("after", ["abc", "1.5", ""])
def test_a_bad_after_is_a_400_naming_it(api, alice, queued, after):
    r = api(alice).get(f"/api/v1/jobs/{queued['id']}/events/?after={after}")
    assert r.status_code == 400 and r.json()["param"] == "after"


def test_a_history_over_1000_events_is_read_in_pages_with_after(api, alice, queued):
    job = Job.objects.get(pk=queued["id"])
    job_history(job, 1500)
    url = f"/api/v1/jobs/{job.pk}/events/"
    page = api(alice).get(url).json()
    assert page["last_seq"] == job.last_seq and len(page["events"]) == 1000
    seen = [e["seq"] for e in page["events"]]
    while seen[-1] < page["last_seq"]:
        page = api(alice).get(url + f"?after={seen[-1]}").json()
        assert page["events"], "a page past the end must not be empty while events remain"
        seen += [e["seq"] for e in page["events"]]
    assert seen == list(range(1, job.last_seq + 1))
    assert JobEvent.objects.filter(job=job).count() == job.last_seq


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_queue_fails_the_job_at_once(api, alice, team):
    from tests.support import broker_unreachable

    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    with broker_unreachable():
        r = submit(
            api(alice), base_model=bundled_model(team).id, dataset=sms.id, params={"max_steps": 1}
        )
    assert r.status_code == 201, r.json()
    job = Job.objects.get(pk=r.json()["id"])
    assert job.status == "failed" and job.finished_at is not None
    assert job.error["code"] == "queue_unavailable" and "Try again" in job.error["message"]
    assert "OperationalError" in job.error["message"]  # refused by the network, nothing else
    statuses = [
        e.data["status"] for e in JobEvent.objects.filter(job=job, kind="status").order_by("seq")
    ]
    assert statuses == ["validating", "queued", "failed"]
    # The real broker works again for whatever comes next.
    r = submit(
        api(alice), base_model=bundled_model(team).id, dataset=sms.id, params={"max_steps": 1}
    )
    assert Job.objects.get(pk=r.json()["id"]).status == "queued"
