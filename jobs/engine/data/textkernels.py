"""Byte-level kernels over Arrow string columns: row hashes, normalisation, emptiness.

They read an array's offsets and data buffers as numpy and work by byte arithmetic,
because per-row Python (or a lookup table, which widens every byte to an 8-byte index)
costs several times more on a 200 MB file. Non-ASCII and null-bearing chunks fall back
to Arrow's RE2 kernels, which define the result: the tests check the two agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NEAR_EMPTY_CHARS = 3


def hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pd.util.hash_array(arr.to_numpy(zero_copy_only=False), categorize=False)


def combine(parts: list[np.ndarray]) -> np.ndarray:
    """One 64-bit hash from per-column hashes (order matters: ("a", "b") != ("b", "a"))."""
    out = parts[0].copy()
    for h in parts[1:]:
        out *= np.uint64(0x9E3779B97F4A7C15)
        out ^= h
    return out


def string_chunks(col: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    return [c.cast(pa.string()) if not pa.types.is_string(c.type) else c for c in chunks]


def offsets_and_bytes(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets relative to the data, data bytes) of a null-free string array."""
    n = len(chunk)
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset : chunk.offset + n + 1]
    data = chunk.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


def row_sums(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-row count of a per-byte bool array (``reduceat``, with empty rows set to 0)."""
    rows = offsets.size - 1
    if rows <= 0 or mask.size == 0:
        return np.zeros(max(rows, 0), dtype=np.int64)
    starts = np.minimum(offsets[:-1], mask.size - 1)  # an empty last row starts at the end
    sums = np.add.reduceat(mask.view(np.uint8), starts, dtype=np.int64)
    sums[offsets[1:] == offsets[:-1]] = 0
    return sums


def ascii_fold(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ASCII lower-cased bytes, which are letters or digits) by byte arithmetic.

    Arithmetic on uint8 runs at memory speed; a lookup table indexed by the bytes costs
    an 8-byte index per byte first (numpy converts indices to intp).
    """
    upper = (data - np.uint8(65)) < 26
    lowered = data | (upper.view(np.uint8) << np.uint8(5))
    keep = ((lowered - np.uint8(97)) < 26) | ((data - np.uint8(48)) < 10)
    return lowered, keep


def bitmap(mask: np.ndarray) -> pa.BooleanArray:
    """A numpy bool array as an Arrow one (``packbits`` is ~5x faster than ``pa.array``)."""
    bits = np.packbits(mask, bitorder="little")
    return pa.BooleanArray.from_buffers(pa.bool_(), mask.size, [None, pa.py_buffer(bits)])


def ascii_spaces(data: np.ndarray) -> np.ndarray:
    r"""RE2's ``\s`` (ASCII only): tab, newline, form feed, carriage return and space."""
    return (data == 32) | (((data - np.uint8(9)) < 5) & (data != 11))


def near_empty(col: pa.Array | pa.ChunkedArray, letters: np.ndarray | None = None) -> np.ndarray:
    r"""Rows with fewer than ``NEAR_EMPTY_CHARS`` characters once ``\s`` is removed.

    ``letters`` (per-row count of letters and digits, from :func:`normalized`) settles
    every row that has enough of them: only the others are counted here.
    """
    out = []
    start = 0
    for chunk in string_chunks(col):
        if letters is not None:
            maybe = np.flatnonzero(letters[start : start + len(chunk)] < NEAR_EMPTY_CHARS)
            start += len(chunk)
            short = np.zeros(len(chunk), dtype=bool)
            if maybe.size:
                short[maybe] = near_empty(chunk.take(pa.array(maybe)))
            out.append(short)
            continue
        if chunk.null_count:
            short = pc.less(
                pc.utf8_length(pc.replace_substring_regex(chunk, r"\s+", "")), NEAR_EMPTY_CHARS
            )
            out.append(np.asarray(pc.fill_null(short, False)))
            continue
        offsets, data = offsets_and_bytes(chunk)
        spaces = row_sums(ascii_spaces(data), offsets)
        chars = np.asarray(pc.utf8_length(chunk), dtype=np.int64)
        out.append(chars - spaces < NEAR_EMPTY_CHARS)
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def normalized(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes of the text lower-cased with letters and digits only, how many of those
    characters each row has). ASCII is done by byte arithmetic, the rest by RE2."""
    found, letters = [], []
    for chunk in string_chunks(col):
        if chunk.null_count == 0:
            offsets, data = offsets_and_bytes(chunk)
            if data.size == 0 or data.max() < 128:
                lowered, keep = ascii_fold(data)
                counts = row_sums(keep, offsets)
                new_offsets = np.zeros(counts.size + 1, dtype=np.int32)
                np.cumsum(counts, out=new_offsets[1:])
                kept = pc.filter(pa.array(lowered), bitmap(keep))
                norm = pa.StringArray.from_buffers(
                    len(chunk), pa.py_buffer(new_offsets), kept.buffers()[1]
                )
                found.append(hashes(norm))
                letters.append(counts)
                continue
        norm = pc.replace_substring_regex(pc.utf8_lower(chunk), r"[^\p{L}\p{N}]+", "")
        found.append(hashes(norm))
        letters.append(np.asarray(pc.fill_null(pc.utf8_length(norm), 0), dtype=np.int64))
    if not found:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found), np.concatenate(letters)


def normalized_hashes(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return normalized(col)[0]


def distinct(values: np.ndarray) -> int:
    """Distinct values by sorting (numpy's hash-based ``unique`` is slower here)."""
    if values.size == 0:
        return 0
    s = np.sort(values)
    return 1 + int(np.count_nonzero(s[1:] != s[:-1]))


def hits(values: np.ndarray, sorted_pool: np.ndarray) -> int:
    """How many of ``values`` occur in ``sorted_pool``."""
    if sorted_pool.size == 0 or values.size == 0:
        return 0
    at = np.minimum(np.searchsorted(sorted_pool, values), sorted_pool.size - 1)
    return int(np.count_nonzero(sorted_pool[at] == values))
