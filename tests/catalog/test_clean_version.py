"""A clean version: duplicates dropped and leaked evaluation rows removed, with its lineage."""

from __future__ import annotations

import pytest

from llmweb.catalog.models import Dataset
from tests.factories import ready_dataset
from tests.support import wait_dataset_settled as settled

pytestmark = pytest.mark.django_db(transaction=True)


def _rows() -> list[dict]:
    rows = [
        {"text": f"message number {i} about {'prizes' if i % 3 else 'lunch'}", "label": "ab"[i % 2]}
        for i in range(40)
    ]
    rows[5] = dict(rows[4])  # an exact duplicate inside train
    rows[32] = dict(rows[0])  # an exact duplicate of a train row in validation
    rows[36] = {"text": rows[1]["text"], "label": "a" if rows[1]["label"] == "b" else "b"}
    rows[37] = {"text": rows[2]["text"].upper() + "!!", "label": rows[2]["label"]}  # same input
    return rows


def test_clean_version_drops_duplicates_and_leaks_into_a_new_version(worker, api, alice, team):
    source = ready_dataset(team, "classification", _rows(), name="reviews")
    assert source.num_rows == {"train": 32, "validation": 4, "test": 4}
    r = api(alice).post(f"/api/v1/datasets/{source.pk}/clean/")
    assert r.status_code == 202, r.json()
    body = r.json()
    assert (body["name"], body["version"], body["derived_from"]) == ("reviews", 2, source.pk)
    clean = settled(body["id"])
    assert clean.status == "ready", clean.error
    assert clean.num_rows == {"train": 31, "validation": 3, "test": 2}
    assert clean.stats["exact_duplicates"] == 0
    assert all(ov["rows"] == 0 for ov in clean.stats["overlap"].values())
    assert clean.label_names == ["a", "b"]
    assert clean.lineage_note == (
        "Clean version of reviews v1: dropped 2 exact duplicate rows (1 from train, 1 from "
        "validation); removed 2 test rows whose input is also in train."
    )
    rows = api(alice).get(f"/api/v1/datasets/{clean.pk}/rows/?split=test").json()
    assert rows["count"] == 2
    source.refresh_from_db()
    assert source.status == "ready" and Dataset.objects.filter(name="reviews").count() == 2


def test_only_ready_datasets_are_cleaned_and_viewers_cannot(api, alice, team, charlie):
    from llmweb.accounts import services as accounts

    pending = Dataset.objects.create(
        team=team, name="p", schema="classification", original_filename="p.csv"
    )
    r = api(alice).post(f"/api/v1/datasets/{pending.pk}/clean/")
    assert r.status_code == 409 and r.json()["code"] == "dataset_not_ready"
    accounts.team_invite(by=alice, team=team, username="charlie", role="viewer")
    ready = ready_dataset(team, "classification", _rows(), name="r")
    assert api(charlie).post(f"/api/v1/datasets/{ready.pk}/clean/").status_code == 403


def test_a_lost_clean_version_is_sent_again_to_the_clean_task(team, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from llmweb.catalog.services import liveness

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(liveness, "_send", lambda path, i, on_error: sent.append((path, i)))
    source = ready_dataset(team, "classification", _rows(), name="reviews")
    clean = Dataset.objects.create(
        team=team,
        name="reviews",
        version=2,
        schema="classification",
        original_filename=source.original_filename,
        status="processing",
        derived_from=source,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    assert liveness.catalog_requeue_lost()["requeued_datasets"] == [clean.pk]
    assert sent == [(liveness.CLEAN_TASK, clean.pk)]
