"""Uploaded archives: hostile members are refused and leave nothing behind."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from jobs.engine.archive import archive_kind, safe_extract
from jobs.engine.base import EngineError

MB = 1 << 20


def make_zip(
    path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def refused(tmp_path: Path, archive: Path, code: str | set[str], **limits: int) -> EngineError:
    dest = tmp_path / "out"
    with pytest.raises(EngineError) as err:
        safe_extract(
            archive, dest, max_total_bytes=limits.pop("max_total_bytes", 50 * MB), **limits
        )
    assert err.value.code in ({code} if isinstance(code, str) else code), err.value.message
    # Nothing half-extracted: no destination, no staging folder next to it.
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]
    return err.value


def test_zip_with_parent_member_is_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"ok.csv": b"a,b\n", "../evil.csv": b"x"})
    err = refused(tmp_path, archive, "archive_unsafe_path")
    assert "../evil.csv" in err.message


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "C:\\Windows\\evil.txt", "c:/evil.txt", "a\\..\\..\\evil"]
)
def test_zip_with_absolute_or_windows_member_is_refused(tmp_path, name):
    archive = make_zip(tmp_path / "a.zip", {name: b"x"})
    refused(tmp_path, archive, "archive_unsafe_path")


def test_zip_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link.csv")
        info.external_attr = (0o120777 << 16) | 0
        zf.writestr(info, "/etc/passwd")
    refused(tmp_path, archive, "archive_link")


def test_tar_symlink_and_hardlink_members_are_refused(tmp_path):
    sym = tarfile.TarInfo("data.csv")
    sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
    refused(tmp_path, make_tar(tmp_path / "s.tar.gz", [(sym, None)]), "archive_link")
    (tmp_path / "s.tar.gz").unlink()
    hard = tarfile.TarInfo("data.csv")
    hard.type, hard.linkname = tarfile.LNKTYPE, "other.csv"
    refused(tmp_path, make_tar(tmp_path / "h.tar.gz", [(hard, None)]), "archive_link")


def test_tar_device_member_is_refused(tmp_path):
    dev = tarfile.TarInfo("null")
    dev.type = tarfile.CHRTYPE
    refused(tmp_path, make_tar(tmp_path / "d.tgz", [(dev, None)]), "archive_link")


def test_zip_bomb_over_ratio_is_refused(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.csv": b"0" * (8 * MB)})
    assert archive.stat().st_size * 100 < 8 * MB  # really over 100x
    err = refused(tmp_path, archive, "archive_bomb")
    assert "100x" in err.message


def test_zip_over_total_size_is_refused_before_writing(tmp_path):
    archive = make_zip(
        tmp_path / "big.zip",
        {"a.csv": b"x" * 3000, "b.csv": b"y" * 3000},
        compression=zipfile.ZIP_STORED,
    )
    refused(tmp_path, archive, "archive_too_large", max_total_bytes=5000)


def test_zip_whose_header_understates_the_size_is_refused(tmp_path):
    """Headers can lie: bytes are counted while extracting, not just read from the header."""
    archive = make_zip(tmp_path / "liar.zip", {"a.csv": b"abc," * (MB // 2)})
    data = bytearray(archive.read_bytes())
    # Patch the uncompressed size in both the local header and the central directory.
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, 100)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)
    archive.write_bytes(bytes(data))
    # Our byte count or zipfile's own stop at the declared size + CRC check catches it.
    refused(tmp_path, archive, {"archive_bomb", "archive_corrupt"})


def test_too_many_members_is_refused(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(6)})
    err = refused(tmp_path, archive, "archive_too_large", max_members=5)
    assert "5" in err.message


def test_corrupt_zip_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    refused(tmp_path, archive, "archive_corrupt")


def test_junk_is_skipped_and_nested_files_are_extracted(tmp_path):
    archive = make_zip(
        tmp_path / "mac.zip",
        {
            "data/train.csv": b"text,label\nhi,a\n",
            "__MACOSX/data/._train.csv": b"junk",
            "data/.DS_Store": b"junk",
            "data/._train.csv": b"junk",
        },
    )
    files = safe_extract(archive, tmp_path / "out", max_total_bytes=MB)
    assert files == [tmp_path / "out" / "data" / "train.csv"]
    assert files[0].read_bytes() == b"text,label\nhi,a\n"
    assert not (tmp_path / "out" / "__MACOSX").exists()


def test_tar_gz_is_extracted(tmp_path):
    info = tarfile.TarInfo("sub/rows.tsv")
    archive = make_tar(tmp_path / "rows.tar.gz", [(info, b"ham\thello\n")])
    files = safe_extract(archive, tmp_path / "out", max_total_bytes=MB)
    assert [f.relative_to(tmp_path / "out").as_posix() for f in files] == ["sub/rows.tsv"]


def test_non_empty_destination_is_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"a.csv": b"x"})
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(EngineError):
        safe_extract(archive, dest, max_total_bytes=MB)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_archive_kind_reads_extension_then_magic(tmp_path):
    assert archive_kind("x.ZIP") == "zip"
    assert archive_kind("x.tgz") == "tar.gz"
    assert archive_kind("x.tar") == "tar"
    renamed = make_zip(tmp_path / "upload.bin", {"a.csv": b"x"})
    assert archive_kind(renamed) == "zip"
    gz = make_tar(tmp_path / "upload.dat", [(tarfile.TarInfo("a.csv"), b"x")])
    assert archive_kind(gz) == "tar.gz"
    plain = tmp_path / "data.csv"
    plain.write_text("a,b\n")
    assert archive_kind(plain) is None
