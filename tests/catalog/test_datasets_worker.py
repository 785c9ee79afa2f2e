"""Uploads end to end: the API or the form stores the file, a real Celery worker processes it."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from llmweb.catalog.models import Dataset
from tests.factories import csv_bytes, jsonl_bytes, labelled, parquet_bytes, records, zip_bytes
from tests.support import (
    SETTLE_TIMEOUT,
    files_under,
    post_dataset,
    shared_data,
    wait_dataset_settled,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def upload_and_settle(client, filename: str, content: bytes, **fields) -> Dataset:
    r = post_dataset(client, filename, content, **fields)
    assert r.status_code == 201, r.json()
    return wait_dataset_settled(r.json()["id"])


FORMATS = [
    ("reviews.csv", csv_bytes(60), {}, 60),
    ("reviews.tsv", ("\n".join(labelled(60, sep="\t")) + "\n").encode(), {}, 60),
    ("reviews.json", json.dumps(records(60)).encode(), {}, 60),
    ("reviews.jsonl", jsonl_bytes(records(70)), {}, 70),
    ("reviews.parquet", parquet_bytes(records(80)), {}, 80),
    ("reviews.zip", zip_bytes({"data/reviews.csv": csv_bytes(50), "README.md": b"hi"}), {}, 50),
    (
        "poem.txt",
        "".join(f"line {i} of a long poem\n\n" for i in range(45)).encode(),
        {"schema": "causal-lm", "txt_mode": "lines"},
        45,
    ),
]


@pytest.mark.parametrize("filename, content, fields, rows", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_becomes_ready_with_every_row(
    worker, api, alice, team, filename, content, fields, rows
):
    ds = upload_and_settle(api(alice), filename, content, **fields)
    assert ds.status == "ready", ds.error
    assert sum(ds.num_rows.values()) == rows
    assert ds.format == filename.rsplit(".", 1)[1].replace("zip", "csv")
    assert ds.progress == 1.0 and ds.processed_at is not None
    assert (ds.processed_dir / "train" / "state.json").is_file()
    assert ds.upload_path.is_file()  # the original stays beside the processed splits


def test_tinyshakespeare_corpus_mode_is_cut_into_blocks(worker, api, alice, team):
    content = shared_data("tinyshakespeare.txt").read_bytes()[:200_000]
    ds = upload_and_settle(api(alice), "shakespeare.txt", content, schema="causal-lm",
                           txt_mode="corpus", split_ratios="0.9,0.05,0.05")  # fmt: skip
    assert ds.status == "ready", ds.error
    assert 80 <= sum(ds.num_rows.values()) <= 120  # ~2,000-character blocks
    assert ds.stats["splits"]["train"]["tokens"]["text"]["count"] > 0


def test_sms_collection_is_stratified_with_token_lengths(worker, api, alice, team):
    content = shared_data("SMSSpamCollection.tsv").read_bytes()
    ds = upload_and_settle(api(alice), "SMSSpamCollection.tsv", content, name="sms")
    assert ds.status == "ready", ds.error
    assert ds.num_rows == {"train": 4458, "validation": 558, "test": 558}
    assert ds.label_names == ["ham", "spam"] and ds.mapping == {"text": "col_1", "label": "col_0"}
    spam = [ds.stats["splits"][s]["labels"]["spam"] / ds.num_rows[s] for s in ds.num_rows]
    assert max(spam) - min(spam) < 0.01
    assert ds.stats["tokenizer"] == "all-MiniLM-L6-v2"
    tokens = ds.stats["splits"]["test"]["tokens"]["text"]
    chars = ds.stats["splits"]["test"]["lengths"]["text"]
    assert 5 < tokens["p50"] < chars["p50"] and tokens["min"] < 10  # not padded to 128
    # 2,000 rows shared by size, at least 250 a split: 1,600 of train, 250 of each other
    counted = {s: ds.stats["splits"][s]["tokens"]["text"]["count"] for s in ds.num_rows}
    assert counted == {"train": 1600, "validation": 250, "test": 250}


def test_token_samples_are_shared_by_split_size_with_a_floor():
    from llmweb.catalog.tasks.datasets import token_sample_sizes

    assert token_sample_sizes({"train": 80_000, "validation": 10_000, "test": 10_000}) == {
        "train": 1600,
        "validation": 250,
        "test": 250,
    }
    assert token_sample_sizes({"train": 900, "validation": 100, "test": 0}) == {
        "train": 900,  # all rows when the share is more than the split
        "validation": 100,
        "test": 0,
    }


@pytest.mark.parametrize(
    "encoding, expected",
    [("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030"), ("utf-16", "utf-16")],
)
def test_encodings_are_detected_and_text_converted(worker, api, alice, team, encoding, expected):
    text = "句子,标签\n" + "".join(
        f"这是第{i}个中文句子,{'好' if i % 2 else '坏'}\n" for i in range(40)
    )
    ds = upload_and_settle(api(alice), "zh.csv", text.encode(encoding))
    assert ds.status == "ready", ds.error
    assert ds.encoding == expected and ds.mapping == {"text": "句子", "label": "标签"}
    assert ds.label_names == ["坏", "好"]
    row = api(alice).get(f"/api/v1/datasets/{ds.pk}/rows/?split=train").json()["results"][0]
    assert row["text"].startswith("这是第")


def _long_line() -> bytes:
    rows = [f"{'spam' if i % 3 == 0 else 'ham'}\tmessage {i}" for i in range(30)]
    return ("\n".join(rows[:10] + ["ham\t" + "x" * (10 << 20)] + rows[10:]) + "\n").encode()


def _mixed_types() -> bytes:
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(20)]
    for i in (3, 7, 11):
        rows[i]["label"] = "spam"
    return jsonl_bytes(rows)


BAD = [
    ("blank.csv", b"\n   \n\n", {}, "empty_file", "empty", None),
    ("header.csv", b"text,label\n", {}, "no_rows", "header but no data rows", None),
    ("m.csv", csv_bytes(30), {"mapping": '{"text": "body"}'}, "missing_column", "body", None),
    ("mixed.jsonl", _mixed_types(), {}, "invalid_rows", "invalid", [4, 8, 12]),
    ("rare.csv", csv_bytes(40) + b"a lonely example,eggs\n", {}, "label_too_rare", "eggs", None),
    ("long.tsv", _long_line(), {}, "invalid_rows", "invalid", [11]),
    ("zh.csv", "文本,标签\n你好,好\n".encode() * 20, {"encoding": "gb18030"}, "encoding_mismatch", "declared as gb18030", None),
    ("up.zip", zip_bytes({"../../evil.csv": csv_bytes(20)}), {}, "archive_unsafe_path", "..", None),
    ("abs.zip", zip_bytes({"/etc/evil.csv": csv_bytes(20)}), {}, "archive_unsafe_path", "/etc/evil.csv", None),
    ("link.zip", zip_bytes({"data.csv": csv_bytes(20)}, symlink="link.csv"), {}, "archive_link", "link", None),
    ("two.zip", zip_bytes({"a.csv": csv_bytes(20), "b.csv": csv_bytes(20)}), {}, "archive_several_files", "a.csv, b.csv", None),
    ("bomb.zip", zip_bytes({"data.csv": b"text,label\n" + b"a,b\n" * (1 << 20)}), {}, "archive_bomb", "100", None),
]  # fmt: skip


@pytest.mark.parametrize(
    "filename, content, fields, code, message, lines", BAD, ids=[b[3] + ":" + b[0] for b in BAD]
)
def test_bad_files_fail_clearly_and_leave_no_files(
    worker, api, alice, team, filename, content, fields, code, message, lines
):
    ds = upload_and_settle(api(alice), filename, content, **fields)
    assert ds.status == "failed"
    assert ds.error["code"] == code, ds.error
    assert message in ds.error["message"], ds.error["message"]
    if lines:
        assert [d["line"] for d in ds.error["details"]][: len(lines)] == lines
        assert all(d["message"] for d in ds.error["details"])
    assert files_under(ds.storage_dir) == []
    body = api(alice).get(f"/api/v1/datasets/{ds.pk}/").json()
    assert body["status"] == "failed" and body["error"]["message"] == ds.error["message"]


def test_the_form_page_uploads_without_javascript(worker, alice, team):
    client = Client()
    client.force_login(alice)
    from django.core.files.uploadedfile import SimpleUploadedFile

    r = client.post(
        "/datasets/new/",
        {
            "file": SimpleUploadedFile("reviews.csv", csv_bytes(60)),
            "name": "form upload",
            "schema": "classification",
            "split_ratios": "0.8,0.1,0.1",
            "seed": "3",
            "stratify": "on",
            "txt_mode": "lines",
            "encoding": "",
            "mapping": '{"text": "text", "label": "label"}',
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    ds = wait_dataset_settled(int(r["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert (ds.status, ds.name, ds.seed, sum(ds.num_rows.values())) == (
        "ready",
        "form upload",
        3,
        60,
    )
    page = client.get(r["Location"]).content.decode()
    assert "label-chart" in page and "length-chart" in page


def test_deleting_while_processing_stops_the_work_and_removes_files(worker, api, alice, team):
    content = ("text,label\n" + "\n".join(labelled(400_000)) + "\n").encode()
    r = post_dataset(api(alice), "big.csv", content)
    ds = Dataset.objects.get(pk=r.json()["id"])
    folder = ds.storage_dir

    # 1. Processing had started: the worker claimed the row. The pool is frozen there, so
    #    the delete lands mid-work however fast ingest is (400,000 rows take ~1.5 s: a delete
    #    sent after seeing progress used to arrive after the task had finished).
    wait_for(
        lambda: Dataset.objects.filter(pk=ds.pk, status="processing").exists(),
        timeout=SETTLE_TIMEOUT,
        interval=0.02,
        what="the worker to claim the dataset",
    )
    worker.pause_pool()
    try:
        assert Dataset.objects.get(pk=ds.pk).status == "processing"
        assert api(alice).delete(f"/api/v1/datasets/{ds.pk}/").status_code == 204
    finally:
        worker.resume_pool()

    # 2. The worker stopped: its task noticed the row was gone and returned "cancelled"
    #    (a task that ran on to the end would log "gone" or "ready" instead).
    stopped = f"dataset {ds.pk} was deleted while processing; stopped"
    wait_for(lambda: stopped in worker.output(), timeout=SETTLE_TIMEOUT, what="the worker to stop")
    ended = re.compile(r"process_dataset\[[^\]]+\] succeeded in [\d.]+s: '(\w+)'")
    result = wait_for(
        lambda: ended.search(worker.output().split(stopped, 1)[1]),
        timeout=SETTLE_TIMEOUT,
        what="the task to end",
    )
    assert result.group(1) == "cancelled", worker.output()[-2000:]

    # 3. It wrote nothing back afterwards: no files, no row, and no later write revived them.
    assert files_under(folder) == [] and not Dataset.objects.filter(pk=ds.pk).exists()


# sentence<TAB>0|1 with no header, as the UCI "Sentiment Labelled Sentences" .txt files.
UCI_LINES = [
    "Wow... Loved this place.",
    "Crust is not good.",
    "Not tasty and the texture was just nasty.",
    "The selection on the menu was great and so were the prices.",
    "Now I am getting angry and I want my damn pho.",
    "Honeslty it didn't taste THAT fresh.",
]


def _uci_txt(n: int = 60) -> bytes:
    return "".join(f"{UCI_LINES[i % 6]} ({i})\t{i % 2}\n" for i in range(n)).encode()


@pytest.mark.parametrize(
    ("filename", "content", "fields", "rows", "labels"),
    [
        ("yelp_labelled.txt", _uci_txt(60), {}, 60, ["0", "1"]),
        ("amazon_cells_labelled", _uci_txt(50), {}, 50, ["0", "1"]),
        (
            "reviews.dat",
            ("text;label\n" + "\n".join(labelled(40, sep=";")) + "\n").encode(),
            {},
            40,
            ["ham", "spam"],
        ),
        (
            "reviews.txt",
            "".join(f"{i}|message {i}, with a comma|{'ab'[i % 2]}\n" for i in range(40)).encode(),
            {"delimiter": "pipe", "has_header": "no", "mapping": '{"text": "col_1"}'},
            40,
            ["a", "b"],
        ),
    ],
    ids=["uci-txt", "uci-no-extension", "semicolon-dat", "pipe-override"],
)
def test_delimited_text_is_read_from_its_content(
    worker, api, alice, team, filename, content, fields, rows, labels
):
    ds = upload_and_settle(api(alice), filename, content, **fields)
    assert ds.status == "ready", ds.error
    assert sum(ds.num_rows.values()) == rows
    assert ds.label_names == labels
    assert files_under(ds.storage_dir / "work") == []


def test_sms_collection_renamed_txt_is_read_as_tsv(worker, api, alice, team):
    content = shared_data("SMSSpamCollection.tsv").read_bytes()
    ds = upload_and_settle(api(alice), "SMSSpamCollection.txt", content)
    assert ds.status == "ready", ds.error
    assert sum(ds.num_rows.values()) == 5574
    assert ds.label_names == ["ham", "spam"] and ds.format == "tsv"
    assert ds.stats["source"]["delimiter"] == "tab"


def test_a_poem_with_a_comma_per_line_trains_a_language_model_on_whole_lines(
    worker, api, alice, team
):
    lines = [f"line {i} of the poem, and its second half" for i in range(30)]
    ds = upload_and_settle(
        api(alice), "poem.txt", ("\n".join(lines) + "\n").encode(), schema="causal-lm"
    )
    assert ds.status == "ready", ds.error
    assert ds.format == "txt" and sum(ds.num_rows.values()) == 30
    row = api(alice).get(f"/api/v1/datasets/{ds.pk}/rows/?split=train").json()["results"][0]
    assert row["text"].endswith(", and its second half")
