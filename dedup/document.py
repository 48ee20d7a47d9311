"""The typed records that flow between stages."""

from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from dedup.columns import Blobs, Column

if TYPE_CHECKING:
    from dedup.readers.containers import Spool


class Status(StrEnum):
    """What happened to an input; everything but ``OK`` is skipped and recorded."""

    OK = "ok"
    EMPTY = "empty"
    BINARY = "binary"
    UNDECODABLE = "undecodable"
    UNREADABLE = "unreadable"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    OUTSIDE = "outside"  # a symbolic link out of its INPUT directory (not followed by default)
    UNSUPPORTED = "unsupported"  # a container record that holds no article (a WARC request, an image)


@dataclass(frozen=True, slots=True)
class Source:
    """One INPUT argument.

    ``label`` prefixes document paths when several INPUTs are given, so that two
    ``a.txt`` from two directories stay apart in the manifest and in ``canonical/``.
    A container found inside a directory is a source of its own, labelled with
    its path in the manifest (``crawl/a.warc.gz``): its records are ``crawl/a.warc.gz/<id>``.
    """

    kind: str  # "dir", "file", "jsonl" or "warc"
    root: str  # the path as given, made absolute
    label: str
    output: str = ""  # a container's kept records go to canonical/<output> (default: label/file name)

    def key(self, relative: str) -> str:
        return f"{self.label}/{relative}" if self.label else relative


@dataclass(slots=True)
class Document:
    """One input document: where it came from, and what the reading stage made of it.

    ``text`` is only held while a stage needs it; the records kept for the whole
    run carry the small ``Features`` instead.
    """

    index: int
    path: str
    source: Source
    file: str  # the file on disk holding the document
    offset: int = -1  # byte offset of a container's record (decompressed stream), -1 for whole files
    line: int = 0  # JSONL line or WARC record number (1-based), 0 for whole files
    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0  # whole files: to check, cheaply, that the file is unchanged when copied
    status: Status = Status.OK
    error: str | None = None
    text: str | None = None
    # Where the text came from, when that is worth recording: ``encoding`` (not UTF-8),
    # ``url`` and ``record_id`` (WARC). Added to the manifest record as they are.
    extra: dict[str, str] | None = None
    # A cron run's file read again (touched: another mtime) whose bytes, as the state stored them,
    # are already in the corpus counts: read with these same bytes, it is not counted twice.
    counted: str = ""

    def __reduce__(self) -> tuple[type[Document], tuple[object, ...]]:
        # Its fields in order, for its constructor: ~0.8 + 0.4 us where the dataclass's state
        # methods took 1.7 + 1.2 (every document crosses to a pass-1 worker and back).
        return Document, _document_fields(self)


@dataclass(slots=True)
class Features:
    """What pass 1 keeps of an ``ok`` document once its text is dropped."""

    content: int  # 64-bit hash of the normalised token sequence: equal => exact duplicate
    shingles: int  # size of the shingle set, for the containment estimate
    signature: np.ndarray = field(repr=False)  # uint32[num_perm], datasketch affine32
    signals: np.ndarray = field(repr=False)  # float32, quality.INTRINSIC order
    repair: tuple[tuple[str, str], ...] | None = None  # normalize.repair_planned's steps, if ftfy was asked
    text_at: tuple[str, int, int] | None = None  # where its comparison text was written (``text_spill``)

    def __reduce__(self) -> tuple[Callable[..., Features], tuple[object, ...]]:
        # The arrays as bytes: numpy's own reduce of two small arrays took ~5.2 us to pickle and
        # 2.6 to unpickle, this 0.8 and 1.4 (each document's features cross from a pass-1 worker).
        sig, signals = self.signature, self.signals
        arrays = (sig.tobytes(), sig.dtype.str, signals.tobytes(), signals.dtype.str)
        return _features, (self.content, self.shingles, *arrays, self.repair, self.text_at)


def _features(
    content: int,
    shingles: int,
    signature: bytes,
    signature_type: str,
    signals: bytes,
    signals_type: str,
    repair: tuple[tuple[str, str], ...] | None,
    text_at: tuple[str, int, int] | None,
) -> Features:
    """A ``Features`` unpickled: its arrays are read-only views of the bytes (nothing writes to them)."""
    arrays = np.frombuffer(signature, signature_type), np.frombuffer(signals, signals_type)
    return Features(content, shingles, *arrays, repair, text_at)


_document_fields = operator.attrgetter(*(f.name for f in fields(Document)))


_STATUSES = list(Status)
_STATUS_CODE = {status: code for code, status in enumerate(_STATUSES)}
_NO_SHA = bytes(32)


class Paths(Sequence[str]):
    """The documents' manifest paths as one UTF-8 buffer and their ends: ~30 bytes a path where a
    list of strings took ~80 (a string object and a list slot each), the driver's largest column.
    With a directory both are files there (``columns``).

    Example:
        >>> paths = Paths()
        >>> paths.append("a/b.txt"); paths.append("caf\u00e9.txt")
        >>> (len(paths), paths[1], list(paths), paths.index("a/b.txt"))
        (2, 'café.txt', ['a/b.txt', 'café.txt'], 0)
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._blobs = Blobs(directory, "paths")

    def __len__(self) -> int:
        return len(self._blobs)

    def append(self, path: str) -> None:
        self._blobs.append(path.encode("utf-8", "surrogatepass"))

    def extend(self, paths: list[str]) -> None:
        self._blobs.extend([path.encode("utf-8", "surrogatepass") for path in paths])

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self._blobs[i].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def seal(self) -> None:
        self._blobs.seal()


class DocumentTable:
    """Every document of a run, column by column: ~250 bytes each instead of an object each.

    The table lives for the whole run, so its size per document decides peak
    memory at a million documents; ``table[i]`` makes a ``Document`` (without
    text) for the stage that needs one. Whole files in a directory do not store
    their file name: it is the source root joined with the path.

    Example:
        >>> src = Source("dir", "/data", "")
        >>> table = DocumentTable([src])
        >>> table.append(Document(0, "a.txt", src, "/data/a.txt", sha256="ab" * 32, size=5))
        >>> doc = table[0]
        >>> (doc.file, doc.size, doc.sha256 == "ab" * 32, doc.status)
        ('/data/a.txt', 5, True, <Status.OK: 'ok'>)
    """

    def __init__(self, sources: list[Source], directory: Path | None = None) -> None:
        self.sources = list(sources)  # grows by the containers found inside directories
        self._source_no = {s: k for k, s in enumerate(self.sources)}
        self._last_source: Source | None = None  # the source of the document appended last, and its number
        self._last_source_no = -1
        self.spool: Spool | None = None  # while set, its records are read from the spool file
        self.paths = Paths(directory)
        self._source = Column.named("I", directory, "source")
        self._offset = Column.named("q", directory, "offset")
        self._line = Column.named("q", directory, "line")
        self._size = Column.named("q", directory, "size")
        self._mtime = Column.named("q", directory, "mtime")
        self._status = Column.named("B", directory, "status")
        self._sha = Column.named("B", directory, "sha256", 32)
        # Errors and extra fields (a WARC record's url and id): sparse dicts in memory, where a
        # cron run's reading fills them in; with a directory, appended: ``[error, extra]`` or nothing.
        self._notes = Blobs(directory, "notes") if directory else None
        self._errors: dict[int, str] = {}
        self._extras: dict[int, dict[str, str]] = {}
        self._files: dict[int, str] = {}  # sparse: files whose name is not their (escaped) path

    def __len__(self) -> int:
        return len(self.paths)

    def append(self, doc: Document) -> None:
        """Add the next document (``doc.index`` must be the table's length)."""
        assert doc.index == len(self.paths), "documents are added in manifest order"
        self.paths.append(doc.path)
        self._source.append(self._number(doc.source))
        self._offset.append(doc.offset)
        self._line.append(doc.line)
        self._size.append(doc.size)
        self._mtime.append(doc.mtime_ns)
        self._status.append(_STATUS_CODE[doc.status])
        self._sha.extend(bytes.fromhex(doc.sha256) if doc.sha256 else _NO_SHA)
        if self._notes is not None:  # json, not orjson: a message may hold a name's surrogates
            noted = doc.error is not None or bool(doc.extra)
            self._notes.append(json.dumps([doc.error, doc.extra or None]).encode() if noted else b"")
        else:
            if doc.error is not None:
                self._errors[doc.index] = doc.error
            if doc.extra:
                self._extras[doc.index] = doc.extra
        # Only a name with bytes that are not UTF-8, or with a backslash escaped, differs from its path.
        if (not doc.file.isascii() or "\\x" in doc.file) and doc.file != self.file(doc.index):
            self._files[doc.index] = doc.file

    def extend_files(
        self,
        source: Source,
        paths: list[str],
        sizes: np.ndarray,
        mtimes: np.ndarray,
        statuses: np.ndarray,
        shas: bytes,
        errors: dict[int, str],
        files: dict[int, str],
    ) -> None:
        """Add whole files of ``source`` at once, as ``append`` adds each (a cron run's unchanged
        files: ``cron_pass1``). ``statuses``: codes (``Status`` order); ``shas``: 32 bytes each,
        zeros for none; ``errors`` by document index; ``files``: the files whose name may not be
        their path (not ASCII, or holding ``\\x``), by document index."""
        assert self._notes is None, "a table in files is appended to one document at a time"
        n = len(paths)
        self.paths.extend(paths)
        self._source.extend(np.full(n, self._number(source), dtype=np.uint32).tobytes())
        self._offset.extend(np.full(n, -1, dtype=np.int64).tobytes())
        self._line.extend(bytes(8 * n))
        self._size.extend(sizes.astype(np.int64).tobytes())
        self._mtime.extend(mtimes.astype(np.int64).tobytes())
        self._status.extend(statuses.astype(np.uint8).tobytes())
        self._sha.extend(shas)
        self._errors.update(errors)
        self._files.update((i, file) for i, file in files.items() if file != self.file(i))

    def _number(self, source: Source) -> int:
        """The source's number in ``sources`` (a new one is added)."""
        if source is not self._last_source:  # (a source's hash is a dataclass's: worked out each time)
            if source not in self._source_no:
                self._source_no[source] = len(self.sources)
                self.sources.append(source)
            self._last_source, self._last_source_no = source, self._source_no[source]
        return self._last_source_no

    def update(self, doc: Document) -> None:
        """Take what reading found out about a document already in the table."""
        i = doc.index
        assert self._notes is None, "a table in files is appended to, never updated"
        self._size[i], self._mtime[i] = doc.size, doc.mtime_ns
        self._status[i] = _STATUS_CODE[doc.status]
        self._sha.set_row(i, bytes.fromhex(doc.sha256) if doc.sha256 else _NO_SHA)
        if doc.error is None:
            self._errors.pop(i, None)
        else:
            self._errors[i] = doc.error
        if doc.extra:
            self._extras[i] = doc.extra
        else:
            self._extras.pop(i, None)

    def _columns(self) -> list[Column]:
        return [self._source, self._offset, self._line, self._size, self._mtime, self._status, self._sha]

    def seal(self) -> None:
        """No more documents: every column in its file (a worker maps them)."""
        self.paths.seal()
        if self._notes is not None:
            self._notes.seal()
        for column in self._columns():
            column.seal()

    def facts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every document's offset, line, size and mtime_ns, as int64 arrays (copies)."""
        offset, line, size, mtime = (np.array(c.numbers()) for c in self._columns()[1:5])
        return offset, line, size, mtime

    def status(self, i: int) -> Status:
        return _STATUSES[self._status[i]]

    def statuses(self) -> set[Status]:
        """The statuses the documents have: a pass over the column a chunk at a time (a document at
        a time took ~1.3 s at 1M)."""
        seen = np.zeros(len(_STATUSES), dtype=bool)
        for start in range(0, len(self), 1 << 20):
            codes = self._status.items(start, min(start + (1 << 20), len(self)))
            seen[np.frombuffer(codes, dtype=np.uint8)] = True
        return {_STATUSES[code] for code in np.flatnonzero(seen).tolist()}

    def sha256(self, i: int) -> str:
        sha = self._sha.row(i)
        return "" if sha == _NO_SHA else sha.hex()

    def sha256_hexes(self, docs: np.ndarray) -> list[str]:
        """``sha256`` of each document of ``docs`` (one conversion for all)."""
        raw = self._sha.take(docs)
        text = raw.tobytes().hex()
        none: list[bool] = (raw == 0).all(axis=1).tolist()
        return ["" if none[k] else text[64 * k : 64 * k + 64] for k in range(len(docs))]

    def file(self, i: int) -> str:
        """The file on disk holding document ``i``."""
        source = self.sources[self._source[i]]
        if source.kind != "dir":
            return source.root
        if i in self._files:
            return self._files[i]
        path = self.paths[i]
        return os.path.join(source.root, path[len(source.label) + 1 :] if source.label else path)

    def offset(self, i: int) -> int:
        return self._offset[i]

    def line(self, i: int) -> int:
        return self._line[i]

    def size(self, i: int) -> int:
        return self._size[i]

    def mtime_ns(self, i: int) -> int:
        return self._mtime[i]

    def notes(self, i: int) -> tuple[str | None, dict[str, str] | None]:
        """(error or warning, extra manifest fields) of document ``i``: mostly none."""
        if self._notes is not None:
            blob = self._notes[i]
            if not blob:
                return None, None
            error, extra = json.loads(blob)
            return error, extra
        return self._errors.get(i), self._extras.get(i)

    def whole_file(self, i: int) -> Document:
        """What copying whole file ``i`` needs (path, file, size, mtime): ``self[i]`` makes the rest too."""
        source = self.sources[self._source[i]]
        return Document(i, self.paths[i], source, self.file(i), size=self._size[i], mtime_ns=self._mtime[i])

    def __getitem__(self, i: int) -> Document:
        error, extra = self.notes(i)
        spooled = self.spool.offsets.get(i) if self.spool else None
        return Document(
            index=i,
            path=self.paths[i],
            source=self.sources[self._source[i]],
            file=self.file(i) if spooled is None else self.spool.path,  # type: ignore[union-attr]
            offset=self._offset[i] if spooled is None else spooled,
            line=self._line[i],
            sha256=self.sha256(i),
            size=self._size[i],
            mtime_ns=self._mtime[i],
            status=self.status(i),
            error=error,
            extra=extra,
        )

    def __iter__(self) -> Iterator[Document]:
        return (self[i] for i in range(len(self.paths)))


def printable(name: str) -> str:
    """A file name (or path) as the manifest records it: bytes that are not UTF-8 as ``\\xNN``.

    ``os.scandir`` hands such bytes over as surrogates, which no UTF-8 writer
    accepts; the escaped name is what the manifest, ``canonical/`` and the state
    use, while the file itself is still read under its real name. A backslash
    that would read as such an escape (``\\x`` and the hex of a byte over 0x7f, or
    ``5c``) is escaped too, as ``\\x5c``: a file literally named ``caf\\xe9.txt`` and
    one whose name holds the byte 0xE9 get different paths (``unprintable``
    undoes it). Other names are unchanged.

    Example:
        >>> printable(b"caf\\xe9.txt".decode("utf-8", "surrogateescape"))
        'caf\\\\xe9.txt'
        >>> printable("caf\\\\xe9.txt"), printable("a\\\\b.txt"), printable("sub\\\\x41")
        ('caf\\\\x5cxe9.txt', 'a\\\\b.txt', 'sub\\\\x41')
    """
    if "\\x" in name:
        name = _LITERAL_ESCAPE.sub(r"\\x5c", name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


# A backslash ``unprintable`` would read as an escape: before ``x`` and a byte that is not ASCII, or 5c.
_LITERAL_ESCAPE = re.compile(r"\\(?=x(?:[89a-f][0-9a-f]|5c))")


def unprintable(rel: str) -> str:
    """A manifest path's file name as the file system has it: ``printable`` undone.

    Example:
        >>> unprintable("caf\\\\xe9.txt").encode("utf-8", "surrogateescape")
        b'caf\\xe9.txt'
        >>> unprintable("caf\\\\x5cxe9.txt")
        'caf\\\\xe9.txt'
    """
    if "\\x" not in rel:
        return rel
    return _ESCAPE.sub(_unescape, rel)


_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")


def _unescape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    if code == 0x5C:
        return "\\"
    return chr(0xDC00 + code) if code >= 0x80 else match.group(0)
