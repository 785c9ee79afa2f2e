"""Metrics pinned against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from jobs.engine.metrics import bleu_chrf, classification_metrics, perplexity, rouge


def test_classification_metrics_count_a_never_seen_class_in_macro_f1():
    # a: P=1, R=1/2 -> F=2/3; b: P=2/3, R=1 -> F=4/5; c: never true, never predicted -> 0
    result = classification_metrics([0, 1, 1, 1], [0, 0, 1, 1], ["a", "b", "c"])

    assert result["accuracy"] == pytest.approx(0.75)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert result["per_class_f1"] == pytest.approx({"a": 2 / 3, "b": 0.8, "c": 0.0})


def test_classification_metrics_refuse_mismatched_lengths():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], ["a", "b"])


def test_perplexity_is_exp_of_loss_and_infinite_for_a_diverged_run():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(10.0)) == pytest.approx(10.0)
    assert perplexity(1000.0) == math.inf


def test_bleu_matches_the_geometric_mean_of_clipped_ngram_precisions():
    # 1-grams 5/6 ("the" clipped to 1), 2-grams 3/5, 3-grams 2/4, 4-grams 1/3, no brevity penalty
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25

    result = bleu_chrf(["the cat sat on the mat"], ["the cat sat on a mat"])

    assert result["bleu"] == pytest.approx(expected, abs=0.01)
    assert 0 < result["chrf"] < 100


def test_identical_output_scores_100_and_disjoint_output_0():
    assert bleu_chrf(["a quick brown fox jumps"], ["a quick brown fox jumps"]) == pytest.approx(
        {"bleu": 100.0, "chrf": 100.0}
    )
    assert bleu_chrf(["xyz"], ["abc"]) == pytest.approx({"bleu": 0.0, "chrf": 0.0})


def test_bleu_tokenises_chinese_by_character():
    # With the space-based 13a tokeniser each sentence is one token and BLEU would be 0.
    result = bleu_chrf(["我们今天去公园散步了"], ["我们今天去公园散步"])

    assert result["bleu"] > 50


def test_rouge_f_measures_for_a_one_word_substitution():
    # unigrams 2/3 both ways; bigrams "the cat" is 1 of 2; LCS "the cat" is 2 of 3
    result = rouge(["the cat sat"], ["the cat ran"])

    assert result == pytest.approx({"rouge1": 2 / 3, "rouge2": 0.5, "rougeL": 2 / 3})


def test_rouge_scores_chinese_characters_instead_of_dropping_them():
    result = rouge(["我爱你"], ["我爱他"])

    assert result == pytest.approx({"rouge1": 2 / 3, "rouge2": 0.5, "rougeL": 2 / 3})


def test_rouge_averages_over_pairs():
    result = rouge(["the cat sat", "dog"], ["the cat sat", "cat"])

    assert result["rouge1"] == pytest.approx(0.5)
