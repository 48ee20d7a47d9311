"""Files that hold many documents: JSON Lines and WARC, plain or compressed.

A container is read as one decompressed byte stream; a record inside it is
addressed by its offset and length in that stream, so that the same code reads
plain and compressed files. What cannot be re-read by seeking (a compressed
stream) is copied, for the records pass 2 needs, to a spool file inside OUT
(``spooled``) and read from there.
"""

from __future__ import annotations

import bisect
import bz2
import contextlib
import gzip
import hashlib
import io
import itertools
import lzma
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import zstandard

from dedup.document import Document, DocumentTable, Source, Status, printable
from dedup.errors import InputChangedError

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".warc": "warc"}
CONTAINER_KINDS = ("jsonl", "warc")
_CONTAINER_NAME = re.compile(  # ASCII case only, to the very end: as str.lower() and endswith decide
    "({})(?:{})?\\Z".format("|".join(map(re.escape, _KINDS)), "|".join(map(re.escape, COMPRESSIONS))),
    re.IGNORECASE | re.ASCII,
)
CONTAINER_GLOBS = tuple(f"*{kind}{c}" for kind in _KINDS for c in ("", *COMPRESSIONS))
# What a damaged compressed stream raises while it is read.
DAMAGE = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)
_CHUNK = 1 << 16
# Canonical .gz outputs: level 4 is deflate's fastest lazy-matching level. Measured on 40 MB of the
# scale corpus: 7x faster than level 6 for 2% more bytes (43.8% of the input against 41.5%).
GZIP_LEVEL = 4


def compression(name: str) -> str:
    """The compression suffix of a file name (``""`` for none).

    Example:
        >>> compression("feed.jsonl.zst"), compression("crawl.WARC.GZ"), compression("a.jsonl")
        ('.zst', '.gz', '')
    """
    lower = name.lower()
    return next((c for c in COMPRESSIONS if lower.endswith(c)), "")


def container_kind(name: str) -> str | None:
    """``"jsonl"`` or ``"warc"`` for a container's file name, ``None`` for anything else.

    Example:
        >>> container_kind("a.ndjson.xz"), container_kind("crawl.warc.gz"), container_kind("a.txt.gz")
        ('jsonl', 'warc', None)
        >>> container_kind("A.JSONL.GZ"), container_kind("b.jsonl\\n"), container_kind("c.j\\u017fonl")
        ('jsonl', None, None)
    """
    if (found := _CONTAINER_NAME.search(name)) is None:  # one search: a listing asks for every file
        return None
    return _KINDS[found.group(1).lower()]


_JOINED = 1 << 16  # names searched at once by ``containers_among``
_CONTAINER_ENDS = re.compile(_CONTAINER_NAME.pattern.removesuffix("\\Z") + "(?=\0)", _CONTAINER_NAME.flags)


def containers_among(names: Sequence[str]) -> list[int]:
    """The places of the names among ``names`` that ``container_kind`` takes for containers, by one
    search of them all joined (a cron night's listing of 100,000 names: ~27 against ~4 ms).

    Example:
        >>> containers_among(["a.txt", "b.JSONL.gz", "c.warc.txt", "d.warc", "e.jsonl\\n"])
        [1, 3]
    """
    places = []
    for at in range(0, len(names), _JOINED):  # (a few MB joined at a time)
        part = names[at : at + _JOINED]
        if found := [m.end() for m in _CONTAINER_ENDS.finditer("\0".join(part) + "\0")]:
            ends = list(itertools.accumulate(len(name) + 1 for name in part))  # each name's NUL, + 1
            places += [at + bisect.bisect_right(ends, end) for end in found]
    return places


# zstd frames (RFC 8878): what ``_Frames`` expects next.
_UNKNOWN, _MAGIC, _SKIPPABLE, _DESCRIPTOR, _BLOCK = range(5)
_ZSTD_MAGIC, _SKIPPABLE_MAGIC = 0xFD2FB528, 0x184D2A50  # skippable: the last 4 bits are free


class _Frames:
    """A zstd file's compressed bytes, as read, followed frame by frame: whether they end between frames.

    Only the headers are read: a frame's, then each block's, whose content (one
    byte for an RLE block) and the frame's checksum are passed over. What is not
    a frame ends the following, and the decompressor's word on it stands.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._state, self._want, self._head = _MAGIC, 4, b""  # the next header, its size, its bytes so far
        self._skip = 0  # bytes before that header
        self._checksum = 0  # the frame's checksum size, after its last block

    @property
    def between(self) -> bool:
        return self._state == _UNKNOWN or (self._state == _MAGIC and not self._head and not self._skip)

    def read(self, size: int) -> bytes:
        data = self._raw.read(size)
        at = 0
        while at < len(data) and self._state != _UNKNOWN:
            if self._skip:
                step = min(self._skip, len(data) - at)
                self._skip, at = self._skip - step, at + step
                continue
            take = self._want - len(self._head)
            self._head, at = self._head + data[at : at + take], at + take
            if len(self._head) == self._want:
                self._header(int.from_bytes(self._head, "little"))
                self._head = b""
        return data

    def _header(self, value: int) -> None:
        if self._state == _MAGIC:
            if value == _ZSTD_MAGIC:
                self._state, self._want = _DESCRIPTOR, 1
            else:
                self._state = _SKIPPABLE if value & ~0xF == _SKIPPABLE_MAGIC else _UNKNOWN
        elif self._state == _SKIPPABLE:  # its size
            self._state, self._want, self._skip = _MAGIC, 4, value
        elif self._state == _DESCRIPTOR:
            single = value >> 5 & 1  # no window descriptor; a content size of at least one byte
            self._skip = 1 - single + (0, 1, 2, 4)[value & 3] + ((0, 2, 4, 8)[value >> 6] or single)
            self._state, self._want, self._checksum = _BLOCK, 3, 4 if value & 4 else 0
        elif value >> 1 & 3 == 3:  # a block of the reserved type
            self._state = _UNKNOWN
        else:  # a block: last flag, type (raw, RLE, compressed), size
            self._skip = 1 if value >> 1 & 3 == 1 else value >> 3
            if value & 1:
                self._state, self._want, self._skip = _MAGIC, 4, self._skip + self._checksum

    def close(self) -> None:
        self._raw.close()


class _ZstdReader(io.RawIOBase):
    """Decompressed zstd frames, one after another; a truncated last frame raises ``EOFError``.

    ``zstandard``'s stream reader decompresses no more than the buffer it fills
    (``decompressobj`` returns all that an input chunk holds: gigabytes from 64 KB
    of a "bomb") and ends a read at a frame's end, the next one going on, so that
    junk after a frame costs nothing before it. It ends quietly at a truncated
    frame, which would lose the damage instead of recording it: ``_Frames`` tells.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._frames = _Frames(raw)
        self._reader = zstandard.ZstdDecompressor().stream_reader(self._frames, read_size=_CHUNK)  # type: ignore[arg-type]
        self._pending, self._at = b"", 0  # decompressed, not yet returned from _at on

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._at == len(self._pending):  # the same reads whoever asks: damage cuts a stream at one place
            self._pending, self._at = self._reader.read(_CHUNK), 0
            if not self._pending and not self._frames.between:
                raise EOFError("zstd stream ends inside a frame (truncated)")
        n = min(len(buffer), len(self._pending) - self._at)
        buffer[:n] = self._pending[self._at : self._at + n]
        self._at += n
        return n

    def close(self) -> None:
        self._reader.close()
        super().close()


class _Empty(io.RawIOBase):
    """A zero-byte compressed file: damage, as bz2 and xz say, where gzip and zstd would read no data.

    It is not the empty stream a compressor writes (which reads as an empty plain
    file: no record) but one cut before its header, and it gets a record saying so.
    """

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        raise EOFError("the file is empty: not even a header")


def open_stream(path: str) -> IO[bytes]:
    """The decompressed bytes of a container, as a buffered binary stream.

    Raises:
        OSError: the file cannot be opened.
    """
    kind = compression(path)
    if kind and os.stat(path).st_size == 0:
        return io.BufferedReader(_Empty())
    if kind == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == ".bz2":
        return bz2.open(path, "rb")
    if kind == ".xz":
        return lzma.open(path, "rb")
    if kind == ".zst":
        return io.BufferedReader(_ZstdReader(open(path, "rb")), _CHUNK)
    return open(path, "rb")


def unreadable(source: Source, index: int, err: OSError) -> Document:
    """The one record of a container that cannot be opened at all."""
    path = source.key(printable(Path(source.root).name))
    doc = Document(index=index, path=path, source=source, file=source.root)
    doc.status, doc.error = Status.UNREADABLE, f"cannot read: {err.strerror or err}"
    return doc


def open_writer(path: str, like: str) -> IO[bytes]:
    """A file at ``path`` written with the compression of the input ``like``.

    A gzip header holds a time: zero here, so that the same input gives the same bytes.
    """
    kind = compression(like)
    if kind == ".gz":
        return gzip.GzipFile(path, "wb", compresslevel=GZIP_LEVEL, mtime=0)  # type: ignore[return-value]
    if kind == ".bz2":
        return bz2.open(path, "wb")
    if kind == ".xz":
        return lzma.open(path, "wb")
    if kind == ".zst":
        return zstandard.ZstdCompressor().stream_writer(open(path, "wb"))
    return open(path, "wb")


def damage_message(err: BaseException, offset: int, path: str) -> str:
    """What went wrong reading a container, and where (decompressed byte offset).

    A gzip member's CRC (and a bzip2 or xz block's check) is found failing at its end: a flipped
    byte in the middle of a shard's one member is decompressed into altered lines that still
    parse, found only there (``_CHECKED``). The message says so, not only "and after".

    Example:
        >>> damage_message(OSError("CRC check failed 0x1 != 0x2"), 7, "s.jsonl.gz").split("; ")[1]
        'the check covers the gzip member that ends here: lines read before may hold altered text'
    """
    kind = compression(path)
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    where = f"{kind.lstrip('.') or 'file'} data damaged after byte {offset} of the decompressed stream"
    if (within := _CHECKED.get((kind, reason.split(" 0x")[0]))) is not None:
        return f"{where}: {reason}; the check covers {within}: lines read before may hold altered text"
    return f"{where}: {reason}"


# The errors of a check found failing after the data it covers was given out: a flipped bit then
# gave altered lines before the error (gzip: 5-12 lines a flip; bzip2 135 flips of 150; xz 14
# of 1,500, in a helper's trials; zstd none: it checks a block before giving it out).
_CHECKED = {
    (".gz", "CRC check failed"): "the gzip member that ends here",
    (".gz", "Incorrect length of data produced"): "the gzip member that ends here",
    (".bz2", "Invalid data stream"): "its bzip2 block (at most 900 kB)",
    (".xz", "Corrupt input data"): "its xz block",
}


def read_records(path: str, wanted: Iterable[tuple[int, int]], tail: int = 0) -> Iterator[bytes]:
    """The bytes at (offset, length) in a container's decompressed stream; offsets ascending.

    Seeks in a plain file; reads through a compressed one. ``tail``: up to that many
    bytes after each span too, as far as the stream can be read (a JSONL line's
    ending, to tell LF from CRLF). A stream damaged right after a line pass 1 kept
    ends there: its tail is what came before the damage, and only a span asked for
    after it raises.

    Raises:
        OSError, EOFError, ...: the file cannot be read (``DAMAGE``).
    """
    with open_stream(path) as fh:
        seekable = not compression(path)
        position, last, last_offset = 0, b"", 0
        damaged: BaseException | None = None
        for offset, length in wanted:
            if damaged is not None:
                raise damaged
            if seekable:
                fh.seek(offset)
                data = fh.read(length + tail)
            else:
                start = offset - last_offset
                head = last[start : start + length + tail] if offset < position else b""
                while position < offset:
                    skipped = len(fh.read(min(_CHUNK, offset - position)))
                    if not skipped:
                        break
                    position += skipped
                data = head + fh.read(max(length - len(head), 0))
                if tail and len(data) < length + tail:
                    try:  # a byte at a time: what a buffered read got before the damage is not lost
                        while len(data) < length + tail and (byte := fh.read(1)):
                            data += byte
                    except DAMAGE as err:
                        damaged = err
                position = max(position, offset + len(data))
            last, last_offset = data, offset
            yield data


class Spool:
    """Records of compressed containers that pass 2 reads again, copied to one plain file.

    A compressed stream cannot be read from the middle; reading it from the
    start for every document would be quadratic. The spool is written before
    pass 2, by one sequential read of each container holding a wanted record,
    and removed after it.
    """

    def __init__(self, path: str, offsets: dict[int, int]) -> None:
        self.path = path
        self.offsets = offsets  # document index -> offset in the spool file

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def make_spool(docs: DocumentTable, wanted: Iterable[int], out: Path) -> Spool | None:
    """Copy the wanted records of compressed containers to a spool file in OUT.

    Returns ``None`` when no wanted record is in a compressed container.

    Raises:
        InputChangedError: a record's bytes differ from the first read.
    """
    by_file: dict[str, list[int]] = {}
    for i in wanted:
        if docs.offset(i) >= 0 and compression(docs.file(i)):
            by_file.setdefault(docs.file(i), []).append(i)
    if not by_file:
        return None
    fd, path = tempfile.mkstemp(dir=out, prefix=".spool.", suffix=".tmp")
    offsets: dict[int, int] = {}
    try:
        with os.fdopen(fd, "wb") as dst:
            written = 0
            for file in sorted(by_file):
                indices = sorted(set(by_file[file]), key=docs.offset)
                records = read_records(file, [(docs.offset(i), docs.size(i)) for i in indices])
                try:
                    for i, data in zip(indices, records, strict=True):
                        if hashlib.sha256(data).hexdigest() != docs.sha256(i):
                            raise InputChangedError(
                                f"{file}: changed while dedup was running; run again when it is stable"
                            )
                        offsets[i] = written
                        dst.write(data + b"\n")
                        written += len(data) + 1
                except DAMAGE as err:
                    raise InputChangedError(f"{file}: cannot be read again: {err}") from err
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return Spool(path, offsets)
