"""Demo content for a new installation; grows as datasets and models land."""

from __future__ import annotations


def seed_demo(*, team, user, stdout=None) -> None:
    return None
