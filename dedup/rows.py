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

import re
import sqlite3
from array import array
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from dedup.errors import StateError
from dedup.state import COLUMNS, DAMAGED, Stored, damaged

if TYPE_CHECKING:
    from dedup.state import State

_WINDOW = 4096  # records read at once
_CHUNK = 8192  # rows converted to columns at once

# A record's ``canonical`` flag and ``cluster``, worked out by SQLite as ``Stored.canonical``
# and ``Stored.cluster`` work them out (orjson's compact output: these keys are never escaped).
_AT = "instr(record, '\"cluster\":') + 10"
_FLAGS = (
    "instr(record, '\"canonical\":true') > 0, "
    f"CASE WHEN substr(record, {_AT}, 4) = 'null' THEN NULL "
    f"ELSE substr(record, {_AT} + 1, instr(substr(record, {_AT} + 1), '\"') - 1) END"
)
_FACTS = (
    "rowid, key, file, offset, line, size, mtime_ns, sha256, status, error, content, shingles, signals,"
    f" component, {_FLAGS}, first_seen, gone"
)
_NO_SHA = bytes(32)
_FINGERPRINT = re.compile("[0-9a-f]{16}")  # a group's (``stored._fingerprint``), held as an integer
_NULL, _HEX, _OTHER = 0, 1, 2  # what a row's component is


class Rows:
    """Every stored document's facts, by row (rowid order); ``index`` maps a path to its row.

    Raises (on load):
        StateError: a row is damaged (``State.check_rows``).
    """

    def __init__(self, store: State) -> None:
        store.check_stamp()
        self.db: sqlite3.Connection = store.db
        self.signals_width = store.widths[1]
        self.keys: list[str] = []
        self.files: list[str] = []
        self.errors: dict[int, str] = {}
        self.clusters: dict[int, str] = {}
        self.statuses: list[str] = []
        self.rowid, self.offset, self.line = array("q"), array("q"), array("q")
        self.size, self.mtime_ns, self.first_seen = array("q"), array("q"), array("q")
        self.gone, self.shingles = array("q"), array("q")  # 0 while present; -1 for none
        self.content, self.component = array("Q"), array("Q")
        self.status, self.component_kind = bytearray(), bytearray()
        self.has_content, self.canonical, self.has_signals = bytearray(), bytearray(), bytearray()
        sha, signals = bytearray(), bytearray()
        status_code: dict[str, int] = {}
        zero_signals = bytes(self.signals_width)
        files: dict[str, str] = {}  # a container's records share their file name
        # One scan: the rows are checked for damage (as ``State.check_rows``) as they are read.
        cursor = self.db.execute(f"SELECT {_FACTS}, {DAMAGED} FROM documents ORDER BY rowid", store.widths)
        while chunk := cursor.fetchmany(_CHUNK):
            (rowid, key, file, offset, line, size, mtime, sha256, status, error, content, shingles, signal,
             component, is_canonical, cluster, first, gone, bad) = zip(*chunk, strict=True)  # fmt: skip
            if any(bad):
                store.check_rows()  # raises, saying what is wrong
            try:
                base = len(self.keys)
                self.keys.extend(key)
                pairs = zip(file, offset, strict=True)
                self.files.extend(f if o < 0 else files.setdefault(f, f) for f, o in pairs)
                for column, values in (
                    (self.rowid, rowid), (self.offset, offset), (self.line, line), (self.size, size),
                    (self.mtime_ns, mtime), (self.first_seen, first),
                ):  # fmt: skip
                    column.extend(values)
                self.gone.extend(g or 0 for g in gone)
                self.shingles.extend(-1 if n is None else n for n in shingles)
                self.status.extend(status_code.setdefault(s, len(status_code)) for s in status)
                self.has_content.extend(c is not None for c in content)
                self.content.extend(0 if c is None else c + (1 << 64) if c < 0 else c for c in content)
                self.canonical.extend(is_canonical)
                self.has_signals.extend(s is not None for s in signal)
                kind = [_kind(c) for c in component]
                self.component_kind.extend(kind)
                hexes = zip(component, kind, strict=True)
                self.component.extend(int(c, 16) if k == _HEX else 0 for c, k in hexes)
                for k, (s, h, e, c) in enumerate(zip(signal, sha256, error, cluster, strict=True)):
                    signals += zero_signals if s is None else s
                    sha += _NO_SHA if h is None else bytes.fromhex(h)
                    if e is not None:
                        self.errors[base + k] = e
                    if c is not None:
                        self.clusters[base + k] = c
            except (ValueError, TypeError, OverflowError) as err:
                raise StateError(damaged(store.path, f"a stored row: {err}"), path=store.path) from err
        self.statuses = list(status_code)
        self.index = {k: r for r, k in enumerate(self.keys)}
        self.sha, self.signals = bytes(sha), bytes(signals)
        self._window: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def present(self, r: int) -> bool:
        return not self.gone[r]

    def sha256(self, r: int) -> str | None:
        sha = self.sha[32 * r : 32 * r + 32]
        return None if sha == _NO_SHA else sha.hex()

    def status_of(self, r: int) -> str:
        return self.statuses[self.status[r]]

    def cluster(self, r: int) -> str | None:
        return self.clusters.get(r)

    def judged_as(self, r: int, print_: str) -> bool:
        """Whether a present document was judged, last run, in a group with this fingerprint."""
        return not self.gone[r] and self.same_component(r, print_)

    def same_component(self, r: int, print_: str | None) -> bool:
        """Whether row ``r``'s stored group fingerprint is ``print_`` (``stored._fingerprint``)."""
        kind = self.component_kind[r]
        if kind == _HEX:
            return print_ is not None and self.component[r] == int(print_, 16)
        if kind == _NULL:
            return print_ is None
        row = self.db.execute("SELECT component FROM documents WHERE rowid = ?", (self.rowid[r],))
        return bool(row.fetchone()[0] == print_)  # written by hand, or by another version: as stored

    def signal_bytes(self, r: int) -> bytes | None:
        w = self.signals_width
        return self.signals[w * r : w * r + w] if self.has_signals[r] else None

    def stored(self, r: int) -> Stored:
        """Row ``r``'s facts as a ``Stored`` (pass 1's filter takes one): no signature, record or group."""
        content = self.content[r] if self.has_content[r] else None
        shingles = self.shingles[r]
        return Stored(
            key=self.keys[r],
            file=self.files[r],
            offset=self.offset[r],
            line=self.line[r],
            size=self.size[r],
            mtime_ns=self.mtime_ns[r],
            sha256=self.sha256(r),
            status=self.status_of(r),
            error=self.errors.get(r),
            content=content,
            shingles=None if shingles < 0 else shingles,
            signature=None,
            signals=self.signal_bytes(r),
            component=None,
            record_json="",
            first_seen=self.first_seen[r],
            last_seen=0,
            gone=self.gone[r] or None,
        )

    def row(self, r: int) -> Stored:
        """Row ``r`` whole, as stored, but for its signature."""
        query = f"SELECT {', '.join(COLUMNS).replace('signature', 'NULL')} FROM documents WHERE rowid = ?"
        stored = Stored(*self.db.execute(query, (self.rowid[r],)).fetchone())
        if stored.content is not None and stored.content < 0:
            stored.content += 1 << 64
        return stored

    def record(self, r: int) -> str:
        """Row ``r``'s manifest record as stored; the next few thousand rows' are read with it."""
        rowid = self.rowid[r]
        text = self._window.get(rowid)
        if text is None:
            query = "SELECT rowid, record FROM documents WHERE rowid >= ? ORDER BY rowid LIMIT ?"
            found = self.db.execute(query, (rowid, _WINDOW))
            self._window = dict(found.fetchall())
            text = self._window[rowid]
        return text


def _kind(component: str | None) -> int:
    return _NULL if component is None else _HEX if _FINGERPRINT.fullmatch(component) else _OTHER


class Kept(Mapping[int, str]):
    """Document -> its stored record, for the documents of groups that did not change (pass2.Verdicts).

    The records are read from the state when asked for (``Rows.record``).
    """

    def __init__(self, rows: Rows | None = None, documents: int = 0) -> None:
        self.rows = rows
        self.row_of = array("q", [-1]) * documents

    def keep(self, doc: int, row: int) -> None:
        self.row_of[doc] = row

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


class Canonical(Mapping[str, Stored]):
    """Path -> facts of the documents that were kept (canonical) and present: ``copies.sync``'s ``before``."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        canonical = np.frombuffer(rows.canonical, dtype=bool)
        self._rows = np.flatnonzero(canonical & (np.frombuffer(rows.gone, dtype=np.int64) == 0))

    def __getitem__(self, path: str) -> Stored:
        r = self.rows.index.get(path)
        if r is None or not self.rows.canonical[r] or self.rows.gone[r]:
            raise KeyError(path)
        return self.rows.stored(r)

    def __contains__(self, path: object) -> bool:
        r = self.rows.index.get(path) if isinstance(path, str) else None
        return r is not None and bool(self.rows.canonical[r]) and not self.rows.gone[r]

    def __iter__(self) -> Iterator[str]:
        return (self.rows.keys[r] for r in self._rows.tolist())

    def __len__(self) -> int:
        return len(self._rows)
