"""The team audit trail: each action through the real API writes one entry naming its
actor (and the token, for a script); refused actions write none; only owners read it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from rest_framework.test import APIClient

from jobs.models import Job
from llmweb.accounts import services
from llmweb.accounts.models import AuditEntry, Membership, Role
from tests.factories import bundled_model, csv_bytes, make_user, ready_dataset, sms_rows
from tests.support import post_dataset, submit_job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_worker(settings):
    # Jobs wait on a queue no worker reads, so a cancel finds them queued.
    settings.LLMWEB_TRAIN_QUEUE = "gpu-no-worker"


@pytest.fixture
def vera(team, alice):
    make_user("vera")
    services.team_invite(by=alice, team=team, username="vera", role=Role.VIEWER)
    return Membership.objects.get(team=team, user__username="vera").user


def session_client(user) -> APIClient:
    """A browser-like client: a real session cookie, authenticated by SessionAuthentication."""
    client = APIClient()
    client.force_login(user)
    return client


def token_client(user, name: str) -> APIClient:
    _, secret = services.api_token_create(user=user, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def entries_after(team, mark: int) -> list[tuple]:
    """(action, actor, token, target type, target name, details), oldest first."""
    rows = AuditEntry.objects.filter(team=team, pk__gt=mark).order_by("id")
    return [
        (e.action, e.actor_name, e.token_name, e.target_type, e.target_name, e.details)
        for e in rows
    ]


def last_id() -> int:
    return AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.mark.parametrize("how", ["session", "token"])
def test_catalog_and_job_actions_name_their_actor_and_token(how, team, bob):
    """bob (a member) uploads, launches, cancels and deletes; each is one entry."""
    client = session_client(bob) if how == "session" else token_client(bob, "bob's script")
    token = "" if how == "session" else "bob's script"
    model = bundled_model(team)
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    mark = last_id()

    r = post_dataset(client, "reviews.csv", csv_bytes(), name="reviews")
    assert r.status_code == 201, r.json()
    dataset_id = r.json()["id"]
    r = client.post(
        "/api/v1/models/",
        {"file": SimpleUploadedFile("m.zip", b"PK\x03\x04" + b"x" * 60), "name": "mine"},
        format="multipart",
    )
    assert r.status_code == 202, r.json()  # accepted: a worker validates the archive
    model_id = r.json()["id"]
    job = submit_job(client, model, sms, max_steps=5, batch_size=8)
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 200
    assert client.delete(f"/api/v1/jobs/{job['id']}/").status_code == 204
    assert client.delete(f"/api/v1/datasets/{dataset_id}/").status_code == 204
    assert client.delete(f"/api/v1/models/{model_id}/").status_code == 204

    got = entries_after(team, mark)
    assert [(a, who, tok, kind) for a, who, tok, kind, _, _ in got] == [
        ("dataset.upload", "bob", token, "dataset"),
        ("model.upload", "bob", token, "model"),
        ("job.submit", "bob", token, "job"),
        ("job.cancel", "bob", token, "job"),
        ("job.delete", "bob", token, "job"),
        ("dataset.delete", "bob", token, "dataset"),
        ("model.delete", "bob", token, "model"),
    ]
    assert got[0][4] == "reviews v1" and got[0][5]["filename"] == "reviews.csv"
    assert got[3][5] == {"was": "queued"}
    assert got[6][4] == "mine v1"  # the name outlives the record
    assert AuditEntry.objects.filter(team=team, pk__gt=mark).exclude(actor=bob).count() == 0


@pytest.mark.parametrize("how", ["session", "token"])
def test_role_changes_and_tokens_name_their_actor(how, team, alice, charlie):
    client = session_client(alice) if how == "session" else token_client(alice, "admin script")
    token = "" if how == "session" else "admin script"
    mark = last_id()
    base = f"/api/v1/teams/{team.pk}/members/"

    r = client.post(base, {"username": "charlie", "role": "viewer"}, format="json")
    assert r.status_code == 201
    r = client.patch(f"{base}{charlie.pk}/", {"role": "member"}, format="json")
    assert r.status_code == 200
    assert client.delete(f"{base}{charlie.pk}/").status_code == 204
    created = client.post("/api/v1/tokens/", {"name": "ci"}, format="json").json()
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204

    got = entries_after(team, mark)
    assert [(a, who, tok, kind, name) for a, who, tok, kind, name, _ in got] == [
        ("member.add", "alice", token, "member", "charlie"),
        ("member.role_change", "alice", token, "member", "charlie"),
        ("member.remove", "alice", token, "member", "charlie"),
        ("token.create", "alice", token, "token", got[3][4]),
        ("token.revoke", "alice", token, "token", got[3][4]),
    ]
    assert got[0][5] == {"role": "viewer"}
    assert got[1][5] == {"from": "viewer", "to": "member"}
    assert got[3][4].startswith("ci (llmw_")


def test_a_token_is_recorded_in_every_team_it_can_act_in(team, charlie_team, bob, charlie):
    services.team_invite(by=charlie, team=charlie_team, username="bob", role=Role.VIEWER)
    token, _ = services.api_token_create(user=bob, name="laptop")
    for t in (team, charlie_team):
        assert AuditEntry.objects.filter(team=t, action="token.create", target_id=token.pk).exists()


def test_refused_actions_write_no_entry(team, alice, bob, vera, charlie_team):
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    model = bundled_model(team)
    job = submit_job(session_client(bob), model, sms, max_steps=5, batch_size=8)
    session_client(bob).post(f"/api/v1/jobs/{job['id']}/cancel/")
    mark = last_id()
    viewer, member, owner = session_client(vera), session_client(bob), session_client(alice)

    refused = [
        post_dataset(viewer, "reviews.csv", csv_bytes()),  # a viewer: 403
        post_dataset(member, "blob.csv", b"\x00\x01\x02binary" * 50),  # binary: 400
        post_dataset(member, "reviews.csv", csv_bytes(), schema="poetry"),  # bad schema
        member.post(f"/api/v1/jobs/{job['id']}/cancel/"),  # already cancelled: 409
        viewer.delete(f"/api/v1/jobs/{job['id']}/"),
        viewer.delete(f"/api/v1/models/{model.pk}/"),
        member.delete(f"/api/v1/models/{model.pk}/"),  # the bundled model: 409
        member.patch(f"/api/v1/teams/{team.pk}/members/{vera.pk}/", {"role": "owner"}),
        owner.post(f"/api/v1/teams/{team.pk}/members/", {"username": "nobody"}, format="json"),
        owner.patch(f"/api/v1/teams/{team.pk}/members/{alice.pk}/", {"role": "viewer"}),
        owner.post(f"/api/v1/teams/{charlie_team.pk}/members/", {"username": "bob"}),
    ]
    assert all(400 <= r.status_code < 500 for r in refused), [r.status_code for r in refused]
    assert entries_after(team, mark) == []
    assert AuditEntry.objects.filter(pk__gt=mark).count() == 0


def test_the_entry_shares_the_transaction_of_its_change(team, alice, bob):
    """A change rolled back by its caller takes its audit line with it."""
    membership = Membership.objects.get(team=team, user=bob)
    mark = last_id()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.membership_set_role(by=alice, membership=membership, role=Role.VIEWER)
        raise RuntimeError("something after the change failed")
    assert Membership.objects.get(pk=membership.pk).role == Role.MEMBER
    assert entries_after(team, mark) == []


def test_only_owners_read_the_audit_log(team, alice, bob, vera, charlie, charlie_team):
    path = f"/api/v1/teams/{team.pk}/audit/"
    r = session_client(alice).get(path)
    assert r.status_code == 200
    body = r.json()
    # Newest first: bob's and vera's arrival, then the team's creation.
    assert [e["action"] for e in body["results"]] == ["member.add", "member.add", "team.create"]
    newest = body["results"][0]
    assert newest["actor"] == {"id": alice.pk, "username": "alice", "token": None}
    assert newest["target"] == {"type": "member", "id": vera.pk, "name": "vera"}
    assert newest["details"] == {"role": "viewer"}
    assert token_client(alice, "reader").get(path).status_code == 200

    for who in (bob, vera):  # members and viewers: 403 with a reason
        r = session_client(who).get(path)
        assert r.status_code == 403 and "owner" in r.json()["detail"]
    assert token_client(bob, "bob's").get(path).status_code == 403
    assert session_client(charlie).get(path).status_code == 404  # other teams: not there
    assert token_client(charlie, "charlie's").get(path).status_code == 404
    assert APIClient().get(path).status_code == 401
    assert session_client(charlie).get(f"/api/v1/teams/{charlie_team.pk}/audit/").status_code == 200


def test_the_audit_log_is_paginated(team, alice):
    for i in range(60):
        services.team_rename(by=alice, team=team, name=f"lab {i}")
    client = session_client(alice)
    first = client.get(f"/api/v1/teams/{team.pk}/audit/").json()
    assert first["count"] == 62 and len(first["results"]) == 50 and first["next"]
    assert first["results"][0]["details"] == {"from": "lab 58"}
    second = client.get(first["next"]).json()
    assert [e["action"] for e in second["results"]][-1] == "team.create"


def test_the_audit_route_is_in_the_schema(team, alice):
    schema = session_client(alice).get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/teams/{id}/audit/"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/PaginatedAuditEntryList")


def test_cancel_of_a_running_job_and_its_resume_are_recorded(team, bob):
    client = token_client(bob, "bob's script")
    sms = ready_dataset(team, "classification", sms_rows(40), name="sms")
    job = submit_job(client, bundled_model(team), sms, max_steps=5, batch_size=8)
    Job.objects.filter(pk=job["id"]).update(status="running")  # as a worker would
    mark = last_id()
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel/").status_code == 200
    Job.objects.filter(pk=job["id"]).update(status="cancelled", checkpoint_step=3)
    assert client.post(f"/api/v1/jobs/{job['id']}/resume/").status_code == 200
    assert [(a, who, tok, d) for a, who, tok, _, _, d in entries_after(team, mark)] == [
        ("job.cancel", "bob", "bob's script", {"was": "running"}),
        ("job.resume", "bob", "bob's script", {"from_step": 3}),
    ]
