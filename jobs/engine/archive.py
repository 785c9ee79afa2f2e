"""Safe extraction of uploaded archives (.zip, .tar, .tar.gz/.tgz).

An uploaded archive is hostile until proven otherwise: members may try to escape the
destination (``../``, absolute paths, Windows drive letters), point elsewhere (symlinks,
hardlinks, devices), or decompress to far more than they weigh (zip bombs). Declared
sizes are checked before anything is written and bytes are counted again while
writing, because headers can lie. Extraction happens in a staging folder next to the
destination and is moved into place only when every member passed, so a refused
archive leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from jobs.engine.base import EngineError

CHUNK = 1 << 16
# Small files of repeated values legitimately compress by more than 100x; bombs are big.
# Ratios are only enforced once this many bytes have been (or would be) written.
RATIO_GRACE_BYTES = 1 << 20

_JUNK_DIRS = {"__MACOSX"}
_JUNK_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_DRIVE = re.compile(r"^[A-Za-z]:")


def archive_kind(path: str | os.PathLike[str]) -> str | None:
    """Name the archive type of ``path`` ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz").

    The extension decides first; an unknown extension falls back to magic bytes so an
    upload renamed by a browser is still recognised. Returns None for anything else
    (including a plain ``.gz`` of a single file).
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith((".tar.bz2", ".tbz2")):
        return "tar.bz2"
    if name.endswith((".tar.xz", ".txz")):
        return "tar.xz"
    if name.endswith(".tar"):
        return "tar"
    try:
        with open(p, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    magic = {b"\x1f\x8b": "tar.gz", b"BZh": "tar.bz2", b"\xfd7zXZ\x00": "tar.xz"}
    for prefix, kind in magic.items():
        if head.startswith(prefix):
            try:
                return kind if tarfile.is_tarfile(p) else None
            except (OSError, tarfile.TarError, EOFError):
                return None
    return None


def safe_extract(
    archive_path: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str],
    *,
    max_total_bytes: int,
    max_ratio: float = 100.0,
    max_members: int = 10_000,
) -> list[Path]:
    """Extract ``archive_path`` into ``dest_dir`` and return the extracted files.

    ``dest_dir`` must be missing or empty. Junk entries (``__MACOSX/``, ``.DS_Store``,
    AppleDouble ``._*`` files) are skipped. Raises :class:`EngineError` with code
    ``archive_unsafe_path``, ``archive_link``, ``archive_bomb``, ``archive_too_large``,
    ``archive_encrypted``, ``archive_corrupt`` or ``archive_unsupported``; on any
    failure ``dest_dir`` is left as it was.
    """
    archive = Path(archive_path)
    dest = Path(dest_dir)
    kind = archive_kind(archive)
    if kind is None:
        raise EngineError(
            f"{archive.name} is not a supported archive (use .zip, .tar or .tar.gz).",
            code="archive_unsupported",
        )
    if dest.exists() and any(dest.iterdir()):
        raise EngineError(f"Extraction folder {dest} is not empty.", code="archive_dest_not_empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    limits = _Budget(archive.stat().st_size, max_total_bytes, max_ratio, max_members)
    try:
        if kind == "zip":
            written = _extract_zip(archive, staging, limits)
        else:
            written = _extract_tar(archive, staging, limits)
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(dest / rel for rel in written)


class _Budget:
    """Running totals shared by the zip and tar walkers."""

    def __init__(self, archive_bytes: int, max_total: int, max_ratio: float, max_members: int):
        self.archive_bytes = max(archive_bytes, 1)
        self.max_total = max_total
        self.max_ratio = max_ratio
        self.max_members = max_members
        self.written = 0
        self.members = 0

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise EngineError(
                f"The archive has more than {self.max_members:,} files.",
                code="archive_too_large",
            )

    def check_total(self, total: int, what: str) -> None:
        if total > self.max_total:
            raise EngineError(
                f"The archive {what} more than the {_mb(self.max_total)} allowed.",
                code="archive_too_large",
            )
        if total > RATIO_GRACE_BYTES and total / self.archive_bytes > self.max_ratio:
            raise EngineError(
                f"The archive expands more than {self.max_ratio:g}x its size "
                "(a possible zip bomb); upload the files uncompressed or in smaller parts.",
                code="archive_bomb",
            )


def _mb(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def _safe_relpath(name: str) -> Path | None:
    """Validate a member name; None means a junk entry to skip."""
    if "\x00" in name:
        raise EngineError(
            f"Archive member {name!r} has a NUL in its name.", code="archive_unsafe_path"
        )
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise EngineError(
            f"Archive member {name!r} has an absolute path.", code="archive_unsafe_path"
        )
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise EngineError(
            f"Archive member {name!r} points outside the archive (..).",
            code="archive_unsafe_path",
        )
    if not parts:
        return None
    if any(p in _JUNK_DIRS for p in parts) or parts[-1] in _JUNK_FILES:
        return None
    if parts[-1].startswith("._"):
        return None
    return Path(*parts)


def _target(root: Path, rel: Path, seen: set[Path]) -> Path:
    target = root / rel
    # Belt and braces: the name check above should already make this impossible.
    if os.path.commonpath([root.resolve(), target.resolve()]) != str(root.resolve()):
        raise EngineError(f"Archive member {rel} escapes the folder.", code="archive_unsafe_path")
    if rel in seen:
        raise EngineError(f"Archive member {rel} appears twice.", code="archive_unsafe_path")
    seen.add(rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _copy(src: IO[bytes], target: Path, declared: int, budget: _Budget, name: str) -> None:
    member = 0
    with open(target, "xb") as out:
        while chunk := src.read(CHUNK):
            member += len(chunk)
            if member > declared:
                raise EngineError(
                    f"Archive member {name} is larger than its header says (a possible zip bomb).",
                    code="archive_bomb",
                )
            budget.written += len(chunk)
            budget.check_total(budget.written, "expands to")
            out.write(chunk)


def _extract_zip(archive: Path, root: Path, budget: _Budget) -> list[Path]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise EngineError(
            f"{archive.name} is not a readable zip file ({e}).", code="archive_corrupt"
        ) from e
    with zf:
        infos = zf.infolist()
        plan: list[tuple[zipfile.ZipInfo, Path]] = []
        declared = 0
        for info in infos:
            rel = _safe_relpath(info.filename)
            mode = info.external_attr >> 16
            ftype = stat.S_IFMT(mode)
            if rel is None or info.is_dir():
                continue
            if ftype and ftype != stat.S_IFREG:
                raise EngineError(
                    f"Archive member {info.filename} is a link or special file; "
                    "only regular files are accepted.",
                    code="archive_link",
                )
            if info.flag_bits & 0x1:
                raise EngineError(
                    f"Archive member {info.filename} is encrypted.", code="archive_encrypted"
                )
            budget.count_member()
            declared += info.file_size
            budget.check_total(declared, "declares")
            if (
                info.file_size > RATIO_GRACE_BYTES
                and info.file_size / max(info.compress_size, 1) > budget.max_ratio
            ):
                raise EngineError(
                    f"Archive member {info.filename} expands more than {budget.max_ratio:g}x "
                    "(a possible zip bomb).",
                    code="archive_bomb",
                )
            plan.append((info, rel))
        seen: set[Path] = set()
        for info, rel in plan:
            target = _target(root, rel, seen)
            try:
                with zf.open(info) as src:
                    _copy(src, target, info.file_size, budget, info.filename)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
                raise EngineError(
                    f"Archive member {info.filename} could not be read ({e}).",
                    code="archive_corrupt",
                ) from e
        return [rel for _, rel in plan]


def _tar_members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    # Iterating (not getmembers()) reads headers lazily, so a bomb is stopped early.
    while True:
        member = tf.next()
        if member is None:
            return
        yield member


def _extract_tar(archive: Path, root: Path, budget: _Budget) -> list[Path]:
    written: list[Path] = []
    seen: set[Path] = set()
    declared = 0
    try:
        with tarfile.open(archive, "r:*") as tf:
            for m in _tar_members(tf):
                rel = _safe_relpath(m.name)
                if m.issym() or m.islnk():
                    raise EngineError(
                        f"Archive member {m.name} is a link; only regular files are accepted.",
                        code="archive_link",
                    )
                if m.isdir() or rel is None:
                    continue
                if not m.isfile():
                    raise EngineError(
                        f"Archive member {m.name} is a device or special file.",
                        code="archive_link",
                    )
                budget.count_member()
                declared += m.size
                budget.check_total(declared, "declares")
                src = tf.extractfile(m)
                if src is None:  # pragma: no cover - isfile() members always have data
                    continue
                with src:
                    _copy(src, _target(root, rel, seen), m.size, budget, m.name)
                written.append(rel)
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise EngineError(
            f"{archive.name} is not a readable tar file ({e}).", code="archive_corrupt"
        ) from e
    return written
