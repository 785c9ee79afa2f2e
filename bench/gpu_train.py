"""GPU figures (issue 13), run by ``bench/gpu_check.sh`` on a CUDA machine.

    .venv/bin/python bench/gpu_train.py [--steps 120]

Fine-tunes the bundled MiniLM (SMS spam, classification, max_length 128) and pretrains
the GPT-2 small preset (124M, ``gpt2``/``base``, max_length 1024) through the engine
(``run_training``, the code a job runs), in bf16 then fp16. For each it prints samples/s,
real tokens/s (attention-mask sum, from the job's own progress events, first 20% of the
steps left out as warm-up), MFU = 6 x N x tokens/s / the measured bf16 matmul FLOP/s of
this GPU, and peak GPU memory. Then an out-of-memory case, to show the friendly message.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SAMPLES = ROOT / "llmweb" / "catalog" / "samples"


def matmul_flops(n: int = 8192, reps: int = 40) -> float:
    """Measured dense bf16 matmul FLOP/s: the ceiling MFU is taken against."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def process(source: Path, out: Path, schema: str) -> Path:
    from jobs.engine.base import NullReporter
    from jobs.engine.data import ProcessConfig, process_dataset

    process_dataset(
        ProcessConfig(source=source, out_dir=out, schema=schema, seed=42), NullReporter()
    )
    return out


def long_texts(rows: int, chars: int = 6000) -> list[str]:
    """Rows long enough to fill 1024 tokens: SMS and Tatoeba lines strung together."""
    lines = [
        line.split("\t", 1)[-1]
        for name in ("SMSSpamCollection.tsv", "cmn_eng_tatoeba_sample1k.tsv")
        for line in (SAMPLES / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    rng = random.Random(0)  # noqa: S311 - bench data
    out = []
    for _ in range(rows):
        text = ""
        while len(text) < chars:
            text += rng.choice(lines) + " "
        out.append(text)
    return out


def train(work: Path, name: str, model_dir: Path, data_dir: Path, **params) -> dict:
    import torch

    from jobs.engine.base import ListReporter
    from jobs.engine.finetune import TrainConfig, run_training

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    config = TrainConfig(
        model_dir=model_dir,
        data_dir=data_dir,
        output_dir=work / f"{name}-out",
        checkpoint_dir=work / f"{name}-ckpt",
        **params,
    )
    reporter = ListReporter()
    result = run_training(config, reporter)
    events = reporter.of_kind("progress")
    warm = [e for e in events if e["step"] > config.max_steps // 5 and e.get("samples_per_second")]
    seconds = tokens = samples = 0.0
    previous = {e["step"]: p["step"] for p, e in zip(events, events[1:], strict=False)}
    for e in warm:
        n = (e["step"] - previous[e["step"]]) * config.batch_size * config.grad_accum
        dt = n / e["samples_per_second"]
        seconds, samples, tokens = seconds + dt, samples + n, tokens + e["tokens_per_second"] * dt
    return {
        "samples_per_second": samples / seconds,
        "tokens_per_second": tokens / seconds,
        "parameters": result.num_parameters,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=120)
    a = ap.parse_args()
    import torch

    from jobs.engine.base import EngineError, NullReporter
    from jobs.engine.models import bundled_model_path, create_preset_model

    work = Path(tempfile.mkdtemp(prefix="llmweb-gpu-"))
    peak = matmul_flops()
    device = torch.cuda.get_device_name(0)
    print(f"{device}: measured bf16 matmul {peak / 1e12:.0f} TFLOP/s ({time.strftime('%Y-%m-%d')})")

    sms = process(SAMPLES / "SMSSpamCollection.tsv", work / "sms", "classification")
    corpus = work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in long_texts(1200)))
    lm_data = process(corpus, work / "corpus", "causal-lm")
    gpt2 = work / "gpt2-small"
    create_preset_model(
        family="gpt2", size="base", out_dir=gpt2, texts=long_texts(400), reporter=NullReporter()
    )
    runs = [
        ("MiniLM classification", bundled_model_path(), sms, "finetune", "classification", 64, 128),
        ("GPT-2 small (124M) causal-lm", gpt2, lm_data, "pretrain", "causal-lm", 16, 1024),
    ]
    print(f"\n{'run':32} {'prec':5} {'samples/s':>10} {'tokens/s':>11} {'MFU':>6} {'peak GiB':>9}")
    for label, model_dir, data, job_type, task, batch, length in runs:
        for precision in ("bf16", "fp16"):
            r = train(
                work,
                f"{job_type}-{precision}",
                model_dir,
                data,
                job_type=job_type,
                task=task,
                max_steps=a.steps,
                batch_size=batch,
                max_length=length,
                precision=precision,
            )
            mfu = 6 * r["parameters"] * r["tokens_per_second"] / peak
            print(
                f"{label:32} {precision:5} {r['samples_per_second']:10.1f} "
                f"{r['tokens_per_second']:11.0f} {mfu:6.1%} {r['peak_gib']:9.2f}"
            )

    print("\nOut of memory on purpose (GPT-2 small, batch 1024 x 1024 tokens):")
    try:
        train(
            work,
            "oom",
            gpt2,
            lm_data,
            job_type="pretrain",
            task="causal-lm",
            max_steps=2,
            batch_size=1024,
            max_length=1024,
            precision="bf16",
        )
        print("  no OOM: this GPU holds it (raise the batch to see the message)")
    except EngineError as exc:
        print(f"  {exc.code} (param {exc.param}): {exc}")
        if exc.code != "cuda_oom":
            raise


if __name__ == "__main__":
    main()
