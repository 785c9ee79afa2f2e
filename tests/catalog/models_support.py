"""Model folders and archives for the registry tests (built once per session, tiny)."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

TEXTS = [f"line {i}: the quick brown fox jumps over the lazy dog {i % 7}" for i in range(400)]


def build_tiny_model(dest: Path) -> Path:
    """A real GPT-2-shaped model folder (~0.5M parameters, safetensors + tokenizer)."""
    from jobs.engine.models import create_preset_model

    if not (dest / "config.json").exists():
        create_preset_model(family="gpt2", size="tiny", out_dir=dest, texts=TEXTS, vocab_size=300)
    return dest


def zip_folder(
    folder: Path,
    dest: Path,
    *,
    extra: dict[str, bytes] | None = None,
    config_patch: dict | None = None,
    prefix: str = "model",
) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            name = f"{prefix}/{path.relative_to(folder).as_posix()}"
            data = path.read_bytes()
            if path.name == "config.json" and config_patch:
                data = json.dumps({**json.loads(data), **config_patch}).encode()
            zf.writestr(name, data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


def tar_with_symlink(folder: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tf.add(path, arcname=f"model/{path.relative_to(folder).as_posix()}")
        link = tarfile.TarInfo("model/vocab_link.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    return dest


def hostile_archive(kind: str, folder: Path, tmp: Path) -> Path:
    """One archive per refusal the issue lists; the good model folder is always inside."""
    if kind == "pickle-bin":
        payload = pickle.dumps({"weight": [1.0, 2.0]})
        return zip_folder(folder, tmp / "bin.zip", extra={"model/pytorch_model.bin": payload})
    if kind == "pkl":
        return zip_folder(folder, tmp / "pkl.zip", extra={"model/optimizer.pkl": pickle.dumps([1])})
    if kind == "auto-map":
        patch = {"auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilModel"}}
        return zip_folder(folder, tmp / "automap.zip", config_patch=patch)
    if kind == "parent-member":
        return zip_folder(folder, tmp / "escape.zip", extra={"../escaped.txt": b"gotcha"})
    if kind == "symlink":
        return tar_with_symlink(folder, tmp / "link.tar.gz")
    if kind == "bomb":
        return zip_folder(folder, tmp / "bomb.zip", extra={"model/zeros.txt": bytes(40 << 20)})
    raise ValueError(kind)


def write_processed_text_dataset(dest: Path, lines: list[str]) -> None:
    from datasets import Dataset as HFDataset
    from datasets import DatasetDict

    n = len(lines)
    cut1, cut2 = int(n * 0.8), int(n * 0.9)
    DatasetDict(
        train=HFDataset.from_dict({"text": lines[:cut1]}),
        validation=HFDataset.from_dict({"text": lines[cut1:cut2]}),
        test=HFDataset.from_dict({"text": lines[cut2:]}),
    ).save_to_disk(str(dest))


def zip_members(content: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        assert zf.testzip() is None
        return zf.namelist()
