"""Format and delimiter from the content, overrides, and refusals before anything is stored."""

from __future__ import annotations

import pytest

from llmweb.catalog import sniff
from llmweb.catalog.models import Dataset
from tests.factories import upload_file
from tests.support import files_under, post_dataset, shared_data

pytestmark = pytest.mark.django_db

# Lines in the shape of the UCI "Sentiment Labelled Sentences" files: sentence<TAB>0|1.
UCI = (
    b"Wow... Loved this place.\t1\n"
    b"Crust is not good.\t0\n"
    b"Not tasty and the texture was just nasty.\t0\n"
    b"Stopped by during the late May bank holiday off Rick Steve recommendation, loved it.\t1\n"
    b"The selection on the menu was great and so were the prices.\t1\n"
    b"Now I am getting angry and I want my damn pho.\t0\n"
)


@pytest.mark.parametrize(
    ("content", "filename", "fmt", "delimiter", "columns"),
    [
        (UCI, "yelp_labelled.txt", "tsv", "tab", 2),
        (UCI, "yelp_labelled", "tsv", "tab", 2),
        (b"text;label\nhallo, welt;pos\nguten tag;neg\n", "reviews.dat", "csv", "semicolon", 2),
        (b"text;label\nhallo, welt;pos\nguten tag;neg\n", "excel.csv", "csv", "semicolon", 2),
        (b"a|b|c\n1|2|3\n4|5|6\n", "data", "csv", "pipe", 3),
        (b'"x, y",1\n"z",0\nw,1\n', "quoted.txt", "csv", "comma", 2),
        (b"To be, or not to be.\nThat is the question\n", "hamlet.txt", "txt", None, 1),
        (b'[{"text": "a"}]', "rows.txt", "json", None, None),
        (b'{"text": "a"}\n{"text": "b"}\n', "rows", "jsonl", None, None),
    ],
)
def test_the_content_decides_for_txt_dat_and_extensionless_files(
    content, filename, fmt, delimiter, columns
):
    plan = sniff.read_plan(content, filename=filename)
    assert (plan.format, plan.delimiter, plan.columns) == (fmt, delimiter, columns)


def test_the_shipped_sms_collection_renamed_txt_reads_as_two_tab_columns():
    head = sniff.read_head(shared_data("SMSSpamCollection.tsv"))
    plan = sniff.read_plan(head, filename="SMSSpamCollection.txt")
    assert (plan.format, plan.delimiter, plan.columns) == ("tsv", "tab", 2)


def test_an_explicit_format_or_delimiter_wins_over_the_content():
    assert sniff.read_plan(UCI, filename="y.txt", fmt="txt").format == "txt"
    plan = sniff.read_plan(b"a;b\nc;d\n", filename="x.txt", delimiter="comma")
    assert (plan.engine_format, plan.columns) == ("csv", 1)


def test_uci_txt_upload_is_accepted_for_classification(api, alice, team):
    r = post_dataset(api(alice), "yelp_labelled.txt", UCI)
    assert r.status_code == 201, r.json()


def test_overrides_are_stored_and_reported(api, alice, team):
    r = post_dataset(
        api(alice), "y.txt", UCI, format="csv", delimiter="tab", has_header="no", name="y"
    )
    assert r.status_code == 201, r.json()
    assert r.json()["read_options"] == {"format": "csv", "delimiter": "tab", "has_header": False}


@pytest.mark.parametrize(
    ("filename", "content", "fields", "message"),
    [
        ("prose.txt", b"one sentence\nanother one\nand more\n", {}, "plain text, one column"),
        ("y.txt", UCI, {"format": "txt"}, "needs 2 (text, label)"),
        ("y.txt", UCI, {"delimiter": "pipe"}, "pipe-separated text with 1 column"),
        ("y.txt", UCI, {"delimiter": "colon"}, "delimiter"),
        ("y.txt", UCI, {"format": "json", "delimiter": "tab"}, "has no delimiter"),
        ("nul.csv", b"text,label\nhello\x00,1\nbye,0\n" * 10, {}, "NUL bytes"),
        ("garbage.csv", bytes(range(256)) * 64, {}, "binary"),
    ],
)
def test_an_upload_that_cannot_map_is_refused_and_nothing_is_stored(
    api, alice, team, settings, filename, content, fields, message
):
    before = files_under(settings.STORAGE_DIR)
    r = post_dataset(api(alice), filename, content, **fields)
    assert r.status_code == 400, r.json()
    assert message in r.json()["detail"], r.json()["detail"]
    assert not Dataset.objects.exists()
    assert set(files_under(settings.STORAGE_DIR)) <= set(before)  # nothing new was written


def test_plain_text_for_a_language_model_is_accepted(api, alice, team):
    r = post_dataset(api(alice), "prose.txt", b"one sentence\nanother one\n", schema="causal-lm")
    assert r.status_code == 201, r.json()


def _inspect(client, filename: str, content: bytes, **fields):
    data = {"file": upload_file(filename, content), **fields}
    return client.post("/api/v1/datasets/inspect/", data, format="multipart")


def test_inspect_reads_a_tab_separated_txt_as_two_columns(api, alice, team):
    r = _inspect(api(alice), "yelp_labelled.txt", UCI)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["format"], body["delimiter"], body["has_header"]) == ("tsv", "tab", False)
    assert body["columns"] == ["col_0", "col_1"]
    assert body["suggested_mapping"]["classification"] == {"text": "col_0", "label": "col_1"}


def test_inspect_follows_delimiter_and_header_overrides(api, alice, team):
    content = b"review|stars\ngreat|5\nbad|1\nok|3\n"
    r = _inspect(api(alice), "r.dat", content, delimiter="pipe", has_header="no")
    body = r.json()
    assert (body["format"], body["delimiter"], body["has_header"]) == ("csv", "pipe", False)
    assert body["sample"][0] == {"col_0": "review", "col_1": "stars"}


def test_inspect_refuses_nul_bytes_with_a_400(api, alice, team):
    r = _inspect(api(alice), "x.csv", b"text,label\nhi\x00,1\n")
    assert r.status_code == 400 and "NUL bytes" in r.json()["detail"]


POEM = b"Roses are red, violets are blue\nSugar is sweet, and so are you\nThe rose is red, the violet blue\n"


def test_a_language_model_txt_stays_plain_text_even_if_it_splits_on_commas():
    assert sniff.read_plan(POEM, filename="poem.txt").delimiter == "comma"
    plan = sniff.read_plan(POEM, filename="poem.txt", prefer_text=True)
    assert (plan.format, plan.columns) == ("txt", 1)
    chosen = sniff.read_plan(POEM, filename="poem.txt", prefer_text=True, delimiter="comma")
    assert chosen.delimiter == "comma"  # what the person chose still wins


def test_inspect_for_a_language_model_keeps_whole_lines(api, alice, team):
    body = _inspect(api(alice), "poem.txt", POEM, schema="causal-lm").json()
    assert body["format"] == "txt" and body["sample"][0] == {
        "text": "Roses are red, violets are blue"
    }
    assert _inspect(api(alice), "poem.txt", POEM).json()["format"] == "csv"
