"""Language-model likelihoods: sliding-window perplexity, pseudo-perplexity, target NLL.

Pure tensor code over a Hugging Face model: the evaluate engine calls it per row so every
row gets its own loss (the samples list sorts by it) and the corpus numbers are sums of
the same per-row parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

LN2 = math.log(2.0)


def window_plan(n_tokens: int, max_length: int) -> list[tuple[int, int, int]]:
    """Sliding windows ``(begin, end, first_scored)`` over a row of ``n_tokens``.

    The recipe of the transformers perplexity guide: windows of ``max_length`` tokens
    moved by ``stride = max_length // 2``; in each window only the tokens the previous
    window did not score are scored, the rest are context (their labels are -100). So
    every token but the first is scored exactly once, with at least ``max_length -
    stride`` tokens of context once the row is longer than a window.
    """
    stride = max(1, max_length // 2)
    plan, prev_end = [], 0
    for begin in range(0, max(n_tokens, 1), stride):
        end = min(begin + max_length, n_tokens)
        plan.append((begin, end, max(prev_end, 1)))
        prev_end = end
        if end >= n_tokens:
            break
    return plan


def _shifted_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed NLL (nats) and scored-token counts.

    logits (B, T, V) predict the next token; labels (B, T) with -100 where unscored.
    """
    logits = logits[:, :-1, :].float()  # (B, T-1, V)
    target = labels[:, 1:]  # (B, T-1)
    mask = target != -100
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        target.clamp(min=0).reshape(-1),
        reduction="none",
    ).view(target.shape)
    return (nll * mask).sum(dim=1), mask.sum(dim=1)


def causal_nll(
    model: Any,
    rows: Sequence[Sequence[int]],
    *,
    max_length: int,
    batch_size: int,
    pad_id: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, int]]:
    """``(summed NLL in nats, scored tokens)`` per row of token ids, by sliding windows.

    Windows of all rows are batched together (right-padded; pads are unscored), so short
    rows cost one forward pass per batch and long rows as many as their windows.
    """
    pieces: list[tuple[int, list[int], int]] = []  # (row, window ids, first scored local)
    for r, ids in enumerate(rows):
        for begin, end, first in window_plan(len(ids), max_length):
            pieces.append((r, list(ids[begin:end]), first - begin))
    totals = [0.0] * len(rows)
    counts = [0] * len(rows)
    device = next(model.parameters()).device
    for start in range(0, len(pieces), batch_size):
        chunk = pieces[start : start + batch_size]
        width = max(len(ids) for _, ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for i, (_, ids, first) in enumerate(chunk):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            labels[i, first : len(ids)] = torch.tensor(ids[first:])
        with torch.no_grad():
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention.to(device)
            ).logits
        nll, n = _shifted_nll(logits, labels.to(device))
        for i, (r, _, _) in enumerate(chunk):
            totals[r] += float(nll[i])
            counts[r] += int(n[i])
        if on_batch is not None:
            on_batch(len({r for r, _, _ in chunk}))
    return list(zip(totals, counts, strict=True))


def pseudo_nll(
    model: Any,
    rows: Sequence[Sequence[int]],
    *,
    specials: Sequence[Sequence[bool]],
    mask_id: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, int, int]]:
    """Masked-LM pseudo-log-likelihood (Salazar et al. 2020): each non-special token is
    masked in turn and scored from both sides. Returns ``(summed NLL, tokens, correct)``
    per row, where ``correct`` counts masked tokens the model's argmax recovered."""
    device = next(model.parameters()).device
    out = []
    for ids, spec in zip(rows, specials, strict=True):
        positions = [i for i, s in enumerate(spec) if not s]
        total, hits = 0.0, 0
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            batch = torch.tensor([list(ids)] * len(chunk), dtype=torch.long)
            rows_idx = torch.arange(len(chunk))
            cols = torch.tensor(chunk)
            batch[rows_idx, cols] = mask_id
            with torch.no_grad():
                logits = model(input_ids=batch.to(device)).logits  # (B, T, V)
            picked = logits[rows_idx.to(device), cols.to(device)].float()  # (B, V)
            gold = torch.tensor([ids[c] for c in chunk], device=device)
            total += float(torch.nn.functional.cross_entropy(picked, gold, reduction="sum"))
            hits += int((picked.argmax(dim=-1) == gold).sum())
        out.append((total, len(positions), hits))
        if on_batch is not None:
            on_batch(1)
    return out


def target_nll(
    model: Any,
    tokenizer: Any,
    sources: Sequence[str],
    targets: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
) -> list[float]:
    """Mean NLL per target token given the source (teacher forcing), one per row.

    Encoder-decoders read the source and predict the target; a decoder-only model reads
    ``source`` then predicts `` target`` + eos, with the source positions unscored.
    """
    device = next(model.parameters()).device
    out: list[float] = []
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    for start in range(0, len(sources), batch_size):
        src = list(sources[start : start + batch_size])
        tgt = list(targets[start : start + batch_size])
        if seq2seq:
            enc = tokenizer(
                src,
                text_target=tgt,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            labels = enc.pop("labels")
            labels[labels == tokenizer.pad_token_id] = -100
            enc.pop("token_type_ids", None)
            with torch.no_grad():
                logits = model(
                    **{k: v.to(device) for k, v in enc.items()}, labels=labels.to(device)
                ).logits
            # Seq2seq logits already align with labels (the decoder input is shifted).
            mask = labels.to(device) != -100
            nll = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)),
                labels.to(device).clamp(min=0).reshape(-1),
                reduction="none",
            ).view(labels.shape)
            sums, counts = (nll * mask).sum(1), mask.sum(1)
        else:
            rows, firsts = [], []
            eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
            for s, t in zip(src, tgt, strict=True):
                prompt = tokenizer(s, add_special_tokens=False)["input_ids"]
                answer = tokenizer(" " + t, add_special_tokens=False)["input_ids"] + eos
                ids = (prompt + answer)[-max_length:]
                rows.append(ids)
                firsts.append(max(1, len(ids) - len(answer)))
            width = max(len(r) for r in rows)
            input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            labels = torch.full_like(input_ids, -100)
            for i, (ids, first) in enumerate(zip(rows, firsts, strict=True)):
                input_ids[i, : len(ids)] = torch.tensor(ids)
                attention[i, : len(ids)] = 1
                labels[i, first : len(ids)] = torch.tensor(ids[first:])
            with torch.no_grad():
                logits = model(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device)
                ).logits
            sums, counts = _shifted_nll(logits, labels.to(device))
        out.extend(float(s) / max(1, int(c)) for s, c in zip(sums, counts, strict=True))
    return out
