"""Small real models for the playground tests, built once per session.

``long_gpt2`` is GPT-2 shaped but allows 4096 positions, so a Stop or a disconnect can be
tested while the worker is still generating (the presets stop at 256 positions, which a
CPU decodes in well under a second). Its tokenizer carries a chat template.
"""

from __future__ import annotations

from pathlib import Path

TEXTS = [f"line {i}: the quick brown fox jumps over the lazy dog {i % 7}" for i in range(400)]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_gpt2(dest: Path) -> Path:
    """The GPT-2 tiny preset (random weights, BPE trained on ``TEXTS``)."""
    from jobs.engine.models import create_preset_model

    if not (dest / "config.json").exists():
        create_preset_model(family="gpt2", size="tiny", out_dir=dest, texts=TEXTS, vocab_size=300)
    return dest


def long_gpt2(dest: Path, *, positions: int = 4096) -> Path:
    """A 2-layer GPT-2 with ``positions`` positions and a chat template, random weights."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if (dest / "config.json").exists():
        return dest
    base = tiny_gpt2(dest.parent / f"{dest.name}-base")
    from jobs.engine.models.loading import load_tokenizer

    tok = load_tokenizer(base)
    tok.chat_template = CHAT_TEMPLATE
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=positions,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.bos_token_id or tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    return dest


def tiny_classifier(dest: Path) -> Path:
    """A GPT-2 tiny with a two-label classification head (ham/spam), random weights."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if (dest / "config.json").exists():
        return dest
    base = tiny_gpt2(dest.parent / f"{dest.name}-base")
    config = AutoConfig.from_pretrained(str(base))
    config.num_labels = 2
    config.id2label = {0: "ham", 1: "spam"}
    config.label2id = {"ham": 0, "spam": 1}
    config.pad_token_id = config.eos_token_id
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(str(dest))
    from jobs.engine.models.loading import load_tokenizer

    load_tokenizer(base).save_pretrained(str(dest))
    return dest


def tiny_t5(dest: Path) -> Path:
    from jobs.engine.models import create_preset_model

    if not (dest / "config.json").exists():
        create_preset_model(family="t5", size="tiny", out_dir=dest, texts=TEXTS, vocab_size=300)
    return dest
