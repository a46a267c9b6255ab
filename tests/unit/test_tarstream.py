"""The lean tar reader against Python's tarfile, on every format a layer may use, and on broken input."""

from __future__ import annotations

import io
import tarfile

import pytest

from dockyard.images.tarstream import TarFormatError, TarStream


def build(fmt: int, pax_global: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_global) as tar:
        for name, data in [
            ("a/b.txt", b"hello"),
            ("long/" + "x" * 150 + "/file", b"data" * 300),
            ("ü/ñ", b""),
            ("/abs/../x", b"q" * 511),
            ("exact", b"z" * 512),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o4755, 1700000000
            info.uid = 70000000 if fmt == tarfile.GNU_FORMAT else 1000  # base-256 in GNU format
            if fmt == tarfile.PAX_FORMAT:
                info.pax_headers = {"SCHILY.xattr.user.x": "v", "mtime": "1700000000.123456789"}
            tar.addfile(info, io.BytesIO(data))
        for name, kind, link in [
            ("d", tarfile.DIRTYPE, ""),
            ("s", tarfile.SYMTYPE, "l" * 200),
            ("h", tarfile.LNKTYPE, "a/b.txt"),
            ("c", tarfile.CHRTYPE, ""),
            ("f", tarfile.FIFOTYPE, ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link if fmt != tarfile.USTAR_FORMAT or len(link) < 100 else "short"
            info.devmajor, info.devminor = (1, 3) if kind == tarfile.CHRTYPE else (0, 0)
            tar.addfile(info)
    return buf.getvalue()


def entries_of(reader, archive) -> list[tuple]:
    out = []
    for m in archive:
        data = reader(archive, m).read() if m.isreg() else None
        out.append(
            (
                m.name,
                m.type,
                m.mode,
                m.uid,
                m.gid,
                m.size,
                m.mtime,
                m.linkname,
                m.devmajor,
                m.devminor,
                dict(m.pax_headers),
                data,
                m.isreg(),
                m.isdir(),
                m.issym(),
                m.islnk(),
                m.ischr(),
                m.isfifo(),
            )
        )
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_same_entries_as_tarfile(fmt):
    data = build(fmt, {"comment": "global"} if fmt == tarfile.PAX_FORMAT else None)
    expected = entries_of(
        lambda a, m: a.extractfile(m),
        tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8", errors="surrogateescape"),
    )
    got = entries_of(lambda a, m: a.extractfile(m), TarStream(io.BytesIO(data)))
    assert got == expected
    assert len(got) == 10


def test_unread_data_is_skipped():
    data = build(tarfile.PAX_FORMAT)
    names = [m.name for m in TarStream(io.BytesIO(data))]  # never reads any file's data
    assert names[0] == "a/b.txt" and names[-1] == "f"


def test_empty_and_truncated_and_corrupt():
    with pytest.raises(TarFormatError, match="empty stream"):
        TarStream(io.BytesIO(b"")).next()
    data = build(tarfile.GNU_FORMAT)
    archive = TarStream(io.BytesIO(data[:700]))
    first = archive.next()
    with pytest.raises(TarFormatError, match="unexpected end"):
        archive.extractfile(first).read()
        archive.next()
    corrupt = bytearray(data)
    corrupt[1024 + 10] ^= 0x55  # the second header (after 512 of header and 512 of data): bad checksum
    archive = TarStream(io.BytesIO(bytes(corrupt)))
    archive.next()
    with pytest.raises(TarFormatError, match="checksum"):
        while archive.next():
            pass


def test_not_a_tar():
    archive = TarStream(io.BytesIO(b"this is not a tar archive" * 40))
    with pytest.raises(TarFormatError):
        archive.next()
    assert archive.first
