"""The default recipe against a plain script at equal wall-clock time.

    .venv/bin/python bench/recipe.py [--rows 1000] [--repeats 3] [--data sms tatoeba]

For each dataset, on llmweb's own train/validation/test split (the ingest engine, seed 42):
  1. plain: a typical fine-tuning script. MiniLM, every row padded to 128 tokens, batch 32,
     3 epochs, the Trainer's defaults (lr 5e-5, linear decay, no warm-up); then the test
     split scored. Its wall time (load, tokenize, train, score) is the budget.
  2. llmweb: the fine-tune engine (``run_training``) with ``max_minutes`` = that wall time
     and every other parameter at its default; its own final evaluation on the same test
     split gives the metrics.
Data: SMS spam (ham/spam, classification) and Tatoeba French-English pairs (is text_b the
translation of text_a? pair classification; the negatives are the English sentence of
the row nearest in length, so length alone does not tell). ``--rows`` samples each
dataset (seeded, label-stratified for SMS), so a run takes minutes on 2 cores.

Each dataset's pair of runs is repeated ``--repeats`` times; the table shows medians, the
spread (min-max) and the per-repeat differences. Target: llmweb >= plain + 1 pt accuracy
at time ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SAMPLES = ROOT / "llmweb" / "catalog" / "samples"


# --- data: raw files -> llmweb's processed splits --------------------------------------------


def sms_rows(n: int, seed: int) -> list[dict]:
    with (SAMPLES / "SMSSpamCollection.tsv").open(encoding="utf-8", newline="") as fh:
        rows = [
            {"text": r[1], "label": r[0]}
            for r in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]
    rng = random.Random(seed)
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    out: list[dict] = []
    for group in by_label.values():  # keep the spam share
        out += rng.sample(group, round(n * len(group) / len(rows)))
    rng.shuffle(out)
    return out


def tatoeba_pairs(n: int, seed: int) -> list[dict]:
    with (SAMPLES / "fra_eng_tatoeba_sample5k.tsv").open(encoding="utf-8", newline="") as fh:
        pairs = [(r[1], r[0]) for r in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    rng = random.Random(seed)
    pairs = rng.sample(pairs, min(n, len(pairs)))
    by_length = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
    nearest = {}
    for pos, i in enumerate(by_length):
        nearest[i] = by_length[pos + 1] if pos + 1 < len(by_length) else by_length[pos - 1]
    rows = []
    for i, (fra, eng) in enumerate(pairs):
        if i % 2:
            rows.append({"text_a": fra, "text_b": pairs[nearest[i]][1], "label": "different"})
        else:
            rows.append({"text_a": fra, "text_b": eng, "label": "translation"})
    return rows


DATASETS = {
    "sms": ("classification", sms_rows),
    "tatoeba": ("pair-classification", tatoeba_pairs),
}


def prepare(name: str, rows: int, work: Path) -> tuple[str, Path]:
    import json

    from jobs.engine.base import NullReporter
    from jobs.engine.data import ProcessConfig, process_dataset

    schema, make = DATASETS[name]
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{name}.jsonl"
    with source.open("w", encoding="utf-8") as fh:
        for row in make(rows, seed=0):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    out = work / name
    process_dataset(
        ProcessConfig(source=source, out_dir=out, schema=schema, seed=42), NullReporter()
    )
    return schema, out


# --- 1. the plain script -----------------------------------------------------------------------


def plain_script(task: str, data_dir: Path, work: Path) -> dict:
    """What a person writes from the transformers docs; timed from load to test score."""
    started = time.monotonic()
    import numpy as np
    import torch
    from datasets import load_from_disk
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    from jobs.engine.metrics import classification_metrics
    from jobs.engine.models import bundled_model_path

    torch.manual_seed(42)
    dsd = load_from_disk(str(data_dir))
    names = dsd["train"].features["label"].names
    path = bundled_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(names), use_safetensors=True
    )
    columns = ("text",) if task == "classification" else ("text_a", "text_b")

    def encode(batch):
        enc = tok(
            *(batch[c] for c in columns), truncation=True, max_length=128, padding="max_length"
        )
        enc["labels"] = batch["label"]
        return enc

    train = dsd["train"].map(encode, batched=True, remove_columns=dsd["train"].column_names)
    test = dsd["test"].map(encode, batched=True, remove_columns=dsd["test"].column_names)
    args = TrainingArguments(
        output_dir=str(work / "plain"),
        per_device_train_batch_size=32,
        per_device_eval_batch_size=32,
        num_train_epochs=3,
        seed=42,
        save_strategy="no",
        logging_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train)
    trainer.train()
    predicted = np.argmax(trainer.predict(test).predictions, axis=-1)
    scores = classification_metrics(predicted.tolist(), list(dsd["test"]["label"]), names)
    return {
        "seconds": time.monotonic() - started,
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "epochs": 3.0,
    }


# --- 2. llmweb's recipe with the same time -----------------------------------------------------


def llmweb_recipe(task: str, data_dir: Path, work: Path, budget_seconds: float) -> dict:
    from jobs.engine.base import ListReporter
    from jobs.engine.finetune import TrainConfig, run_training
    from jobs.engine.models import bundled_model_path

    started = time.monotonic()
    reporter = ListReporter()
    result = run_training(
        TrainConfig(
            job_type="finetune",
            task=task,
            model_dir=bundled_model_path(),
            data_dir=data_dir,
            output_dir=work / "out",
            checkpoint_dir=work / "ckpt",
            max_minutes=budget_seconds / 60,
            budget_started=started,
        ),
        reporter,
    )
    progress = reporter.of_kind("progress")
    assert result.metrics.get("split") == "test", result.metrics
    return {
        "seconds": time.monotonic() - started,
        "accuracy": result.metrics["accuracy"],
        "macro_f1": result.metrics["macro_f1"],
        "epochs": progress[-1]["epoch"] if progress else 0.0,
    }


# --- table -------------------------------------------------------------------------------------


def _spread(values: list[float], digits: int = 1) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1000, help="rows sampled from each dataset")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    a = ap.parse_args()

    import torch

    runs: dict[str, list[tuple[dict, dict]]] = {name: [] for name in a.data}
    with tempfile.TemporaryDirectory(prefix="llmweb-recipe-") as tmp:
        work = Path(tmp)
        prepared = {name: prepare(name, a.rows, work / "data") for name in a.data}
        for repeat in range(a.repeats):
            for name, (task, data_dir) in prepared.items():
                run = work / f"{name}-{repeat}"
                plain = plain_script(task, data_dir, run)
                ours = llmweb_recipe(task, data_dir, run, plain["seconds"])
                runs[name].append((plain, ours))
                print(
                    f"[{name} #{repeat + 1}] plain {plain['accuracy']:.4f} in "
                    f"{plain['seconds']:.0f} s; llmweb {ours['accuracy']:.4f} in "
                    f"{ours['seconds']:.0f} s ({ours['epochs']:.1f} epochs)",
                    flush=True,
                )

    print(
        f"\nrecipe at equal wall-clock, {datetime.now():%Y-%m-%d}, {a.rows} rows a dataset, "
        f"{a.repeats} repeat(s), CPU ({torch.get_num_threads()} threads), median (min-max)\n"
    )
    head = (
        f"{'data':9} {'run':7} {'seconds':>20} {'epochs':>18} {'accuracy %':>20} {'macro-F1 %':>20}"
    )
    print(head)
    print("-" * len(head))
    for name, pairs in runs.items():
        for label, i in (("plain", 0), ("llmweb", 1)):
            sides = [p[i] for p in pairs]
            print(
                f"{name:9} {label:7} {_spread([s['seconds'] for s in sides]):>20} "
                f"{_spread([s['epochs'] for s in sides]):>18} "
                f"{_spread([100 * s['accuracy'] for s in sides], 2):>20} "
                f"{_spread([100 * s['macro_f1'] for s in sides], 2):>20}"
            )
        gain = [100 * (o["accuracy"] - p["accuracy"]) for p, o in pairs]
        ratio = [o["seconds"] / p["seconds"] for p, o in pairs]
        print(
            f"{name:9} {'gain':7} accuracy {_spread(gain, 2)} pt at time ratio "
            f"{_spread(ratio, 3)} (target >= +1 pt at <= 1.05)\n"
        )


if __name__ == "__main__":
    main()
