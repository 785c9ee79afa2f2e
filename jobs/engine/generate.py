"""Text generation: the one place the engine calls ``model.generate``.

Evaluation scores generated text (BLEU, chrF, ROUGE), fine-tune reports a sample of it,
and the playground streams it; all of them go through here so decoding settings and
batching behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 128,
    max_new_tokens: int = 128,
    do_sample: bool = False,
    num_beams: int = 1,
) -> list[str]:
    """Greedy (by default) outputs for ``prompts``, in order, batch by batch.

    Inputs are truncated to ``max_length`` tokens. For decoder-only models the prompt is
    cut from the output, so every model returns just what it generated.
    """
    import torch

    model.eval()
    outputs: list[str] = []
    decoder_only = not getattr(model.config, "is_encoder_decoder", False)
    if decoder_only:
        tokenizer.padding_side = "left"  # generation continues from the last real token
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(
            list(prompts[start : start + batch_size]),
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        enc.pop("token_type_ids", None)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=do_sample
            )
        if decoder_only:
            out = out[:, enc["input_ids"].shape[1] :]
        outputs.extend(tokenizer.batch_decode(out, skip_special_tokens=True))
    return [text.strip() for text in outputs]
