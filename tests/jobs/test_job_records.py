"""What people do with a job besides running it: clone, annotate, archive, delete."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import F

from jobs.engine.jsonable import jsonable
from jobs.models import Job, JobEvent
from llmweb.catalog.models import Dataset
from tests.factories import bundled_model, ready_dataset, sms_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def sms(team):
    return ready_dataset(team, "classification", sms_rows(40), name="sms")


@pytest.fixture
def job(api, alice, team, sms):
    r = api(alice).post(
        "/api/v1/jobs/",
        {
            "base_model": bundled_model(team).id,
            "dataset": sms.id,
            "params": {"max_steps": 3, "learning_rate": 1e-4},
            "name": "first",
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    return Job.objects.get(pk=r.json()["id"])


def test_clone_keeps_inputs_and_changes_only_the_named_params(api, alice, job):
    r = api(alice).post(
        f"/api/v1/jobs/{job.pk}/clone/", {"params": {"learning_rate": 3e-4}}, format="json"
    )
    assert r.status_code == 201, r.json()
    clone = Job.objects.get(pk=r.json()["id"])
    assert clone.pk != job.pk and clone.retry_of is None and clone.type == job.type
    assert clone.base_model == job.base_model and clone.dataset == job.dataset
    assert clone.params["learning_rate"] == 3e-4 and clone.params["max_steps"] == 3
    assert clone.name == "first"


def test_clone_with_a_bad_param_is_refused_and_makes_no_job(api, alice, job):
    r = api(alice).post(
        f"/api/v1/jobs/{job.pk}/clone/", {"params": {"learning_rate": -1}}, format="json"
    )
    assert r.status_code == 400 and r.json()["param"] == "learning_rate"
    assert Job.objects.count() == 1


def test_run_again_page_is_prefilled_from_the_job(client, alice, job, sms):
    client.force_login(alice)
    html = client.get(f"/jobs/new/?clone={job.pk}").content.decode()
    assert f'<option value="{sms.pk}" selected>' in html
    assert 'name="p_max_steps" value="3"' in html
    assert 'name="name" value="first"' in html


def test_notes_tags_and_archive_through_the_api(api, alice, bob, job):
    r = api(alice).patch(
        f"/api/v1/jobs/{job.pk}/",
        {"notes": "lr sweep", "tags": ["sweep", " lr ", "sweep"], "archived": True},
        format="json",
    )
    assert r.status_code == 200, r.json()
    job.refresh_from_db()
    assert (job.notes, job.tags, job.archived) == ("lr sweep", ["sweep", "lr"], True)
    listed = api(alice).get("/api/v1/jobs/?archived=false").json()["results"]
    assert job.pk not in [j["id"] for j in listed]
    too_long = api(alice).patch(f"/api/v1/jobs/{job.pk}/", {"tags": ["x" * 41]}, format="json")
    assert too_long.status_code == 400


def test_a_running_job_cannot_be_deleted(api, alice, job):
    Job.objects.filter(pk=job.pk).update(status="running")
    r = api(alice).delete(f"/api/v1/jobs/{job.pk}/")
    assert r.status_code == 409 and r.json()["code"] == "job_active"
    assert Job.objects.filter(pk=job.pk).exists()


def test_delete_takes_events_and_files_and_keeps_the_result_model(
    api, alice, team, job, django_capture_on_commit_callbacks
):
    from llmweb.catalog.models import RegisteredModel

    result = RegisteredModel.objects.create(
        team=team, name="result", source="job", status="ready", job=job
    )
    Job.objects.filter(pk=job.pk).update(status="succeeded", result_model=result)
    job.work_dir.mkdir(parents=True, exist_ok=True)
    (job.work_dir / "events.log").write_text("x")
    with django_capture_on_commit_callbacks(execute=True):
        r = api(alice).delete(f"/api/v1/jobs/{job.pk}/")
    assert r.status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not JobEvent.objects.filter(job_id=job.pk).exists()
    assert not job.work_dir.exists()
    result.refresh_from_db()
    assert result.job_id is None and result.status == "ready"


def test_viewer_cannot_delete_or_annotate(api, alice, charlie, team, job):
    from llmweb.accounts import services
    from llmweb.accounts.models import Role

    services.team_invite(by=alice, team=team, username="charlie", role=Role.VIEWER)
    Job.objects.filter(pk=job.pk).update(status="failed")
    assert api(charlie).delete(f"/api/v1/jobs/{job.pk}/").status_code == 403
    assert (
        api(charlie).patch(f"/api/v1/jobs/{job.pk}/", {"notes": "x"}, format="json").status_code
        == 403
    )
    assert Job.objects.filter(pk=job.pk, notes="").exists()


def test_a_failed_dataset_says_it_failed_and_why(api, alice, team, sms):
    Dataset.objects.filter(pk=sms.pk).update(
        status="failed", error={"code": "empty_file", "message": "sms.tsv is empty."}
    )
    r = api(alice).post(
        "/api/v1/jobs/",
        {"base_model": bundled_model(team).id, "dataset": sms.id, "params": {}},
        format="json",
    )
    assert r.status_code == 400 and r.json()["code"] == "dataset_failed"
    assert "failed: sms.tsv is empty." in r.json()["detail"]
    assert "wait" not in r.json()["detail"]


def test_events_carry_json_values_never_expressions(job):
    """Every stored event round-trips through JSON as plain values."""
    running = Job.objects.filter(pk=job.pk)
    from jobs import services

    assert services.job_claim(job_id=job.pk, worker="w:1", device="cpu")
    assert running.get().status == "running"
    for event in JobEvent.objects.filter(job=job):
        assert json.loads(json.dumps(event.data)) == event.data, event.kind
        assert "F(" not in json.dumps(event.data)
    claim = JobEvent.objects.get(job=job, kind="status", data__status="running")
    assert claim.data["attempts"] == 1


def test_jsonable_makes_any_value_plain():
    class Scalar:
        def item(self):
            return 2.5

    value = {
        "nan": math.nan,
        "inf": -math.inf,
        "expr": F("attempts") + 1,
        "path": Path("a/b"),
        "scalar": Scalar(),
        "nested": ({1, 2}, Decimal("1.5")),
        3: "int key",
    }
    out = jsonable(value)
    assert json.loads(json.dumps(out)) == out
    assert out["nan"] is None and out["inf"] is None and out["scalar"] == 2.5
    assert out["path"] == "a/b" and out["3"] == "int key"
    assert isinstance(out["expr"], str)
