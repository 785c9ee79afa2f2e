"""Interactive generation: a cache of loaded models and a token-by-token decoding loop.

The loop is written out (one forward per token with the KV cache) rather than run
inside ``model.generate`` with a streamer thread, because the playground needs, at every
step: a cancel check (Stop takes effect before the next forward, i.e. within one
decoding step), the chosen token's log-probability and its top alternatives, stop
strings that never leak into the output, and timings. The logits processors are the
ones ``generate`` uses, so sampling behaves the same. ``bench/generate.py`` compares
this loop with bare ``model.generate``.

Events are plain dicts (they travel through Redis as they are):

- ``{"type": "token", "index", "id", "token", "text", "logprob", "top_logprobs": [{"token",
  "logprob"}], "t"}``: ``text`` is what this token adds to the answer (may be ``""``
  while a multi-byte character or a possible stop string is pending), ``t`` seconds
  since the request started;
- ``{"type": "text", "text"}``: held-back text released at the end;
- ``{"type": "done", "finish_reason": "stop" | "length" | "cancelled", "text",
  "prompt_tokens", "completion_tokens", "ttft", "tokens_per_second", "seconds"}``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine.base import EngineError
from jobs.engine.models.loading import load_for_task
from jobs.engine.sampling import SamplingParams

log = logging.getLogger(__name__)

Event = dict[str, Any]


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

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


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


def _max_positions(model: Any) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# --------------------------------------------------------------------------- decoding


class _Detokenizer:
    """Text of a growing id list, a piece per token, without re-decoding the whole answer
    and without splitting a multi-byte character across pieces (TGI's offsets trick)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self.tok.decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        after = self.tok.decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could still begin a stop string."""
    keep = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                keep = max(keep, n)
                break
    return keep


def _processors(params: SamplingParams) -> Any:
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    procs = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        if params.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            procs.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
    return procs


def stream_generate(
    model: Any,
    tokenizer: Any,
    *,
    prompt: str | None = None,
    input_ids: Sequence[int] | None = None,
    params: SamplingParams | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Yield a ``token`` event per generated token, then one ``done`` event.

    Give ``prompt`` (text) or ``input_ids`` (a chat template's output). ``should_stop``
    is called before every forward pass: once it answers True no further token is
    computed and ``done`` says ``cancelled``. Works for decoder-only and encoder-decoder
    models; the prompt is cut from the left when it and ``max_new_tokens`` do not fit the
    model's positions.

    Raises:
        EngineError: ``empty_prompt`` when there is nothing to continue from.
    """
    import torch

    params = params or SamplingParams()
    start = time.perf_counter()
    device = model.device
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    if input_ids is None:
        enc = tokenizer(prompt or "")
        input_ids = enc["input_ids"]
    ids = [int(i) for i in input_ids]
    if not ids and not seq2seq:
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else None
        if bos is None:
            raise EngineError("The prompt is empty.", code="empty_prompt", param="prompt")
        ids = [bos]
    max_new = params.max_new_tokens
    limit = _max_positions(model)
    if limit is not None and not seq2seq:
        max_new = min(max_new, max(1, limit - 1))
        ids = ids[-(limit - max_new) :]
    elif limit is not None:
        ids = ids[:limit]
        max_new = min(max_new, limit)
    prompt_tokens = len(ids)
    procs = _processors(params)
    generator = None
    if params.seed is not None and not params.greedy:
        generator = torch.Generator(device=device).manual_seed(params.seed)
    eos = None if params.ignore_eos else _eos_ids(model, tokenizer)
    stops = [s for s in (params.stop or []) if s]
    detok = _Detokenizer(tokenizer)
    text, emitted = "", 0
    history = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T) for penalties
    past: Any = None
    encoder_kwargs: dict[str, Any] = {}
    if seq2seq:
        src = history
        with torch.inference_mode():
            encoder_kwargs["encoder_outputs"] = model.get_encoder()(input_ids=src)
        dec_start = model.config.decoder_start_token_id
        if dec_start is None:
            dec_start = tokenizer.pad_token_id or 0
        history = torch.tensor([[dec_start]], dtype=torch.long, device=device)
    step_input = history
    finish = "length"
    first_t: float | None = None
    last_t = start
    n = 0
    while n < max_new:
        if should_stop():
            finish = "cancelled"
            break
        with torch.inference_mode():
            if seq2seq:
                out = model(
                    decoder_input_ids=step_input, cache=past, use_cache=True, **encoder_kwargs
                )
            else:
                # logits_to_keep=1: the prompt pass computes vocabulary logits for the last
                # position only, not (T, V).
                out = model(input_ids=step_input, cache=past, use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1, :].float()  # (1, V)
            past = _cache_of(out)
            raw_logprobs = torch.log_softmax(logits, dim=-1)  # (1, V) the model's own belief
            scores = procs(history, logits) if procs else logits
            if params.greedy:
                token = scores.argmax(dim=-1, keepdim=True)  # (1, 1)
            else:
                probs = torch.softmax(scores, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)  # (1, 1)
            history = torch.cat([history, token], dim=-1)
            step_input = token
            token_id = int(token[0, 0])
            top = []
            if params.top_logprobs:
                values, indices = raw_logprobs[0].topk(params.top_logprobs)
                top = [
                    {"token": _token_str(tokenizer, int(i)), "logprob": float(v)}
                    for v, i in zip(values.tolist(), indices.tolist(), strict=True)
                ]
            logprob = float(raw_logprobs[0, token_id])
        n += 1
        last_t = time.perf_counter()
        if first_t is None:
            first_t = last_t
        if eos is not None and token_id in eos:
            finish = "stop"
            n -= 1  # the end marker is not part of the answer
            break
        text += detok.add(token_id)
        cut = _stop_cut(text, stops)
        if cut is not None:
            text = text[:cut]
            finish = "stop"
        safe = len(text) if cut is not None else len(text) - _held_back(text, stops)
        piece, emitted = text[emitted:safe], max(emitted, safe)
        yield {
            "type": "token",
            "index": n - 1,
            "id": token_id,
            "token": _token_str(tokenizer, token_id),
            "text": piece,
            "logprob": logprob,
            "top_logprobs": top,
            "t": last_t - start,
        }
        if cut is not None:
            break
    if emitted < len(text):
        yield {"type": "text", "text": text[emitted:]}
    end = time.perf_counter()
    decode_span = last_t - first_t if first_t is not None else 0.0
    yield {
        "type": "done",
        "finish_reason": finish,
        "text": text,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": n,
        "ttft": (first_t - start) if first_t is not None else None,
        "tokens_per_second": ((n - 1) / decode_span) if n > 1 and decode_span > 0 else None,
        "seconds": end - start,
    }


def _cache_of(output: Any) -> Any:
    # transformers 5 renames past_key_values to cache; read whichever this version returns.
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for source in (getattr(gen, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return ids


def _stop_cut(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


_TOKEN_STRINGS: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _token_str(tokenizer: Any, token_id: int) -> str:
    """How a token reads on its own (``Ġthe`` → `` the``), for the per-token view.

    A byte that is only part of a character decodes to U+FFFD; those keep their
    vocabulary spelling so that alternatives stay distinguishable. Cached per tokenizer:
    each step asks for the token and its alternatives, mostly the same few hundred ids.
    """
    try:
        known = _TOKEN_STRINGS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: no cache
        known = {}
    text = known.get(token_id)
    if text is None:
        text = str(tokenizer.decode([token_id], skip_special_tokens=False))
        if "\ufffd" in text:
            text = str(tokenizer.convert_ids_to_tokens(token_id))
        known[token_id] = text
    return text


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
