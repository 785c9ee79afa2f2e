"""Dataset upload service: input rules, storage, versions, permissions (no worker needed)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from llmweb.accounts import services as accounts
from llmweb.catalog.models import Dataset
from llmweb.catalog.services import datasets as services
from llmweb.core.errors import DomainError
from tests.factories import csv_bytes, make_user, upload_file
from tests.support import files_under, shared_data

pytestmark = pytest.mark.django_db


def create(team, user, name="reviews", content=None, filename="reviews.csv", **kw):
    return services.dataset_upload_create(
        user=user,
        team=team,
        name=name,
        uploaded_file=upload_file(filename, content if content is not None else csv_bytes()),
        schema=kw.pop("schema", "classification"),
        **kw,
    )


def test_upload_stores_the_file_under_the_record_and_waits_for_a_worker(team, alice):
    ds = create(team, alice, description="  product reviews ")
    assert (ds.status, ds.version, ds.description) == ("uploaded", 1, "product reviews")
    assert ds.upload_path.read_bytes() == csv_bytes()
    assert ds.size_bytes == len(csv_bytes())
    assert ds.split_ratios == [0.8, 0.1, 0.1] and ds.seed == 42 and ds.stratify


def test_same_name_makes_version_two_and_other_names_start_at_one(team, alice, bob):
    first = create(team, alice)
    second = create(team, bob)
    other = create(team, alice, name="tweets")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.upload_path != second.upload_path


def test_viewer_cannot_upload_and_nothing_is_stored(team, alice):
    viewer = make_user("vera")
    accounts.team_invite(by=alice, team=team, username="vera", role="viewer")
    with pytest.raises(PermissionDenied, match="read-only"):
        create(team, viewer)
    assert not Dataset.objects.exists()


def test_file_over_the_limit_is_refused_before_storing(team, alice, settings):
    settings.LLMWEB_MAX_UPLOAD_BYTES = 100
    before = files_under(settings.STORAGE_DIR)
    with pytest.raises(services.DatasetUploadTooLarge, match="limit is"):
        create(team, alice)
    assert not Dataset.objects.exists()
    assert set(files_under(settings.STORAGE_DIR)) <= set(before)  # nothing new


def test_a_lying_declared_size_is_caught_while_copying(team, alice, settings):
    settings.LLMWEB_MAX_UPLOAD_BYTES = 100
    f = upload_file("reviews.csv", csv_bytes())
    f.size = 10  # what a client may claim
    before = files_under(settings.STORAGE_DIR)
    with pytest.raises(services.DatasetUploadTooLarge):
        services.dataset_upload_create(
            user=alice, team=team, name="x", uploaded_file=f, schema="classification"
        )
    assert not Dataset.objects.exists()
    assert set(files_under(settings.STORAGE_DIR)) <= set(before)  # nothing new


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("../../etc/passwd.csv", "passwd.csv"),
        ("C:\\Users\\me\\My Data (1).TSV", "My_Data_1.tsv"),
        ("spam ✓ été.jsonl", "spam_ete.jsonl"),
        ("..csv", "upload.csv"),
        ("data.tar.zip", "data.tar.zip"),
    ],
)
def test_file_names_lose_folders_and_odd_characters(raw, clean):
    assert services.clean_filename(raw) == clean


@pytest.mark.parametrize("name", ["model.exe", "data.xlsx", "archive.tar.gz"])
def test_unknown_extensions_are_refused(name):
    with pytest.raises(DomainError, match="upload one of"):
        services.clean_filename(name)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("yelp_labelled", "yelp_labelled"), ("scores.DAT", "scores.dat"), (".hidden", "hidden")],
)
def test_dat_and_extensionless_names_are_kept_for_the_content_to_decide(raw, clean):
    assert services.clean_filename(raw) == clean


@pytest.mark.parametrize(
    "value, ratios",
    [
        (None, (0.8, 0.1, 0.1)),
        ("0.7,0.15,0.15", (0.7, 0.15, 0.15)),
        ("80,10,10", (0.8, 0.1, 0.1)),
        ("[0.9, 0.1, 0]", (0.9, 0.1, 0.0)),
        ([0.6, 0.2, 0.2], (0.6, 0.2, 0.2)),
    ],
)
def test_split_ratio_spellings(value, ratios):
    assert services.parse_split_ratios(value) == pytest.approx(ratios)


@pytest.mark.parametrize(
    "value, message",
    [
        ("0.8,0.1", "three numbers"),
        ("a,b,c", "three numbers"),
        ("0.5,0.1,0.1", "add up to 1"),
        ("0,0.5,0.5", "train split"),
        ("-0.1,0.6,0.5", "three numbers"),
        ("[0.8, 0.1", "three numbers"),
    ],
)
def test_bad_split_ratios_say_what_is_wrong(value, message):
    with pytest.raises(DomainError, match=message):
        services.parse_split_ratios(value)


def test_mapping_must_be_json_naming_the_schemas_columns():
    assert services.parse_mapping('{"text": "sms", "label": ""}', "classification") == {
        "text": "sms"
    }
    assert services.parse_mapping("", "classification") is None
    with pytest.raises(DomainError, match="not valid JSON"):
        services.parse_mapping("{text: sms}", "classification")
    with pytest.raises(DomainError, match="does not use"):
        services.parse_mapping('{"source": "en"}', "classification")
    with pytest.raises(DomainError, match="object of column names"):
        services.parse_mapping('["text"]', "classification")


def test_blank_name_is_refused_but_a_missing_one_takes_the_file_name(team, alice):
    with pytest.raises(DomainError, match="name"):
        create(team, alice, name="  ")
    assert create(team, alice, name=None, filename="My Reviews.csv").name == "My_Reviews"


def test_empty_file_is_refused_before_storage(team, alice):
    with pytest.raises(DomainError, match="empty"):
        create(team, alice, content=b"")
    assert not Dataset.objects.exists()


def test_delete_removes_the_row_and_the_files(team, alice, django_capture_on_commit_callbacks):
    ds = create(team, alice)
    folder = ds.storage_dir
    with django_capture_on_commit_callbacks(execute=True):
        services.dataset_delete(user=alice, dataset=ds)
    assert not Dataset.objects.filter(pk=ds.pk).exists() and not folder.exists()


def test_unreachable_queue_fails_the_dataset_at_once(
    team, alice, monkeypatch, django_capture_on_commit_callbacks
):
    from llmweb.catalog.tasks import datasets as tasks

    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.process_dataset_task, "apply_async", broken)
    with django_capture_on_commit_callbacks(execute=True):
        ds = create(team, alice)
    ds.refresh_from_db()
    assert ds.status == "failed" and ds.error["code"] == "queue_unavailable"
    assert "queue could not be reached" in ds.error["message"]
    assert files_under(ds.storage_dir) == []


def test_seed_uploads_the_sample_files_once(team, alice, monkeypatch):
    from llmweb.catalog.seed import seed_datasets

    sms = shared_data("SMSSpamCollection.tsv")
    monkeypatch.setenv("LLMWEB_SAMPLE_DATA", str(sms.parent))
    seed_datasets(team=team, user=alice)
    seed_datasets(team=team, user=alice)
    rows = {d.name: (d.schema, d.txt_mode, d.version) for d in Dataset.objects.filter(team=team)}
    assert rows == {
        "SMS spam": ("classification", "lines", 1),
        "English-French (Tatoeba 5k)": ("seq2seq", "lines", 1),
        "Tiny Shakespeare": ("causal-lm", "corpus", 1),
    }
    assert Dataset.objects.get(name="SMS spam").upload_path.stat().st_size == sms.stat().st_size


def test_seed_says_which_sample_files_are_missing(team, alice, monkeypatch, tmp_path):
    import io

    from llmweb.catalog.seed import seed_datasets

    monkeypatch.setenv("LLMWEB_SAMPLE_DATA", str(tmp_path))
    out = io.StringIO()
    seed_datasets(team=team, user=alice, stdout=out)
    assert not Dataset.objects.exists()
    assert "Sample file SMSSpamCollection.tsv is missing" in out.getvalue()


def test_dataset_schemas_are_the_engine_vocabulary():
    from jobs.engine.schemas import TASKS
    from llmweb.catalog.models import Schema

    assert sorted(Schema.values) == sorted(TASKS)
