"""Token-by-token decoding: one answer's state (:class:`DecodeRow`) and the one-request loop.

The loop is written out (one forward per token with the KV cache) rather than run
inside ``model.generate`` with a streamer thread, because the playground needs, at every
step: a cancel check (Stop takes effect before the next forward, i.e. within one
decoding step), the chosen token's log-probability and its top alternatives, stop
strings that never leak into the output, and timings. The logits processors are the
ones ``generate`` uses, so sampling behaves the same. ``bench/generate.py`` compares
this loop with bare ``model.generate``.

Everything that happens after the model's logits is a :class:`DecodeRow`'s: sampling with
the request's own processors and seed, EOS, stop strings, detokenising, events. The single
loop here (:func:`stream_generate`) and the batched one (``jobs.engine.batching``) both
feed rows, so a request decodes the same way alone or in a batch.

Events are plain dicts (they travel through Redis as they are):

- ``{"type": "token", "index", "id", "token", "text", "logprob", "top_logprobs": [{"token",
  "logprob"}], "t"}``: ``text`` is what this token adds to the answer (may be ``""``
  while a multi-byte character or a possible stop string is pending), ``t`` seconds
  since the request started;
- ``{"type": "text", "text"}``: held-back text released at the end;
- ``{"type": "done", "finish_reason": "stop" | "length" | "cancelled", "text",
  "prompt_tokens", "completion_tokens", "ttft", "tokens_per_second", "seconds",
  "batch_size"}``: ``batch_size`` is the most answers decoded together with this one
  (1 alone).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jobs.engine.base import EngineError
from jobs.engine.sampling import SamplingParams

Event = dict[str, Any]


def _max_positions(model: Any) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


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


class DecodeRow:
    """One answer being decoded: its prompt, sampling state, text and events.

    Build it with :func:`prepare_row`; feed it the model's next-token logits with
    :meth:`advance` until :attr:`finished`, then take :meth:`close`'s events.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        prompt_ids: list[int],
        history: list[int],
        max_new: int,
        params: SamplingParams,
        should_stop: Callable[[], bool],
        start: float,
    ) -> None:
        import torch

        device = model.device
        self.tokenizer = tokenizer
        self.prompt_ids = prompt_ids
        self.max_new = max_new
        self.params = params
        self.should_stop = should_stop
        self.start = start
        self.procs = _processors(params)
        self.generator = None
        if params.seed is not None and not params.greedy:
            self.generator = torch.Generator(device=device).manual_seed(params.seed)
        self.eos = None if params.ignore_eos else _eos_ids(model, tokenizer)
        self.stops = [s for s in (params.stop or []) if s]
        self.detok = _Detokenizer(tokenizer)
        self.text, self.emitted = "", 0
        # (1, T): what the repetition penalty looks at (prompt + answer, or the decoder's ids)
        self.history = torch.tensor([history], dtype=torch.long, device=device)
        self.finish = "length"
        self.finished = max_new <= 0
        self.first_t: float | None = None
        self.last_t = start
        self.n = 0
        self.token_id = -1
        self.batch_size = 1

    def check_stop(self) -> bool:
        """Called before each forward that would compute this row's next token."""
        if not self.finished and self.should_stop():
            self.finish, self.finished = "cancelled", True
        return self.finished

    def advance(self, logits: Any, raw_logprobs: Any = None, top_k: Any = None) -> list[Event]:
        """Pick the next token from ``logits`` ``(1, V)``; the events it gives (0 or 1).

        A batch passes its rows' ``raw_logprobs`` ``(1, V)`` and ``top_k`` (values, indices
        of at least this row's ``top_logprobs``) computed once for all rows.
        """
        import torch

        params = self.params
        logits = logits.float()
        if raw_logprobs is None:
            raw_logprobs = torch.log_softmax(logits, dim=-1)  # (1, V) the model's own belief
        scores = self.procs(self.history, logits) if self.procs else logits
        if params.greedy:
            token = scores.argmax(dim=-1, keepdim=True)  # (1, 1)
        else:
            probs = torch.softmax(scores, dim=-1)
            token = torch.multinomial(probs, 1, generator=self.generator)  # (1, 1)
        self.history = torch.cat([self.history, token], dim=-1)
        token_id = self.token_id = int(token[0, 0])
        top = []
        if params.top_logprobs:
            if top_k is None:
                top_k = [t.tolist() for t in raw_logprobs[0].topk(params.top_logprobs)]
            values, indices = (t[: params.top_logprobs] for t in top_k)
            top = [
                {"token": _token_str(self.tokenizer, int(i)), "logprob": float(v)}
                for v, i in zip(values, indices, strict=True)
            ]
        logprob = float(raw_logprobs[0, token_id])
        self.n += 1
        self.last_t = time.perf_counter()
        if self.first_t is None:
            self.first_t = self.last_t
        if self.eos is not None and token_id in self.eos:
            self.finish, self.finished = "stop", True
            self.n -= 1  # the end marker is not part of the answer
            return []
        self.text += self.detok.add(token_id)
        cut = _stop_cut(self.text, self.stops)
        if cut is not None:
            self.text = self.text[:cut]
            self.finish, self.finished = "stop", True
        elif self.n >= self.max_new:
            self.finished = True
        safe = (
            len(self.text)
            if cut is not None
            else len(self.text) - _held_back(self.text, self.stops)
        )
        piece, self.emitted = self.text[self.emitted : safe], max(self.emitted, safe)
        return [
            {
                "type": "token",
                "index": self.n - 1,
                "id": token_id,
                "token": _token_str(self.tokenizer, token_id),
                "text": piece,
                "logprob": logprob,
                "top_logprobs": top,
                "t": self.last_t - self.start,
            }
        ]

    def close(self) -> list[Event]:
        """Held-back text, if any, and the ``done`` event."""
        events: list[Event] = []
        if self.emitted < len(self.text):
            events.append({"type": "text", "text": self.text[self.emitted :]})
        end = time.perf_counter()
        n, first_t = self.n, self.first_t
        decode_span = self.last_t - first_t if first_t is not None else 0.0
        events.append(
            {
                "type": "done",
                "finish_reason": self.finish,
                "text": self.text,
                "prompt_tokens": len(self.prompt_ids),
                "completion_tokens": n,
                "ttft": (first_t - self.start) if first_t is not None else None,
                "tokens_per_second": ((n - 1) / decode_span) if n > 1 and decode_span > 0 else None,
                "seconds": end - self.start,
                "batch_size": self.batch_size,
            }
        )
        return events


def is_seq2seq(model: Any) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


def prepare_row(
    model: Any,
    tokenizer: Any,
    *,
    prompt: str | None = None,
    input_ids: Sequence[int] | None = None,
    params: SamplingParams | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> DecodeRow:
    """A request's row: the prompt tokenised (or ``input_ids``), cut to fit the positions.

    The prompt is cut from the left when it and ``max_new_tokens`` do not fit the model's
    positions.

    Raises:
        EngineError: ``empty_prompt`` when there is nothing to continue from.
    """
    params = params or SamplingParams()
    start = time.perf_counter()
    seq2seq = is_seq2seq(model)
    if input_ids is None:
        input_ids = tokenizer(prompt or "")["input_ids"]
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
    history = ids
    if seq2seq:
        dec_start = model.config.decoder_start_token_id
        if dec_start is None:
            dec_start = tokenizer.pad_token_id or 0
        history = [dec_start]
    return DecodeRow(
        model,
        tokenizer,
        prompt_ids=ids,
        history=history,
        max_new=max_new,
        params=params,
        should_stop=should_stop,
        start=start,
    )


def stream_generate(
    model: Any,
    tokenizer: Any,
    *,
    prompt: str | None = None,
    input_ids: Sequence[int] | None = None,
    params: SamplingParams | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Yield a ``token`` event per generated token, then one ``done`` event, alone.

    Give ``prompt`` (text) or ``input_ids`` (a chat template's output). ``should_stop``
    is called before every forward pass: once it answers True no further token is
    computed and ``done`` says ``cancelled``. Works for decoder-only and encoder-decoder
    models.

    Raises:
        EngineError: ``empty_prompt`` when there is nothing to continue from.
    """
    import torch

    row = prepare_row(
        model, tokenizer, prompt=prompt, input_ids=input_ids, params=params, should_stop=should_stop
    )
    seq2seq = is_seq2seq(model)
    device = model.device
    past: Any = None
    encoder_kwargs: dict[str, Any] = {}
    if seq2seq:
        src = torch.tensor([row.prompt_ids], dtype=torch.long, device=device)
        with torch.inference_mode():
            encoder_kwargs["encoder_outputs"] = model.get_encoder()(input_ids=src)
    step_input = row.history
    while not row.check_stop():
        with torch.inference_mode():
            if seq2seq:
                out = model(
                    decoder_input_ids=step_input, cache=past, use_cache=True, **encoder_kwargs
                )
            else:
                # logits_to_keep=1: the prompt pass computes vocabulary logits for the last
                # position only, not (T, V).
                out = model(input_ids=step_input, cache=past, use_cache=True, logits_to_keep=1)
            past = _cache_of(out)
            yield from row.advance(out.logits[:, -1, :])
        step_input = row.history[:, -1:]
    yield from row.close()


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
