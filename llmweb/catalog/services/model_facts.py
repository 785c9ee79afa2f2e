"""Facts about models the web process needs without importing torch or transformers.

The web process must never load torch (seconds of import, hundreds of MB), yet two
answers are needed there at once: the description of the bundled encoder (a team gets
it the moment it is created) and the parameter count of a preset before anyone builds
it. Both are computed from files and arithmetic only; tests pin them against the
engine's torch-based answers (``inspect_model``, ``preset_param_count``), so they stay
honest.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jobs.engine.models.info import (
    BUNDLED_MODELS,
    ModelInfo,
    bundled_model_path,
    folder_size,
    read_config_json,
    weight_files,
    weights_summary,
)
from jobs.engine.presets import get_preset

# Tasks a bundled architecture can be loaded for (the engine's supported_tasks()).
_FAMILY_TASKS = {"bert": ["classification", "masked-lm", "encoder"]}
_HUGE = 1_000_000


def _tokenizer_facts(folder: Path) -> dict[str, Any] | None:
    """What tokenizer_summary() says, read from tokenizer.json + tokenizer_config.json."""
    try:
        tok_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        tok_cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = tok_json.get("model") or {}
    vocab = model.get("vocab") or {}
    ids = dict(vocab) if isinstance(vocab, dict) else {}
    for added in tok_json.get("added_tokens") or []:
        ids.setdefault(added["content"], added["id"])
    limit = tok_cfg.get("model_max_length")
    specials = {}
    for name in ("bos", "eos", "unk", "pad", "cls", "sep", "mask"):
        token = tok_cfg.get(f"{name}_token")
        if isinstance(token, dict):
            token = token.get("content")
        if token is not None:
            specials[name] = {"token": str(token), "id": ids.get(token)}
    return {
        "class": tok_cfg.get("tokenizer_class"),
        "type": model.get("type"),
        "vocab_size": len(set(ids.values())),
        "model_max_length": limit if isinstance(limit, int) and 0 < limit < _HUGE else None,
        "special_tokens": specials,
    }


@lru_cache(maxsize=4)
def bundled_model_info(name: str = "all-MiniLM-L6-v2") -> ModelInfo:
    """The bundled model described like ``inspect_model`` would, cached per process.

    The folder is the same for every team, so this runs once per process; it reads the
    safetensors header (not the tensors) and the JSON files.
    """
    bundled = BUNDLED_MODELS[name]
    folder = bundled_model_path(name)
    raw = read_config_json(folder)
    stored, dtype = weights_summary(weight_files(folder))
    tok = _tokenizer_facts(folder)
    positions = raw.get("max_position_embeddings") or raw.get("n_positions")
    max_len, note = positions, None
    if tok and tok["model_max_length"] and positions and tok["model_max_length"] < positions:
        max_len, note = tok["model_max_length"], f"tokenizer limit (positions allow {positions})"
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    model_type = raw["model_type"]
    return ModelInfo(
        path=str(folder),
        model_type=model_type,
        architecture=(raw.get("architectures") or ["BertModel"])[0],
        task=bundled.task,
        supported_tasks=list(_FAMILY_TASKS.get(model_type, [bundled.task])),
        num_parameters=stored,
        size_bytes=folder_size(folder),
        dtype=dtype,
        max_length=max_len,
        max_length_note=note,
        is_encoder_decoder=bool(raw.get("is_encoder_decoder", False)),
        label_names=None,
        tokenizer=tok,
        config={k: raw.get(k) for k in keys},
    )


def preset_param_count_exact(family: str, size: str, vocab_size: int) -> int:
    """Distinct parameters of a preset (tied embeddings once), by arithmetic.

    Equal to ``jobs.engine.presets.preset_param_count`` (a test checks every preset),
    which needs torch; the form shows this number before anything is built.
    """
    cfg = get_preset(family, size).config
    v = vocab_size
    if family == "gpt2":
        d, layers, pos = cfg["n_embd"], cfg["n_layer"], cfg["n_positions"]
        # wte + wpe + per block (ln_1, c_attn, c_proj, ln_2, mlp 4d) + ln_f; lm_head tied
        return v * d + pos * d + layers * (12 * d * d + 13 * d) + 2 * d
    if family == "bert":
        d, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
        pos, ff = cfg["max_position_embeddings"], cfg["intermediate_size"]
        embeddings = v * d + pos * d + 2 * d + 2 * d  # words, positions, 2 token types, LN
        block = 4 * d * d + 2 * d * ff + 9 * d + ff
        head = d * d + 3 * d + v  # transform dense + LN, decoder bias (weight tied)
        return embeddings + layers * block + head
    if family == "t5":
        d, ff, heads = cfg["d_model"], cfg["d_ff"], cfg["num_heads"]
        inner = heads * cfg["d_kv"]
        buckets = 32  # relative attention buckets, first layer of each stack only
        enc = cfg["num_layers"] * (4 * d * inner + 2 * d * ff + 2 * d) + buckets * heads + d
        dec = cfg["num_decoder_layers"] * (8 * d * inner + 2 * d * ff + 3 * d)
        return v * d + enc + dec + buckets * heads + d
    raise ValueError(f"no parameter formula for family {family!r}")
