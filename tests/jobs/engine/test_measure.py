"""One timing protocol: evaluate's speed figures and the before/after latency of distill
and compress run the same warm-ups and timed passes through the same forward call, and an
int8 model's size and parameters are counted the same way in both."""

from __future__ import annotations

import pytest

from jobs.engine.measure import WARMUP, count_parameters, latency_ms, speed, weights_bytes
from jobs.engine.models.loading import load_for_task
from jobs.engine.models.quantized import quantize_model
from tests.factories import tiny_classifier_folder

ROWS = ["win a free prize now", "hi mum, home at six", "call me back"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tiny_classifier_folder(tmp_path_factory.mktemp("measure") / "clf")
    model, tokenizer = load_for_task(folder, "classification")
    return folder, model.eval(), tokenizer


def counting(model):
    """The batch sizes of every forward pass ``model`` runs from now on."""
    seen: list[int] = []
    handle = model.register_forward_hook(
        lambda m, args, kw, out: seen.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    return seen, handle


def test_speed_and_latency_run_the_same_warm_up_then_the_timed_passes(classifier):
    _, model, tokenizer = classifier
    seen, handle = counting(model)
    try:
        figures = speed(model, tokenizer, ROWS, max_length=16, runs=5)
        after_speed = list(seen)
        seen.clear()
        ms = latency_ms(model, tokenizer, ROWS, batch_size=32, max_length=16, repeats=2)
    finally:
        handle.remove()

    # batch 1: warm-ups then the timed runs; batch 32: one warm-up then max(3, runs // 5)
    assert after_speed == [1] * (WARMUP + 5) + [32] * (1 + 3)
    assert seen == [32] * (WARMUP + 2)
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p95_ms"] and ms > 0
    assert figures["throughput_batch"] == 32 and figures["latency_runs"] == 5


def test_an_int8_model_is_timed_and_counted_like_any_other(classifier):
    folder, model, tokenizer = classifier
    plain = count_parameters(model)
    quantized, _ = quantize_model(model_copy(folder))

    assert count_parameters(quantized) == plain  # packed int8 weights still count
    assert speed(quantized, tokenizer, ROWS, max_length=16, runs=3)["latency_p50_ms"] > 0
    assert weights_bytes(folder) > 0


def model_copy(folder):
    model, _ = load_for_task(folder, "classification")
    return model.eval()
