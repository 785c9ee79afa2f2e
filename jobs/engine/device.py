"""Which device this process computes on, in words a job page can show."""

from __future__ import annotations


def device_description() -> str:
    """``cuda:0 NVIDIA H200`` or ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:0 {torch.cuda.get_device_name(0)}"
    return "cpu"
