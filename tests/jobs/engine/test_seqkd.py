"""Sequence-level KD engine: batched, cancellable teacher generation -> dataset rows,
reference mixing, and the causal prompt rule."""

from __future__ import annotations

import pytest

from jobs.engine.base import Cancelled, ListReporter
from jobs.engine.models import load_for_task
from jobs.engine.seqkd import causal_prompt, generate_outputs, generated_rows, mix_references
from tests.factories import en_fr_rows, tiny_model_folder

ROWS = en_fr_rows(7)


@pytest.fixture(scope="module")
def t5_teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5")
    texts = [r["source"] for r in en_fr_rows(200)] + [r["target"] for r in en_fr_rows(200)]
    tiny_model_folder(folder, "t5", texts)
    return load_for_task(folder, "seq2seq")


def test_batched_generation_becomes_the_generated_datasets_rows(t5_teacher):
    model, tokenizer = t5_teacher
    reporter = ListReporter()
    sources = [r["source"] for r in ROWS]
    outputs = generate_outputs(
        model, tokenizer, sources, reporter=reporter, batch_size=3, max_length=32, max_new_tokens=5
    )
    assert len(outputs) == 7 and all(isinstance(o, str) for o in outputs)
    # One progress event per batch of 3 (3, 3, 1), after the opening one.
    phases = reporter.of_kind("phase")
    assert [(p["done"], p["total"]) for p in phases] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert {p["name"] for p in phases} == {"teacher generating"}
    train = {"source": sources, "target": [r["target"] for r in ROWS]}
    rows = generated_rows("seq2seq", train, outputs)
    # Sources kept in order; the teacher's outputs replace the references.
    assert rows == {"source": sources, "target": outputs}
    with pytest.raises(ValueError, match="6 outputs for 7 rows"):
        generated_rows("seq2seq", train, outputs[:6])


def test_beam_search_generates_one_output_per_row(t5_teacher):
    model, tokenizer = t5_teacher
    outputs = generate_outputs(
        model,
        tokenizer,
        [r["source"] for r in ROWS[:4]],
        reporter=ListReporter(),
        batch_size=4,
        max_length=32,
        max_new_tokens=4,
        num_beams=3,
    )
    assert len(outputs) == 4


def test_cancel_stops_generation_between_batches(t5_teacher):
    model, tokenizer = t5_teacher
    reporter = ListReporter(stop_when=lambda ev: any(d.get("done") == 1 for _, d in ev))
    with pytest.raises(Cancelled, match="3 rows done"):
        generate_outputs(
            model,
            tokenizer,
            [r["source"] for r in ROWS],
            reporter=reporter,
            batch_size=3,
            max_length=32,
            max_new_tokens=3,
        )
    assert [p["done"] for p in reporter.of_kind("phase")] == [0, 1]


def test_a_causal_teacher_continues_the_first_half_of_each_row():
    assert causal_prompt("one two three four five") == "one two"
    assert causal_prompt("single") == "single"
    rows = generated_rows("causal-lm", {"text": ["a b c d", "x"]}, ["e f", "y"])
    assert rows == {"text": ["a b e f", "x y"]}


def test_mix_references_adds_a_seeded_fraction_of_the_references():
    from datasets import Dataset

    generated = Dataset.from_dict({"source": list("abcd"), "target": ["g"] * 4})
    references = Dataset.from_dict({"source": list("abcd"), "target": ["r"] * 4})
    assert mix_references(generated, references, 0.0, seed=1) is generated
    half = mix_references(generated, references, 0.5, seed=1)
    assert len(half) == 6 and half["target"].count("r") == 2
    assert mix_references(generated, references, 0.5, seed=1)["source"] == half["source"]
    assert len(mix_references(generated, references, 1.0, seed=1)) == 8


def test_a_causal_teacher_is_distilled_on_its_continuations(tmp_path):
    from datasets import Dataset, DatasetDict

    from jobs.engine.distill_config import DistillConfig
    from jobs.engine.seqkd import run_sequence_distill
    from jobs.engine.training_steps import load_dataset_dict

    texts = [f"{r['source']} {r['source']}" for r in en_fr_rows(40)]
    tiny_model_folder(tmp_path / "teacher", "gpt2", texts + [r["target"] for r in en_fr_rows(99)])
    DatasetDict(
        train=Dataset.from_dict({"text": texts[:32]}),
        test=Dataset.from_dict({"text": texts[32:]}),
    ).save_to_disk(str(tmp_path / "data"))
    config = DistillConfig(
        task="causal-lm",
        teacher_dir=tmp_path / "teacher",
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        checkpoint_dir=tmp_path / "ckpt",
        cache_dir=tmp_path / "cache",
        generated_dir=tmp_path / "generated",
        teacher_key="teacher-1-v1",
        max_steps=2,
        batch_size=8,
        max_length=32,
        max_new_tokens=4,
        latency_repeats=1,
        mix_references=1.0,
    )
    reporter = ListReporter()
    result = run_sequence_distill(config, reporter)
    generated = load_dataset_dict(tmp_path / "generated")
    assert len(generated["train"]) == 32 and len(generated["test"]) == 8
    for row, text in zip(generated["train"]["text"], texts[:32], strict=True):
        assert row.startswith(causal_prompt(text))  # the prompt, then the teacher's words
    assert result.generated["num_rows"] == {"train": 32, "test": 8}
    assert result.generated["generation"]["decoding"] == "greedy"
    assert result.report["ratios"]["quality_metric"] == "perplexity"
    assert result.report["after"]["parameters"] < result.report["before"]["parameters"]
    assert (result.output_dir / "config.json").is_file() and result.global_step == 2
    from jobs.engine.models.loading import load_tokenizer

    # Generation pads prompts on the left; the student keeps the tokenizer's own side.
    assert load_tokenizer(result.output_dir).padding_side == "right"
    # A resumed job keeps the outputs it already paid for.
    again = ListReporter()
    from jobs.engine.seqkd import write_generated

    write_generated(config, {}, None, None, again)
    assert not again.of_kind("phase")
