"""Distillation and int8 against the teacher, on the sample SMS data (issue 11's table).

    .venv/bin/python bench/distill.py [--steps 60] [--batch 32] [--max-length 128]

Teacher: the bundled MiniLM (6 layers) fine-tuned on SMS spam. Rows:
  1. teacher
  2. teacher int8 (compress)
  3. student, 3 of the teacher's 6 layers, distilled (alpha 0.5, T 2)
  4. the same student fine-tuned without KD (alpha 0: cross-entropy only), same budget
  5. the distilled student after int8
Each row: test accuracy, retained % of the teacher's, CPU latency at batch 1 and 32 (and
÷ teacher), parameters, weights on disk. Every model is reloaded from its folder and
measured in one loop at the end, so they share the machine's conditions. Targets (beyond
DistilBERT's 97% / 0.6x): distilled retained >= 97% at b32 latency <= 0.55x; distilled +
int8 retained >= 97%, b32 <= 0.3x, size <= 0.5x; teacher int8 within 1 pt.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SMS = ROOT / "llmweb" / "catalog" / "samples" / "SMSSpamCollection.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    from jobs.engine.base import NullReporter
    from jobs.engine.compress import CompressConfig, run_compress
    from jobs.engine.data import ProcessConfig, process_dataset
    from jobs.engine.distill import DistillConfig, run_distill
    from jobs.engine.finetune import TrainConfig, run_training
    from jobs.engine.measure import load_eval_rows, measure
    from jobs.engine.models import bundled_model_path, load_for_task

    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    quiet = NullReporter()
    data = work / "sms"
    process_dataset(
        ProcessConfig(source=SMS, out_dir=data, schema="classification", seed=42), quiet
    )
    common = {"max_steps": args.steps, "batch_size": args.batch, "max_length": args.max_length}
    print(f"work: {work}; training {args.steps} steps of {args.batch}", flush=True)
    run_training(
        TrainConfig(
            job_type="finetune",
            task="classification",
            model_dir=bundled_model_path(),
            data_dir=data,
            output_dir=work / "teacher",
            checkpoint_dir=work / "ckpt-teacher",
            learning_rate=args.lr,
            **common,
        ),
        quiet,
    )
    folders = {"teacher": work / "teacher"}

    def distill(name: str, alpha: float) -> None:
        run_distill(
            DistillConfig(
                task="classification",
                teacher_dir=work / "teacher",
                data_dir=data,
                output_dir=work / name,
                checkpoint_dir=work / f"ckpt-{name}",
                cache_dir=work / "kd-cache",
                teacher_key="teacher",
                alpha=alpha,
                learning_rate=args.lr,
                latency_repeats=1,
                eval_rows=8,
                **common,
            ),
            quiet,
        )
        folders[name] = work / name

    def compress(name: str, source: str) -> None:
        run_compress(
            CompressConfig(
                task="classification",
                model_dir=folders[source],
                output_dir=work / name,
                latency_repeats=1,
            ),
            quiet,
        )
        folders[name] = work / name

    compress("teacher int8", "teacher")
    distill("student 3/6 KD", 0.5)
    distill("student 3/6 no KD", 0.0)
    compress("student 3/6 KD int8", "student 3/6 KD")

    rows = {}
    for name, folder in folders.items():
        model, tokenizer = load_for_task(folder, "classification")
        labels = [str(model.config.id2label[i]) for i in sorted(model.config.id2label)]
        eval_rows = load_eval_rows(
            data, split="test", task="classification", limit=100_000, model_labels=labels
        )
        rows[name] = measure(
            model,
            tokenizer,
            task="classification",
            folder=folder,
            rows=eval_rows,
            label_names=labels,
            max_length=args.max_length,
            repeats=args.repeats,
        )
        print(f"measured {name}", flush=True)

    t = rows["teacher"]
    head = (
        "| model | test acc | retained | b1 ms | b1 ÷ T | b32 ms | b32 ÷ T | params | "
        "size MB | size ÷ T |"
    )
    print("\n" + head + "\n|" + "---|" * 10)
    for name, r in rows.items():
        acc = r["quality"]["accuracy"]
        print(
            f"| {name} | {acc:.2%} | {acc / t['quality']['accuracy']:.1%} "
            f"| {r['latency_ms_b1']:.1f} | {r['latency_ms_b1'] / t['latency_ms_b1']:.2f} "
            f"| {r['latency_ms_b32']:.1f} | {r['latency_ms_b32'] / t['latency_ms_b32']:.2f} "
            f"| {r['parameters'] / 1e6:.1f}M | {r['size_bytes'] / 1e6:.1f} "
            f"| {r['size_bytes'] / t['size_bytes']:.2f} |"
        )
    print(f"\ntest rows: {rows['teacher']['quality']['rows']}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
