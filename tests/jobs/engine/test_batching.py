"""Concurrent generations for one model decode as one batch, each as it would alone."""

from __future__ import annotations

import threading

import pytest

from jobs.engine.batching import BatchDecoder
from jobs.engine.sampling import SamplingParams
from jobs.engine.serving import ModelCache, stream_generate
from tests.support import wait_for

PROMPTS = ["the quick brown", "a", "fox fox the lazy dog and the", "brown"]


@pytest.fixture(scope="module")
def loaded(playground_folders):
    return ModelCache(max_bytes=1 << 30, device="cpu").get(playground_folders["long"], "causal-lm")


def _alone(loaded, prompt, params):
    return list(stream_generate(loaded.model, loaded.tokenizer, prompt=prompt, params=params))


def _together(decoder, prompts, params, stops=None):
    """Every prompt on its own thread, as the worker's request threads do."""
    stops = stops or [lambda: False for _ in prompts]
    out: dict[int, list] = {}
    started = threading.Barrier(len(prompts))

    def go(i):
        started.wait()
        out[i] = list(decoder.stream(prompt=prompts[i], params=params[i], should_stop=stops[i]))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def _ids(events):
    return [e["id"] for e in events if e["type"] == "token"]


def test_greedy_rows_in_a_batch_get_exactly_their_tokens_alone(loaded):
    params = [SamplingParams(max_new_tokens=40, temperature=0, ignore_eos=True)] * 4
    alone = [_alone(loaded, p, params[0]) for p in PROMPTS]
    decoder = BatchDecoder(loaded.model, loaded.tokenizer)
    out = _together(decoder, PROMPTS, params)
    for i in range(4):
        assert _ids(out[i]) == _ids(alone[i])
        assert out[i][-1]["text"] == alone[i][-1]["text"]
        assert out[i][-1]["finish_reason"] == "length"
    # Four answers of 40 tokens in far fewer than 160 batched forwards: they shared steps.
    assert max(o[-1]["batch_size"] for o in out.values()) >= 2
    assert decoder.steps < 4 * 40


def test_each_row_keeps_its_own_sampling_stop_strings_and_logprobs(loaded):
    seeded = SamplingParams(max_new_tokens=20, temperature=1.0, seed=7, ignore_eos=True)
    alone_sample = _alone(loaded, PROMPTS[0], seeded)
    greedy = SamplingParams(max_new_tokens=30, temperature=0, ignore_eos=True, top_logprobs=3)
    alone_greedy = _alone(loaded, PROMPTS[1], greedy)
    # A stop string that the greedy answer of PROMPTS[2] reaches.
    free = _alone(loaded, PROMPTS[2], SamplingParams(max_new_tokens=30, temperature=0))
    text = free[-1]["text"]
    stop = text[len(text) // 2 : len(text) // 2 + 2] if len(text) > 4 else "zz"
    stopped = SamplingParams(max_new_tokens=30, temperature=0, stop=[stop], top_logprobs=0)
    alone_stopped = _alone(loaded, PROMPTS[2], stopped)
    decoder = BatchDecoder(loaded.model, loaded.tokenizer)
    out = _together(decoder, PROMPTS[:3], [seeded, greedy, stopped])
    assert _ids(out[0]) == _ids(alone_sample)  # its own seed, whoever shared the batch
    # The same alternatives; log-probs equal up to float error (padded batch kernels).
    batched = [e["top_logprobs"] for e in out[1] if e["type"] == "token"]
    single = [e["top_logprobs"] for e in alone_greedy if e["type"] == "token"]
    assert [[a["token"] for a in t] for t in batched] == [[a["token"] for a in t] for t in single]
    flat = [a["logprob"] for t in batched for a in t]
    assert flat == pytest.approx([a["logprob"] for t in single for a in t], abs=1e-4)
    assert all(len(e["top_logprobs"]) == 3 for e in out[1] if e["type"] == "token")
    assert out[2][-1]["text"] == alone_stopped[-1]["text"]
    assert stop not in out[2][-1]["text"]
    assert (
        "".join(e["text"] for e in out[2] if e["type"] in ("token", "text")) == out[2][-1]["text"]
    )


def test_stopping_one_row_stops_it_within_a_step_and_not_the_others(loaded):
    params = [SamplingParams(max_new_tokens=200, temperature=0, ignore_eos=True)] * 3
    alone = [_alone(loaded, p, params[0]) for p in PROMPTS[:3]]
    calls = {"n": 0}

    def stop_after_five():
        # Asked before each forward that would give row 1 a token: the first answer comes
        # from its prompt pass, so on the sixth question it holds five tokens.
        calls["n"] += 1
        return calls["n"] > 5

    decoder = BatchDecoder(loaded.model, loaded.tokenizer)
    out = _together(
        decoder, PROMPTS[:3], params, stops=[lambda: False, stop_after_five, lambda: False]
    )
    assert out[1][-1]["finish_reason"] == "cancelled"
    assert out[1][-1]["completion_tokens"] == 5
    assert _ids(out[1]) == _ids(alone[1])[:5]
    for i in (0, 2):
        assert out[i][-1]["finish_reason"] == "length"
        assert _ids(out[i]) == _ids(alone[i])
    assert max(o[-1]["batch_size"] for o in out.values()) >= 2


def test_a_request_whose_reader_left_stops_decoding(loaded):
    decoder = BatchDecoder(loaded.model, loaded.tokenizer)
    params = SamplingParams(max_new_tokens=4000, temperature=0, ignore_eos=True)
    stream = decoder.stream(prompt="the", params=params)
    assert next(stream)["type"] == "token"
    stream.close()  # as when sending to the requester failed
    wait_for(lambda: not decoder.running, timeout=60, what="the decoding thread to end")
    assert decoder.steps < 4000


def test_an_encoder_decoder_model_decodes_alone(playground_folders):
    t5 = ModelCache(max_bytes=1 << 30, device="cpu").get(playground_folders["t5"], "seq2seq")
    assert t5.batch_decoder() is None
