"""Make values fit for JSON columns and events: numbers stay numbers, the rest a string."""

from __future__ import annotations

import math
from typing import Any


def jsonable(value: Any) -> Any:
    """numpy/torch scalars become Python numbers, NaN/inf become None, sets and tuples
    lists, and anything else (paths, ORM expressions, objects) its ``str`` - so a record
    never fails to save, and an event never carries something a client cannot parse."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)
