"""The gate every model from outside passes: uploads and hub downloads.

A model folder is accepted only when its weights are safetensors, its config names an
architecture built into transformers (no ``auto_map``, no shipped Python), nothing in
it is a pickle, and it actually loads. Pickles are recognised by name and by their
first bytes; they are never opened with ``pickle`` or ``torch.load``. A refused folder
leaves nothing behind in the destination.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from jobs.engine.archive import safe_extract
from jobs.engine.base import EngineError
from jobs.engine.models.info import (
    ModelInfo,
    _first_line,
    inspect_model,
    load_config,
    read_config_json,
    read_safetensors_header,
    weight_files,
)

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill"}
CODE_SUFFIXES = {".py", ".pyc", ".pyo", ".so", ".dylib", ".dll", ".pyd", ".sh", ".exe"}
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines", "trust_remote_code")
_NPY_MAGIC = b"\x93NUMPY"
# Hub files worth fetching: what transformers reads for weights, config and tokenizer.
_HUB_FILE = re.compile(
    r"(model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json"
    r"|[\w.-]+\.json|[\w.-]+\.txt|[\w.-]+\.model|[\w.-]+\.tiktoken|README\.md)"
)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


def _refuse_pickle(rel: Path, why: str) -> EngineError:
    return EngineError(
        f"{rel} {why}. Pickled files can run code when loaded, so only safetensors "
        "weights are accepted (convert with `model.save_pretrained(...)` in a recent "
        "transformers, which writes model.safetensors).",
        code="pickle_weights",
        param="file",
    )


def _npy_has_objects(header: bytes) -> bool:
    """True when a .npy header declares object (pickled) elements."""
    if not header.startswith(_NPY_MAGIC) or len(header) < 10:
        return False
    major = header[6]
    if major == 1:
        start, length = 10, int.from_bytes(header[8:10], "little")
    else:
        start, length = 12, int.from_bytes(header[8:12], "little")
    try:
        meta = ast.literal_eval(header[start : start + length].decode("latin-1"))
        descr = meta["descr"]
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        return True  # unreadable header: treat as hostile

    def has_object(d: Any) -> bool:
        if isinstance(d, str):
            return d.lstrip("<>|=").startswith("O")
        if isinstance(d, list):  # structured dtype: [(name, dtype[, shape]), ...]
            return any(isinstance(f, tuple) and len(f) > 1 and has_object(f[1]) for f in d)
        return True

    return has_object(descr)


def _check_zip(path: Path, rel: Path) -> None:
    """Torch's zip format and .npz both hide pickles inside a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename.lower()
                if Path(name).suffix in PICKLE_SUFFIXES or name.endswith("data.pkl"):
                    raise _refuse_pickle(rel, f"is a zip holding {info.filename} (a pickle)")
                if name.endswith(".npy"):
                    with zf.open(info) as member:
                        if _npy_has_objects(member.read(4096)):
                            raise _refuse_pickle(rel, f"holds {info.filename}, an object array")
    except zipfile.BadZipFile:
        return  # starts like a zip but is not one: harmless data


def _iter_files(folder: Path) -> Iterator[tuple[Path, Path]]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise EngineError(
                f"{rel} is a link or special file; only regular files are accepted.",
                code="unsafe_file",
                param="file",
            )
        if path.is_file():
            yield path, rel


def scan_files(folder: Path) -> None:
    """Refuse pickles, code and links anywhere in ``folder`` by name and by content."""
    for path, rel in _iter_files(folder):
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise _refuse_pickle(rel, f"is a {suffix} file, the pickle format used by torch.save")
        if suffix in CODE_SUFFIXES:
            raise EngineError(
                f"{rel} is code. Models with their own code are refused: this service only "
                "runs architectures built into transformers.",
                code="remote_code",
                param="file",
            )
        if suffix == ".safetensors":
            # Its first 8 bytes are a header length, which may well start b"\x80\x02";
            # parsing the header proves what it is instead.
            read_safetensors_header(path)
            continue
        with open(path, "rb") as f:
            head = f.read(4096)
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            raise _refuse_pickle(rel, "starts with a pickle header")
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            _check_zip(path, rel)
        if head.startswith(_NPY_MAGIC) and _npy_has_objects(head):
            raise _refuse_pickle(rel, "is a numpy array of Python objects")


def _check_no_remote_code(folder: Path) -> None:
    configs = [folder / "config.json"] + sorted(folder.glob("*config*.json"))
    for path in dict.fromkeys(configs):
        if not path.is_file() or path.stat().st_size > 5 * 1024 * 1024:
            continue
        data = read_config_json(folder) if path.name == "config.json" else _json_or_none(path)
        if not isinstance(data, dict):
            continue
        for key in REMOTE_CODE_KEYS:
            if data.get(key):
                raise EngineError(
                    f"{path.name} asks for custom code ({key}). This service never runs code "
                    "shipped with a model; use an architecture built into transformers.",
                    code="remote_code",
                    param="file",
                )


def _json_or_none(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _load_once(folder: Path, info: ModelInfo) -> None:
    """Load the weights for real: the only proof that config and tensors agree."""
    from jobs.engine.presets import model_class_for_task

    cls = model_class_for_task(info.task)
    try:
        model, loading = cls.from_pretrained(
            str(folder),
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=True,
            output_loading_info=True,
        )
    except Exception as e:  # noqa: BLE001 - every failure here means "does not load"
        raise EngineError(f"The model does not load: {_first_line(e)}", code="load_failed") from e
    try:
        params = dict(model.named_parameters())
        missing = [k for k in loading.get("missing_keys", ()) if k in params]
        missing_numel = sum(params[k].numel() for k in missing)
        total = sum(p.numel() for p in params.values()) or 1
        if missing_numel / total > 0.5:
            raise EngineError(
                f"The weights do not match config.json: {len(missing)} of {len(params)} "
                "tensors are missing from the checkpoint.",
                code="load_failed",
                details=[{"missing_key": k} for k in missing[:20]],
            )
    finally:
        del model
        gc.collect()


def validate_model_folder(path: str | Path) -> ModelInfo:
    """Prove a model folder is safe and usable, then describe it.

    Raises:
        EngineError: ``not_a_folder``, ``unsafe_file``, ``pickle_weights``,
            ``remote_code``, ``no_config``, ``bad_config``, ``no_weights``,
            ``bad_weights``, ``no_tokenizer`` or ``load_failed``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise EngineError(f"{folder} is not a folder.", code="not_a_folder")
    scan_files(folder)
    read_config_json(folder)
    _check_no_remote_code(folder)
    load_config(folder)
    if not weight_files(folder):
        others = sorted(p.name for p in folder.glob("*.safetensors"))
        hint = (
            f" Found {', '.join(others)}: an adapter or variant, not full model weights "
            "(merge adapters into the model before uploading)."
            if others
            else ""
        )
        raise EngineError(
            "No model.safetensors (or sharded model.safetensors.index.json) in the folder; "
            f"only safetensors weights are accepted.{hint}",
            code="no_weights",
        )
    info = inspect_model(folder)
    if info.tokenizer is None:
        raise EngineError(
            "The folder has no tokenizer that transformers can load (tokenizer.json, "
            "vocab.txt, sentencepiece .model...); a model is unusable without one.",
            code="no_tokenizer",
        )
    _load_once(folder, info)
    return info


def _find_model_root(extracted: Path) -> Path:
    """The folder holding config.json, however deep the archive wrapped it."""
    roots = [p.parent for p in extracted.rglob("config.json") if p.is_file()]
    if not roots:
        raise EngineError(
            "The archive has no config.json; upload a Hugging Face model folder.",
            code="no_config",
        )
    depth = min(len(r.relative_to(extracted).parts) for r in roots)
    # sentence-transformers folders nest a 1_Pooling/config.json below the model's own.
    top = [r for r in roots if len(r.relative_to(extracted).parts) == depth]
    if len(top) > 1:
        names = ", ".join(sorted(str(r.relative_to(extracted)) for r in top))
        raise EngineError(
            f"The archive holds several model folders ({names}); upload one at a time.",
            code="ambiguous_archive",
        )
    return top[0]


@contextlib.contextmanager
def _staging(dest: Path, label: str) -> Iterator[Path]:
    """A scratch folder beside ``dest`` (same disk, so the final move is a rename)."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise EngineError(f"Destination {dest} is not empty.", code="dest_not_empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{label}-", dir=dest.parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _move_into(src: Path, dest: Path) -> None:
    if dest.exists():
        dest.rmdir()
    os.replace(src, dest)


def unpack_and_validate_upload(
    archive_path: str | Path, dest_dir: str | Path, *, max_total_bytes: int
) -> ModelInfo:
    """Unpack an uploaded model archive, validate it, and move it into ``dest_dir``.

    ``dest_dir`` must be missing or empty; on any failure it is left that way.
    """
    dest = Path(dest_dir)
    with _staging(dest, "upload") as work:
        extracted = work / "extracted"
        safe_extract(archive_path, extracted, max_total_bytes=max_total_bytes)
        root = _find_model_root(extracted)
        info = validate_model_folder(root)
        _move_into(root, dest)
    return replace(info, path=str(dest))


def download_hub_model(
    model_id: str,
    dest_dir: str | Path,
    *,
    revision: str | None = None,
    token: str | None = None,
    max_total_bytes: int | None = None,
) -> ModelInfo:
    """Fetch a Hugging Face hub model (safetensors, config, tokenizer only) and validate it.

    Raises:
        EngineError: ``bad_model_id``, ``hub_unreachable``, ``hub_not_found``,
            ``hub_gated``, ``no_weights``, ``too_large`` or any validation code.
    """
    if not _HUB_ID.fullmatch(model_id) or ".." in model_id:
        raise EngineError(
            f"{model_id!r} is not a hub model id (expected owner/name).",
            code="bad_model_id",
            param="model_id",
        )
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    dest = Path(dest_dir)
    with _staging(dest, "download") as work:
        local = work / "model"
        try:
            repo = HfApi(token=token).model_info(model_id, revision=revision, files_metadata=True)
            wanted = [s for s in repo.siblings or [] if _HUB_FILE.fullmatch(s.rfilename)]
            if not any(s.rfilename.endswith(".safetensors") for s in wanted):
                raise EngineError(
                    f"{model_id} has no model.safetensors; pickled weights are not accepted.",
                    code="no_weights",
                )
            total = sum(s.size or 0 for s in wanted)
            if max_total_bytes is not None and total > max_total_bytes:
                raise EngineError(
                    f"{model_id} is {total / (1 << 20):,.0f} MiB, more than the "
                    f"{max_total_bytes / (1 << 20):,.0f} MiB allowed.",
                    code="too_large",
                )
            snapshot_download(
                model_id,
                revision=repo.sha,
                local_dir=local,
                cache_dir=work / "cache",
                allow_patterns=[s.rfilename for s in wanted],
                token=token,
            )
        except EngineError:
            raise
        except GatedRepoError as e:
            raise EngineError(
                f"{model_id} is gated: accept its licence on the hub and give a token.",
                code="hub_gated",
                param="model_id",
            ) from e
        except (RepositoryNotFoundError, RevisionNotFoundError) as e:
            raise EngineError(
                f"{model_id} (revision {revision or 'main'}) does not exist on the hub.",
                code="hub_not_found",
                param="model_id",
            ) from e
        except Exception as e:  # noqa: BLE001 - offline mode, DNS, TLS, HTTP 5xx alike
            raise EngineError(
                f"The Hugging Face hub could not be reached ({_first_line(e)}).",
                code="hub_unreachable",
            ) from e
        shutil.rmtree(local / ".cache", ignore_errors=True)
        info = validate_model_folder(local)
        _move_into(local, dest)
    return replace(info, path=str(dest))
