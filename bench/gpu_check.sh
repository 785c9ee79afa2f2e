#!/usr/bin/env bash
# GPU check (issue 13), for a CUDA machine with a set-up checkout; under 5 minutes.
#   bench/gpu_check.sh            (PYTHON=... to use another interpreter)
# 1-3: bench/gpu_train.py: MiniLM fine-tune and GPT-2 small (124M) pretrain in bf16, then
#      fp16: samples/s, real tokens/s, MFU against the measured bf16 matmul, peak memory;
#      then an out-of-memory case with the job's friendly message.
# 4:   bench/train.py: the job pipeline (API -> Redis -> Celery worker on CUDA) against a
#      plain Trainer with the same collator and sampler, in bf16 (ratio 2/3, target >= 0.97).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA GPU visible to torch ($PY); this check only runs on a GPU machine." >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

timeout 200 "$PY" bench/gpu_train.py --steps 120
timeout 150 "$PY" bench/train.py --skip-padded --repeats 1 --steps 200 --batch 64 --precision bf16
