"""Evaluation metrics pinned against the reference libraries on tiny fixed inputs, and
perplexity against a hand-computed value on a model whose logits are known."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from jobs.engine.lm_scoring import causal_nll, window_plan  # noqa: E402
from jobs.engine.metrics import (  # noqa: E402
    bleu_chrf_signed,
    calibration,
    classification_report,
    rouge_full,
    split_sentences,
)

LABELS = ["a", "b", "c"]
TRUE = [0, 0, 1, 1, 2, 2, 2, 0]
PRED = [0, 1, 1, 1, 2, 0, 2, 0]


def test_classification_report_matches_sklearn():
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    report = classification_report(PRED, TRUE, LABELS)

    assert report["accuracy"] == pytest.approx(accuracy_score(TRUE, PRED))
    assert report["macro_f1"] == pytest.approx(f1_score(TRUE, PRED, average="macro"))
    assert report["confusion_matrix"] == confusion_matrix(TRUE, PRED).tolist()
    p, r, f, s = precision_recall_fscore_support(TRUE, PRED, average=None)
    for i, name in enumerate(LABELS):
        assert report["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
        )


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy():
    # bin [0.5,0.6): confs .5,.55 -> mean .525, one right -> acc .5, gap .025, weight 2/4
    # bin [0.9,1.0]: confs .95, 1.0 -> mean .975, both right -> gap .025, weight 2/4
    result = calibration([0.5, 0.55, 0.95, 1.0], [1, 0, 1, 1])

    assert result["ece"] == pytest.approx(0.025)
    bins = result["reliability"]
    assert len(bins) == 10 and sum(b["count"] for b in bins) == 4
    assert bins[5]["count"] == 2 and bins[5]["accuracy"] == 0.5
    assert bins[9]["confidence"] == pytest.approx(0.975)
    assert bins[0]["count"] == 0 and bins[0]["accuracy"] is None


def test_a_perfectly_calibrated_report_has_zero_ece():
    report = classification_report([0, 1], [0, 1], ["x", "y"], confidences=[1.0, 1.0])

    assert report["ece"] == 0.0


HYPS = ["the cat sat on the mat", "a quick brown fox", "hello there world"]
REFS = ["the cat sat on a mat", "the quick brown fox jumps", "hello world"]


def test_bleu_and_chrf_plus_plus_match_sacrebleu_with_their_signatures():
    import sacrebleu
    from sacrebleu.metrics import CHRF

    scores, signatures = bleu_chrf_signed(HYPS, REFS)

    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert scores["chrf"] == pytest.approx(CHRF(word_order=2).corpus_score(HYPS, [REFS]).score)
    assert scores["chrf"] != pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert signatures["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|")
    assert f"version:{sacrebleu.__version__}" in signatures["bleu"]
    assert "nw:2" in signatures["chrf"]


def test_chinese_bleu_uses_the_zh_tokeniser_and_says_so():
    import sacrebleu

    scores, signatures = bleu_chrf_signed(["我们今天去公园散步了"], ["我们今天去公园散步"])

    assert "tok:zh" in signatures["bleu"]
    expected = sacrebleu.corpus_bleu(
        ["我们今天去公园散步了"], [["我们今天去公园散步"]], tokenize="zh"
    )
    assert scores["bleu"] == pytest.approx(expected.score)


def test_rouge_matches_rouge_score_on_english():
    from rouge_score import rouge_scorer

    means, rows, signature = rouge_full(HYPS, REFS)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    expected = [scorer.score(r, h) for h, r in zip(HYPS, REFS, strict=True)]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert [row[key] for row in rows] == pytest.approx([e[key].fmeasure for e in expected])
        assert means[key] == pytest.approx(sum(e[key].fmeasure for e in expected) / 3)
    assert signature.startswith("rouge-score:")


def test_rouge_scores_chinese_by_character_where_the_stock_tokeniser_gives_zero():
    from rouge_score import rouge_scorer

    stock = rouge_scorer.RougeScorer(["rouge1"]).score("我爱北京。", "我爱上海。")
    assert stock["rouge1"].fmeasure == 0.0

    means, _, _ = rouge_full(["我爱上海。天气很好。"], ["我爱北京。天气很好。"])

    # hyp chars 我爱上海天气很好 vs ref 我爱北京天气很好: 6 of 8 unigrams shared
    assert means["rouge1"] == pytest.approx(6 / 8)
    # bigrams: 我爱 天气 气很 很好 shared of 7 each
    assert means["rouge2"] == pytest.approx(4 / 7)
    # Lsum: per-sentence LCS union, 2/4 + 4/4 -> 6 of 8
    assert means["rougeLsum"] == pytest.approx(6 / 8)


def test_sentences_split_on_latin_and_cjk_punctuation():
    assert split_sentences("One. Two! 三。四？") == "One.\nTwo!\n三。\n四？"


def test_sliding_windows_score_every_token_but_the_first_exactly_once():
    for n, max_length in [(10, 4), (5, 8), (17, 6), (1, 4)]:
        scored = []
        for begin, end, first in window_plan(n, max_length):
            assert end - begin <= max_length
            assert first > begin or begin == 0  # a scored token always has context
            scored.extend(range(first, end))
        assert scored == list(range(1, n))


class Bigram(torch.nn.Module):
    """A 'model' whose next-token logits depend only on the current token: log P[x]."""

    def __init__(self, probs: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(probs.log())

    def forward(self, input_ids, attention_mask=None):
        class Out:
            pass

        out = Out()
        out.logits = self.logits[input_ids]  # (B, T, V)
        return out


def test_perplexity_of_a_model_with_known_logits_is_the_hand_computed_value():
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    ids = [0, 0, 1, 1, 2, 2, 0, 1, 2, 2]
    # transitions: 0->0 .5, 0->1 .25, 1->1 .8, 1->2 .1, 2->2 .6, 2->0 .2, 0->1 .25, 1->2 .1, 2->2 .6
    hand = -sum(math.log(p) for p in [0.5, 0.25, 0.8, 0.1, 0.6, 0.2, 0.25, 0.1, 0.6])

    ((nll, n),) = causal_nll(Bigram(probs), [ids], max_length=4, batch_size=3, pad_id=0)

    assert n == 9
    assert nll == pytest.approx(hand, rel=1e-6)
    assert math.exp(nll / n) == pytest.approx(math.exp(hand / 9), rel=1e-6)


def test_a_single_window_equals_the_models_own_loss_on_a_two_layer_gpt2():
    import transformers

    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=32)
    ).eval()
    rows = [[1, 5, 7, 9, 3, 2], [4, 4, 8]]

    scored = causal_nll(model, rows, max_length=32, batch_size=2, pad_id=0)

    for ids, (nll, n) in zip(rows, scored, strict=True):
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
        assert n == len(ids) - 1
        assert nll / n == pytest.approx(float(loss), rel=1e-5)


ROWS = [
    {"true": t, "pred": p, "confidence": c, "correct": t == p}
    for t, p, c in [
        ("a", "a", 0.9),
        ("a", "b", 0.6),
        ("b", "b", 0.8),
        ("c", "c", 0.7),
        ("c", "a", 0.55),
        ("b", "b", 0.95),
    ]
]


def test_rescoring_saved_classification_rows_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score, f1_score, matthews_corrcoef

    from jobs.engine.rescoring import rescore

    names = ["a", "b", "c"]
    y_true = [names.index(r["true"]) for r in ROWS]
    y_pred = [names.index(r["pred"]) for r in ROWS]

    mcc, signature = rescore(ROWS, measure="classification", metric="mcc", label_names=names)
    assert mcc == pytest.approx(matthews_corrcoef(y_true, y_pred))
    assert signature.startswith("sklearn:") and "matthews_corrcoef" in signature
    kappa, _ = rescore(ROWS, measure="classification", metric="cohen_kappa", label_names=names)
    assert kappa == pytest.approx(cohen_kappa_score(y_true, y_pred))
    weighted, _ = rescore(ROWS, measure="classification", metric="weighted_f1", label_names=names)
    assert weighted == pytest.approx(f1_score(y_true, y_pred, average="weighted"))


def test_rescoring_saved_generations_matches_sacrebleu_and_refuses_perplexity_rows():
    from sacrebleu.metrics import CHRF, TER

    from jobs.engine.base import EngineError
    from jobs.engine.rescoring import rescore

    rows = [{"prediction": h, "reference": r} for h, r in zip(HYPS, REFS, strict=True)]

    ter, signature = rescore(rows, measure="generation", metric="ter")
    assert ter == pytest.approx(TER().corpus_score(HYPS, [REFS]).score)
    assert signature.startswith("nrefs:1|case:lc|tok:tercom")
    plain, _ = rescore(rows, measure="generation", metric="chrf_plain")
    assert plain == pytest.approx(CHRF().corpus_score(HYPS, [REFS]).score)
    with pytest.raises(EngineError) as refused:
        rescore([{"loss": 1.0}], measure="perplexity", metric="bleu")
    assert refused.value.code == "not_rescorable"
    with pytest.raises(EngineError):
        rescore(rows, measure="generation", metric="accuracy")
