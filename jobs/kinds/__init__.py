"""Job kinds: the registry every job flows through (see :mod:`jobs.kinds.base`)."""

from jobs.kinds.base import (
    Checked,
    Input,
    Inputs,
    JobKind,
    Outcome,
    all_kinds,
    get_kind,
    register,
    unregister,
)

__all__ = [
    "Checked",
    "Input",
    "Inputs",
    "JobKind",
    "Outcome",
    "all_kinds",
    "get_kind",
    "register",
    "unregister",
]
