"""The rows' image written at a commit (``row_image``): the rows the commit writes, noted as they
go by, and the image they make with the rows loaded, written inside the commit's transaction."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import xxhash

from dedup.row_image import (
    FLAGS,
    INTEGERS,
    MAGIC,
    PREFIX,
    SEPARATOR,
    SUFFIX,
    TAIL,
    Placed,
    cluster_of,
    file_hash,
    fingerprint_of,
)
from dedup.state_checks import storable_path, stored_path

if TYPE_CHECKING:
    from dedup.rows import Rows
    from dedup.state import State, Stored

NOTED = tuple(n for n in INTEGERS if n not in ("rowid", "manifest_at", "manifest_len"))  # in the notes


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
            self.new_keys += (d.key + SEPARATOR).encode("utf-8", "surrogatepass")
        file = stored_path(storable_path(d.file))
        kind, component = fingerprint_of(d.component)
        signals = d.signals
        width = self.previous.signals_width
        if SEPARATOR in d.key or SEPARATOR in file or (d.error and SEPARATOR in d.error):
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
        name = f"{PREFIX}{secrets.token_hex(8)}{SUFFIX}"
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
        fields += [(name, "<i8" if INTEGERS[name] == "q" else "<u8") for name in NOTED]
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
            joined = SEPARATOR.join(chunk)
            if joined.count(SEPARATOR) != len(chunk) - 1:  # a text holds one (a key of a scanned row)
                raise ValueError("a text holds the image's separator")
            size += self._write((lead + joined).encode("utf-8", "surrogatepass"))
            lead = SEPARATOR
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
        self.fh.write(text + TAIL.pack(len(text), xxhash.xxh3_64_intdigest(text), MAGIC))


def _last_of_each(target: np.ndarray) -> np.ndarray:
    """Positions of the last note of each distinct target, ascending."""
    reverse = target[::-1]
    _, first = np.unique(reverse, return_index=True)
    return np.sort(len(target) - 1 - first)
