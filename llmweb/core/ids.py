"""Bounds for record ids wherever they come from outside: URL paths and request fields.

A 20-digit member id reached SQLite as an int it cannot store (``OverflowError``, a 500).
Ids are 64-bit signed integers (BigAutoField), so at most 18 digits are accepted in a
path (every 18-digit number fits) and fields take ``1 <= id <= MAX_ID``.
"""

from __future__ import annotations

from django.urls import register_converter
from django.urls.converters import get_converters

MAX_ID = 2**63 - 1
ID_REGEX = "[0-9]{1,18}"
ID_FIELD_BOUNDS = {"min_value": 1, "max_value": MAX_ID}
# numpy and torch take seeds in [0, 2**32).
SEED_BOUNDS = {"min_value": 0, "max_value": 2**32 - 1}


class IdConverter:
    """``<id:name>`` in URL patterns: like ``<int:…>``, but never more than 18 digits."""

    regex = ID_REGEX

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


def register() -> None:
    """Make ``<id:…>`` available to URL patterns (idempotent; imported by the URL confs)."""
    if "id" not in get_converters():
        register_converter(IdConverter, "id")


register()
