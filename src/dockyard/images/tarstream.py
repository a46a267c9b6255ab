"""A lean streaming tar reader for layer application.

tarfile spends ~50 µs of Python per entry building TarInfo objects; unpacking a layer of small files is
dominated by that. This reader parses exactly what layers use (ustar and old V7 headers, GNU long
names and base-256 numbers, PAX extended and global headers) into small entry objects with the same
attribute names and `is*()` methods as tarfile.TarInfo, so the applier reads either. Anything else
(GNU sparse files, multi-volume archives, a bad checksum after the first header) is an error rather
than a guess.
"""

from __future__ import annotations

import contextlib
import struct
from typing import BinaryIO

BLOCK = 512
REGTYPE, AREGTYPE, LNKTYPE, SYMTYPE = b"0", b"\0", b"1", b"2"
CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE, CONTTYPE = b"3", b"4", b"5", b"6", b"7"
GNU_LONGNAME, GNU_LONGLINK, PAX_HEADER, PAX_GLOBAL = b"L", b"K", b"x", b"g"
_SUPPORTED = frozenset({REGTYPE, AREGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE, CONTTYPE})
_ZERO_BLOCK = bytes(BLOCK)
# name, mode, uid, gid, size, mtime, chksum, type, linkname, magic, version, uname, gname, devmajor,
# devminor, prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_MAX_META = 1 << 20  # a PAX header or GNU long name larger than this is not a layer's


class TarFormatError(Exception):
    """The stream is not a tar archive, or a header is corrupt; the message is one line."""


class TarEntry:
    __slots__ = (
        "name",
        "mode",
        "uid",
        "gid",
        "size",
        "mtime",
        "type",
        "linkname",
        "devmajor",
        "devminor",
        "pax_headers",
        "uname",
        "gname",
    )

    def __init__(self) -> None:
        self.pax_headers: dict[str, str] = {}  # owner names are not kept: layers use numeric ids

    def isreg(self) -> bool:
        return self.type in (REGTYPE, AREGTYPE, CONTTYPE)

    isfile = isreg

    def isdir(self) -> bool:
        return self.type == DIRTYPE

    def issym(self) -> bool:
        return self.type == SYMTYPE

    def islnk(self) -> bool:
        return self.type == LNKTYPE

    def ischr(self) -> bool:
        return self.type == CHRTYPE

    def isblk(self) -> bool:
        return self.type == BLKTYPE

    def isfifo(self) -> bool:
        return self.type == FIFOTYPE


def _number(field: bytes) -> int:
    """An octal field, or GNU base-256 (first byte 0x80 positive, 0xff negative)."""
    if field and field[0] in (0x80, 0xFF):
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            value -= 1 << (8 * (len(field) - 1))
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"invalid number field {field!r} in tar header") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class _EntryReader:
    """The data of the current entry: read() stops at its end, as tarfile.extractfile's object does."""

    def __init__(self, archive: TarStream) -> None:
        self._archive = archive

    def read(self, size: int = -1) -> bytes:
        archive = self._archive
        left = archive._data_left
        if left <= 0:
            return b""
        want = left if size < 0 else min(size, left)
        data = archive._read(want)
        if len(data) < want:
            raise TarFormatError("unexpected end of data")
        archive._data_left -= len(data)
        return data


class TarStream:
    """Iterate the entries of a tar stream read strictly front to back (as `tarfile.open(mode="r|")`)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buffer = bytearray()
        # The current entry's data not read yet, and the padding after it to the next header.
        self._data_left = 0
        self._padding = 0
        self._global_pax: dict[str, str] = {}
        self.first = True

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._stream.read(max(size - len(self._buffer), 1 << 16))
            if not chunk:
                break
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _skip_pending(self) -> None:
        skip = self._data_left + self._padding
        while skip > 0:
            got = len(self._read(min(skip, 1 << 20)))
            if not got:
                raise TarFormatError("unexpected end of data")
            skip -= got
        self._data_left = self._padding = 0

    def extractfile(self, entry: TarEntry) -> _EntryReader:
        return _EntryReader(self)

    def __iter__(self) -> TarStream:
        return self

    def __next__(self) -> TarEntry:
        entry = self.next()
        if entry is None:
            raise StopIteration
        return entry

    def next(self) -> TarEntry | None:
        self._skip_pending()
        pax: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            block = self._read(BLOCK)
            if not block or block == _ZERO_BLOCK:
                if not block and self.first:
                    raise TarFormatError("empty stream")
                return None  # the end-of-archive marker (or a stream that simply ends there)
            if len(block) < BLOCK:
                raise TarFormatError("unexpected end of archive in a header")
            fields = _HEADER.unpack(block)
            self._check_sum(block, fields[6])
            self.first = False
            kind = fields[7]
            size = _number(fields[4])
            if size < 0:
                raise TarFormatError("negative entry size")
            if kind in (GNU_LONGNAME, GNU_LONGLINK, PAX_HEADER, PAX_GLOBAL):
                if size > _MAX_META:
                    raise TarFormatError("extended header too large")
                data = self._read(-(-size // BLOCK) * BLOCK)[:size]
                if len(data) < size:
                    raise TarFormatError("unexpected end of archive in an extended header")
                if kind == GNU_LONGNAME:
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif kind == GNU_LONGLINK:
                    long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif kind == PAX_HEADER:
                    pax.update(_parse_pax(data))
                else:
                    self._global_pax.update(_parse_pax(data))
                continue
            return self._entry(fields, kind, size, {**self._global_pax, **pax}, long_name, long_link)

    def _entry(
        self,
        fields: tuple,
        kind: bytes,
        size: int,
        pax: dict[str, str],
        long_name: str | None,
        long_link: str | None,
    ) -> TarEntry:
        entry = TarEntry()
        name = long_name if long_name is not None else _text(fields[0])
        if long_name is None and fields[9][:5] == b"ustar" and fields[15][:1] not in (b"", b"\0"):
            name = f"{_text(fields[15])}/{name}"
        entry.name = pax.get("path", name)
        entry.linkname = pax.get("linkpath", long_link if long_link is not None else _text(fields[8]))
        entry.mode = _number(fields[1])
        entry.uid = _pax_int(pax, "uid", _number(fields[2]))
        entry.gid = _pax_int(pax, "gid", _number(fields[3]))
        entry.size = _pax_int(pax, "size", size)
        entry.mtime = _number(fields[5])
        entry.devmajor = _number(fields[13]) if kind in (CHRTYPE, BLKTYPE) else 0
        entry.devminor = _number(fields[14]) if kind in (CHRTYPE, BLKTYPE) else 0
        if kind == AREGTYPE and entry.name.endswith("/"):
            kind = DIRTYPE  # old archives mark directories by the name alone
        if kind == DIRTYPE:
            entry.name = entry.name.rstrip("/")  # as tarfile gives directory names
        if "mtime" in pax:
            # A garbage PAX time is ignored, as tarfile does; the applier clamps absurd ones.
            with contextlib.suppress(ValueError):
                entry.mtime = float(pax["mtime"])
        entry.type = kind
        entry.pax_headers = pax
        # As tarfile (and Go) read it: only regular files carry data; other entries' size is ignored.
        # An unknown type keeps its data too, so the applier can reject it by name.
        if entry.isreg() or kind not in _SUPPORTED:
            self._data_left = entry.size
            self._padding = -entry.size % BLOCK
        return entry

    @staticmethod
    def _check_sum(block: bytes, field: bytes) -> None:
        """The header checksum, counting the checksum field as spaces; old tars summed signed bytes."""
        expected = _number(field)
        region = block[:148] + b" " * 8 + block[156:]
        unsigned = sum(region)
        if expected == unsigned:
            return
        if expected != unsigned - 256 * sum(1 for b in region if b > 127):
            raise TarFormatError("bad tar header: checksum mismatch")


def _pax_int(pax: dict[str, str], key: str, default: int) -> int:
    value = pax.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise TarFormatError(f"invalid PAX {key} value {value!r}") from None


def _parse_pax(data: bytes) -> dict[str, str]:
    """PAX records: "<length> <key>=<value>\\n", the length counting the whole record."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            if data[pos:].strip(b"\0"):
                raise TarFormatError("invalid PAX header")
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("invalid PAX record length") from None
        if length <= 0 or pos + length > len(data) or data[pos + length - 1 : pos + length] != b"\n":
            raise TarFormatError("invalid PAX record")
        key, sep, value = data[space + 1 : pos + length - 1].partition(b"=")
        if not sep:
            raise TarFormatError("invalid PAX record")
        text_key = key.decode("utf-8", "surrogateescape")
        records[text_key] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records
