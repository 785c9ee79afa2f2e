"""The serving engine: the decoding loop and the model cache, on tiny real models (CPU)."""

from __future__ import annotations

import logging
import math
import threading

import pytest

from jobs.engine.base import EngineError
from jobs.engine.sampling import SamplingParams, check_mode
from jobs.engine.serving import (
    ModelCache,
    attention_map,
    attention_rollout,
    chat_input_ids,
    classify,
    classify_with_attributions,
    stream_generate,
)


@pytest.fixture(scope="module")
def models(playground_folders):
    return playground_folders


@pytest.fixture(scope="module")
def cache():
    return ModelCache(max_bytes=1 << 30, device="cpu")


def _run(loaded, **kw):
    prompt = kw.pop("prompt", "the quick brown")
    return list(
        stream_generate(loaded.model, loaded.tokenizer, prompt=prompt, params=SamplingParams(**kw))
    )


def test_tokens_stream_then_done_with_timings(cache, models):
    events = _run(cache.get(models["long"], "causal-lm"), max_new_tokens=12, ignore_eos=True)
    tokens = [e for e in events if e["type"] == "token"]
    done = events[-1]
    assert [t["index"] for t in tokens] == list(range(12))
    assert done["type"] == "done" and done["finish_reason"] == "length"
    assert done["completion_tokens"] == 12 and done["prompt_tokens"] > 0
    assert done["ttft"] > 0 and done["tokens_per_second"] > 0
    assert "".join(e["text"] for e in events if e["type"] in ("token", "text")) == done["text"]
    first = tokens[0]
    assert len(first["top_logprobs"]) == 5
    assert all(a["logprob"] <= 0 for a in first["top_logprobs"])
    assert first["top_logprobs"][0]["logprob"] >= first["logprob"] - 1e-6
    assert sum(math.exp(a["logprob"]) for a in first["top_logprobs"]) <= 1 + 1e-4


def test_greedy_is_deterministic_and_seed_repeats_a_sample(cache, models):
    loaded = cache.get(models["long"], "causal-lm")
    greedy = [_run(loaded, max_new_tokens=8, temperature=0, ignore_eos=True)[-1]["text"]]
    greedy.append(_run(loaded, max_new_tokens=8, temperature=0, ignore_eos=True)[-1]["text"])
    assert greedy[0] == greedy[1]
    a = _run(loaded, max_new_tokens=8, temperature=1.5, seed=7, ignore_eos=True)
    b = _run(loaded, max_new_tokens=8, temperature=1.5, seed=7, ignore_eos=True)
    assert [e["id"] for e in a[:-1]] == [e["id"] for e in b[:-1]]


def test_cancel_stops_within_one_decoding_step(cache, models):
    """The flag is read before every forward pass: set after token k, no token k+1."""
    loaded = cache.get(models["long"], "causal-lm")
    stop = threading.Event()
    events = []
    for event in stream_generate(
        loaded.model,
        loaded.tokenizer,
        prompt="the quick",
        params=SamplingParams(max_new_tokens=500, ignore_eos=True),
        should_stop=stop.is_set,
    ):
        events.append(event)
        if event["type"] == "token" and event["index"] == 4:
            stop.set()
    assert [e["type"] for e in events] == ["token"] * 5 + ["done"]
    assert events[-1]["finish_reason"] == "cancelled"
    assert events[-1]["completion_tokens"] == 5


def test_stop_strings_end_the_answer_and_never_leak(cache, models):
    loaded = cache.get(models["long"], "causal-lm")
    free = _run(loaded, max_new_tokens=40, temperature=0, ignore_eos=True)[-1]["text"]
    stop = free[10:13]
    assert stop.strip(), free
    events = _run(loaded, max_new_tokens=40, temperature=0, ignore_eos=True, stop=[stop])
    done = events[-1]
    assert done["finish_reason"] == "stop"
    assert done["text"] == free[: free.find(stop)]
    streamed = "".join(e["text"] for e in events if e["type"] in ("token", "text"))
    assert streamed == done["text"] and stop not in streamed


def test_repetition_penalty_and_top_k_change_nothing_about_the_shape(cache, models):
    events = _run(
        cache.get(models["long"], "causal-lm"),
        max_new_tokens=6,
        top_k=3,
        top_p=0.9,
        repetition_penalty=1.3,
        seed=1,
        ignore_eos=True,
    )
    assert events[-1]["completion_tokens"] == 6


def test_a_prompt_longer_than_the_model_is_cut_from_the_left(cache, models):
    loaded = cache.get(models["tiny"], "causal-lm")  # 256 positions
    events = _run(loaded, prompt="fox " * 400, max_new_tokens=10, ignore_eos=True)
    assert events[-1]["completion_tokens"] == 10
    assert events[-1]["prompt_tokens"] + 10 <= 256


def test_chat_template_builds_the_prompt(cache, models):
    loaded = cache.get(models["long"], "causal-lm")
    assert loaded.has_chat_template
    ids = chat_input_ids(loaded.tokenizer, [{"role": "user", "content": "hello fox"}])
    assert loaded.tokenizer.decode(ids).endswith("<|assistant|>")
    events = list(
        stream_generate(
            loaded.model,
            loaded.tokenizer,
            input_ids=ids,
            params=SamplingParams(max_new_tokens=3, ignore_eos=True),
        )
    )
    assert events[-1]["completion_tokens"] == 3
    with pytest.raises(EngineError):
        chat_input_ids(cache.get(models["tiny"], "causal-lm").tokenizer, [])


def test_seq2seq_model_streams_too(cache, models):
    events = _run(cache.get(models["t5"], "seq2seq"), max_new_tokens=5, ignore_eos=True)
    assert events[-1]["completion_tokens"] == 5


def test_classifier_gives_a_probability_per_label(cache, models):
    loaded = cache.get(models["clf"], "classification")
    rows = classify(loaded.model, loaded.tokenizer, "win a free prize now")
    assert {r["label"] for r in rows} == {"ham", "spam"}
    assert abs(sum(r["probability"] for r in rows) - 1) < 1e-5


def test_modes_are_checked_against_the_task():
    check_mode("chat", "causal-lm", has_chat_template=True)
    with pytest.raises(EngineError):
        check_mode("classify", "causal-lm")
    with pytest.raises(EngineError):
        check_mode("chat", "causal-lm", has_chat_template=False)
    with pytest.raises(EngineError):
        SamplingParams(top_p=0)
    with pytest.raises(EngineError):
        SamplingParams.from_dict({"top-p": 0.5})


def test_cache_is_lru_within_its_budget_and_logs_evictions(models, caplog):
    sizing = ModelCache(max_bytes=1 << 30, device="cpu")
    tiny = sizing.get(models["tiny"], "causal-lm").nbytes
    long = sizing.get(models["long"], "causal-lm").nbytes
    clf = sizing.get(models["clf"], "classification").nbytes
    evicted = []
    cache = ModelCache(max_bytes=tiny + max(long, clf), device="cpu", on_evict=evicted.append)
    first = cache.get(models["tiny"], "causal-lm")
    assert cache.get(models["tiny"], "causal-lm") is first  # loaded once
    cache.get(models["long"], "causal-lm")
    cache.get(models["tiny"], "causal-lm")  # tiny is now the most recent
    with caplog.at_level(logging.WARNING, logger="jobs.engine.serving"):
        cache.get(models["clf"], "classification")
    assert [m.key for m in evicted] == [f"{models['long']}::causal-lm"]
    assert "evicted" in caplog.text
    assert cache.nbytes <= cache.max_bytes
    assert cache.keys()[-1].endswith("::classification")


def test_attention_map_has_every_layer_and_head_and_restores_the_kernel(cache, models):
    import base64

    loaded = cache.get(models["long"], "causal-lm")
    before = loaded.model.config._attn_implementation
    att = attention_map(loaded, "the quick brown fox " * 50)
    assert att["size"] == 128 and att["layers"] == 2 and att["heads"] == 2
    raw = base64.b64decode(att["data"])
    assert len(raw) == 2 * 2 * 128 * 128
    row = raw[:128]  # layer 0, head 0, query 0: causal, so all weight on key 0
    assert row[0] == 255 and not any(row[1:])
    assert loaded.model.config._attn_implementation == before


def test_rollout_of_a_causal_model_reads_only_earlier_tokens_and_sums_to_one():
    import torch

    causal = torch.tril(torch.ones(2, 3, 4, 4))  # (L, H, T, T)
    weights = causal / causal.sum(-1, keepdim=True)
    share = attention_rollout(weights, 1)
    assert abs(sum(share) - 1) < 1e-6 and share[2] == share[3] == 0
    assert attention_rollout(weights, 0) == [1.0, 0.0, 0.0, 0.0]


def test_classifier_attributions_cover_every_token(cache, models):
    loaded = cache.get(models["clf"], "classification")
    result = classify_with_attributions(loaded, "win a free prize")
    assert {r["label"] for r in result["labels"]} == {"ham", "spam"}
    tokens = result["tokens"]
    assert "".join(t["token"] for t in tokens).strip() == "win a free prize"
    assert abs(sum(t["weight"] for t in tokens) - 1) < 1e-5
