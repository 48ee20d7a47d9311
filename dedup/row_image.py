"""The state's rows as columns in a file beside the database, so a run loads them without SQLite.

``rows.Rows`` needs every stored document's few facts. Scanning them out of
SQLite makes ~19 Python objects a row and reads past each row's signature and
record: 6.4 s of a 1M-document run with work (docs/cron-at-scale.md, "Ninth round"). The image is
those columns as they stand after a run's commit, one file per commit: a run
works it out from the rows it loaded and the rows it writes
(``row_image_commit.Changed``), and writes it inside the commit's transaction,
before COMMIT, under a new name that the transaction records
(``State.commit_run``'s ``columns``). So the database names the image of exactly
its rows:

- killed before COMMIT: the database still names the previous image, which is
  only deleted after COMMIT (``tidy``); the new file is an orphan, deleted later;
- any other write to ``documents`` (by hand, by another version of dedup) forgets
  the name (a trigger): the next run scans SQLite, as it does for a state written
  before this file existed, and its commit writes an image again;
- a damaged, truncated or grown file fails a checksum, and an image under
  another's name, or of another row count or largest rowid, is not used: the
  run scans SQLite.

The file: the columns' bytes one after another, then a JSON footer (its own
name, row count, largest rowid, status names, each part's length, an xxh3
checksum of the parts), the footer's length and checksum and a magic number. It
is not fsynced: a file lost to a power cut fails its checksum and costs one scan.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson
import xxhash

from dedup.columns import read_at
from dedup.state_checks import STATUSES

if TYPE_CHECKING:
    from dedup.state import State

INTEGERS = {  # column -> array typecode, as ``rows.Rows`` holds them
    "rowid": "q", "offset": "q", "line": "q", "size": "q", "mtime_ns": "q", "first_seen": "q",
    "gone": "q", "shingles": "q", "file_hash": "Q", "content": "Q", "component": "Q",
    "manifest_at": "q", "manifest_len": "q", "cluster": "q",
}  # fmt: skip
FLAGS = ("status", "component_kind", "has_content", "has_signals", "canonical")  # a byte per row
# A duplicate's cluster (its record not canonical): a code into ``Image.clusters``; NO_CLUSTER for
# any other record (most clusters have one document: their names would be most of the table).
UNKNOWN, NO_CLUSTER = -2, -1
# ``manifest_at``/``manifest_len``: where the row's record is in OUT's manifest as the run that
# wrote the image left it (-1: not there as stored); ``canonical``: 0 not known, 1 no, 2 yes.
_FINGERPRINT = re.compile("[0-9a-f]{16}")  # a group's (``stored._prints``), held as an integer
NULL, HEX, OTHER = 0, 1, 2  # what a row's component is (``component_kind``)
MAGIC = b"DEDUPRW1"
TAIL = struct.Struct("<QQ8s")  # footer length, footer checksum, magic
_MOST_FOOTER = 1 << 20  # bytes: a footer names ~27 parts and the statuses
PREFIX, SUFFIX = "rows-", ".columns"
SEPARATOR = "\x00"  # between keys, file names and errors: no path or message holds one


@dataclass(slots=True)
class Image:
    """The columns of ``rows.Rows`` (typecodes as ``INTEGERS``; flags and bytes as there)."""

    integers: dict[str, array[int]]
    flags: dict[str, bytearray]
    sha: bytes  # 32 bytes a row
    signals: bytes  # ``signals_width`` bytes a row
    keys: list[str]
    statuses: list[str]
    containers: dict[int, str]  # row -> file, for the rows with an offset (a container's records)
    errors: dict[int, str]
    clusters: list[str]  # the names the ``cluster`` codes stand for


def cluster_of(record: str) -> str | None:
    """A stored record's ``cluster``, found in its JSON text."""
    at = record.find('"cluster":') + len('"cluster":')
    return None if record.startswith("null", at) else record[at + 1 : record.index('"', at + 1)]


def file_hash(file: str) -> int:
    """What ``Rows.file_hash`` holds of a document's file."""
    return xxhash.xxh3_64_intdigest(file.encode("utf-8", "surrogatepass"))


_JOINED = 1 << 16  # paths joined at once by ``file_hashes``


def file_hashes(prefix: str, rels: list[str]) -> np.ndarray:
    """``file_hash`` of ``prefix`` + each of ``rels`` (uint64), encoded all at once (paths hold no NUL).

    Example:
        >>> got = file_hashes("/in/", ["a.txt", "caf\\udce9.txt"]).tolist()
        >>> got == [file_hash("/in/a.txt"), file_hash("/in/caf\\udce9.txt")]
        True
    """
    hashes = np.zeros(len(rels), dtype=np.uint64)
    for at in range(0, len(rels), _JOINED):  # (a few MB joined at a time)
        part = rels[at : at + _JOINED]
        joined = (prefix + ("\0" + prefix).join(part)).encode("utf-8", "surrogatepass")
        digests = map(xxhash.xxh3_64_intdigest, joined.split(b"\0"))
        hashes[at : at + len(part)] = np.fromiter(digests, dtype=np.uint64, count=len(part))
    return hashes


def fingerprint_of(component: str | None) -> tuple[int, int]:
    """A row's stored group fingerprint as ``Rows`` holds it: (kind, value if hexadecimal)."""
    if component is None:
        return NULL, 0
    if _FINGERPRINT.fullmatch(component):
        return HEX, int(component, 16)
    return OTHER, 0


def load(store: State) -> Image | None:
    """The image the database names, or None: none named, missing, not a regular file, damaged
    (its parts or footer fail their checksums), or not of these rows (another name in its footer,
    another row count or largest rowid)."""
    path = named_path(store)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        return _parsed(fd, path.name, store)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error, MemoryError):
        return None  # UnicodeDecodeError and orjson's JSONDecodeError are ValueErrors
    finally:
        os.close(fd)


def _parsed(fd: int, name: str, store: State) -> Image | None:
    """The image in ``fd``: its footer read and checked first, its parts only then (a file grown
    by damage is not read whole); never blocks on a FIFO or a device."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size < TAIL.size:
        return None
    footer_len, footer_check, magic = TAIL.unpack(os.pread(fd, TAIL.size, info.st_size - TAIL.size))
    end = info.st_size - TAIL.size - footer_len
    if magic != MAGIC or end < 0 or footer_len > _MOST_FOOTER:
        return None
    text = os.pread(fd, footer_len, end)
    if xxhash.xxh3_64_intdigest(text) != footer_check:
        return None
    footer = orjson.loads(text)
    if footer["name"] != name or sum(length for _, length in footer["parts"]) != end:
        return None
    n, top = store.db.execute("SELECT count(*), coalesce(max(rowid), 0) FROM documents").fetchone()
    if (n, top) != (footer["rows"], footer["max_rowid"]):
        return None
    data = read_at(fd, end)
    if len(data) != end:
        raise ValueError("the image is shorter than its footer says")
    view = memoryview(data)
    if xxhash.xxh3_64_intdigest(view) != footer["check"]:
        return None
    statuses = list(footer["statuses"])
    if not set(statuses) <= STATUSES:
        return None
    parts: dict[str, memoryview] = {}
    at = 0
    for part, length in footer["parts"]:  # their lengths add up to ``end``: checked above
        parts[part] = view[at : at + length]
        at += length
    integers = {}
    for column_name, code in INTEGERS.items():
        integers[column_name] = column = array(code)
        column.frombytes(parts[column_name])
    flags = {flag: bytearray(parts[flag]) for flag in FLAGS}
    keys = _split(parts["keys"], n)
    image = Image(
        integers=integers,
        flags=flags,
        sha=bytes(parts["sha"]),
        signals=bytes(parts["signals"]),
        keys=keys,
        statuses=statuses,
        containers=_mapping(parts["container_rows"], parts["container_files"]),
        errors=_mapping(parts["error_rows"], parts["error_texts"]),
        clusters=_split(parts["clusters"], footer["clusters"]),
    )
    lengths = {len(c) for c in integers.values()} | {len(f) for f in flags.values()} | {len(keys)}
    if lengths != {n} or len(image.sha) != 32 * n or len(image.signals) != store.widths[1] * n:
        return None
    if max(flags["status"], default=0) >= max(len(statuses), 1):
        return None
    if len(integers["cluster"]) and max(integers["cluster"]) >= len(image.clusters):
        return None
    return image


def _split(blob: memoryview, n: int) -> list[str]:
    texts = str(blob, "utf-8", "surrogatepass").split(SEPARATOR) if len(blob) else []
    if len(texts) != n:
        raise ValueError("the image's texts do not match its rows")
    return texts


def _mapping(rows: memoryview, texts: memoryview) -> dict[int, str]:
    at = array("q")
    at.frombytes(rows)
    return dict(zip(at.tolist(), _split(texts, len(at)), strict=True))


def tidy(directory: Path, keep: str | None) -> None:
    """Delete the images but ``keep`` (the one the database names): earlier ones, orphans."""
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if _valid_name(entry.name) and entry.name != keep:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def named(store: State) -> str | None:
    """The name of the image the database names, if any."""
    row = store.db.execute("SELECT name FROM columns").fetchone()
    return None if row is None else str(row[0])


def named_path(store: State) -> Path | None:
    """The image the database names, beside it, if that name is one an image can have."""
    name = named(store)
    return None if name is None or not _valid_name(name) else store.path.parent / name


def _valid_name(name: str) -> bool:
    return name.startswith(PREFIX) and name.endswith(SUFFIX) and "/" not in name and "\0" not in name


@dataclass
class Placed:
    """The length (with its newline) of each document's record in the manifest a run writes, in
    order, so where each is; and each document's row (-1: a new one, in ``Changed``'s order)."""

    length: array[int] = field(default_factory=lambda: array("q"))
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def add(self, length: int) -> None:
        self.length.append(length)

    def extend(self, lengths: np.ndarray) -> None:
        self.length.frombytes(lengths.astype(np.int64).tobytes())

    def by_row(self, old: int, n: int, new: int) -> dict[str, np.ndarray]:
        """``manifest_at`` and ``manifest_len`` for the ``n`` rows of the image (``old`` loaded,
        ``new`` added); -1 where not known (a gone document's line is not its stored record)."""
        at, length = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
        rows, lengths = self.rows, np.frombuffer(self.length, dtype=np.int64)
        is_new = rows < 0
        if len(rows) == len(lengths) and int(is_new.sum()) == new:  # else not placed: not known
            where = rows.copy()
            where[is_new] = old + np.arange(new)
            at[where] = np.cumsum(lengths) - lengths
            length[where] = lengths
        return {"manifest_at": at, "manifest_len": length}
