"""Train a tokenizer on a user's corpus, the way each preset family expects it.

``bpe`` is GPT-2's byte-level BPE (never an unknown token), ``wordpiece`` is BERT's
(with ``[CLS] ... [SEP]`` added around every input), ``unigram`` is T5's SentencePiece
style (``</s>`` appended to every input). The result is wrapped in transformers'
fast tokenizer and saved with ``save_pretrained`` so ``AutoTokenizer`` reloads it.

Texts are consumed from an iterator in batches: the trainer keeps word counts, not
the corpus, so memory is bounded by the vocabulary of the data, not its size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.engine.base import EngineError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

KINDS = ("bpe", "wordpiece", "unigram")
GPT2_EOS = "<|endoftext|>"
GPT2_PAD = "<pad>"
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 as in T5
MAX_VOCAB = 256_000
_BATCH = 1000


class _Counter:
    """Passes texts through in batches and counts the non-empty ones."""

    def __init__(self, texts: Iterable[str]):
        self._texts = texts
        self.count = 0

    def __iter__(self) -> Iterator[list[str]]:
        it = iter(self._texts)
        while batch := [t for t in itertools.islice(it, _BATCH) if t and t.strip()]:
            self.count += len(batch)
            yield batch


def _min_vocab(kind: str) -> int:
    # Byte-level BPE starts from all 256 bytes; the others need room to learn anything.
    return 300 if kind == "bpe" else 100


def train_tokenizer(
    kind: str,
    texts: Iterable[str],
    vocab_size: int,
    out_dir: str | Path,
    *,
    model_max_length: int | None = None,
    min_frequency: int = 2,
    lowercase: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a ``kind`` tokenizer on ``texts`` and save it into ``out_dir``.

    Args:
        kind: ``bpe`` (GPT-2), ``wordpiece`` (BERT) or ``unigram`` (T5).
        texts: any iterable of strings; read once, in batches.
        vocab_size: the most tokens to learn, special tokens included. A small corpus
            may yield fewer; read ``len(tokenizer)`` for the real size.
        out_dir: where ``tokenizer.json`` and ``tokenizer_config.json`` go.
        model_max_length: recorded in the tokenizer so truncation matches the model.
        min_frequency: merges/words seen fewer times are not learned (BPE, WordPiece).
        lowercase: WordPiece only; BERT "uncased" style normalisation.

    Raises:
        EngineError: ``bad_tokenizer_kind``, ``bad_vocab_size``, ``empty_corpus``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers as tk_trainers
    from transformers import PreTrainedTokenizerFast

    if kind not in KINDS:
        raise EngineError(
            f"Unknown tokenizer kind {kind!r}; choose one of {', '.join(KINDS)}.",
            code="bad_tokenizer_kind",
            param="tokenizer",
        )
    if not _min_vocab(kind) <= vocab_size <= MAX_VOCAB:
        raise EngineError(
            f"A {kind} vocabulary must have between {_min_vocab(kind)} and {MAX_VOCAB:,} "
            f"tokens (got {vocab_size}).",
            code="bad_vocab_size",
            param="vocab_size",
        )

    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = tk_trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[GPT2_EOS, GPT2_PAD],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        specials = {"bos_token": GPT2_EOS, "eos_token": GPT2_EOS, "unk_token": GPT2_EOS}
        # A pad distinct from eos: collators mask pad positions out of the loss, and
        # with pad == eos the model would never learn to end a text.
        specials["pad_token"] = GPT2_PAD
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        trainer = tk_trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=BERT_SPECIALS,
            show_progress=False,
        )
        specials = {
            "pad_token": "[PAD]",
            "unk_token": "[UNK]",
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "mask_token": "[MASK]",
        }
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence(
            [normalizers.NFKC(), normalizers.Replace(r"\s+", " ")]  # type: ignore[list-item]
        )
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = tk_trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=T5_SPECIALS,
            unk_token="<unk>",
            show_progress=False,
        )
        specials = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}

    counter = _Counter(texts)
    tok.train_from_iterator(counter, trainer=trainer)
    if counter.count == 0:
        raise EngineError(
            "There is no text to train a tokenizer on.", code="empty_corpus", param="dataset"
        )

    if kind == "wordpiece":
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
    elif kind == "unigram":
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>",
            pair="$A </s> $B </s>",
            special_tokens=[("</s>", tok.token_to_id("</s>"))],
        )

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **specials)
    if model_max_length:
        fast.model_max_length = model_max_length
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return fast
