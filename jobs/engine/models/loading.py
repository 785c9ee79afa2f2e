"""Load a model folder for a task, and create fresh preset models to pretrain."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from jobs.engine.base import EngineError, NullReporter, Reporter
from jobs.engine.models.card import model_card_markdown
from jobs.engine.models.info import (
    ModelInfo,
    _first_line,
    detect_task,
    inspect_model,
    load_config,
    supported_tasks,
)
from jobs.engine.models.quantized import is_quantized, load_quantized
from jobs.engine.presets import get_preset, model_class_for_task, preset_config
from jobs.engine.schemas import CLASSIFICATION_TASKS
from jobs.engine.tokenizers_train import train_tokenizer

_SAFE = {"use_safetensors": True, "trust_remote_code": False, "local_files_only": True}


def load_tokenizer(path: str | Path, *, require_pad: bool = False) -> Any:
    """The folder's tokenizer, with a pad token whenever it has an eos to borrow.

    GPT-2-style tokenizers have no pad token; padded positions are masked anyway, so eos
    stands in. ``require_pad`` refuses a tokenizer that has neither (training pads).
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), trust_remote_code=False, local_files_only=True
        )
    except Exception as e:  # noqa: BLE001
        raise EngineError(
            f"The tokenizer in {Path(path).name} does not load: {_first_line(e)}",
            code="no_tokenizer",
        ) from e
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if require_pad and tokenizer.pad_token is None:
        raise EngineError("The tokenizer has neither a pad nor an eos token.", code="invalid_model")
    return tokenizer


def has_safetensors(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").exists()


def _label_kwargs(
    config: Any, num_labels: int | None, label_names: Sequence[str] | None
) -> dict[str, Any]:
    existing = None
    if detect_task(config) == "classification" and config.id2label:
        existing = [str(config.id2label[i]) for i in sorted(config.id2label)]
    if label_names is not None:
        names = [str(n) for n in label_names]
        if len(set(names)) != len(names) or len(names) < 2:
            raise EngineError(
                "Label names must be at least two distinct values.",
                code="bad_labels",
                param="labels",
            )
        if num_labels is not None and num_labels != len(names):
            raise EngineError(
                f"num_labels={num_labels} but {len(names)} label names were given.",
                code="bad_labels",
                param="labels",
            )
    elif num_labels is not None:
        names = existing if existing and len(existing) == num_labels else None
        names = names or [f"LABEL_{i}" for i in range(num_labels)]
    elif existing:
        names = existing
    else:
        raise EngineError(
            "A classification head needs its labels (label_names or num_labels).",
            code="bad_labels",
            param="labels",
        )
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
        # A head of another size is replaced by a fresh one instead of failing.
        "ignore_mismatched_sizes": True,
    }


def load_for_task(
    path: str | Path,
    task: str,
    *,
    num_labels: int | None = None,
    label_names: Sequence[str] | None = None,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a model folder with the head ``task`` needs.

    An encoder gets a fresh classification head for ``classification``; a classifier
    keeps its head when the label count matches. The tokenizer always has a pad token
    (causal LMs borrow eos) and the model config knows its id. Only safetensors are
    read and no code from the folder runs.

    Raises:
        EngineError: ``bad_task``, ``task_unsupported``, ``bad_labels``,
            ``no_tokenizer``, ``load_failed`` and the config errors of inspect.
    """
    folder = Path(path)
    config = load_config(folder)
    if task not in supported_tasks(config) and task != detect_task(config):
        raise EngineError(
            f"A {config.model_type} model cannot be used for {task}; it supports "
            f"{', '.join(supported_tasks(config)) or 'nothing this service runs'}.",
            code="task_unsupported",
            param="task",
        )
    tokenizer = load_tokenizer(folder)
    model = load_model(
        folder,
        task,
        config=config,
        tokenizer=tokenizer,
        num_labels=num_labels,
        label_names=label_names,
        dtype=dtype,
    )
    return model, tokenizer


def load_model(
    folder: Path,
    task: str,
    *,
    config: Any,
    tokenizer: Any,
    num_labels: int | None = None,
    label_names: Sequence[str] | None = None,
    dtype: Any = None,
    from_scratch: bool = False,
) -> Any:
    """The one way the engine builds a model for a task: every job kind, evaluation and
    the playground load through here.

    ``config`` is the folder's (possibly adjusted) transformers config. ``from_scratch``
    builds fresh weights from it when the folder has none (a preset to pretrain); without
    it a folder lacking safetensors is refused, since pickled weights can run code.
    """
    cls = model_class_for_task(task)
    if config.pad_token_id is None and tokenizer.pad_token_id is not None:
        # GPT-2 style classifiers find the last real token through pad_token_id.
        config.pad_token_id = tokenizer.pad_token_id
    if task == "seq2seq" and getattr(config, "decoder_start_token_id", None) is None:
        config.decoder_start_token_id = tokenizer.pad_token_id
    kwargs: dict[str, Any] = dict(_SAFE)
    if task in CLASSIFICATION_TASKS:
        labels = _label_kwargs(config, num_labels, label_names)
        # On the config object: with config= given, from_pretrained hands other kwargs to
        # the model's __init__, not to the config.
        config.num_labels = labels["num_labels"]
        config.id2label, config.label2id = labels["id2label"], labels["label2id"]
        kwargs["ignore_mismatched_sizes"] = labels["ignore_mismatched_sizes"]
    if dtype is not None:
        kwargs["dtype"] = dtype
    if is_quantized(folder):
        # int8 weights + scales (a compress job's output): rebuilt module by module.
        return load_quantized(folder, cls, config)
    if not has_safetensors(folder):
        if not from_scratch:
            raise EngineError(
                f"{folder.name} has no .safetensors weights; only safetensors are loaded "
                "(pickled .bin weights can run code).",
                code="invalid_model",
            )
        return cls.from_config(config, **({"dtype": dtype} if dtype is not None else {}))
    try:
        return cls.from_pretrained(str(folder), config=config, **kwargs)
    except EngineError:
        raise
    except Exception as e:  # noqa: BLE001
        raise EngineError(f"The model does not load: {_first_line(e)}", code="load_failed") from e


def _special_ids(family: str, tok: Any) -> dict[str, int | None]:
    def need(*names: str) -> None:
        missing = [n for n in names if getattr(tok, f"{n}_token_id", None) is None]
        if missing:
            raise EngineError(
                f"A {family} model needs a tokenizer with {', '.join(missing)} token(s).",
                code="bad_tokenizer",
                param="tokenizer",
            )

    if family == "gpt2":
        need("eos")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        eos = tok.eos_token_id
        bos = tok.bos_token_id if tok.bos_token_id is not None else eos
        return {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": tok.pad_token_id}
    if family == "bert":
        need("pad", "cls", "sep", "mask")
        return {"pad_token_id": tok.pad_token_id}
    need("pad", "eos")
    pad = tok.pad_token_id
    return {"pad_token_id": pad, "eos_token_id": tok.eos_token_id, "decoder_start_token_id": pad}


def create_preset_model(
    *,
    family: str,
    size: str,
    out_dir: str | Path,
    texts: Iterable[str] | None = None,
    tokenizer_from: str | Path | None = None,
    vocab_size: int | None = None,
    seed: int = 0,
    reporter: Reporter | None = None,
) -> ModelInfo:
    """Write a randomly initialised preset model, with its tokenizer, into ``out_dir``.

    Give ``texts`` to train the family's tokenizer on them (``vocab_size`` defaults to
    the preset's), or ``tokenizer_from`` to reuse the tokenizer of a model folder; the
    model's vocabulary and special ids come from that tokenizer. ``out_dir`` must be
    missing or empty and is left that way on failure.
    """
    import torch
    from transformers import GenerationConfig

    reporter = reporter or NullReporter()
    preset = get_preset(family, size)
    if (texts is None) == (tokenizer_from is None):
        raise EngineError(
            "Give either texts to train a tokenizer on or a tokenizer to reuse, not both.",
            code="bad_params",
            param="tokenizer",
        )
    dest = Path(out_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise EngineError(f"Destination {dest} is not empty.", code="dest_not_empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.create-", dir=dest.parent))
    try:
        if texts is not None:
            vocab = vocab_size or preset.default_vocab_size
            reporter.emit(
                "log", message=f"Training a {preset.tokenizer_kind} tokenizer", level="info"
            )
            tok = train_tokenizer(
                preset.tokenizer_kind, texts, vocab, work, model_max_length=preset.max_length
            )
        else:
            tok = load_tokenizer(tokenizer_from)  # type: ignore[arg-type]
            tok.model_max_length = min(tok.model_max_length, preset.max_length)
        ids = _special_ids(family, tok)
        tok.save_pretrained(str(work))
        config = preset_config(family, size, vocab_size=len(tok), special_ids=ids)
        torch.manual_seed(seed)
        model = model_class_for_task(preset.task).from_config(config)
        if model.can_generate():
            model.generation_config = GenerationConfig(
                **{k: v for k, v in ids.items() if v is not None}
            )
        model.save_pretrained(str(work))
        info = inspect_model(work)
        card = model_card_markdown(
            info,
            extra={
                "title": f"{family}-{size} (untrained)",
                "description": f"{preset.description}. Randomly initialised: pretrain it first.",
                "preset": f"{family}-{size}",
                "seed": seed,
            },
        )
        (work / "README.md").write_text(card, encoding="utf-8")
        reporter.emit(
            "log",
            message=f"Created {family}-{size} with {info.num_parameters:,} parameters",
            level="info",
        )
        if dest.exists():
            dest.rmdir()
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return inspect_model(dest)
