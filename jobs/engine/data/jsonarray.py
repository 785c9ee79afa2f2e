"""Stream the elements of a top-level JSON array without loading the file.

``json.load`` on a 200 MB array would build the whole object graph in memory; here a
buffer of a few chunks is decoded one element at a time with ``raw_decode``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

from jobs.engine.base import EngineError

CHUNK = 256 * 1024
_SPACE = re.compile(r"\s*")


def iter_json_array(f: IO[str], limit: int) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array with their starting line."""
    decoder = json.JSONDecoder()
    buf, pos, line, eof = "", 0, 1, False
    expect = "["

    def more() -> bool:
        nonlocal buf, pos, eof
        chunk = f.read(CHUNK)
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0
        return bool(chunk)

    while True:
        while True:
            m = _SPACE.match(buf, pos)
            assert m is not None  # \s* always matches
            line += buf.count("\n", pos, m.end())
            pos = m.end()
            if pos < len(buf) or not more():
                break
        if pos >= len(buf):
            if expect == "[":
                return
            raise EngineError(
                f"The JSON array is not closed (ends at line {line:,}).", code="invalid_json"
            )
        ch = buf[pos]
        if expect == "[":
            if ch != "[":
                raise EngineError(
                    "A .json file must hold an array of objects ([{...}, ...]) or one object "
                    "per line (JSON Lines).",
                    code="invalid_json",
                )
            pos, expect = pos + 1, "value"
            continue
        if ch == "]" and expect in ("value", "sep"):
            return
        if expect == "sep":
            if ch != ",":
                raise EngineError(
                    f"Expected ',' or ']' at line {line:,} of the JSON array.", code="invalid_json"
                )
            pos, expect = pos + 1, "value"
            continue
        try:
            obj, end = decoder.raw_decode(buf, pos)
            err = None
        except json.JSONDecodeError as e:
            obj, end, err = None, len(buf), e
        # A value that reaches the end of the buffer may continue in the next chunk.
        if end >= len(buf) and not eof:
            if len(buf) - pos > limit:
                raise EngineError(
                    f"The JSON record starting at line {line:,} is larger than "
                    f"{limit:,} characters.",
                    code="record_too_large",
                )
            more()
            continue
        if err is not None:
            raise EngineError(f"Invalid JSON at line {line:,}: {err.msg}.", code="invalid_json")
        yield line, obj
        line += buf.count("\n", pos, end)
        pos, expect = end, "sep"
