"""Each way a model arrives, end to end through the API and a real Celery worker."""

from __future__ import annotations

import pytest

from llmweb.catalog.models import Dataset
from llmweb.catalog.services.model_facts import preset_param_count_exact
from tests.factories import (
    hostile_archive,
    write_processed_text_dataset,
    zip_folder,
)
from tests.support import files_under, shared_data, upload_model, wait_model_settled

pytestmark = pytest.mark.django_db(transaction=True)


def test_preset_gpt2_tiny_with_a_tokenizer_trained_on_a_dataset_becomes_ready(
    worker, api, alice, team
):
    lines = [
        ln
        for ln in shared_data("tinyshakespeare.txt").read_text().splitlines()[:2000]
        if ln.strip()
    ]
    ds = Dataset.objects.create(
        team=team,
        name="shakespeare",
        schema="causal-lm",
        status="ready",
        original_filename="tinyshakespeare.txt",
    )
    write_processed_text_dataset(ds.processed_dir, lines)

    r = api(alice).post(
        "/api/v1/models/",
        {
            "source": "preset",
            "family": "gpt2",
            "size": "tiny",
            "vocab_size": 512,
            "tokenizer_dataset": ds.pk,
        },
        format="json",
    )
    assert r.status_code == 202, r.json()
    assert r.json()["status"] == "pending" and r["Location"] == f"/api/v1/models/{r.json()['id']}/"
    m = wait_model_settled(r.json()["id"])
    assert m.status == "ready", m.error
    assert (m.name, m.task, m.source, m.architecture) == (
        "gpt2-tiny",
        "causal-lm",
        "preset",
        "GPT2LMHeadModel",
    )
    assert m.tokenizer["vocab_size"] == 512 and m.tokenizer["type"] == "BPE"
    assert m.num_parameters == preset_param_count_exact("gpt2", "tiny", 512)
    assert (m.artifact_dir / "model.safetensors").is_file() and m.dataset == ds
    assert "pretrain it first" in m.card


def test_uploaded_safetensors_model_is_validated_and_described(
    worker, api, alice, team, tiny_model, tmp_path
):
    r = upload_model(api(alice), zip_folder(tiny_model, tmp_path / "good.zip"), "my-gpt")
    assert r.status_code == 202, r.json()
    m = wait_model_settled(r.json()["id"])
    assert m.status == "ready", m.error
    assert (m.name, m.version, m.task, m.model_type) == ("my-gpt", 1, "causal-lm", "gpt2")
    assert m.num_parameters == preset_param_count_exact("gpt2", "tiny", 300)
    assert m.tokenizer["vocab_size"] == 300 and m.size_bytes > 1_000_000
    assert (m.artifact_dir / "config.json").is_file()
    assert not (m.storage_dir / "upload").exists()  # the archive is not kept once unpacked


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("pickle-bin", "pytorch_model.bin is a .bin file"),
        ("pkl", "optimizer.pkl is a .pkl file"),
        ("auto-map", "asks for custom code (auto_map)"),
        ("parent-member", "points outside the archive"),
        ("symlink", "is a link; only regular files are accepted"),
        ("bomb", "expands more than 100x"),
    ],
)
def test_hostile_archive_fails_clearly_and_leaves_no_files(
    worker, api, alice, team, tiny_model, tmp_path, kind, message
):
    archive = hostile_archive(kind, tiny_model, tmp_path)
    r = upload_model(api(alice), archive, f"hostile-{kind}")
    assert r.status_code == 202, r.json()
    m = wait_model_settled(r.json()["id"])
    assert m.status == "failed"
    assert message in m.error["message"], m.error
    assert files_under(m.storage_dir) == []
    assert not list(m.storage_dir.parents[3].rglob("escaped.txt"))  # nothing escaped either
    body = api(alice).get(f"/api/v1/models/{m.pk}/").json()
    assert body["status"] == "failed" and body["error"]["message"] == m.error["message"]


def test_hub_registration_without_network_fails_cleanly(worker, api, alice, team, settings):
    settings.LLMWEB_ALLOW_HUB = True
    r = api(alice).post(
        "/api/v1/models/", {"source": "hub", "hub_id": "distilbert-base-uncased"}, format="json"
    )
    assert r.status_code == 202, r.json()
    m = wait_model_settled(r.json()["id"], timeout=90)
    assert m.status == "failed"
    assert "could not be reached" in m.error["message"]
    assert files_under(m.storage_dir) == []
