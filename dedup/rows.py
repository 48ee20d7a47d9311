"""The state's documents as the previous run left them, held as columns (issue 15).

A cron run looks every stored document up (pass 1's filter), fingerprints the
groups, works out what changed and writes the manifest. Each step needs a row's
few facts; only the manifest needs its record, the bulk of a row (~700 bytes of
JSON). As one ``Stored`` object each, the rows took ~1.5 KB apiece (150 MB at
100k documents); here they take ~350 bytes, and the records stay in SQLite,
read in rowid order a few thousand at a time as the manifest is written
(``record``), which is the order the rows were first written in.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np

from dedup import row_image
from dedup.copies import Before
from dedup.errors import StateError
from dedup.records import NO_NAME, cluster_key
from dedup.row_image import (
    FLAGS,
    HEX,
    INTEGERS,
    NO_CLUSTER,
    NULL,
    UNKNOWN,
    Image,
    cluster_of,
    file_hash,
    fingerprint_of,
)
from dedup.state import COLUMNS, Stored
from dedup.state_checks import DAMAGED_FACTS, damaged, record_damage, stored_path

if TYPE_CHECKING:
    from dedup.state import State

_WINDOW = 4096  # records read at once, at most: from 16, doubled while they are read in order
_CHUNK = 8192  # rows converted to columns at once

_FACTS = (  # NULLs as a value no row has (flags say which were NULL): columns fill from tuples, in C
    "rowid, key, file, offset, line, size, mtime_ns, coalesce(sha256, ?3), status, error,"
    " content IS NOT NULL, coalesce(content, 0), coalesce(shingles, -1), signals IS NOT NULL,"
    " coalesce(signals, zeroblob(?2)), component, first_seen, coalesce(gone, 0)"
)
_NO_SHA = bytes(32)
_NO_SHA_TEXT = _NO_SHA.hex()


class Rows:
    """Every stored document's facts, by row (rowid order); ``index`` maps a path to its row.

    Raises (on load):
        StateError: a row is damaged (``State.check_rows``).
    """

    def __init__(self, store: State) -> None:
        store.check_stamp()
        self.db: sqlite3.Connection = store.db
        self.signals_width = store.widths[1]
        self.path = store.path
        image = row_image.load(store)
        self.from_image = image is not None  # else scanned from SQLite (``row_image``)
        if image is None:
            image = _scanned(store)
        self.image = image  # the columns below are its arrays (``row_image.Changed`` reads them there)
        ints, flags = image.integers, image.flags
        self.rowid, self.offset, self.line = ints["rowid"], ints["offset"], ints["line"]
        self.size, self.mtime_ns, self.first_seen = ints["size"], ints["mtime_ns"], ints["first_seen"]
        self.gone, self.shingles = ints["gone"], ints["shingles"]  # 0 while present; -1 for none
        self.file_hash = ints[
            "file_hash"
        ]  # of the file holding each document (a moved file's row is written again)
        self.content, self.component = ints["content"], ints["component"]
        self.status, self.component_kind = flags["status"], flags["component_kind"]
        self.has_content, self.has_signals = flags["has_content"], flags["has_signals"]
        self.sha, self.signals = image.sha, image.signals
        self.keys, self.statuses = image.keys, image.statuses
        self.containers = image.containers  # the file of a container's record (copies.sync reads it)
        self.errors = image.errors
        store.check_count(len(self.keys))
        self.index = dict(zip(self.keys, range(len(self.keys)), strict=True))
        self._canonical = flags["canonical"]  # the image's, or the record's once read: 0 not yet, 1 no, 2 yes
        # Where OUT's manifest, as the image's run wrote it, holds each stored record (-1: not known).
        self.manifest_at, self.manifest_len = ints["manifest_at"], ints["manifest_len"]
        self.cluster_code, self.cluster_names = ints["cluster"], image.clusters
        self._cluster_numbers: dict[str, int] | None = None  # name -> code, made when first needed
        self._window: dict[int, str] = {}
        self._next, self._size = -1, 16  # the row after the window, and how many the next one reads

    def __len__(self) -> int:
        return len(self.keys)

    def present(self, r: int) -> bool:
        return not self.gone[r]

    def sha256(self, r: int) -> str | None:
        sha = self.sha[32 * r : 32 * r + 32]
        return None if sha == _NO_SHA else sha.hex()

    def status_of(self, r: int) -> str:
        return self.statuses[self.status[r]]

    def same_file(self, r: int, file: str) -> bool:
        """Whether row ``r``'s document is held by ``file``."""
        return self.file_hash[r] == file_hash(file)

    def canonical(self, r: int) -> bool:
        """The stored record's ``canonical`` flag (read with the record: ``record``)."""
        if not self._canonical[r]:
            self.record(r)
        return self._canonical[r] == 2

    def cluster(self, r: int) -> str | None:
        """The stored record's ``cluster`` (read as ``Stored.cluster`` reads it)."""
        return cluster_of(self.record(r))

    def canonical_flags(self, rows: np.ndarray) -> np.ndarray:
        """``canonical`` of each of ``rows`` (their records read already, mostly)."""
        flags = np.frombuffer(self._canonical, dtype=np.uint8)[rows]
        for k in np.flatnonzero(flags == 0).tolist():
            flags[k] = 2 if self.canonical(int(rows[k])) else 1
        return flags == 2

    def cluster_number(self, name: str | None) -> int:
        """The code of a cluster's name in ``cluster_code`` (a new name is given the next one)."""
        if name is None:
            return NO_CLUSTER
        if self._cluster_numbers is None:
            self._cluster_numbers = {c: k for k, c in enumerate(self.cluster_names)}
        code = self._cluster_numbers.setdefault(name, len(self.cluster_names))
        if code == len(self.cluster_names):
            self.cluster_names.append(name)
        return code

    def cluster_keys_of(self, rows: np.ndarray) -> np.ndarray:
        """The stored records' ``cluster`` of ``rows``, duplicates (records not canonical), as
        ``records.cluster_key``s: from the image (each name asked for made a key once), else read
        from each record."""
        codes = np.frombuffer(self.cluster_code, dtype=np.int64)[rows]
        keys = np.full(len(codes), NO_NAME, dtype=np.uint64)
        named = codes >= 0
        names, where = np.unique(codes[named], return_inverse=True)
        keys[named] = np.array([cluster_key(self.cluster_names[c]) for c in names.tolist()], dtype=np.uint64)[
            where
        ]
        for k in np.flatnonzero((codes < 0) & (codes != NO_CLUSTER)).tolist():  # not in the image
            keys[k] = cluster_key(self.cluster(int(rows[k])))
        return keys

    @property
    def ok_code(self) -> int:
        """Status ``ok``'s code in ``status`` (-1: no row has it)."""
        return self.statuses.index("ok") if "ok" in self.statuses else -1

    def ok(self, rows: np.ndarray) -> np.ndarray:
        """Whether each of ``rows`` is stored with status ``ok``, by its status code."""
        return np.frombuffer(self.status, dtype=np.uint8)[rows] == self.ok_code

    def judged_as(self, r: int, print_: str) -> bool:
        """Whether a present document was judged, last run, in a group with this fingerprint."""
        return not self.gone[r] and self.same_component(r, print_)

    def same_component(self, r: int, print_: str | None) -> bool:
        """Whether row ``r``'s stored group fingerprint is ``print_`` (``stored._prints``)."""
        kind = self.component_kind[r]
        if kind == HEX:
            return print_ is not None and self.component[r] == int(print_, 16)
        if kind == NULL:
            return print_ is None
        row = self.db.execute("SELECT component FROM documents WHERE rowid = ?", (self.rowid[r],))
        return bool(row.fetchone()[0] == print_)  # written by hand, or by another version: as stored

    def signal_bytes(self, r: int) -> bytes | None:
        w = self.signals_width
        return self.signals[w * r : w * r + w] if self.has_signals[r] else None

    def row(self, r: int) -> Stored:
        """Row ``r`` whole, as stored, but for its signature."""
        query = f"SELECT {', '.join(COLUMNS).replace('signature', 'NULL')} FROM documents WHERE rowid = ?"
        stored = Stored(*self.db.execute(query, (self.rowid[r],)).fetchone())
        stored.file = stored_path(stored.file)
        if stored.content is not None and stored.content < 0:
            stored.content += 1 << 64
        return stored

    def record(self, r: int) -> str:
        """Row ``r``'s manifest record as stored; the next few thousand rows' are read with it.

        Each is checked (``state_checks.record_damage``) and its ``canonical`` flag and cluster noted
        the first time it is read: before the run writes its row again (``cron_manifest.emit``).

        Raises:
            StateError: the record is damaged.
        """
        rowid = self.rowid[r]
        text = self._window.get(rowid)
        if text is None:
            query = "SELECT rowid, record FROM documents WHERE rowid >= ? ORDER BY rowid LIMIT ?"
            # Read in order (the manifest, mostly rowid order), windows grow; a jump starts small again.
            self._size = min(2 * self._size, _WINDOW) if r == self._next else 16
            self._window = dict(self.db.execute(query, (rowid, self._size)).fetchall())
            self._next = r + len(self._window)
            for k, (at, stored) in enumerate(self._window.items()):
                if r + k >= len(self.keys) or self.rowid[r + k] != at:
                    break  # rows added by this run
                if (problem := record_damage(stored)) is not None:
                    raise StateError(
                        damaged(self.path, f"stored row {self.keys[r + k]!r} {problem}"), path=self.path
                    )
                if not self._canonical[r + k]:
                    self._canonical[r + k] = 2 if '"canonical":true' in stored else 1
                if self.cluster_code[r + k] == UNKNOWN:  # the image (written at the commit) keeps it
                    duplicate = self._canonical[r + k] == 1
                    self.cluster_code[r + k] = self.cluster_number(cluster_of(stored) if duplicate else None)
            text = self._window[rowid]
        return text


def _scanned(store: State) -> Image:
    """The rows' columns read from SQLite, each row checked for damage (as ``State.check_rows``)
    in the same scan.

    Raises:
        StateError: a row is damaged.
    """
    integers = {name: array(code) for name, code in INTEGERS.items()}
    flags = {name: bytearray() for name in FLAGS}
    keys: list[str] = []
    containers: dict[int, str] = {}
    errors: dict[int, str] = {}
    sha, signals = bytearray(), bytearray()
    status_code: dict[str, int] = {}
    files: dict[str, str] = {}  # a container's records share their file name
    query = f"SELECT {_FACTS}, {DAMAGED_FACTS} FROM documents ORDER BY rowid"
    cursor = store.db.execute(query, (*store.widths, _NO_SHA_TEXT))
    while chunk := cursor.fetchmany(_CHUNK):
        columns = zip(*chunk, strict=True)
        (rowid, key, file, offset, line, size, mtime, sha256, status, error) = islice(columns, 10)
        (has_content, content, shingles, has_signals, signal, component) = islice(columns, 6)
        (first, gone, bad) = columns
        if any(bad):
            store.check_rows()  # raises, saying what is wrong
        base = len(keys)
        try:
            for name, values in (
                ("rowid", rowid), ("offset", offset), ("line", line), ("size", size), ("mtime_ns", mtime),
                ("first_seen", first), ("gone", gone), ("shingles", shingles),
            ):  # fmt: skip
                integers[name].extend(values)
            flags["has_content"].extend(has_content)
            flags["has_signals"].extend(has_signals)
            integers["content"].frombytes(array("q", content).tobytes())  # SQLite's integers are signed
            sha_bytes = bytes.fromhex("".join(sha256))
            if len(sha_bytes) != 32 * len(chunk):
                raise ValueError("not 64 hexadecimal digits")
        except ValueError as err:
            culprit = next((k for k, h in zip(key, sha256, strict=True) if len(_hex(h)) != 32), None)
            what = f"stored row {culprit!r} has an unreadable sha256" if culprit else f"a stored row: {err}"
            raise StateError(damaged(store.path, what), path=store.path) from err
        except (TypeError, OverflowError) as err:
            raise StateError(damaged(store.path, f"a stored row: {err}"), path=store.path) from err
        sha += sha_bytes
        signals += b"".join(signal)
        keys.extend(key)
        if not all(type(f) is str for f in file):  # a name that is not UTF-8, stored as its bytes
            file = tuple(map(stored_path, file))
        pairs = zip(file, offset, strict=True)
        integers["file_hash"].extend(map(file_hash, file))
        containers.update((base + k, files.setdefault(f, f)) for k, (f, o) in enumerate(pairs) if o >= 0)
        flags["status"].extend(status_code.setdefault(s, len(status_code)) for s in status)
        prints = [fingerprint_of(c) for c in component]
        flags["component_kind"].extend(kind for kind, _ in prints)
        integers["component"].extend(value for _, value in prints)
        errors.update((base + k, e) for k, e in enumerate(error) if e is not None)
    n = len(keys)
    for name, value in (("manifest_at", -1), ("manifest_len", -1), ("cluster", UNKNOWN)):
        integers[name] = array("q", [value]) * n
    flags["canonical"] = bytearray(n)  # read with the records
    return Image(integers, flags, bytes(sha), bytes(signals), keys, list(status_code), containers, errors, [])


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


class Kept(Mapping[int, str]):
    """Document -> its stored record, for the documents of groups that did not change (pass2.Verdicts).

    The records are read from the state when asked for (``Rows.record``).
    """

    def __init__(self, rows: Rows | None = None, documents: int = 0) -> None:
        self.rows = rows
        self.row_of = array("q", [-1]) * documents

    def keep(self, doc: int, row: int) -> None:
        """Document ``doc`` keeps row ``row``'s record: the row was judged with the fingerprint its
        group has now (``cron_manifest.as_stored`` relies on it)."""
        self.row_of[doc] = row

    def keep_all(self, docs: np.ndarray, rows: np.ndarray) -> None:
        """``keep`` for each document of ``docs`` and its row in ``rows``."""
        np.frombuffer(self.row_of, dtype=np.int64)[docs] = rows

    def by_document(self) -> np.ndarray:
        """Each document's kept row, -1 for none (a copy)."""
        return np.array(self.row_of, dtype=np.int64)

    def get(self, doc: int, default: str | None = None) -> str | None:  # type: ignore[override]
        r = self.row_of[doc] if 0 <= doc < len(self.row_of) else -1
        return default if r < 0 or self.rows is None else self.rows.record(r)

    def __contains__(self, doc: object) -> bool:
        return isinstance(doc, int) and 0 <= doc < len(self.row_of) and self.row_of[doc] >= 0

    def __getitem__(self, doc: int) -> str:
        text = self.get(doc)
        if text is None:
            raise KeyError(doc)
        return text

    def __iter__(self) -> Iterator[int]:
        return iter(np.flatnonzero(np.frombuffer(self.row_of, dtype=np.int64) >= 0).tolist())

    def __len__(self) -> int:
        return int(np.count_nonzero(np.frombuffer(self.row_of, dtype=np.int64) >= 0))


class Matched:
    """Each document of a cron run -> its stored row (-1: none), and whether that row's file holds it.

    Pass 1's filter looks each document's path up once (``Incremental.stored``); the
    later stages (groups judged, changes, the manifest, ``canonical/``) take the row
    from here, not by decoding the path and looking it up again (~1-2 us a document,
    in each stage).

    Example:
        >>> matched = Matched()
        >>> matched.add(None, False); matched.add(7, True)
        >>> matched.rows().tolist(), matched.same_file().tolist(), matched.row(0), matched.row(1)
        ([-1, 7], [False, True], None, 7)
    """

    def __init__(self) -> None:
        self._row = array("q")
        self._same_file = bytearray()

    def add(self, row: int | None, same_file: bool) -> None:
        """The next document's row (in manifest order)."""
        self._row.append(-1 if row is None else row)
        self._same_file.append(same_file)

    def extend(self, rows: np.ndarray, same_file: np.ndarray) -> None:
        """The next documents' rows (all found), at once."""
        self._row.frombytes(rows.astype(np.int64).tobytes())
        self._same_file.extend(same_file.astype(np.uint8).tobytes())

    def __len__(self) -> int:
        return len(self._row)

    def row(self, doc: int) -> int | None:
        r = self._row[doc]
        return None if r < 0 else r

    def rows(self) -> np.ndarray:
        """Every document's row, -1 for none (a copy: the table may still grow)."""
        return np.array(self._row, dtype=np.int64)

    def same_file(self) -> np.ndarray:
        return np.frombuffer(bytes(self._same_file), dtype=np.uint8).astype(bool)


def kept_before(rows: Rows) -> Before:
    """What the last run kept (canonical and present), as ``copies.sync`` compares it."""
    present = np.frombuffer(rows.gone, dtype=np.int64) == 0
    unread = present & (np.frombuffer(rows._canonical, dtype=np.uint8) == 0)
    for r in np.flatnonzero(unread).tolist():
        rows.canonical(r)  # a record no stage read this run
    kept = present & (np.frombuffer(rows._canonical, dtype=np.uint8) == 2)
    whole = np.frombuffer(rows.offset, dtype=np.int64) < 0
    keys = rows.keys
    lines: dict[str, list[tuple[int, str, str]]] = {}
    for r in np.flatnonzero(kept & ~whole).tolist():
        lines.setdefault(rows.containers[r], []).append((rows.offset[r], keys[r], rows.sha256(r) or ""))
    return Before(frozenset(keys[r] for r in np.flatnonzero(kept & whole).tolist()), lines)


def signature_chunks(store: State, size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The stored signatures of present texts, a few thousand at a time: (uint64 content keys,
    uint32[n, num_perm] signatures). Chunks, not a dict of them all (~110 MB at 100k texts).

    Raises:
        StateError: a signature is damaged (the message says to ``--rebuild``).
    """
    store.check_stamp()
    rows = store.db.execute(
        "SELECT content, signature FROM documents"
        " WHERE gone IS NULL AND content IS NOT NULL AND signature IS NOT NULL"
    )
    width = store.widths[0]
    while chunk := rows.fetchmany(size):
        contents, signatures = zip(*chunk, strict=True)
        if not all(isinstance(s, bytes) and len(s) == width for s in signatures):
            raise StateError(damaged(store.path, "a stored signature has the wrong size"), path=store.path)
        keys = np.array(contents, dtype=np.int64).view(np.uint64)  # SQLite's integers are signed
        yield keys, np.frombuffer(b"".join(signatures), dtype=np.uint32).reshape(len(chunk), -1)
