"""Concurrent requests for one decoder-only model, decoded as one batch.

Why not transformers' ``ContinuousBatchingManager``: it runs on CPU with our GPT-2 presets,
but it reports only the chosen token's log-probability (no top alternatives), takes one
seed for the whole manager (a request's ``seed`` would not reproduce its answer), has no
per-request repetition penalty or stop strings, and cancels from its own thread at its
own pace. So requests are batched at arrival here, and every row keeps the single
loop's behaviour (``jobs.engine.decoding.DecodeRow``).

How: one :class:`BatchDecoder` per loaded model. A request's thread hands it a row and
reads the row's events from a queue. The first request starts a decoding thread; a
request that arrives while it runs is prefilled alone (one forward over its prompt) and
joins the batch at the next step: its KV cache is left-padded (or the batch's is) to a
common length and concatenated on the batch axis, with an attention mask that hides the
padding and per-row position ids. Each step is one forward of ``(B, 1)`` tokens; each
row samples from its own logits with its own processors and seed. Before every step
each row's ``should_stop`` is read, so a Stop ends that row (only) within one decoding
step; finished rows leave the cache (``index_select`` on the batch axis) and columns that
are padding for every remaining row are dropped. When no row is left the thread ends.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jobs.engine.decoding import DecodeRow, Event, _cache_of, prepare_row
from jobs.engine.sampling import SamplingParams

log = logging.getLogger(__name__)

MAX_BATCH = 16
_END = object()


class _Slot:
    """A row, its reply queue, and its place in the batch's KV cache."""

    def __init__(self, row: DecodeRow) -> None:
        self.row = row
        self.events: queue.Queue[Any] = queue.Queue()

    def send(self, events: list[Event]) -> None:
        for event in events:
            self.events.put(event)

    def finish(self) -> None:
        self.send(self.row.close())
        self.events.put(_END)


class BatchDecoder:
    """Decodes every request for one causal LM in one batch (see the module's docstring).

    ``max_batch`` rows decode together; more wait for a free place.
    """

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = MAX_BATCH) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Slot] = []
        self._thread: threading.Thread | None = None
        self.steps = 0  # batched forwards so far (tests and logs read it)

    @property
    def running(self) -> bool:
        """Whether a decoding thread is at work (it ends when no row is left)."""
        with self._lock:
            return self._thread is not None

    def stream(
        self,
        *,
        prompt: str | None = None,
        input_ids: Sequence[int] | None = None,
        params: SamplingParams | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Event]:
        """The same events as ``stream_generate`` for this request, decoded in the batch.

        Raises:
            EngineError: ``empty_prompt``; whatever the decoding thread raised.
        """
        # A request whose reader went away (its sender failed, the generator was closed)
        # stops like a Stop: nobody would read the rest.
        gone = threading.Event()
        row = prepare_row(
            self.model,
            self.tokenizer,
            prompt=prompt,
            input_ids=input_ids,
            params=params,
            should_stop=lambda: gone.is_set() or should_stop(),
        )
        slot = _Slot(row)
        with self._lock:
            self._pending.append(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="batch-decoder", daemon=True)
                self._thread.start()
        try:
            while True:
                event = slot.events.get()
                if event is _END:
                    return
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            gone.set()

    # ------------------------------------------------------------------ decoding thread

    def _run(self) -> None:
        active: list[_Slot] = []
        joining: list[_Slot] = []
        try:
            self._loop(active, joining)
        except BaseException as e:  # noqa: BLE001 - every waiting request learns of it
            log.exception("batched decoding failed")
            with self._lock:
                waiting, self._pending = self._pending, []
                self._thread = None
            for slot in [*active, *joining, *waiting]:
                slot.events.put(e)

    def _loop(self, active: list[_Slot], joining: list[_Slot]) -> None:
        import torch

        cache: Any = None
        mask: Any = None  # (B, T) 1 = a real token of that row, 0 = padding
        while True:
            with self._lock:
                room = self.max_batch - len(active)
                joining[:], self._pending = self._pending[:room], self._pending[room:]
                if not active and not joining:
                    self._thread = None
                    return
            while joining:
                slot = joining[0]
                if not slot.row.check_stop():
                    row_cache, row_logits = self._prefill(slot.row)
                    slot.send(slot.row.advance(row_logits))
                if slot.row.finished:
                    slot.finish()
                else:
                    cache, mask = _join(cache, mask, row_cache, len(slot.row.prompt_ids))
                    active.append(slot)
                joining.pop(0)
            # Stop: a row asked to stop gets no further token.
            keep = [i for i, s in enumerate(active) if not s.row.check_stop()]
            if len(keep) < len(active):
                cache, mask = self._drop(active, keep, cache, mask)
            if not active:
                cache = mask = None
                continue
            size = len(active)
            for slot in active:
                slot.row.batch_size = max(slot.row.batch_size, size)
            tokens = torch.tensor(
                [[s.row.token_id] for s in active], dtype=torch.long, device=self.model.device
            )  # (B, 1)
            mask = torch.cat([mask, mask.new_ones((size, 1))], dim=1)  # (B, T + 1)
            positions = mask.sum(dim=1, keepdim=True) - 1  # (B, 1) each row's own position
            with torch.inference_mode():
                out = self.model(
                    input_ids=tokens,
                    attention_mask=mask,
                    position_ids=positions,
                    cache=cache,
                    use_cache=True,
                )
            cache = _cache_of(out)
            self.steps += 1
            logits = out.logits[:, -1, :].float()  # (B, V)
            # The model's own beliefs and their top alternatives, once for the whole batch.
            raw = torch.log_softmax(logits, dim=-1)  # (B, V)
            k = max(s.row.params.top_logprobs for s in active)
            values, indices = raw.topk(k, dim=-1) if k else (raw[:, :0], raw[:, :0])
            values, indices = values.tolist(), indices.tolist()
            for i, slot in enumerate(active):
                top = (values[i], indices[i])
                slot.send(slot.row.advance(logits[i : i + 1], raw[i : i + 1], top))
            keep = [i for i, s in enumerate(active) if not s.row.finished]
            if len(keep) < len(active):
                cache, mask = self._drop(active, keep, cache, mask)

    def _prefill(self, row: DecodeRow) -> tuple[Any, Any]:
        """The row's prompt alone: its KV cache and the logits of its first token."""
        import torch

        ids = torch.tensor([row.prompt_ids], dtype=torch.long, device=self.model.device)
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return _cache_of(out), out.logits[:, -1, :]

    def _drop(self, active: list[_Slot], keep: list[int], cache: Any, mask: Any) -> Any:
        """Finish the rows not in ``keep`` and take them out of the cache and the mask."""
        for i, slot in enumerate(active):
            if i not in keep:
                slot.finish()
        active[:] = [active[i] for i in keep]
        if not keep:
            return None, None
        index = torch_index(keep, mask.device)
        mask = mask.index_select(0, index)
        # Columns that are padding for every remaining row carry nothing: drop them.
        first = int((mask.cumsum(dim=1) == 0).sum(dim=1).min())
        mask = mask[:, first:]
        layers = [
            (
                layer.keys.index_select(0, index)[:, :, first:],
                layer.values.index_select(0, index)[:, :, first:],
            )
            for layer in cache.layers
        ]
        return _new_cache(layers), mask


def torch_index(rows: list[int], device: Any) -> Any:
    import torch

    return torch.tensor(rows, dtype=torch.long, device=device)


def _new_cache(layers: list[tuple[Any, Any]]) -> Any:
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers)


def _join(cache: Any, mask: Any, row_cache: Any, length: int) -> tuple[Any, Any]:
    """The batch's cache with one more row: both left-padded to a common length.

    Keys and values are ``(B, H, T, D)`` per layer; padding is zeros, hidden by ``mask``.
    """
    import torch
    import torch.nn.functional as F

    row_mask = torch.ones((1, length), dtype=torch.long, device=row_cache.layers[0].keys.device)
    if cache is None:
        return row_cache, row_mask
    total = max(mask.shape[1], length)
    pad_batch, pad_row = total - mask.shape[1], total - length
    layers = []
    for old, new in zip(cache.layers, row_cache.layers, strict=True):
        keys = torch.cat(
            [F.pad(old.keys, (0, 0, pad_batch, 0)), F.pad(new.keys, (0, 0, pad_row, 0))]
        )
        values = torch.cat(
            [F.pad(old.values, (0, 0, pad_batch, 0)), F.pad(new.values, (0, 0, pad_row, 0))]
        )
        layers.append((keys, values))
    mask = torch.cat([F.pad(mask, (pad_batch, 0)), F.pad(row_mask, (pad_row, 0))])
    return _new_cache(layers), mask


def batchable(model: Any) -> bool:
    """Decoder-only models with the plain per-layer KV cache batch; others decode alone."""
    cfg = model.config
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    return not getattr(cfg, "sliding_window", None)
