"""Which int8 backend makes a model faster on this CPU: torch.ao or torchao.

    .venv/bin/python bench/quantize_backends.py [--repeats 5]

The bundled MiniLM with a classification head, one SMS-like sentence repeated to batch 1
and 32: fp32, ``torch.ao.quantization.quantize_dynamic`` (per-channel int8 Linear, what
the compress job uses), and torchao's ``Int8DynamicActivationInt8WeightConfig`` and
``Int8WeightOnlyConfig`` when torchao is installed (it is not a dependency: install it
with ``.venv/bin/pip install torchao`` to run those rows). Median ms per forward pass.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXT = "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    from jobs.engine.models import bundled_model_path, load_for_task
    from jobs.engine.models.quantized import quantize_model

    model, tok = load_for_task(bundled_model_path(), "classification", label_names=["a", "b"])
    model.eval()

    def latency(m, batch: int) -> float:
        enc = tok([TEXT] * batch, padding=True, return_tensors="pt")
        times = []
        with torch.inference_mode():
            m(**enc)
            for _ in range(args.repeats):
                start = time.perf_counter()
                m(**enc)
                times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    variants = {"fp32": model, "torch.ao dynamic int8": quantize_model(copy.deepcopy(model))[0]}
    try:
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )
    except ImportError:
        print("torchao is not installed: its rows are skipped")
    else:
        for name, config in (
            ("torchao int8 dynamic", Int8DynamicActivationInt8WeightConfig()),
            ("torchao int8 weight-only", Int8WeightOnlyConfig()),
        ):
            variant = copy.deepcopy(model)
            quantize_(variant, config)
            variants[name] = variant
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| backend | batch 1 ms | batch 32 ms |\n|---|---|---|")
    for name, variant in variants.items():
        print(f"| {name} | {latency(variant, 1):.1f} | {latency(variant, 32):.1f} |")


if __name__ == "__main__":
    main()
