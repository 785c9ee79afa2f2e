"""Dataset API without a worker: refusals, scoping, inspection, and reads of a processed set."""

from __future__ import annotations

import json

import pytest

from llmweb.accounts import services as accounts
from llmweb.catalog.models import Dataset
from tests.factories import csv_bytes, make_user, process_now, upload_file
from tests.support import files_under, post_dataset, shared_data

pytestmark = pytest.mark.django_db


def test_upload_answers_201_with_the_record_and_its_urls(api, alice, team):
    r = post_dataset(api(alice), "reviews.csv", csv_bytes(), name="reviews", seed=7)
    assert r.status_code == 201, r.json()
    body = r.json()
    assert (body["status"], body["version"], body["team"], body["seed"]) == (
        "uploaded",
        1,
        team.pk,
        7,
    )
    assert r["Location"] == f"/api/v1/datasets/{body['id']}/"
    assert body["urls"]["page"] == f"/datasets/{body['id']}/"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "  "}, "name"),
        ({"schema": "poetry"}, "schema"),
        ({"split_ratios": "0.9,0.9,0.9"}, "add up to 1"),
        ({"split_ratios": "0.8;0.2"}, "three numbers"),
        ({"mapping": "{text: sms"}, "not valid JSON"),
        ({"mapping": '{"answer": "a"}'}, "does not use"),
        ({"encoding": "latin-7"}, "encoding"),
        ({"txt_mode": "pages"}, "txt_mode"),
    ],
)
def test_bad_fields_are_400_with_a_readable_detail(api, alice, team, fields, message):
    data = {"schema": "classification", **fields}
    r = post_dataset(api(alice), "reviews.csv", csv_bytes(), **data)
    assert r.status_code == 400, r.json()
    assert message in r.json()["detail"]
    assert not Dataset.objects.exists()


def test_missing_file_wrong_extension_and_non_multipart_are_refused(api, alice, team):
    client = api(alice)
    r = client.post("/api/v1/datasets/", {"schema": "classification"}, format="multipart")
    assert r.status_code == 400 and "No file was sent" in r.json()["detail"]
    r = post_dataset(client, "weights.exe", b"MZ\x90\x00")
    assert r.status_code == 400 and "upload one of" in r.json()["detail"]
    r = client.post("/api/v1/datasets/", {"schema": "classification"}, format="json")
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    assert not Dataset.objects.exists()


def test_file_over_the_limit_is_413_and_nothing_is_stored(api, alice, team, settings):
    settings.LLMWEB_MAX_UPLOAD_BYTES = 1000
    before = files_under(settings.STORAGE_DIR)
    r = post_dataset(api(alice), "big.csv", csv_bytes(200))
    assert r.status_code == 413
    assert "limit is" in r.json()["detail"] and "LLMWEB_MAX_UPLOAD_BYTES" in r.json()["detail"]
    assert not Dataset.objects.exists()
    assert set(files_under(settings.STORAGE_DIR)) <= set(before)


def test_same_name_makes_version_two(api, alice, bob, team):
    post_dataset(api(alice), "reviews.csv", csv_bytes(), name="reviews")
    r = post_dataset(api(bob), "reviews.csv", csv_bytes(), name="reviews")
    assert r.json()["version"] == 2


def test_list_is_team_scoped_and_filters(api, alice, team, charlie, charlie_team):
    post_dataset(api(alice), "a.csv", csv_bytes(), name="spam sms")
    post_dataset(api(alice), "b.csv", csv_bytes(), name="poems", schema="causal-lm")
    post_dataset(api(charlie), "c.csv", csv_bytes(), name="charlie's")
    names = lambda r: sorted(d["name"] for d in r.json()["results"])  # noqa: E731
    assert names(api(alice).get("/api/v1/datasets/")) == ["poems", "spam sms"]
    assert names(api(alice).get("/api/v1/datasets/?schema=causal-lm")) == ["poems"]
    assert names(api(alice).get("/api/v1/datasets/?search=SMS")) == ["spam sms"]
    assert names(api(alice).get("/api/v1/datasets/?status=ready")) == []
    assert names(api(charlie).get("/api/v1/datasets/")) == ["charlie's"]
    assert api(alice).get(f"/api/v1/datasets/?team={charlie_team.pk}").status_code == 404


def test_charlie_gets_404_on_every_endpoint_of_alices_dataset(api, alice, team, charlie):
    ds_id = post_dataset(api(alice), "a.csv", csv_bytes()).json()["id"]
    c = api(charlie)
    for url in ["", "rows/", "stats/", "download/"]:
        assert c.get(f"/api/v1/datasets/{ds_id}/{url}").status_code == 404, url
    assert c.delete(f"/api/v1/datasets/{ds_id}/").status_code == 404
    r = post_dataset(c, "a.csv", csv_bytes(), team=team.pk)
    assert r.status_code == 404
    assert Dataset.objects.count() == 1


def test_viewer_reads_but_gets_403_on_upload_and_delete(api, alice, team):
    viewer = make_user("vera")
    accounts.team_invite(by=alice, team=team, username="vera", role="viewer")
    ds_id = post_dataset(api(alice), "a.csv", csv_bytes()).json()["id"]
    v = api(viewer)
    assert v.get(f"/api/v1/datasets/{ds_id}/").status_code == 200
    r = post_dataset(v, "a.csv", csv_bytes(), team=team.pk)
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    r = v.delete(f"/api/v1/datasets/{ds_id}/")
    assert r.status_code == 403 and Dataset.objects.filter(pk=ds_id).exists()


def test_member_deletes_and_the_files_go(api, alice, bob, team, django_capture_on_commit_callbacks):
    ds_id = post_dataset(api(alice), "a.csv", csv_bytes()).json()["id"]
    folder = Dataset.objects.get(pk=ds_id).storage_dir
    with django_capture_on_commit_callbacks(execute=True):
        assert api(bob).delete(f"/api/v1/datasets/{ds_id}/").status_code == 204
    assert not folder.exists()


def test_rows_of_an_unprocessed_dataset_are_409(api, alice, team):
    ds_id = post_dataset(api(alice), "a.csv", csv_bytes()).json()["id"]
    r = api(alice).get(f"/api/v1/datasets/{ds_id}/rows/")
    assert r.status_code == 409 and "only ready datasets" in r.json()["detail"]


# --- reads of a processed dataset (processed in this process, no worker) --------------


@pytest.fixture
def sms(api, alice, team):
    content = shared_data("SMSSpamCollection.tsv").read_bytes()
    ds_id = post_dataset(api(alice), "sms.tsv", content, name="sms").json()["id"]
    return process_now(Dataset.objects.get(pk=ds_id))


def test_rows_are_paginated_with_label_names_and_searchable(api, alice, sms):
    client = api(alice)
    r = client.get(f"/api/v1/datasets/{sms.pk}/rows/?split=train&page=2").json()
    assert r["count"] == sms.num_rows["train"] and r["page"] == 2 and len(r["results"]) == 50
    assert r["results"][0]["_row"] == 50 and r["results"][0]["label"] in ("ham", "spam")
    assert r["num_pages"] == -(-sms.num_rows["train"] // 50)
    hits = client.get(f"/api/v1/datasets/{sms.pk}/rows/?split=test&q=FREE").json()
    assert hits["count"] > 0
    assert all("free" in row["text"].lower() for row in hits["results"])
    bad = client.get(f"/api/v1/datasets/{sms.pk}/rows/?split=dev")
    assert bad.status_code == 400 and "Unknown split" in bad.json()["detail"]


def test_stats_report_labels_duplicates_and_leakage(api, alice, sms):
    body = api(alice).get(f"/api/v1/datasets/{sms.pk}/stats/").json()
    stats = body["stats"]
    assert stats["labels"] == {"ham": 4827, "spam": 747}
    assert stats["exact_duplicates"] > 0 and "test" in stats["overlap"]
    assert stats["imbalance"]["majority"] == "ham"
    assert any("also appear in train" in w for w in body["warnings"])


def test_download_jsonl_and_parquet_of_a_split(api, alice, sms, settings):
    import io

    import pyarrow.parquet as pq

    client = api(alice)
    r = client.get(f"/api/v1/datasets/{sms.pk}/download/?split=validation&format=jsonl")
    assert r.status_code == 200 and "sms-v1-validation.jsonl" in r["Content-Disposition"]
    lines = b"".join(r.streaming_content).decode().splitlines()
    assert len(lines) == sms.num_rows["validation"]
    assert json.loads(lines[0])["label"] in ("ham", "spam")
    r = client.get(f"/api/v1/datasets/{sms.pk}/download/?split=test&format=parquet")
    assert r.status_code == 200 and r["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(b"".join(r.streaming_content)))
    assert table.num_rows == sms.num_rows["test"] and table.column_names == ["text", "label"]
    assert not list((settings.STORAGE_DIR / "tmp").glob("*"))  # the temp file is gone
    assert client.get(f"/api/v1/datasets/{sms.pk}/download/?format=csv").status_code == 400


# --- inspection -------------------------------------------------------------------------


def test_inspect_suggests_a_mapping_from_the_head_of_a_file(api, alice, team, settings):
    head = shared_data("SMSSpamCollection.tsv").read_bytes()[: (1 << 20)]
    r = api(alice).post(
        "/api/v1/datasets/inspect/",
        {"file": upload_file("sms.tsv", head[:300_007]), "partial": "true"},
        format="multipart",
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["format"], body["encoding"], body["has_header"]) == ("tsv", "utf-8", False)
    assert body["suggested_mapping"]["classification"] == {"text": "col_1", "label": "col_0"}
    assert body["sample"][0]["col_0"] == "ham"
    assert not list((settings.STORAGE_DIR / "tmp").glob("*"))


def test_inspect_detects_gb18030_and_refuses_garbage(api, alice, team):
    text = "句子,标签\n" + "".join(
        f"这是第{i}个中文句子,{'好' if i % 2 else '坏'}\n" for i in range(30)
    )
    r = api(alice).post(
        "/api/v1/datasets/inspect/",
        {"file": upload_file("zh.csv", text.encode("gb18030"))},
        format="multipart",
    )
    assert r.status_code == 200 and r.json()["encoding"] == "gb18030"
    assert r.json()["columns"] == ["句子", "标签"]
    r = api(alice).post(
        "/api/v1/datasets/inspect/",
        {"file": upload_file("x.csv", bytes(range(256)) * 50)},
        format="multipart",
    )
    assert r.status_code == 400 and r.json()["detail"]


def test_openapi_documents_the_dataset_endpoints(api, alice):
    r = api(alice).get("/api/schema/?format=json")
    paths = r.json()["paths"]
    for p in ["/api/v1/datasets/", "/api/v1/datasets/{id}/", "/api/v1/datasets/{id}/rows/",
              "/api/v1/datasets/{id}/stats/", "/api/v1/datasets/{id}/download/",
              "/api/v1/datasets/inspect/"]:  # fmt: skip
        assert p in paths, p
    assert "multipart/form-data" in paths["/api/v1/datasets/"]["post"]["requestBody"]["content"]
