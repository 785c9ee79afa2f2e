"""Text encoding: detect, check a claimed one, and transcode to UTF-8 in chunks.

Uploads come from Excel on Chinese Windows (GBK/GB18030), Notepad (UTF-8 with BOM,
UTF-16) and everything else (UTF-8). Detection uses strict decoding attempts on a few
windows spread over the file rather than statistics, because a strict decoder that
succeeds on several windows is rarely wrong, while a statistical guess on short
Chinese text often is.
"""

from __future__ import annotations

import codecs
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path

from jobs.engine.base import EngineError

WINDOW = 64 * 1024
N_WINDOWS = 8
CHUNK = 1 << 20
_UTF8 = {"utf-8", "utf-8-sig"}
_UTF16 = {"utf-16", "utf-16-le", "utf-16-be"}
_GB = {"gb18030", "gbk", "gb2312", "cp936"}
_ALLOWED_CONTROLS = set("\t\n\r\f\v\x1b")


def _canonical(name: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError as e:
        raise EngineError(
            f"Unknown encoding {name!r}; use utf-8, utf-8-sig, utf-16 or gb18030.",
            code="unknown_encoding",
            param="encoding",
        ) from e
    return codec.replace("_", "-")


def _family(enc: str) -> str:
    if enc in _UTF8:
        return "utf-8"
    if enc in _UTF16:
        return "utf-16"
    if enc in _GB:
        return "gb"
    return enc


def _windows(path: Path) -> list[tuple[bytes, bool]]:
    """Up to ``N_WINDOWS`` samples as (bytes, reaches_eof); later ones start after a newline.

    A newline byte is never part of a multi-byte UTF-8 or GB18030 character, so cutting
    there keeps each window decodable on its own.
    """
    size = path.stat().st_size
    out: list[tuple[bytes, bool]] = []
    with open(path, "rb") as f:
        head = f.read(WINDOW)
        out.append((head, len(head) >= size))
        if size <= WINDOW:
            return out
        step = (size - WINDOW) // (N_WINDOWS - 1)
        for i in range(1, N_WINDOWS):
            pos = WINDOW + (i - 1) * step if i < N_WINDOWS - 1 else size - WINDOW
            f.seek(pos)
            data = f.read(WINDOW)
            cut = data.find(b"\n")
            if cut < 0:
                continue
            out.append((data[cut + 1 :], pos + len(data) >= size))
    return out


def _decodes(windows: list[tuple[bytes, bool]], enc: str) -> str | None:
    """Decoded text of all windows, or None if any window fails strict decoding."""
    parts = []
    for data, final in windows:
        try:
            parts.append(codecs.getincrementaldecoder(enc)("strict").decode(data, final=final))
        except UnicodeDecodeError:
            return None
    return "".join(parts)


# ASCII controls other than the allowed ones; the rest of the ASCII range is never "bad".
_ASCII_BAD = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_NON_ASCII = re.compile("[^\x00-\x7f]")


def _looks_binary(text: str) -> bool:
    """More than 1% control, surrogate, private-use or unassigned characters.

    Counted by regex for ASCII and per distinct character beyond it (text is mostly ASCII,
    and its other characters repeat): a category lookup per character took 0.4 s on the
    sampled windows of every upload.
    """
    if not text:
        return False
    bad = len(_ASCII_BAD.findall(text))
    for ch, n in Counter(_NON_ASCII.findall(text)).items():
        if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in _ALLOWED_CONTROLS:
            bad += n
    return bad / len(text) > 0.01


def _utf16_from_nuls(head: bytes) -> str | None:
    """UTF-16 without a BOM shows NULs in every other byte for Latin text."""
    even = head[0::2].count(0)
    odd = head[1::2].count(0)
    half = max(len(head) // 2, 1)
    if odd / half > 0.3 and even < odd / 10:
        return "utf-16-le"
    if even / half > 0.3 and odd < even / 10:
        return "utf-16-be"
    return None


def _detect(path: Path) -> tuple[str, bool]:
    """Return (encoding, confident). Not confident means plain ASCII so far."""
    windows = _windows(path)
    head = windows[0][0]
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", True
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", True
    if b"\x00" in head:
        enc = _utf16_from_nuls(head[: len(head) // 2 * 2])
        if enc and _decodes([(head[: len(head) // 2 * 2], False)], enc) is not None:
            return enc, True
        raise EngineError(
            f"{path.name} looks like a binary file (it contains NUL bytes), not text.",
            code="binary_file",
        )
    for enc in ("utf-8", "gb18030"):
        text = _decodes(windows, enc)
        if text is None:
            continue
        if _looks_binary(text):
            break
        return enc, not text.isascii()
    # Legacy encodings (Latin-1, Shift-JIS...) have no control bytes; binary data has many.
    sample = b"".join(w for w, _ in windows)
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13) or b == 127)
    if sample and controls / len(sample) < 0.005:
        raise EngineError(
            f"{path.name} is text in an unsupported encoding (not UTF-8, UTF-16 or GB18030); "
            "re-save it as UTF-8.",
            code="unsupported_encoding",
        )
    raise EngineError(
        f"{path.name} looks like a binary file, not text in UTF-8, UTF-16 or GB18030.",
        code="binary_file",
    )


def detect_encoding(path: str | os.PathLike[str]) -> str:
    """Detect ``utf-8``, ``utf-8-sig``, ``utf-16`` (``-le``/``-be`` without a BOM) or ``gb18030``.

    Raises ``EngineError`` ``binary_file`` for binary data and ``unsupported_encoding``
    for text in another encoding (Latin-1, Shift-JIS...).
    """
    return _detect(Path(path))[0]


def resolve_encoding(path: str | os.PathLike[str], claimed: str | None = None) -> str:
    """The encoding to read ``path`` with, honouring ``claimed`` when the bytes allow it.

    A claim is trusted when the file is plain ASCII so far (detection cannot tell), and
    refined within its family (``utf-8`` + BOM -> ``utf-8-sig``, ``gbk`` -> ``gb18030``).
    A claim that fails to decode, or contradicts a confident detection (BOM, UTF-16 NULs,
    valid non-ASCII UTF-8), raises ``encoding_mismatch`` naming both encodings.
    """
    p = Path(path)
    if claimed is None:
        return _detect(p)[0]
    want = _canonical(claimed)
    try:
        detected, confident = _detect(p)
    except EngineError as e:
        detected, confident = "", False
        detect_error: EngineError | None = e
    else:
        detect_error = None
    if detected and _family(want) == _family(detected):
        return "gb18030" if _family(want) == "gb" else detected
    # UTF-16 always shows (BOM or NULs around ASCII newlines); claiming it elsewhere is wrong.
    plausible = _family(want) != "utf-16" and not confident
    if plausible and _decodes(_windows(p), want) is not None:
        if detect_error is not None and detect_error.code == "binary_file":
            raise detect_error
        return "gb18030" if _family(want) == "gb" else want
    found = f"it looks like {detected}" if detected else "its encoding could not be detected"
    raise EngineError(
        f"The file was declared as {claimed} but does not decode as {claimed}; {found}.",
        code="encoding_mismatch",
        param="encoding",
    )


def transcode_to_utf8(
    src: str | os.PathLike[str], encoding: str, dest: str | os.PathLike[str]
) -> Path:
    """Rewrite ``src`` as BOM-less UTF-8 in ``dest``, ``CHUNK`` bytes at a time.

    Decoding is strict: a byte that does not belong to ``encoding`` raises
    ``encoding_error`` with its byte offset and line, instead of silently inserting
    replacement characters into someone's training data.
    """
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    lines = 1
    first = True
    with open(src, "rb") as fin, open(dest, "w", encoding="utf-8", newline="") as fout:
        while True:
            chunk = fin.read(CHUNK)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                raise EngineError(
                    f"Byte {offset + e.start:,} (around line {lines:,}) is not valid {encoding}; "
                    "the file mixes encodings or is corrupt.",
                    code="encoding_error",
                    param="encoding",
                ) from e
            if first and text.startswith("\ufeff"):
                text = text[1:]
            first = first and not text
            lines += text.count("\n")
            fout.write(text)
            offset += len(chunk)
            if not chunk:
                break
    return Path(dest)
