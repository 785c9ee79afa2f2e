"""Ready datasets and small models for job tests, written straight to storage."""

from __future__ import annotations

import csv
import random

from llmweb.catalog.models import Dataset, RegisteredModel
from tests.conftest import shared_data

_SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


def sms_rows(n: int, seed: int = 0) -> list[dict]:
    with open(shared_data("SMSSpamCollection.tsv"), encoding="utf-8") as f:
        rows = [
            {"label": r[0], "text": r[1]}
            for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]
    random.Random(seed).shuffle(rows)
    # Keep both classes in a small sample.
    spam = [r for r in rows if r["label"] == "spam"][: n // 3]
    ham = [r for r in rows if r["label"] == "ham"][: n - len(spam)]
    out = spam + ham
    random.Random(seed).shuffle(out)
    return out


def ready_dataset(
    team, schema: str, rows: list[dict], *, name: str = "data", label_names=None
) -> Dataset:
    from datasets import ClassLabel, DatasetDict, Features, Value
    from datasets import Dataset as HFDataset

    ds = Dataset.objects.create(
        team=team,
        name=name,
        schema=schema,
        status="ready",
        original_filename="rows.jsonl",
        split_ratios=[0.8, 0.1, 0.1],
    )
    if schema in ("classification", "pair-classification"):
        label_names = label_names or sorted({r["label"] for r in rows})
        cols = ["text"] if schema == "classification" else ["text_a", "text_b"]
        features = Features(
            {**{c: Value("string") for c in cols}, "label": ClassLabel(names=label_names)}
        )
        rows = [{**{c: r[c] for c in cols}, "label": label_names.index(r["label"])} for r in rows]
    else:
        cols = ["source", "target"] if schema == "seq2seq" else ["text"]
        features = Features({c: Value("string") for c in cols})
    splits, start = {}, 0
    for split, frac in _SPLITS:
        end = len(rows) if split == "test" else start + int(len(rows) * frac)
        splits[split] = HFDataset.from_list(rows[start:end], features=features)
        start = end
    DatasetDict(splits).save_to_disk(str(ds.processed_dir))
    ds.num_rows = {k: len(v) for k, v in splits.items()}
    ds.label_names = label_names if schema in ("classification", "pair-classification") else None
    ds.stats = {"mean_chars": 60}
    ds.save()
    return ds


def preset_model(
    team, family: str, texts: list[str], *, name: str | None = None
) -> RegisteredModel:
    """A tiny preset (random weights, tokenizer trained on ``texts``) registered as ready."""
    from jobs.engine.models import create_preset_model

    record = RegisteredModel.objects.create(
        team=team, name=name or f"{family}-tiny", source="preset", status="pending"
    )
    record.delete_files()  # a rolled-back test may have left files under this id
    info = create_preset_model(
        family=family, size="tiny", out_dir=record.artifact_dir, texts=texts, vocab_size=800
    )
    record.task = info.task
    record.status = "ready"
    record.num_parameters = info.num_parameters
    record.max_length = info.max_length
    record.architecture = info.architecture
    record.model_type = info.model_type
    record.tokenizer = info.tokenizer or {}
    record.save()
    return record


def bundled_model(team) -> RegisteredModel:
    return RegisteredModel.objects.get(team=team, source="bundled")


def job_record(*, team, base_model, dataset=None, type="finetune", status="succeeded"):
    """A Job row without the queue, for tests of what reads jobs (lineage, delete checks)."""
    from jobs.models import Job, JobModel

    job = Job.objects.create(team=team, type=type, dataset=dataset, status=status)
    JobModel.objects.create(job=job, model=base_model, role="base")
    return job


def tiny_model_folder(out_dir, family: str, texts: list[str], *, labels=None, seed: int = 0):
    """A tiny preset written to ``out_dir``; with ``labels`` it is a classifier (random head)."""
    import shutil
    import tempfile
    from pathlib import Path

    from jobs.engine.models import create_preset_model, load_for_task

    if labels is None:
        return create_preset_model(
            family=family, size="tiny", out_dir=out_dir, texts=texts, vocab_size=800, seed=seed
        )
    scratch = Path(tempfile.mkdtemp(prefix="tiny-"))
    try:
        create_preset_model(
            family=family,
            size="tiny",
            out_dir=scratch / "m",
            texts=texts,
            vocab_size=800,
            seed=seed,
        )
        model, tokenizer = load_for_task(scratch / "m", "classification", label_names=labels)
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    from jobs.engine.models import inspect_model

    return inspect_model(out_dir)


def tiny_classifier(team, texts: list[str], labels: list[str], *, name: str = "tiny-clf"):
    """A ready tiny BERT classifier record (random weights; a head for ``labels``)."""
    record = RegisteredModel.objects.create(team=team, name=name, source="preset", status="pending")
    record.delete_files()  # a rolled-back test may have left files under this id
    info = tiny_model_folder(record.artifact_dir, "bert", texts, labels=labels)
    record.task = info.task
    record.status = "ready"
    record.num_parameters = info.num_parameters
    record.size_bytes = info.size_bytes
    record.dtype = info.dtype
    record.max_length = info.max_length
    record.architecture = info.architecture
    record.model_type = info.model_type
    record.label_names = info.label_names
    record.tokenizer = info.tokenizer or {}
    record.config_summary = dict(info.config)
    record.save()
    return record
