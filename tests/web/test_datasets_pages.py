"""Dataset pages: list, upload form, detail with charts and errors, delete, scoping."""

from __future__ import annotations

import pytest
from django.test import Client

from llmweb.accounts import services as accounts
from llmweb.catalog.models import Dataset
from llmweb.catalog.services.datasets import dataset_mark_failed
from tests.factories import csv_bytes, make_user, process_now
from tests.support import post_dataset

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def ready(api, alice, team):
    ds_id = post_dataset(api(alice), "reviews.csv", csv_bytes(80), name="reviews").json()["id"]
    return process_now(Dataset.objects.get(pk=ds_id))


def test_list_shows_status_rows_and_polls_busy_rows(api, alice, team, ready):
    post_dataset(api(alice), "more.csv", csv_bytes(), name="waiting")
    html = client_for(alice).get("/datasets/").content.decode()
    assert "reviews v1" in html and "badge ready" in html and ">80<" in html
    assert "data-busy" in html and "/api/v1/datasets/" in html


def test_upload_page_has_dropzone_progress_bars_and_mapping(alice, team):
    html = client_for(alice).get("/datasets/new/").content.decode()
    for piece in ['id="dropzone"', 'id="upload-bar"', 'id="process-bar"', 'id="mapping-fields"',
                  "js/upload.js", 'name="split_ratios"', 'name="txt_mode"', 'name="encoding"']:  # fmt: skip
        assert piece in html, piece


def test_viewer_cannot_open_the_upload_page(alice, team):
    viewer = make_user("vera")
    accounts.team_invite(by=alice, team=team, username="vera", role="viewer")
    assert client_for(viewer).get("/datasets/new/").status_code == 403


def test_form_errors_are_shown_on_the_page(alice, team):
    from django.core.files.uploadedfile import SimpleUploadedFile

    r = client_for(alice).post(
        "/datasets/new/",
        {
            "file": SimpleUploadedFile("x.csv", csv_bytes()),
            "schema": "classification",
            "split_ratios": "1,2",
            "txt_mode": "lines",
        },  # fmt: skip
    )
    assert r.status_code == 400 and "three numbers" in r.content.decode()
    assert not Dataset.objects.exists()


def test_detail_of_a_ready_dataset_has_charts_quality_preview_and_downloads(alice, team, ready):
    html = client_for(alice).get(f"/datasets/{ready.pk}/").content.decode()
    for piece in ['id="label-chart"', 'id="length-chart"', "chart.umd.min.js", 'id="near-duplicates"',
                  'id="preview-table"', "format=parquet", "format=jsonl", 'id="delete-form"',
                  'id="detected-encoding"']:  # fmt: skip
        assert piece in html, piece
    assert ">utf-8<" in html.replace(" ", "")


def test_detail_of_a_failed_dataset_lists_row_errors(alice, team, api):
    ds_id = post_dataset(api(alice), "reviews.csv", csv_bytes(), name="bad").json()["id"]
    dataset_mark_failed(
        dataset_id=ds_id,
        error={"code": "invalid_rows", "message": "5 of 20 rows are invalid",
               "details": [{"line": 7, "column": "label", "message": "label is empty"}]},
    )  # fmt: skip
    html = client_for(alice).get(f"/datasets/{ds_id}/").content.decode()
    assert "5 of 20 rows are invalid" in html and "<td>7</td>" in html and "label is empty" in html


def test_charlie_gets_404_and_a_viewer_sees_no_delete_button(alice, team, charlie, ready):
    assert client_for(charlie).get(f"/datasets/{ready.pk}/").status_code == 404
    assert client_for(charlie).post(f"/datasets/{ready.pk}/delete/").status_code == 404
    viewer = make_user("vera")
    accounts.team_invite(by=alice, team=team, username="vera", role="viewer")
    html = client_for(viewer).get(f"/datasets/{ready.pk}/").content.decode()
    assert 'id="delete-form"' not in html
    assert client_for(viewer).post(f"/datasets/{ready.pk}/delete/").status_code == 403


def test_member_deletes_from_the_page(bob, team, ready, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = client_for(bob).post(f"/datasets/{ready.pk}/delete/")
    assert r.status_code == 302 and r["Location"] == "/datasets/"
    assert not Dataset.objects.exists() and not ready.storage_dir.exists()
