"""Preset architectures for pretraining from scratch.

A preset is a family (``gpt2`` causal LM, ``bert`` masked LM, ``t5`` seq2seq) and a
size. The small sizes are meant for a CPU or a quick GPU run; ``base`` sizes mirror
the published checkpoints (GPT-2 124M, BERT-base, T5-small) and need a GPU.

Parameter counts are never guessed: they are computed by building the model on the
``meta`` device (no memory, no init) for the vocabulary the tokenizer actually has,
because at these sizes the embedding table is often most of the model.

torch and transformers are imported lazily so that a web process can list presets
by name without loading torch (``list_presets(with_param_counts=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jobs.engine.base import EngineError
from jobs.engine.schemas import AUTO_MODEL_CLASSES

if TYPE_CHECKING:
    from transformers import PretrainedConfig

FAMILY_TASKS = {"gpt2": "causal-lm", "bert": "masked-lm", "t5": "seq2seq"}
FAMILY_TOKENIZERS = {"gpt2": "bpe", "bert": "wordpiece", "t5": "unigram"}
SIZES = ("tiny", "mini", "small", "base")
# The vocabulary a tokenizer trained for that size gets unless the user says otherwise;
# ``base`` keeps the vocabulary of the published model it mirrors.
DEFAULT_VOCAB = {"tiny": 4096, "mini": 8192, "small": 16384}
BASE_VOCAB = {"gpt2": 50257, "bert": 30522, "t5": 32128}


@dataclass(frozen=True)
class Preset:
    family: str
    size: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return FAMILY_TASKS[self.family]

    @property
    def tokenizer_kind(self) -> str:
        return FAMILY_TOKENIZERS[self.family]

    @property
    def default_vocab_size(self) -> int:
        return BASE_VOCAB[self.family] if self.size == "base" else DEFAULT_VOCAB[self.size]

    @property
    def max_length(self) -> int:
        """Longest sequence the preset is meant for (T5 has no hard limit; 512 is its norm)."""
        return int(
            self.config.get("n_positions") or self.config.get("max_position_embeddings") or 512
        )


def _gpt2(size: str, d: int, layers: int, heads: int, positions: int, note: str) -> Preset:
    cfg = {"n_embd": d, "n_layer": layers, "n_head": heads, "n_positions": positions}
    return Preset("gpt2", size, note, cfg)


def _bert(size: str, d: int, layers: int, heads: int, ff: int, positions: int, note: str) -> Preset:
    cfg = {
        "hidden_size": d,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ff,
        "max_position_embeddings": positions,
    }
    return Preset("bert", size, note, cfg)


def _t5(size: str, d: int, layers: int, heads: int, ff: int, note: str) -> Preset:
    cfg = {
        "d_model": d,
        "d_ff": ff,
        "d_kv": d // heads,
        "num_heads": heads,
        "num_layers": layers,
        "num_decoder_layers": layers,
    }
    return Preset("t5", size, note, cfg)


_ALL = [
    _gpt2("tiny", 128, 2, 4, 256, "GPT-2 shape, 2 layers x 128: a smoke test that trains on CPU"),
    _gpt2("mini", 256, 4, 4, 512, "GPT-2 shape, 4 layers x 256: minutes on a CPU"),
    _gpt2("small", 512, 8, 8, 1024, "GPT-2 shape, 8 layers x 512: wants a GPU"),
    _gpt2("base", 768, 12, 12, 1024, "The original GPT-2 (124M) configuration: GPU only"),
    _bert(
        "tiny",
        128,
        2,
        2,
        512,
        512,
        "BERT shape, 2 layers x 128 (like google/bert_uncased L-2 H-128)",
    ),
    _bert("mini", 256, 4, 4, 1024, 512, "BERT shape, 4 layers x 256 (like BERT-mini)"),
    _bert("small", 512, 8, 8, 2048, 512, "BERT shape, 8 layers x 512: wants a GPU"),
    _bert("base", 768, 12, 12, 3072, 512, "The original BERT-base (110M) configuration: GPU only"),
    _t5("tiny", 128, 2, 4, 256, "T5 shape, 2+2 layers x 128: a smoke test that trains on CPU"),
    _t5("mini", 256, 2, 4, 1024, "T5 shape, 2+2 layers x 256: minutes on a CPU"),
    _t5("small", 384, 6, 6, 1536, "T5 shape, 6+6 layers x 384: wants a GPU"),
    _t5("base", 512, 6, 8, 2048, "The T5-small (60M) configuration: GPU only"),
]
PRESETS: dict[tuple[str, str], Preset] = {(p.family, p.size): p for p in _ALL}


def get_preset(family: str, size: str) -> Preset:
    try:
        return PRESETS[(family, size)]
    except KeyError:
        known = ", ".join(f"{f}/{s}" for f, s in PRESETS)
        raise EngineError(
            f"Unknown preset {family}/{size}; choose one of {known}.",
            code="unknown_preset",
            param="preset",
        ) from None


def preset_config(
    family: str,
    size: str,
    *,
    vocab_size: int,
    special_ids: dict[str, int | None] | None = None,
) -> PretrainedConfig:
    """Build the transformers config of a preset for a given tokenizer.

    ``special_ids`` may hold ``pad_token_id``, ``bos_token_id``, ``eos_token_id``,
    ``decoder_start_token_id``; the ids must come from the tokenizer the model will be
    trained with, or generation and padding silently use the wrong tokens.
    """
    from transformers import BertConfig, GPT2Config, T5Config

    preset = get_preset(family, size)
    if vocab_size < 16:
        raise EngineError(
            f"A vocabulary of {vocab_size} tokens is too small.",
            code="bad_vocab_size",
            param="vocab_size",
        )
    kwargs: dict[str, Any] = dict(preset.config, vocab_size=vocab_size)
    kwargs.update({k: v for k, v in (special_ids or {}).items() if v is not None})
    if family == "gpt2":
        # GPT2Config defaults to OpenAI's id 50256, which is outside a trained vocabulary;
        # 0 and 1 are where train_tokenizer("bpe") puts <|endoftext|> and <pad>.
        kwargs.setdefault("bos_token_id", 0)
        kwargs.setdefault("eos_token_id", 0)
        kwargs.setdefault("pad_token_id", 1)
        return GPT2Config(**kwargs)
    if family == "bert":
        return BertConfig(**kwargs)
    # T5 trains without a separate bos: the decoder starts from the pad token.
    kwargs.setdefault("decoder_start_token_id", kwargs.get("pad_token_id", 0))
    return T5Config(**kwargs)


def model_class_for_task(task: str) -> Any:
    """The ``AutoModelFor...`` class that builds or loads a model for ``task``."""
    import transformers

    names = AUTO_MODEL_CLASSES
    if task not in names:
        raise EngineError(
            f"Unknown task {task!r}; choose one of {', '.join(names)}.",
            code="bad_task",
            param="task",
        )
    return getattr(transformers, names[task])


@lru_cache(maxsize=256)
def preset_param_count(family: str, size: str, vocab_size: int) -> int:
    """Exact number of distinct parameters (tied embeddings counted once)."""
    import torch

    cfg = preset_config(family, size, vocab_size=vocab_size)
    with torch.device("meta"):
        model = model_class_for_task(get_preset(family, size).task).from_config(cfg)
    return sum(p.numel() for p in model.parameters())


def list_presets(
    vocab_size: int | None = None, *, with_param_counts: bool = True
) -> list[dict[str, Any]]:
    """Every preset as a plain dict for forms and the API.

    ``vocab_size`` None counts each preset with its own default vocabulary.
    """
    out = []
    for p in _ALL:
        vocab = vocab_size or p.default_vocab_size
        row: dict[str, Any] = {
            "family": p.family,
            "size": p.size,
            "name": f"{p.family}-{p.size}",
            "task": p.task,
            "tokenizer_kind": p.tokenizer_kind,
            "description": p.description,
            "default_vocab_size": p.default_vocab_size,
            "max_length": p.max_length,
            "config": dict(p.config),
            "vocab_size": vocab,
        }
        if with_param_counts:
            row["num_parameters"] = preset_param_count(p.family, p.size, vocab)
        out.append(row)
    return out
