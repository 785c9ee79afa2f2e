"""Preset architectures and the tokenizers trained for them."""

from __future__ import annotations

import pytest

from jobs.engine.base import EngineError
from jobs.engine.presets import (
    PRESETS,
    get_preset,
    list_presets,
    model_class_for_task,
    preset_config,
    preset_param_count,
)
from jobs.engine.tokenizers_train import train_tokenizer
from tests.support import ROOT, shared_data

SHAKESPEARE = shared_data("tinyshakespeare.txt")
REPO = ROOT


@pytest.fixture(scope="module")
def lines() -> list[str]:
    with SHAKESPEARE.open(encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(2000)]


def test_list_presets_covers_three_families_in_four_sizes():
    rows = list_presets(with_param_counts=False)
    assert {(r["family"], r["size"]) for r in rows} == {
        (f, s) for f in ("gpt2", "bert", "t5") for s in ("tiny", "mini", "small", "base")
    }
    tasks = {r["family"]: r["task"] for r in rows}
    assert tasks == {"gpt2": "causal-lm", "bert": "masked-lm", "t5": "seq2seq"}
    kinds = {r["family"]: r["tokenizer_kind"] for r in rows}
    assert kinds == {"gpt2": "bpe", "bert": "wordpiece", "t5": "unigram"}
    assert all("num_parameters" not in r for r in rows)


@pytest.mark.parametrize("family", ["gpt2", "bert", "t5"])
@pytest.mark.parametrize("size", ["tiny", "mini"])
def test_listed_param_count_equals_a_really_built_model(family, size):
    vocab = 1000
    listed = {(r["family"], r["size"]): r for r in list_presets(vocab)}[(family, size)]
    cfg = preset_config(family, size, vocab_size=vocab)
    model = model_class_for_task(get_preset(family, size).task).from_config(cfg)
    assert listed["vocab_size"] == vocab
    assert listed["num_parameters"] == sum(p.numel() for p in model.parameters())


def test_sizes_grow_and_match_their_advertised_scale():
    counts = {(r["family"], r["size"]): r["num_parameters"] for r in list_presets()}
    bounds = {"tiny": (0.5e6, 2e6), "mini": (3e6, 9e6), "small": (20e6, 45e6)}
    for (family, size), n in counts.items():
        if size in bounds:
            lo, hi = bounds[size]
            assert lo <= n <= hi, (family, size, n)
    assert 120e6 <= counts[("gpt2", "base")] <= 130e6  # GPT-2 small, 124M
    assert 105e6 <= counts[("bert", "base")] <= 115e6  # BERT-base
    assert 55e6 <= counts[("t5", "base")] <= 65e6  # T5-small, 60M
    for family in ("gpt2", "bert", "t5"):
        sizes = [counts[(family, s)] for s in ("tiny", "mini", "small", "base")]
        assert sizes == sorted(sizes)


def test_param_count_depends_on_vocab_size():
    small = preset_param_count("gpt2", "tiny", 1000)
    large = preset_param_count("gpt2", "tiny", 2000)
    # Tied embeddings: 1000 more tokens cost exactly one table of n_embd=128 columns.
    assert large - small == 1000 * PRESETS[("gpt2", "tiny")].config["n_embd"]


def test_unknown_preset_is_refused():
    with pytest.raises(EngineError) as e:
        get_preset("llama", "tiny")
    assert e.value.code == "unknown_preset"


def test_gpt2_config_uses_the_tokenizers_special_ids():
    cfg = preset_config(
        "gpt2", "tiny", vocab_size=500, special_ids={"eos_token_id": 7, "pad_token_id": 8}
    )
    assert (cfg.vocab_size, cfg.eos_token_id, cfg.pad_token_id) == (500, 7, 8)
    t5 = preset_config("t5", "tiny", vocab_size=500, special_ids={"pad_token_id": 3})
    assert t5.decoder_start_token_id == 3


# Tokenizers trained for the presets


def test_bpe_tokenizer_round_trips_text_and_pads_with_its_own_token(tmp_path, lines):
    tok = train_tokenizer("bpe", lines, 1000, tmp_path, model_max_length=256)
    text = "First Citizen: we are accounted poor citizens."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == tok.bos_token == "<|endoftext|>"
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id
    assert (tmp_path / "tokenizer.json").is_file()
    assert len(tok) <= 1000 and tok.model_max_length == 256


def test_bpe_never_needs_an_unknown_token(tmp_path, lines):
    tok = train_tokenizer("bpe", lines, 400, tmp_path)
    ids = tok("naïve café 中文 🙂")["input_ids"]
    assert tok.decode(ids) == "naïve café 中文 🙂"


def test_wordpiece_tokenizer_wraps_inputs_in_cls_and_sep(tmp_path, lines):
    from transformers import AutoTokenizer

    train_tokenizer("wordpiece", lines, 1000, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))  # reloads from disk, not memory
    tokens = tok.convert_ids_to_tokens(tok("Good morrow", "to you")["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    assert [tok.pad_token, tok.mask_token, tok.unk_token] == ["[PAD]", "[MASK]", "[UNK]"]
    assert tok.pad_token_id == 0


def test_unigram_tokenizer_appends_eos_like_t5(tmp_path, lines):
    from transformers import AutoTokenizer

    train_tokenizer("unigram", lines, 1000, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    ids = tok("Speak, speak.")["input_ids"]
    assert ids[-1] == tok.eos_token_id == 1
    assert (tok.pad_token_id, tok.unk_token_id) == (0, 2)
    assert tok.decode(ids, skip_special_tokens=True) == "Speak, speak."


def test_tokenizer_reads_texts_from_a_one_shot_generator(tmp_path, lines):
    consumed = []

    def stream():
        for line in lines:
            consumed.append(1)
            yield line

    tok = train_tokenizer("bpe", stream(), 800, tmp_path)
    assert len(consumed) == len(lines)
    assert len(tok) > 300


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(EngineError) as e:
        train_tokenizer("wordpiece", ["", "   "], 1000, tmp_path)
    assert e.value.code == "empty_corpus"


@pytest.mark.parametrize(("kind", "vocab"), [("bpe", 100), ("unigram", 10), ("bpe", 10**7)])
def test_vocab_size_out_of_range_is_refused(tmp_path, kind, vocab):
    with pytest.raises(EngineError) as e:
        train_tokenizer(kind, ["some text"], vocab, tmp_path)
    assert e.value.code == "bad_vocab_size"


def test_unknown_tokenizer_kind_is_refused(tmp_path):
    with pytest.raises(EngineError) as e:
        train_tokenizer("sentencepiece-char", ["x"], 1000, tmp_path)
    assert e.value.code == "bad_tokenizer_kind"
