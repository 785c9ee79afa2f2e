"""Interactive generation: a cache of loaded models, prompts, classify and attention.

The decoding itself lives in ``jobs.engine.decoding`` (one request, and the per-answer
state both loops share) and ``jobs.engine.batching`` (concurrent requests for one model
decoded as one batch); ``stream_generate`` is re-exported here for callers of the old name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine.base import EngineError
from jobs.engine.batching import BatchDecoder, batchable
from jobs.engine.decoding import Event, _token_str, stream_generate
from jobs.engine.models.loading import load_for_task

log = logging.getLogger(__name__)

__all__ = ["Event", "LoadedModel", "ModelCache", "stream_generate"]


# --------------------------------------------------------------------------- the cache


@dataclass
class LoadedModel:
    """A model ready to serve. ``lock`` is unused by the loop; callers may serialise on it."""

    key: str
    task: str
    model: Any
    tokenizer: Any
    nbytes: int
    load_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    _decoder: BatchDecoder | None = field(default=None, repr=False)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def batch_decoder(self) -> BatchDecoder | None:
        """The one batch every concurrent generation of this model joins; None for models
        that decode alone (encoder-decoder, sliding-window caches)."""
        if not batchable(self.model):
            return None
        with self.lock:
            if self._decoder is None:
                self._decoder = BatchDecoder(self.model, self.tokenizer)
            return self._decoder


def model_nbytes(model: Any) -> int:
    """Bytes of parameters and buffers (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


class ModelCache:
    """Loaded models in LRU order, within ``max_bytes`` of weights.

    A worker process keeps one of these, so a model is loaded once per worker however many
    threads serve it. Loading a model that does not fit evicts the least recently used
    ones first (each eviction is logged and reported to ``on_evict``); a model bigger than
    the whole budget is still served, alone. A request that still holds an evicted model
    finishes with it; its memory goes when the last reference does.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        device: str | None = None,
        on_evict: Callable[[LoadedModel], None] | None = None,
        loader: Callable[[str, str], tuple[Any, Any]] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.device = device
        self.on_evict = on_evict
        self._loader = loader or (lambda path, task: load_for_task(path, task))
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        return key in self._models

    def keys(self) -> list[str]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._models)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(m.nbytes for m in self._models.values())

    def get(self, path: str | Path, task: str) -> LoadedModel:
        """The model at ``path`` for ``task``, loaded (and warmed up) on first use."""
        key = f"{Path(path)}::{task}"
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        # One load at a time: two requests for one cold model load it once, memory never
        # holds two half-loaded models, and transformers' lazy imports (not thread-safe
        # on first touch) are never raced.
        with self._load_lock:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            loaded = self._load(key, str(path), task)
            with self._lock:
                self._evict_for(loaded.nbytes)
                self._models[key] = loaded
        return loaded

    def _load(self, key: str, path: str, task: str) -> LoadedModel:
        import torch

        start = time.perf_counter()
        model, tokenizer = self._loader(path, task)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        model.eval()
        loaded = LoadedModel(
            key=key,
            task=task,
            model=model,
            tokenizer=tokenizer,
            nbytes=model_nbytes(model),
            load_seconds=0.0,
        )
        warm_up(loaded)
        loaded.load_seconds = time.perf_counter() - start
        log.info("loaded %s (%.1f MB) in %.2f s", key, loaded.nbytes / 2**20, loaded.load_seconds)
        return loaded

    def _evict_for(self, incoming: int) -> None:
        # Called with self._lock held.
        while self._models and self._total() + incoming > self.max_bytes:
            _, old = self._models.popitem(last=False)
            log.warning(
                "evicted %s (%.1f MB) to fit %.1f MB within the %.1f MB model cache",
                old.key,
                old.nbytes / 2**20,
                incoming / 2**20,
                self.max_bytes / 2**20,
            )
            if self.on_evict is not None:
                self.on_evict(old)
        if incoming > self.max_bytes:
            log.warning(
                "a %.1f MB model exceeds the %.1f MB cache budget; serving it alone",
                incoming / 2**20,
                self.max_bytes / 2**20,
            )

    def _total(self) -> int:
        return sum(m.nbytes for m in self._models.values())


def warm_up(loaded: LoadedModel) -> None:
    """One tiny forward (and decoding step) so the first request does not pay for lazy
    initialisation: kernel selection, allocator growth, tokenizer caches."""
    import torch

    model, tok = loaded.model, loaded.tokenizer
    enc = tok("Hello", return_tensors="pt")
    if loaded.task not in ("classification", "pair-classification"):
        enc.pop("token_type_ids", None)  # generation models take ids and mask only
    enc = {k: v.to(model.device) for k, v in enc.items()}
    with torch.inference_mode():
        if loaded.task == "seq2seq":
            start = model.config.decoder_start_token_id or 0
            dec = torch.full((1, 1), start, dtype=torch.long, device=model.device)
            model(**enc, decoder_input_ids=dec)
        else:
            model(**enc)


# --------------------------------------------------------------------------- prompts


def chat_input_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of a conversation through the tokenizer's chat template, ready for the
    assistant's turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise EngineError(
            "This model's tokenizer has no chat template; use completion.",
            code="no_chat_template",
            param="mode",
        )
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise EngineError(
                "messages must be a list of {role, content} objects.",
                code="invalid_param",
                param="messages",
            )
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    if out and isinstance(out[0], list):
        out = out[0]
    return [int(i) for i in out]


# --------------------------------------------------------------------------- look inside


def classify(model: Any, tokenizer: Any, text: str | Sequence[str]) -> list[dict[str, Any]]:
    """Label probabilities for one text (or a text pair), likeliest first.

    Returns ``[{"label", "probability"}]`` over every label of the model.
    """
    import torch

    pair = [text] if isinstance(text, str) else list(text)
    enc = tokenizer(*pair, truncation=True, return_tensors="pt")
    enc = {k: v.to(model.device) for k, v in enc.items()}
    with torch.inference_mode():
        probs = torch.softmax(model(**enc).logits.float(), dim=-1)[0]
    id2label = model.config.id2label or {}
    rows = [
        {"label": str(id2label.get(i, f"LABEL_{i}")), "probability": float(p)}
        for i, p in enumerate(probs.tolist())
    ]
    return sorted(rows, key=lambda r: -r["probability"])


MAX_ATTENTION_TOKENS = 128
# Classifiers whose head reads the last token (the others read the first, like BERT's CLS).
DECODER_CLASSIFIERS = {
    "gpt2",
    "gpt_neo",
    "gptj",
    "llama",
    "mistral",
    "qwen2",
    "opt",
    "phi",
    "gemma",
}


def attention_map(
    loaded: LoadedModel, text: str, *, max_tokens: int = MAX_ATTENTION_TOKENS
) -> Event:
    """Attention weights of every layer and head over ``text`` (at most ``max_tokens``).

    Eager attention only for this forward pass (the fused kernels do not return weights);
    the model's own implementation is restored after, under the model's lock so two such
    requests do not interleave. Weights are quantised to bytes (0..255 = 0..1) and sent as
    base64: ``{"tokens", "layers", "heads", "size", "data"}`` with ``data`` laid out
    (layer, head, query, key). For encoder-decoder models the encoder's self-attention.
    """
    import base64

    import torch

    model, tok = loaded.model, loaded.tokenizer
    ids = tok(text or "", truncation=True, max_length=max_tokens)["input_ids"][:max_tokens]
    if not ids:
        raise EngineError("Type some text to look at.", code="empty_prompt", param="prompt")
    weights = _attentions(loaded, torch.tensor([ids], dtype=torch.long, device=model.device))
    quantised = (weights.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return {
        "tokens": [_token_str(tok, i) for i in ids],
        "layers": int(weights.shape[0]),
        "heads": int(weights.shape[1]),
        "size": len(ids),
        "data": base64.b64encode(quantised.tobytes()).decode("ascii"),
    }


def _attentions(loaded: LoadedModel, input_ids: Any) -> Any:
    """Every layer's attention weights, ``(L, H, T, T)``, from one eager forward pass.

    The fused kernels do not return weights, so this request alone runs eager attention;
    the model's own implementation is restored after, under the model's lock so two such
    requests do not interleave.
    """
    import torch

    model = loaded.model
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    with loaded.lock:
        previous = getattr(model.config, "_attn_implementation", None) or "sdpa"
        model.set_attn_implementation("eager")
        try:
            with torch.inference_mode():
                target = model.get_encoder() if seq2seq else model
                out = target(input_ids=input_ids, output_attentions=True)
        finally:
            model.set_attn_implementation(previous)
    if not out.attentions:
        raise EngineError("This model does not expose attention weights.", code="no_attention")
    return torch.stack([a[0].float() for a in out.attentions])  # (L, H, T, T)


def attention_rollout(weights: Any, position: int) -> list[float]:
    """How much each input token feeds ``position`` through all layers (Abnar & Zuidema
    2020): per layer, heads averaged plus the residual (0.5·A + 0.5·I), rows renormalised,
    multiplied from the first layer up. ``weights`` is ``(L, H, T, T)``; returns ``T``
    values summing to 1.
    """
    import torch

    size = weights.shape[-1]
    eye = torch.eye(size)
    rollout = eye
    for layer in weights.cpu():
        a = 0.5 * layer.mean(dim=0) + 0.5 * eye  # (T, T)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout
    row = rollout[position]
    return [float(v) for v in (row / row.sum()).tolist()]


def classify_with_attributions(loaded: LoadedModel, text: str) -> Event:
    """Label probabilities plus a per-token attribution (attention rollout to the position
    the classification head reads: the last token for decoder models, the first for
    encoders): ``{"labels", "tokens": [{"token", "weight"}]}``."""
    import torch

    model, tok = loaded.model, loaded.tokenizer
    labels = classify(model, tok, text)
    ids = tok(text or "", truncation=True, max_length=MAX_ATTENTION_TOKENS)["input_ids"]
    ids = ids[:MAX_ATTENTION_TOKENS]
    if not ids:
        return {"labels": labels, "tokens": []}
    weights = _attentions(loaded, torch.tensor([ids], dtype=torch.long, device=model.device))
    decoder = not getattr(model.config, "is_encoder_decoder", False) and (
        getattr(model.config, "is_decoder", False) or model.config.model_type in DECODER_CLASSIFIERS
    )
    share = attention_rollout(weights, len(ids) - 1 if decoder else 0)
    return {
        "labels": labels,
        "tokens": [
            {"token": _token_str(tok, i), "weight": w} for i, w in zip(ids, share, strict=True)
        ],
    }
