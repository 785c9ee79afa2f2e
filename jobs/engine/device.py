"""Which device this process computes on, in words a job page can show."""

from __future__ import annotations


def device_description() -> str:
    """``cuda:0 NVIDIA H200`` or ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:0 {torch.cuda.get_device_name(0)}"
    return "cpu"


def free_cpu_threads(window: float = 0.25) -> int:
    """Intra-op threads for training on this CPU: the cores other processes leave free.

    Torch's default (one thread per core) is right on an idle machine; on a shared one its
    threads wait on each other whenever one is descheduled, and a step slows many-fold (we
    measured a tiny BERT step 30x slower with 2 threads than with 1 at load 11 on 2 cores).
    Free cores are read from the kernel's idle time over ``window`` seconds, now (the load
    average lags a minute and would count this worker's previous job). ``OMP_NUM_THREADS``,
    when set, wins.
    """
    import os
    import time

    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        first = _cpu_times()
        time.sleep(window)
        second = _cpu_times()
    except (OSError, ValueError, IndexError):
        return cores
    total = sum(second) - sum(first)
    idle = (second[3] + second[4]) - (first[3] + first[4])  # idle + iowait
    if total <= 0:
        return cores
    free = cores * idle / total
    return max(1, min(cores, round(free)))


def _cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:9]]
