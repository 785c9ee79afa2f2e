"""The /api/v1/models/ and /api/v1/presets/ endpoints: scoping, roles, errors, download."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job, JobStatus
from llmweb.accounts import services as accounts
from llmweb.accounts.models import Role
from llmweb.catalog.models import Dataset, RegisteredModel
from llmweb.catalog.services.model_facts import preset_param_count_exact
from tests.factories import job_record
from tests.support import zip_members


@pytest.fixture
def viewer(team, alice, charlie):
    accounts.team_invite(by=alice, team=team, username="charlie", role=Role.VIEWER)
    return charlie


@pytest.fixture
def uploaded(team, alice) -> RegisteredModel:
    m = RegisteredModel.objects.create(
        team=team,
        name="tiny",
        source="upload",
        status="ready",
        task="classification",
        created_by=alice,
        size_bytes=10,
    )
    m.artifact_dir.mkdir(parents=True, exist_ok=True)
    (m.artifact_dir / "config.json").write_text('{"model_type": "bert"}')
    (m.artifact_dir / "model.safetensors").write_bytes(b"\0" * 3_000_000)
    return m


def test_list_shows_the_bundled_model_and_filters_by_task_and_source(api, alice, team, uploaded):
    body = api(alice).get("/api/v1/models/").json()
    assert {m["name"] for m in body["results"]} == {"all-MiniLM-L6-v2", "tiny"}
    body = api(alice).get("/api/v1/models/?task=encoder&source=bundled").json()
    assert [m["name"] for m in body["results"]] == ["all-MiniLM-L6-v2"]
    body = api(alice).get("/api/v1/models/?ordering=size_bytes").json()
    assert [m["name"] for m in body["results"]] == ["tiny", "all-MiniLM-L6-v2"]
    r = api(alice).get("/api/v1/models/?task=poetry")
    assert r.status_code == 400 and "task must be one of" in r.json()["detail"]


def test_other_teams_get_404_on_every_endpoint(api, charlie, charlie_team, uploaded):
    client, pk = api(charlie), uploaded.pk
    for method, url in [
        ("get", f"/api/v1/models/{pk}/"),
        ("patch", f"/api/v1/models/{pk}/"),
        ("delete", f"/api/v1/models/{pk}/"),
        ("get", f"/api/v1/models/{pk}/download/"),
        ("get", f"/api/v1/models/{pk}/lineage/"),
    ]:
        r = getattr(client, method)(
            url, {"card": "x"} if method == "patch" else None, format="json"
        )
        assert r.status_code == 404, (method, url, r.status_code)
    assert client.get(f"/api/v1/models/?team={uploaded.team_id}").status_code == 404
    r = client.post(
        "/api/v1/models/", {"source": "hub", "hub_id": "x", "team": uploaded.team_id}, format="json"
    )
    assert r.status_code == 404
    assert pk not in [m["id"] for m in client.get("/api/v1/models/").json()["results"]]
    assert RegisteredModel.objects.filter(pk=pk).exists()


def test_viewers_read_but_get_403_with_a_reason_on_writes(api, viewer, team, uploaded):
    client = api(viewer)
    assert client.get(f"/api/v1/models/{uploaded.pk}/").status_code == 200
    r = client.patch(f"/api/v1/models/{uploaded.pk}/", {"card": "mine"}, format="json")
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    assert client.delete(f"/api/v1/models/{uploaded.pk}/").status_code == 403
    r = client.post(
        "/api/v1/models/",
        {"file": SimpleUploadedFile("m.zip", b"PK\x03\x04"), "team": team.pk},
        format="multipart",
    )
    assert r.status_code == 403 and "read-only" in r.json()["detail"]


def test_hub_is_refused_with_a_reason_when_the_setting_is_off(api, alice, team, settings):
    settings.LLMWEB_ALLOW_HUB = False
    r = api(alice).post(
        "/api/v1/models/", {"source": "hub", "hub_id": "distilbert-base-uncased"}, format="json"
    )
    assert r.status_code == 400 and "LLMWEB_ALLOW_HUB" in r.json()["detail"]
    assert not RegisteredModel.objects.filter(source="hub").exists()


def test_create_without_a_known_source_is_explained(api, alice, team):
    r = api(alice).post("/api/v1/models/", {"source": "magic"}, format="json")
    assert r.status_code == 400 and "multipart `file`" in r.json()["detail"]


def test_preset_needs_exactly_one_tokenizer_source(api, alice, team):
    r = api(alice).post(
        "/api/v1/models/", {"source": "preset", "family": "gpt2", "size": "tiny"}, format="json"
    )
    assert r.status_code == 400 and "tokenizer" in r.json()["detail"]


def test_preset_refuses_a_dataset_that_is_not_ready(api, alice, team):
    ds = Dataset.objects.create(
        team=team, name="raw", schema="causal-lm", status="processing", original_filename="a.txt"
    )
    r = api(alice).post(
        "/api/v1/models/",
        {"source": "preset", "family": "gpt2", "size": "tiny", "tokenizer_dataset": ds.pk},
        format="json",
    )
    assert r.status_code == 400 and "only be trained on a ready dataset" in r.json()["detail"]


def test_card_can_be_edited(api, alice, uploaded):
    r = api(alice).patch(
        f"/api/v1/models/{uploaded.pk}/", {"card": "# Tiny\nBetter now."}, format="json"
    )
    assert r.status_code == 200 and r.json()["card"] == "# Tiny\nBetter now."
    uploaded.refresh_from_db()
    assert uploaded.card == "# Tiny\nBetter now."
    assert api(alice).get(f"/api/v1/models/{uploaded.pk}/").json()["card"] == uploaded.card


def test_delete_is_refused_with_409_while_a_queued_job_uses_it(api, alice, team, uploaded):
    job = job_record(team=team, base_model=uploaded, status=JobStatus.QUEUED)
    r = api(alice).delete(f"/api/v1/models/{uploaded.pk}/")
    assert r.status_code == 409 and f"#{job.pk} (queued)" in r.json()["detail"]
    assert r.json()["code"] == "model_in_use"
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert api(alice).delete(f"/api/v1/models/{uploaded.pk}/").status_code == 409


def test_delete_removes_the_model_and_its_folder(
    api, alice, uploaded, django_capture_on_commit_callbacks
):
    folder = uploaded.storage_dir
    with django_capture_on_commit_callbacks(execute=True):
        assert api(alice).delete(f"/api/v1/models/{uploaded.pk}/").status_code == 204
    assert not RegisteredModel.objects.filter(pk=uploaded.pk).exists()
    assert not folder.exists()


def test_download_streams_a_zip_of_the_model_folder(api, alice, uploaded):
    r = api(alice).get(f"/api/v1/models/{uploaded.pk}/download/")
    assert r.status_code == 200 and r.streaming
    assert r["Content-Type"] == "application/zip"
    assert 'filename="tiny-v1.zip"' in r["Content-Disposition"]
    chunks = list(r.streaming_content)
    assert len(chunks) > 2 and max(len(c) for c in chunks) <= (1 << 20) + 4096
    assert sorted(zip_members(b"".join(chunks))) == [
        "tiny-v1/config.json",
        "tiny-v1/model.safetensors",
    ]


def test_download_of_a_pending_model_is_409(api, alice, team):
    m = RegisteredModel.objects.create(team=team, name="wip", source="upload", status="pending")
    assert api(alice).get(f"/api/v1/models/{m.pk}/download/").status_code == 409


def test_lineage_endpoint_returns_nodes_and_labelled_edges(api, alice, team, uploaded):
    child = RegisteredModel.objects.create(
        team=team, name="tiny-finetune", source="job", status="ready", parent=uploaded
    )
    body = api(alice).get(f"/api/v1/models/{child.pk}/lineage/").json()
    assert [n["id"] for n in body["nodes"]] == [uploaded.pk, child.pk]
    assert body["edges"] == [
        {"from": uploaded.pk, "to": child.pk, "kind": "", "dataset": None, "job": None, "label": ""}
    ]


def test_presets_report_exact_parameter_counts_for_a_vocabulary(api, alice):
    rows = api(alice).get("/api/v1/presets/?vocab_size=1000").json()
    tiny = next(r for r in rows if r["name"] == "gpt2-tiny")
    assert tiny["vocab_size"] == 1000
    assert tiny["num_parameters"] == preset_param_count_exact("gpt2", "tiny", 1000)
    assert len(rows) == 12
    r = api(alice).get("/api/v1/presets/?vocab_size=lots")
    assert r.status_code == 400 and "vocab_size" in r.json()["detail"]


def test_openapi_documents_the_model_endpoints(client, alice):
    client.force_login(alice)
    r = client.get("/api/schema/?format=json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in [
        "/api/v1/models/",
        "/api/v1/models/{id}/",
        "/api/v1/models/{id}/download/",
        "/api/v1/models/{id}/lineage/",
        "/api/v1/presets/",
    ]:
        assert path in paths, path
    create = paths["/api/v1/models/"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(create)


def _preset(client, team_id: int, **tokenizer):
    body = {"source": "preset", "family": "gpt2", "size": "tiny", "team": team_id, **tokenizer}
    return client.post("/api/v1/models/", body, format="json")


def test_a_preset_tokenizer_cannot_be_trained_on_another_teams_dataset(
    api, alice, team, charlie, charlie_team
):
    theirs = Dataset.objects.create(
        team=charlie_team, name="theirs", schema="causal-lm", status="ready"
    )
    before = RegisteredModel.objects.count()
    # An outsider's id reads as "not found", not as "forbidden".
    r = _preset(api(alice), team.pk, tokenizer_dataset=theirs.pk, vocab_size=512)
    assert r.status_code == 404 and r.json()["detail"]
    # A person in both teams still cannot mix them: the dataset must be in the model's team.
    accounts.team_invite(by=charlie, team=charlie_team, username="alice", role=Role.MEMBER)
    r = _preset(api(alice), team.pk, tokenizer_dataset=theirs.pk, vocab_size=512)
    assert r.status_code == 400 and "not in this team" in r.json()["detail"]
    assert RegisteredModel.objects.count() == before


def test_a_preset_tokenizer_cannot_be_copied_from_another_teams_model(
    api, alice, team, charlie_team
):
    theirs = RegisteredModel.objects.get(team=charlie_team, source="bundled")
    before = RegisteredModel.objects.count()
    r = _preset(api(alice), team.pk, tokenizer_model=theirs.pk)
    assert r.status_code == 404 and r.json()["detail"]
    assert RegisteredModel.objects.count() == before
