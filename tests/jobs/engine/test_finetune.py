"""The fine-tune engine on tiny models, on CPU, a few optimizer steps each."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import transformers
from datasets import ClassLabel, Dataset, DatasetDict

from jobs.engine.base import Cancelled, EngineError, ListReporter
from jobs.engine.collate import LengthBucketSampler
from jobs.engine.finetune import (
    TrainConfig,
    device_description,
    param_schema,
    run_training,
)
from tests.factories import minilm_dir, minilm_tokenizer, tiny_from_config

MINILM = minilm_dir()
WORDS = "good bad great awful fine poor nice terrible lovely horrid calm angry".split()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The MiniLM WordPiece tokenizer, reused by every tiny model (no hub, no training)."""
    return minilm_tokenizer(tmp_path_factory.mktemp("tok"))


def tiny_bert(tmp: Path, tokenizer_dir: Path, head=None) -> Path:
    return tiny_from_config(tmp, tokenizer_dir, "bert", head)


def tiny_gpt2(tmp: Path, tokenizer_dir: Path) -> Path:
    return tiny_from_config(tmp, tokenizer_dir, "gpt2")


def tiny_t5(tmp: Path, tokenizer_dir: Path) -> Path:
    return tiny_from_config(tmp, tokenizer_dir, "t5")


def _sentence(rng: random.Random, label: int) -> str:
    pool = WORDS[label::2]
    return " ".join(rng.choice(pool) for _ in range(rng.randint(2, 12)))


def classification_data(
    tmp: Path, rows: int = 64, pair: bool = False, validation_rows: int = 8
) -> Path:
    rng = random.Random(0)  # noqa: S311 - test data, not secrets
    labels = [i % 2 for i in range(rows)]
    columns = {"label": labels}
    if pair:
        columns |= {"text_a": [_sentence(rng, y) for y in labels], "text_b": ["a b"] * rows}
    else:
        columns["text"] = [_sentence(rng, y) for y in labels]
    ds = Dataset.from_dict(columns).cast_column("label", ClassLabel(names=["neg", "pos"]))
    folder = tmp / "data"
    validation = ds.select(range(validation_rows))
    DatasetDict(train=ds, validation=validation, test=ds.select(range(16))).save_to_disk(
        str(folder)
    )
    return folder


def text_data(tmp: Path, rows: int = 64, seq2seq: bool = False) -> Path:
    rng = random.Random(1)  # noqa: S311 - test data, not secrets
    texts = [_sentence(rng, i % 2) for i in range(rows)]
    if seq2seq:
        ds = Dataset.from_dict({"source": texts, "target": [t.upper() for t in texts]})
    else:
        ds = Dataset.from_dict({"text": texts + [""]})  # a blank line must not break training
    folder = tmp / "data"
    DatasetDict(train=ds, validation=ds.select(range(8)), test=ds.select(range(8))).save_to_disk(
        str(folder)
    )
    return folder


def make_config(tmp: Path, model: Path, data: Path, **params) -> TrainConfig:
    fixed = {
        "job_type": "finetune",
        "model_dir": model,
        "data_dir": data,
        "output_dir": tmp / "out",
        "checkpoint_dir": tmp / "ckpt",
    }
    defaults = {
        "task": "classification",
        "max_steps": 4,
        "batch_size": 8,
        "max_length": 32,
        "learning_rate": 1e-3,
    }
    return TrainConfig.from_params({**defaults, **params}, **fixed)


def test_classification_trains_reports_each_step_and_saves_a_loadable_model(
    tmp_path, tokenizer_dir
):
    model = tiny_bert(tmp_path, tokenizer_dir, transformers.BertModel)
    config = make_config(tmp_path, model, classification_data(tmp_path))
    reporter = ListReporter()

    result = run_training(config, reporter)

    progress = reporter.of_kind("progress")
    assert [p["step"] for p in progress] == [1, 2, 3, 4]
    assert all(p["total"] == 4 and p["loss"] > 0 for p in progress)
    assert progress[-1]["tokens_per_second"] > 0
    assert any("tokenizing 64 train rows" in e["message"] for e in reporter.of_kind("log"))
    # Whatever this machine trains on: "cpu" here, "cuda:0 <name>" on a GPU host.
    assert result.global_step == 4 and result.device == device_description()
    assert result.device == "cpu" or result.device.startswith("cuda:0 ")
    assert result.resumed_from_step is None
    assert set(result.metrics) >= {"accuracy", "macro_f1", "confusion_matrix", "eval_loss"}
    assert result.metrics["split"] == "test"
    assert sum(map(sum, result.metrics["confusion_matrix"])) == 16
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(result.output_dir), use_safetensors=True, local_files_only=True
    )
    assert loaded.config.id2label == {0: "neg", 1: "pos"}
    assert (result.output_dir / "tokenizer_config.json").is_file()
    # After the loop the page shows phases, each with its own progress, not "0 s left".
    phases = reporter.of_kind("phase")
    evaluation = [p for p in phases if p["name"] == "final evaluation"]
    assert evaluation[0]["done"] == 0 and evaluation[-1]["done"] == evaluation[-1]["total"] == 2
    assert phases[-1]["name"] == "saving"
    assert not any(str(tmp_path) in str(e) for e in reporter.events), "no server paths"


@pytest.mark.parametrize("group_by_length", [True, False])
def test_group_by_length_switches_the_length_bucket_sampler(
    tmp_path, tokenizer_dir, monkeypatch, group_by_length
):
    used = []

    class Spy(LengthBucketSampler):
        def __iter__(self):
            used.append(self.batch_size)
            return super().__iter__()

    monkeypatch.setattr("jobs.engine.training_steps.LengthBucketSampler", Spy)
    config = make_config(
        tmp_path,
        tiny_bert(tmp_path, tokenizer_dir),
        classification_data(tmp_path),
        max_steps=1,
        group_by_length=group_by_length,
    )

    run_training(config, ListReporter())

    assert used == ([8] if group_by_length else [])


@pytest.mark.slow
def test_real_minilm_gets_a_fresh_head_and_fits_an_easy_task(tmp_path):
    config = make_config(
        tmp_path,
        MINILM,
        classification_data(tmp_path),
        max_steps=12,
        learning_rate=1e-4,
        batch_size=8,
        save_steps=1000,  # one checkpoint (at the end) instead of two: 270 MB each
    )

    result = run_training(config, ListReporter())

    assert result.num_parameters > 22_000_000
    assert result.metrics["accuracy"] >= 0.75


def test_pair_classification_trains_with_an_empty_validation_split(tmp_path, tokenizer_dir):
    model = tiny_bert(tmp_path, tokenizer_dir)
    data = classification_data(tmp_path, pair=True, validation_rows=0)
    config = make_config(tmp_path, model, data, task="pair-classification", max_steps=2)
    reporter = ListReporter()

    result = run_training(config, reporter)

    assert result.metrics["labels"] == ["neg", "pos"]
    assert [m for m in reporter.of_kind("metrics") if m.get("split") == "validation"] == []


def test_causal_lm_reports_perplexity(tmp_path, tokenizer_dir):
    config = make_config(
        tmp_path,
        tiny_gpt2(tmp_path, tokenizer_dir),
        text_data(tmp_path),
        task="causal-lm",
        max_steps=3,
    )

    result = run_training(config, ListReporter())

    assert result.metrics["perplexity"] == pytest.approx(2.718281828 ** result.metrics["eval_loss"])
    assert (result.output_dir / "model.safetensors").is_file()


def test_pretrain_starts_from_a_config_only_folder(tmp_path, tokenizer_dir):
    model = tiny_gpt2(tmp_path, tokenizer_dir)
    (model / "model.safetensors").unlink()  # a preset: architecture + tokenizer, no weights
    config = make_config(
        tmp_path, model, text_data(tmp_path), task="causal-lm", max_steps=2, job_type="pretrain"
    )

    result = run_training(config, ListReporter())

    assert (result.output_dir / "model.safetensors").is_file()


def test_finetune_refuses_a_folder_without_safetensors(tmp_path, tokenizer_dir):
    model = tiny_gpt2(tmp_path, tokenizer_dir)
    (model / "model.safetensors").unlink()
    config = make_config(tmp_path, model, text_data(tmp_path), task="causal-lm", max_steps=2)

    with pytest.raises(EngineError) as err:
        run_training(config, ListReporter())
    assert err.value.code == "invalid_model"


def test_masked_lm_trains_from_a_bert(tmp_path, tokenizer_dir):
    config = make_config(
        tmp_path,
        tiny_bert(tmp_path, tokenizer_dir),
        text_data(tmp_path),
        task="masked-lm",
        max_steps=3,
        mlm_probability=0.3,
    )

    result = run_training(config, ListReporter())

    assert result.metrics["perplexity"] > 1
    transformers.AutoModelForMaskedLM.from_pretrained(str(result.output_dir), use_safetensors=True)


def test_seq2seq_scores_generated_text_with_bleu_and_chrf(tmp_path, tokenizer_dir):
    config = make_config(
        tmp_path,
        tiny_t5(tmp_path, tokenizer_dir),
        text_data(tmp_path, seq2seq=True),
        task="seq2seq",
        max_steps=3,
        max_length=16,
    )

    result = run_training(config, ListReporter())

    assert {"bleu", "chrf", "rouge1", "perplexity"} <= set(result.metrics)
    assert result.metrics["generation_sample"] == 8


def test_lora_trains_few_parameters_and_merges_into_a_plain_model(tmp_path, tokenizer_dir):
    model = tiny_bert(tmp_path, tokenizer_dir, transformers.BertModel)
    config = make_config(tmp_path, model, classification_data(tmp_path), method="lora", max_steps=2)

    result = run_training(config, ListReporter())

    assert 0 < result.trainable_parameters < result.num_parameters / 10
    assert not (result.output_dir / "adapter_config.json").exists()
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(result.output_dir), use_safetensors=True
    )
    assert not any("lora" in name for name, _ in loaded.named_parameters())


def test_unmerged_lora_saves_only_the_adapter(tmp_path, tokenizer_dir):
    config = make_config(
        tmp_path,
        tiny_gpt2(tmp_path, tokenizer_dir),
        text_data(tmp_path),
        task="causal-lm",
        method="lora",
        lora_merge=False,
        max_steps=2,
    )

    result = run_training(config, ListReporter())

    assert (result.output_dir / "adapter_config.json").is_file()
    assert (result.output_dir / "adapter_model.safetensors").is_file()


def test_cancel_stops_training_and_keeps_a_checkpoint(tmp_path, tokenizer_dir):
    config = make_config(
        tmp_path, tiny_bert(tmp_path, tokenizer_dir), classification_data(tmp_path), max_steps=20
    )
    reporter = ListReporter(
        stop_when=lambda events: len([e for e in events if e[0] == "progress"]) >= 3
    )

    with pytest.raises(Cancelled):
        run_training(config, reporter)

    assert len(reporter.of_kind("progress")) < 20
    saved = reporter.of_kind("checkpoint")
    # Named relative to the job folder (events reach browsers, never server paths).
    assert saved and not Path(saved[-1]["path"]).is_absolute()
    assert (config.checkpoint_dir.parent / saved[-1]["path"]).is_dir()
    assert not config.output_dir.exists()


class _WorkerDies(Exception):
    pass


class DyingReporter(ListReporter):
    """Dies (like a killed worker) when step ``at`` is reported, before it is saved."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def emit(self, kind, **data):
        super().emit(kind, **data)
        if kind == "progress" and data["step"] == self.at:
            raise _WorkerDies


def test_a_rerun_resumes_from_the_last_complete_checkpoint(tmp_path, tokenizer_dir):
    config = make_config(
        tmp_path,
        tiny_bert(tmp_path, tokenizer_dir),
        classification_data(tmp_path),
        max_steps=6,
        save_steps=3,
    )
    with pytest.raises(_WorkerDies):
        run_training(config, DyingReporter(at=4))

    reporter = ListReporter()
    result = run_training(config, reporter)

    assert result.resumed_from_step == 3
    assert result.global_step == 6
    assert [p["step"] for p in reporter.of_kind("progress")] == [4, 5, 6]


def test_unknown_param_is_refused_by_name(tmp_path):
    with pytest.raises(EngineError) as err:
        make_config(tmp_path, MINILM, tmp_path, learning_rat=1e-3)
    assert (err.value.code, err.value.param) == ("unknown_param", "learning_rat")


def test_negative_learning_rate_is_refused(tmp_path):
    with pytest.raises(EngineError) as err:
        make_config(tmp_path, MINILM, tmp_path, learning_rate=-1e-4)
    assert (err.value.code, err.value.param) == ("invalid_param", "learning_rate")


def test_form_strings_are_coerced_and_bad_types_refused(tmp_path):
    config = make_config(
        tmp_path,
        MINILM,
        tmp_path,
        batch_size="4",
        group_by_length="false",
        lora_target_modules="query, value",
        eval_steps="",
    )
    assert (config.batch_size, config.group_by_length) == (4, False)
    assert config.lora_target_modules == ["query", "value"] and config.eval_steps is None
    with pytest.raises(EngineError) as err:
        make_config(tmp_path, MINILM, tmp_path, batch_size=2.5)
    assert err.value.param == "batch_size"


def test_schema_describes_every_config_parameter():
    schema = param_schema()
    assert schema["learning_rate"]["default"] == 5e-5 and schema["learning_rate"]["min"] == 0
    assert schema["method"]["choices"] == ["full", "lora"]
    assert all("help" in spec and "type" in spec for spec in schema.values())


def test_an_out_of_memory_runtime_error_suggests_a_smaller_batch(
    tmp_path, tokenizer_dir, monkeypatch
):
    def train(self, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(transformers.Trainer, "train", train)
    config = make_config(
        tmp_path, tiny_bert(tmp_path, tokenizer_dir), classification_data(tmp_path)
    )

    with pytest.raises(EngineError) as err:
        run_training(config, ListReporter())
    assert err.value.code == "cuda_oom"
    assert "batch_size" in err.value.message and "grad_accum" in err.value.message


def test_max_length_beyond_the_position_embeddings_is_refused(tmp_path, tokenizer_dir):
    config = make_config(
        tmp_path, tiny_bert(tmp_path, tokenizer_dir), classification_data(tmp_path), max_length=128
    )

    with pytest.raises(EngineError) as err:
        run_training(config, ListReporter())
    assert err.value.param == "max_length"


def test_empty_train_split_is_a_clear_error(tmp_path, tokenizer_dir):
    data = tmp_path / "data"
    empty = Dataset.from_dict({"text": [], "label": []}).cast_column(
        "label", ClassLabel(names=["a", "b"])
    )
    DatasetDict(train=empty).save_to_disk(str(data))
    config = make_config(tmp_path, tiny_bert(tmp_path, tokenizer_dir), data)

    with pytest.raises(EngineError) as err:
        run_training(config, ListReporter())
    assert err.value.code == "empty_dataset"


def test_length_buckets_cut_padding_but_do_not_walk_through_lengths_in_order():
    lengths = [(i * 7919) % 1000 for i in range(1005)]  # every length once, scrambled
    sampler = LengthBucketSampler(lengths, 10, generator=torch.Generator().manual_seed(0))

    order = list(sampler)
    batches = [order[i : i + 10] for i in range(0, len(order), 10)]
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches[:-1]]
    means = [sum(lengths[i] for i in b) / len(b) for b in batches[:-1]]

    assert sorted(order) == list(range(1005))
    assert len(batches[-1]) == 5  # the one short batch comes last, so chunks line up
    assert sum(spans) / len(spans) < 200  # a random batch of 10 spans ~800
    # Consecutive batches jump around the length range (the stock sampler descends).
    assert sum(abs(a - b) for a, b in zip(means, means[1:], strict=False)) / len(means) > 150


def test_without_save_steps_checkpoints_follow_the_clock(monkeypatch):
    """No save_steps: a short run under save_minutes saves no checkpoint; a tiny interval does."""
    from jobs.engine import callbacks

    # The callback's own clock, moved by hand: no assumption about how fast this machine is.
    now = [1000.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: now[0])

    class FakeControl:
        should_save = False

    cb = callbacks.TimedCheckpointCallback(interval=60)
    cb.on_train_begin(None, None, FakeControl())
    control = FakeControl()
    now[0] += 59.9
    cb.on_step_end(None, None, control)
    assert control.should_save is False
    now[0] += 0.1
    cb.on_step_end(None, None, control)
    assert control.should_save is True
    cb.on_save(None, None, control)
    again = FakeControl()
    now[0] += 59.9
    cb.on_step_end(None, None, again)
    assert again.should_save is False


# --- GPU paths: skipped without CUDA (the only skip the suite allows), run on GPU hosts ---


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16"])
def test_training_on_cuda_uses_the_gpu_in_the_asked_precision(tmp_path, tokenizer_dir, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("gpu: this GPU has no bf16")
    model = tiny_bert(tmp_path, tokenizer_dir, transformers.BertModel)
    config = make_config(
        tmp_path, model, classification_data(tmp_path), precision=precision, max_steps=6
    )
    reporter = ListReporter()

    result = run_training(config, reporter)

    resolved = config.resolved_precision()
    best = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert resolved == (best if precision == "auto" else precision)
    assert result.device.startswith("cuda:0 ") and result.global_step == 6
    started = [e["message"] for e in reporter.of_kind("log") if "training on" in e["message"]]
    assert started and "cuda:0" in started[0] and f"precision {resolved}" in started[0]
    losses = [p["loss"] for p in reporter.of_kind("progress")]
    assert all(loss == loss and loss > 0 for loss in losses)  # no NaN from half precision
    # The saved model is a plain fp32-loadable checkpoint whatever the training precision.
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(result.output_dir), use_safetensors=True, local_files_only=True
    )
    assert loaded.config.num_labels == 2


@pytest.mark.gpu
def test_a_real_cuda_out_of_memory_error_suggests_a_smaller_batch(
    tmp_path, tokenizer_dir, monkeypatch
):
    def train(self, **kwargs):
        # A real allocation far past the card's memory: the allocator raises the real error.
        free, _total = torch.cuda.mem_get_info()
        torch.empty(int(free) * 4, dtype=torch.uint8, device="cuda")

    monkeypatch.setattr(transformers.Trainer, "train", train)
    config = make_config(
        tmp_path, tiny_bert(tmp_path, tokenizer_dir), classification_data(tmp_path)
    )

    with pytest.raises(EngineError) as err:
        run_training(config, ListReporter())
    assert isinstance(err.value.__cause__, torch.cuda.OutOfMemoryError)
    assert err.value.code == "cuda_oom" and err.value.param == "batch_size"
    assert "batch_size" in err.value.message and "grad_accum" in err.value.message
    # The engine gives the cache back so the next job on this worker starts clean.
    assert torch.cuda.memory_reserved() < (1 << 30)


def test_a_long_run_logs_each_early_step_then_by_the_clock_and_counts_real_tokens(
    tmp_path, tokenizer_dir
):
    from jobs.engine.callbacks import LOG_EVERY_STEP_UNTIL

    model = tiny_bert(tmp_path, tokenizer_dir, transformers.BertModel)
    config = make_config(tmp_path, model, classification_data(tmp_path), max_steps=60)
    reporter = ListReporter()
    run_training(config, reporter)

    progress = reporter.of_kind("progress")
    steps = [p["step"] for p in progress]
    # Every early step draws a point; later ones at most every 0.5 s; the last one always.
    assert steps[:LOG_EVERY_STEP_UNTIL] == list(range(1, LOG_EVERY_STEP_UNTIL + 1))
    assert steps[-1] == 60 and steps == sorted(set(steps))
    # A logged loss is the mean since the previous point; rates need the time between them.
    assert all(p["loss"] > 0 and p["samples_per_second"] > 0 for p in progress[1:])
    # Tokens are the attention-mask sum of the rows trained on: at most max_length per row,
    # and at least the [CLS] and [SEP] every row has.
    for p in progress[1:]:
        per_sample = p["tokens_per_second"] / p["samples_per_second"]
        assert 2 <= per_sample <= 32, p
