"""Compression engine: int8 safetensors that reload exactly, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobs.engine.base import EngineError, ListReporter
from jobs.engine.compress import CompressConfig, run_compress
from jobs.engine.measure import compare
from jobs.engine.models import load_for_task
from jobs.engine.models.quantized import QUANT_FILE, quantize_model, save_quantized
from tests.factories import sms_rows, tiny_model_folder
from tests.support import ROOT

TEXTS = [r["text"] for r in sms_rows(60)]
PROBE = ["Free entry in a weekly competition, text WIN now", "ok see you at lunch"]

_PRINT_OUTPUTS = """
import json, sys, torch
from jobs.engine.models import load_for_task
model, tok = load_for_task(sys.argv[1], sys.argv[2])
enc = tok(json.loads(sys.argv[3]), padding=True, return_tensors="pt")
enc.pop("token_type_ids", None) if sys.argv[2] == "causal-lm" else None
with torch.inference_mode():
    print(json.dumps(model(**enc).logits.flatten().tolist()))
"""


def _outputs(model, tokenizer, task):
    import torch

    enc = tokenizer(PROBE, padding=True, return_tensors="pt")
    if task == "causal-lm":
        enc.pop("token_type_ids", None)
    with torch.inference_mode():
        return model(**enc).logits.flatten().tolist()


@pytest.mark.parametrize(
    ("family", "task", "labels"),
    [("bert", "classification", ["ham", "spam"]), ("gpt2", "causal-lm", None)],
)
def test_quantized_model_reloads_in_a_fresh_process_with_the_same_outputs(
    tmp_path, family, task, labels
):
    tiny_model_folder(tmp_path / "float", family, TEXTS, labels=labels)
    model, tokenizer = load_for_task(tmp_path / "float", task)
    qmodel, description = quantize_model(model, embeddings=True)
    # GPT-2 ties its embedding to the LM head: that table must stay float.
    assert description["embedding"] == (["bert.embeddings.word_embeddings"] if labels else [])
    save_quantized(qmodel, tokenizer, description, tmp_path / "int8")
    assert (tmp_path / "int8" / QUANT_FILE).is_file()
    assert not list((tmp_path / "int8").glob("*.bin"))  # never a pickle
    in_memory = _outputs(qmodel, tokenizer, task)
    fresh = subprocess.run(
        [sys.executable, "-c", _PRINT_OUTPUTS, str(tmp_path / "int8"), task, json.dumps(PROBE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    reloaded = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert reloaded == pytest.approx(in_memory, abs=1e-6)
    assert reloaded != pytest.approx(_outputs(model, tokenizer, task), abs=1e-9)  # really int8


def test_compress_run_reports_smaller_and_keeps_the_labels(tmp_path):
    tiny_model_folder(tmp_path / "float", "bert", TEXTS, labels=["ham", "spam"])
    config = CompressConfig(
        task="classification",
        model_dir=tmp_path / "float",
        output_dir=tmp_path / "out",
        latency_repeats=1,
    )
    result = run_compress(config, ListReporter())
    report = result.report
    assert report["backend"] == "torch.ao.quantization.quantize_dynamic"
    assert report["after"]["size_bytes"] < 0.5 * report["before"]["size_bytes"]
    assert report["after"]["parameters"] == report["before"]["parameters"]
    assert result.metrics["size_ratio"] < 0.5
    model, _ = load_for_task(result.output_dir, "classification")
    assert model.config.id2label == {0: "ham", 1: "spam"}


def test_bitsandbytes_is_refused_on_cpu(tmp_path):
    config = CompressConfig(
        task="classification", model_dir=tmp_path, output_dir=tmp_path / "o", method="bnb-nf4"
    )
    with pytest.raises(EngineError) as refused:
        run_compress(config, ListReporter())
    assert refused.value.param == "method" and refused.value.code == "needs_gpu"


def test_compare_says_how_much_is_kept():
    before = {"size_bytes": 100, "parameters": 10, "latency_ms_b1": 4.0, "latency_ms_b32": 40.0}
    after = {"size_bytes": 30, "parameters": 10, "latency_ms_b1": 2.0, "latency_ms_b32": 10.0}
    before["quality"], after["quality"] = {"accuracy": 0.8}, {"accuracy": 0.78}
    ratios = compare(before, after)
    assert ratios["size_ratio"] == 0.3 and ratios["latency_ratio_b32"] == 0.25
    assert ratios["quality_retained"] == pytest.approx(0.975)
    assert ratios["quality_delta"] == pytest.approx(-0.02)
    ppl = compare({"quality": {"perplexity": 10.0}}, {"quality": {"perplexity": 12.5}})
    assert ppl["quality_retained"] == 0.8  # lower perplexity is better
