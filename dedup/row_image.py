"""The state's rows as columns in a file beside the database, so a run loads them without SQLite.

``rows.Rows`` needs every stored document's few facts. Scanning them out of
SQLite makes ~19 Python objects a row and reads past each row's signature and
record: 6.4 s of a 1M-document run with work (README, Cron mode). The image is
those columns as they stand after a run's commit, one file per commit: a run
works it out from the rows it loaded and the rows it writes (``Changed``), and
writes it inside the commit's transaction, before COMMIT, under a new name that
the transaction records (``State.commit_run``'s ``columns``). So the database
names the image of exactly its rows:

- killed before COMMIT: the database still names the previous image, which is
  only deleted after COMMIT (``tidy``); the new file is an orphan, deleted later;
- any other write to ``documents`` (by hand, by another version of dedup) forgets
  the name (a trigger): the next run scans SQLite, as it does for a state written
  before this file existed, and its commit writes an image again;
- a damaged or truncated file fails its checksum: the run scans SQLite.

The file: the columns' bytes one after another, then a JSON footer (row count,
largest rowid, status names, each part's length, an xxh3 checksum of the parts),
its length and a magic number. It is not fsynced: a file lost to a power cut
fails its checksum and costs one scan.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import stat
import struct
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import xxhash

from dedup.state import STATUSES, storable_path, stored_path

if TYPE_CHECKING:
    from dedup.rows import Rows
    from dedup.state import State, Stored

INTEGERS = {  # column -> array typecode, as ``rows.Rows`` holds them
    "rowid": "q", "offset": "q", "line": "q", "size": "q", "mtime_ns": "q", "first_seen": "q",
    "gone": "q", "shingles": "q", "file_hash": "Q", "content": "Q", "component": "Q",
    "manifest_at": "q", "manifest_len": "q", "cluster": "q",
}  # fmt: skip
FLAGS = ("status", "component_kind", "has_content", "has_signals", "canonical")  # a byte per row
# A duplicate's cluster (its record not canonical): a code into ``Image.clusters``; NO_CLUSTER for
# any other record (most clusters have one document: their names would be most of the table).
UNKNOWN, NO_CLUSTER = -2, -1
_NOTED = tuple(n for n in INTEGERS if n not in ("rowid", "manifest_at", "manifest_len"))  # ``Changed``'s
# ``manifest_at``/``manifest_len``: where the row's record is in OUT's manifest as the run that
# wrote the image left it (-1: not there as stored); ``canonical``: 0 not known, 1 no, 2 yes.
_FINGERPRINT = re.compile("[0-9a-f]{16}")  # a group's (``stored._fingerprint``), held as an integer
NULL, HEX, OTHER = 0, 1, 2  # what a row's component is (``component_kind``)
_MAGIC = b"DEDUPRW1"
_TAIL = struct.Struct("<QQ8s")  # footer length, footer checksum, magic
_MOST_FOOTER = 1 << 20  # bytes: a footer names ~27 parts and the statuses
_PREFIX, _SUFFIX = "rows-", ".columns"
_SEPARATOR = "\x00"  # between keys, file names and errors: no path or message holds one


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
    row = store.db.execute("SELECT name FROM columns").fetchone()
    if row is None or not _valid_name(str(row[0])):
        return None
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(store.path.parent / str(row[0]), flags)
    except OSError:
        return None
    try:
        return _parsed(fd, str(row[0]), store)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error, MemoryError):
        return None  # UnicodeDecodeError and orjson's JSONDecodeError are ValueErrors
    finally:
        os.close(fd)


def _parsed(fd: int, name: str, store: State) -> Image | None:
    """The image in ``fd``: its footer read and checked first, its parts only then (a file grown
    by damage is not read whole); never blocks on a FIFO or a device."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size < _TAIL.size:
        return None
    footer_len, footer_check, magic = _TAIL.unpack(os.pread(fd, _TAIL.size, info.st_size - _TAIL.size))
    end = info.st_size - _TAIL.size - footer_len
    if magic != _MAGIC or end < 0 or footer_len > _MOST_FOOTER:
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
    data = _read(fd, end)
    view = memoryview(data)
    if xxhash.xxh3_64_intdigest(view) != footer["check"]:
        return None
    statuses = list(footer["statuses"])
    if not set(statuses) <= STATUSES:
        return None
    parts: dict[str, memoryview] = {}
    at = 0
    for part, length in footer["parts"]:
        parts[part] = view[at : at + length]
        at += length
    if at != end:
        return None
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


def _read(fd: int, size: int) -> bytes:
    """The first ``size`` bytes of ``fd``."""
    chunks, at = [], 0
    while at < size and (chunk := os.pread(fd, min(size - at, 1 << 26), at)):
        chunks.append(chunk)
        at += len(chunk)
    if at != size:
        raise ValueError("the image is shorter than its footer says")
    return b"".join(chunks)


def _split(blob: memoryview, n: int) -> list[str]:
    texts = str(blob, "utf-8", "surrogatepass").split(_SEPARATOR) if len(blob) else []
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
    row = store.db.execute("SELECT name FROM columns").fetchone()
    return None if row is None else str(row[0])


def _valid_name(name: str) -> bool:
    return name.startswith(_PREFIX) and name.endswith(_SUFFIX) and "/" not in name


class Changed:
    """The rows a commit writes, noted as they go by (``noted``), and the image they make with the
    rows loaded (``write``): a row per key, as SQLite's upsert leaves it.

    The notes are fixed-width records in an unnamed file in ``directory`` (the state's), a few
    thousand written at once: a first run at 1M notes every row, and in memory they were
    ~270 MB at its commit, its peak (1,980 MB against 1,638 MB).
    """

    def __init__(self, previous: Rows, directory: Path) -> None:
        self.previous = previous
        self.notes = _Notes(directory, previous.signals_width)  # an OSError here: the state cannot be written
        self.new_keys = bytearray()  # in the order SQLite gives them rowids, each with a separator after
        self.new = 0  # a key written twice as new makes the count differ from SQLite's: no image then
        self.files: dict[int, str] = {}  # note -> a container record's file
        self.errors: dict[int, str] = {}  # note -> its row's error
        self.statuses = {s: k for k, s in enumerate(previous.statuses)}
        self.usable = True  # False: a row the image cannot hold (then none is written)

    def close(self) -> None:
        self.notes.close()

    def noted(self, rows: Iterable[Stored]) -> Iterator[Stored]:
        """``rows`` as they are, each noted. A note that cannot be written (a full disk) gives no
        image, not a failed run: the write under way is OUT's manifest, which an error here
        would be blamed on."""
        for row in rows:
            if self.usable:
                try:
                    self._note(row)
                except OSError:
                    self.usable = False
            yield row

    def _note(self, d: Stored) -> None:
        r = self.previous.index.get(d.key)
        if r is None:
            r = -1 - self.new
            self.new += 1
            self.new_keys += (d.key + _SEPARATOR).encode("utf-8", "surrogatepass")
        file = stored_path(storable_path(d.file))
        kind, component = fingerprint_of(d.component)
        signals = d.signals
        width = self.previous.signals_width
        if _SEPARATOR in d.key or _SEPARATOR in file or (d.error and _SEPARATOR in d.error):
            self.usable = False
        if signals is not None and len(signals) != width:
            self.usable = False
        try:
            sha = bytes(32) if d.sha256 is None else bytes.fromhex(d.sha256)
        except ValueError:
            sha = b""
        if len(sha) != 32:
            sha, self.usable = bytes(32), False
        record = d.record_json
        canonical = '"canonical":true' in record
        if d.offset >= 0:
            self.files[self.notes.count] = file
        if d.error is not None:
            self.errors[self.notes.count] = d.error
        cluster = self.previous.cluster_number(None if canonical else cluster_of(record))
        status = self.statuses.setdefault(d.status, len(self.statuses))
        shingles = -1 if d.shingles is None else d.shingles
        kept = signals if signals is not None and len(signals) == width else bytes(width)
        # The fields of ``_Notes``, in order.
        note = (
            r, d.offset, d.line, d.size, d.mtime_ns, d.first_seen, d.gone or 0, shingles, file_hash(file),
            d.content or 0, component, cluster, status, kind, d.content is not None, signals is not None,
            2 if canonical else 1, sha, kept,
        )  # fmt: skip
        self.notes.add(note)

    def write(self, store: State, placed: Placed) -> str | None:
        """Write the image of the rows as they are once this commit's writes are made, inside its
        transaction; its name, or None when it cannot be had (then the next run scans SQLite).

        ``placed``: where the manifest this run wrote holds each document's record.
        """
        if not self.usable:
            return None
        previous = self.previous
        old = len(previous)
        top = previous.rowid[-1] if old else 0
        added = [
            r
            for (r,) in store.db.execute("SELECT rowid FROM documents WHERE rowid > ? ORDER BY rowid", (top,))
        ]
        n = store.db.execute("SELECT count(*) FROM documents").fetchone()[0]
        if len(added) != self.new or n != old + len(added):
            return None
        notes = self.notes
        try:
            target = notes.field("target")
        except OSError:
            return None
        last = _last_of_each(target)  # a key written twice: its last row stands
        target, pick = target[last], last
        at = np.where(target >= 0, target, old + (-1 - target))  # each note's row in the image
        lines = placed.by_row(old, n, self.new)
        name = f"{_PREFIX}{secrets.token_hex(8)}{_SUFFIX}"
        path = store.path.parent / name
        try:
            with open(path, "wb") as fh:
                parts = _Parts(fh)
                self._columns(parts, notes, n, at, pick, added, lines)
                parts.finish(
                    {"name": name, "rows": n, "max_rowid": int(added[-1]) if added else top,
                     "statuses": sorted(self.statuses, key=self.statuses.__getitem__),
                     "clusters": len(previous.cluster_names)}
                )  # fmt: skip
        except BaseException as err:
            with contextlib.suppress(OSError):
                path.unlink()
            if isinstance(err, OSError | ValueError):  # a full disk, a text the image cannot hold:
                return None  # the image is a cache, the next run scans SQLite
            raise
        return name

    def _columns(
        self,
        parts: _Parts,
        notes: _Notes,
        n: int,
        at: np.ndarray,
        pick: np.ndarray,
        added: list[int],
        lines: dict[str, np.ndarray],
    ) -> None:
        """Each column: the loaded rows', the noted ones put at their rows (``at``)."""
        previous, old = self.previous, len(self.previous)
        for column_name, code in INTEGERS.items():
            dtype = np.int64 if code == "q" else np.uint64
            column = np.empty(n, dtype=dtype)
            column[:old] = np.frombuffer(previous.image.integers[column_name], dtype=dtype)
            if column_name == "rowid":  # a row written again keeps its rowid (an upsert)
                column[old:] = added
            elif column_name in lines:
                column = lines[column_name]
            else:
                column[at] = notes.field(column_name)[pick]
            parts.put(column_name, column)
        for flag in FLAGS:
            values = np.empty(n, dtype=np.uint8)
            values[:old] = np.frombuffer(previous.image.flags[flag], dtype=np.uint8)
            values[at] = notes.field(flag)[pick]
            parts.put(flag, values)
        for wide, width in (("sha", 32), ("signals", previous.signals_width)):
            table = np.empty((n, width), dtype=np.uint8)
            table[:old] = np.frombuffer(getattr(previous.image, wide), dtype=np.uint8).reshape(old, width)
            table[at] = notes.field(wide)[pick].view(np.uint8).reshape(-1, width)
            parts.put(wide, table)
        parts.texts("keys", previous.keys, then=bytes(self.new_keys[:-1]))
        parts.texts("clusters", previous.cluster_names)
        containers, errors = dict(previous.containers), dict(previous.errors)
        for k, row in zip(pick.tolist(), at.tolist(), strict=True):
            for table_, value in ((containers, self.files.get(k)), (errors, self.errors.get(k))):
                if value is None:
                    table_.pop(row, None)
                else:
                    table_[row] = value
        for rows_part, texts_part, mapping in (
            ("container_rows", "container_files", containers),
            ("error_rows", "error_texts", errors),
        ):
            parts.put(rows_part, array("q", mapping))
            parts.texts(texts_part, mapping.values())


class _Notes:
    """Fixed-width records of noted rows in an unnamed file, a few thousand written at once."""

    def __init__(self, directory: Path, width: int) -> None:
        fields = [("target", "<i8")]
        fields += [(name, "<i8" if INTEGERS[name] == "q" else "<u8") for name in _NOTED]
        fields += [(flag, "u1") for flag in FLAGS] + [("sha", "V32"), ("signals", f"V{max(width, 1)}")]
        self.dtype = np.dtype(fields)
        self.fh = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by ``close``)
        self.buffer = np.zeros(4096, dtype=self.dtype)
        self.filled = self.count = 0

    def add(self, values: tuple[Any, ...]) -> None:
        self.buffer[self.filled] = values
        self.filled += 1
        self.count += 1
        if self.filled == len(self.buffer):
            self._flush()

    def _flush(self) -> None:
        self.fh.write(self.buffer[: self.filled].tobytes())
        self.filled = 0

    def field(self, name: str) -> np.ndarray:
        """One field of every note, read back a few thousand notes at a time (a memory map of the
        file would count all of it in the process's memory once every field was read)."""
        self._flush()
        self.fh.flush()
        out = np.empty(self.count, dtype=self.dtype[name])
        size = self.dtype.itemsize
        for lo in range(0, self.count, 65536):
            k = min(65536, self.count - lo)
            raw = os.pread(self.fh.fileno(), k * size, lo * size)
            out[lo : lo + k] = np.frombuffer(raw, dtype=self.dtype, count=k)[name]
        return out

    def close(self) -> None:
        self.fh.close()


class _Parts:
    """The image's parts written one after another, checksummed, and the footer that lists them."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.check, self.parts = fh, xxhash.xxh3_64(), list[tuple[str, int]]()

    def put(self, part: str, data: Any) -> None:
        self.parts.append((part, self._write(data)))

    def texts(self, part: str, texts: Iterable[str], then: bytes = b"") -> None:
        """Texts with a separator between them, encoded a few thousand at a time (a million keys
        joined at once held ~120 MB more at the commit); ``then``: more, encoded already."""
        size, lead, it = 0, "", iter(texts)
        while chunk := list(itertools.islice(it, 65536)):
            joined = _SEPARATOR.join(chunk)
            if joined.count(_SEPARATOR) != len(chunk) - 1:  # a text holds one (a key of a scanned row)
                raise ValueError("a text holds the image's separator")
            size += self._write((lead + joined).encode("utf-8", "surrogatepass"))
            lead = _SEPARATOR
        if then:
            size += self._write(lead.encode() + then)
        self.parts.append((part, size))

    def _write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.fh.write(view)
        self.check.update(view)
        return view.nbytes

    def finish(self, footer: dict[str, Any]) -> None:
        text = orjson.dumps({**footer, "parts": self.parts, "check": self.check.intdigest()})
        self.fh.write(text + _TAIL.pack(len(text), xxhash.xxh3_64_intdigest(text), _MAGIC))


@dataclass
class Placed:
    """Where the manifest a run writes holds each document's record (byte offset and length, with
    its newline), and each document's row (-1: a new one, in ``Changed``'s order of new keys)."""

    at: array[int] = field(default_factory=lambda: array("q"))
    length: array[int] = field(default_factory=lambda: array("q"))
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    end: int = 0  # bytes written so far

    def add(self, length: int) -> None:
        self.at.append(self.end)
        self.length.append(length)
        self.end += length

    def extend(self, lengths: np.ndarray) -> None:
        ends = self.end + np.cumsum(lengths)
        self.at.frombytes((ends - lengths).astype(np.int64).tobytes())
        self.length.frombytes(lengths.astype(np.int64).tobytes())
        self.end = int(ends[-1]) if len(ends) else self.end

    def by_row(self, old: int, n: int, new: int) -> dict[str, np.ndarray]:
        """``manifest_at`` and ``manifest_len`` for the ``n`` rows of the image (``old`` loaded,
        ``new`` added); -1 where not known (a gone document's line is not its stored record)."""
        at, length = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
        rows = self.rows
        if len(rows) != len(self.at) or len(rows) != len(self.length):
            return {"manifest_at": at, "manifest_len": length}  # not placed: not known
        is_new = rows < 0
        if int(is_new.sum()) != new:
            return {"manifest_at": at, "manifest_len": length}
        where = rows.copy()
        where[is_new] = old + np.arange(new)
        at[where] = np.frombuffer(self.at, dtype=np.int64)
        length[where] = np.frombuffer(self.length, dtype=np.int64)
        return {"manifest_at": at, "manifest_len": length}


def _last_of_each(target: np.ndarray) -> np.ndarray:
    """Positions of the last note of each distinct target, ascending."""
    reverse = target[::-1]
    _, first = np.unique(reverse, return_index=True)
    return np.sort(len(target) - 1 - first)
