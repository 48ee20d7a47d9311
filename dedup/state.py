"""The persistent index for cron runs: one SQLite database in the ``--state`` directory.

It remembers every document ever seen (where it is, its size, mtime and sha256,
its signature and signals, the manifest record it got, and a fingerprint of the
group of documents it was judged with), the corpus token frequencies, the run
history and every supersession. A run reads it at the start and replaces what
changed in one transaction at the end, so a run killed at any moment leaves the
state as it was before the run or as it is after it.

The state is stamped with everything that changes signature values; opening it
with other parameters raises ``StateMismatchError`` unless it is rebuilt.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dedup.document import printable
from dedup.errors import StateError, StateMismatchError
from dedup.state_checks import DAMAGED, damaged, row_damage, storable_path, stored_path, unusable

DATABASE = "state.sqlite"
_CHANGES = "changes/"  # + run: a committed run's change list, until OUT holds it
SCHEMA_VERSION = 1

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT NOT NULL, inputs TEXT NOT NULL,
    counts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    key TEXT PRIMARY KEY,
    file TEXT NOT NULL, offset INTEGER NOT NULL, line INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT,
    status TEXT NOT NULL, error TEXT,
    content INTEGER, shingles INTEGER, signature BLOB, signals BLOB,
    component TEXT, record TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,  -- last run that wrote the row; a present (gone IS NULL) row was seen since
    gone INTEGER  -- run in which the file was first missing
);
CREATE TABLE IF NOT EXISTS supersessions (
    run INTEGER NOT NULL, cluster TEXT NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prints (key TEXT PRIMARY KEY, value BLOB NOT NULL);  -- rerun.py
CREATE TABLE IF NOT EXISTS columns (name TEXT NOT NULL);  -- row_image.py: the file of the rows' columns
CREATE TABLE IF NOT EXISTS bounds (owner INTEGER PRIMARY KEY, data BLOB NOT NULL);  -- freq_bounds.py
"""
    + "".join(
        # Any write to the documents but a commit's forgets the file: it would not match them.
        f"CREATE TRIGGER IF NOT EXISTS forget_columns_{op.lower()} AFTER {op} ON documents"
        " BEGIN DELETE FROM columns; END;\n"
        for op in ("INSERT", "UPDATE", "DELETE")
    )
    + "".join(
        # Any write to the state but through ``mark_synced`` (another run's, or by hand: a row
        # edited, removed) forgets the prints: the next run then reads and checks every row.
        f"CREATE TRIGGER IF NOT EXISTS forget_{table}_{op.lower()} AFTER {op} ON {table}"
        " BEGIN DELETE FROM prints; END;\n"
        for table in ("meta", "blobs", "runs", "documents", "supersessions")
        for op in ("INSERT", "UPDATE", "DELETE")
    )
)


AS_STORED = b""  # a row's signature, when it is written again: keep the stored one
COLUMNS = (
    "key", "file", "offset", "line", "size", "mtime_ns", "sha256", "status", "error", "content", "shingles",
    "signature", "signals", "component", "record", "first_seen", "last_seen", "gone",
)  # fmt: skip
_UPSERT = (
    f"INSERT INTO documents VALUES ({','.join('?' * len(COLUMNS))}) ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(
        "signature = CASE WHEN excluded.signature = x'' THEN signature ELSE excluded.signature END"
        if c == "signature"
        else f"{c} = excluded.{c}"
        for c in COLUMNS[1:]
    )
)


@dataclass(slots=True)
class Stored:
    """One document as the previous run left it.

    Its manifest record is kept as the JSON text it was stored as: a parsed dict
    costs ~3x the memory, and parsing a million rows at every cron run ~7 s.
    """

    key: str
    file: str
    offset: int
    line: int
    size: int
    mtime_ns: int
    sha256: str | None
    status: str
    error: str | None
    content: int | None
    shingles: int | None
    signature: bytes | None  # uint32[num_perm]; not loaded with the row (rows.signature_chunks)
    signals: bytes | None  # float32, quality.INTRINSIC order
    component: str | None
    record_json: str
    first_seen: int
    last_seen: int
    gone: int | None

    @property
    def record(self) -> dict[str, Any]:
        return orjson.loads(self.record_json)

    @property
    def canonical(self) -> bool:
        """The record's ``canonical`` flag, read without parsing it.

        Exact for orjson's compact output: inside a JSON string every quote is
        escaped, so ``"canonical":true`` can only be that key and value.
        """
        return '"canonical":true' in self.record_json

    @property
    def cluster(self) -> str | None:
        """The record's ``cluster``, read without parsing it (same argument as ``canonical``;
        cluster names are ``c`` and hex digits, never escaped)."""
        text = self.record_json
        at = text.find('"cluster":') + len('"cluster":')
        if text.startswith("null", at):
            return None
        return text[at + 1 : text.index('"', at + 1)]


class State:
    """The SQLite database of one ``--state`` directory (hold ``locks.locked`` while using it)."""

    def __init__(
        self,
        directory: Path,
        stamp: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        rebuild: bool = False,
    ) -> None:
        """Open (or make) the state; ``stamp`` is checked now, or, given as a function, by ``check_stamp``.

        A rerun with nothing to do (``rerun.py``) never works the stamp out: it
        imports the signing and scoring code (~1 s).
        """
        self.path = directory / DATABASE
        self._stamp = stamp
        self._widths = (0, 0)  # the byte lengths of a stored signature and of a row of signals
        self._checked = False
        if rebuild:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        elif self.path.is_file() and self.path.stat().st_size == 0:
            # SQLite would take an emptied file for a new state: history would restart at run 1.
            raise StateError(damaged(self.path, "state.sqlite is empty"), path=self.path)
        elif os.path.lexists(self.path) and not self.path.is_file():  # a FIFO, /dev/zero: "disk I/O error"
            raise StateError(damaged(self.path, "state.sqlite is not a regular file"), path=self.path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as err:
            raise StateError(f"cannot open state {self.path}: {err}", path=self.path) from err
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            if not callable(stamp):
                self.check_stamp()
        except BaseException as err:
            self.db.close()
            if isinstance(err, sqlite3.Error):
                raise unusable(self.path, err) from err
            raise

    def check_stamp(self) -> None:
        """Refuse a state built with other parameters (``StateMismatchError``); stamp a new one."""
        if self._checked:
            return
        from dedup.quality import INTRINSIC  # numba and friends: not for a rerun with nothing to do

        stamp = self._stamp() if callable(self._stamp) else self._stamp
        self._widths = (int(stamp.get("num_perm", 0)) * 4, len(INTRINSIC) * 4)
        wanted = orjson.dumps({"schema": SCHEMA_VERSION, **stamp}, option=orjson.OPT_SORT_KEYS).decode()
        row = self.db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('stamp', ?)", (wanted,))
        elif row[0] != wanted:
            want = orjson.loads(wanted)
            try:
                have = orjson.loads(row[0])
            except (orjson.JSONDecodeError, TypeError):
                have = None
            if not isinstance(have, dict):
                raise StateError(damaged(self.path, "its stamp is not one dedup writes"), path=self.path)
            differ = ", ".join(
                f"{k} {have.get(k)!r} -> {want.get(k)!r}"
                for k in sorted(set(have) | set(want))
                if have.get(k) != want.get(k)
            )
            raise StateMismatchError(
                f"state {self.path.parent} was built with other parameters ({differ}); "
                "run with --rebuild to discard it and start again",
                path=self.path.parent,
            )
        self._checked = True

    @property
    def widths(self) -> tuple[int, int]:
        """Byte lengths of a stored signature and of a row of signals (once the stamp is checked)."""
        return self._widths

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ reading --

    def last_run(self) -> int:
        row = self.db.execute("SELECT max(run) FROM runs").fetchone()
        return int(row[0] or 0)

    def synced_run(self) -> int:
        """The run whose outputs OUT holds (behind ``last_run`` after a crash while writing them)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'outputs'").fetchone()
        try:
            return int(row[0]) if row else 0
        except (TypeError, ValueError) as err:
            raise StateError(
                damaged(self.path, f"the run OUT holds is {row[0]!r:.40}"), path=self.path
            ) from err

    def documents(self) -> dict[str, Stored]:
        """Every stored document, each row checked to be usable, without its signature (``signatures``).

        Raises:
            StateError: a row is damaged (the message says to ``--rebuild``).
        """
        self.check_stamp()
        self.check_rows()
        out = {}
        for r in self.db.execute(f"SELECT {_ALL.replace('signature', 'NULL')} FROM documents"):
            stored = Stored(*r)  # the SELECT lists the columns in Stored's field order
            stored.file = stored_path(stored.file)
            if stored.content is not None and stored.content < 0:
                stored.content += 1 << 64  # SQLite integers are signed
            out[stored.key] = stored
        return out

    def check_rows(self) -> None:
        """Refuse a state with a damaged row (the message says to ``--rebuild``).

        The rows are checked in one query, by SQLite: per row in Python it cost a
        third of the loading.

        Raises:
            StateError: a row is damaged.
        """
        bad = self.db.execute(
            f"SELECT {_ALL} FROM documents WHERE {DAMAGED} LIMIT 1", self._widths
        ).fetchone()
        if bad is not None:
            row = Stored(*bad)
            problem = row_damage(row, self._widths) or "is damaged"
            raise StateError(damaged(self.path, f"stored row {row.key!r} {problem}"), path=self.path)

    def check_count(self, loaded: int) -> None:
        """Refuse a state whose documents table holds other rows than its last run left: dedup only
        adds and replaces rows, so a deleted row or a dropped table is an edit by hand, and the
        stored token counts would count documents no row holds (other scores, silently).
        ``loaded``: the rows as ``rows.Rows`` read them (an edit by hand voids the rows' image,
        so they were scanned; a count here read a cold 1M state's index: ~2 s).

        Raises:
            StateError: the count differs (the message says to ``--rebuild``).
        """
        row = self.db.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone()
        run, _, count = str(row[0] if row else "").partition(" ")
        # Counted by the run that wrote it only: an earlier version's run since (a rollback) adds
        # rows without counting them, and the next commit counts again.
        if run == str(self.last_run()) and count != str(loaded):
            raise StateError(
                damaged(self.path, f"it holds {loaded} document rows where its last run left {count:.20}"),
                path=self.path,
            )

    def stamp_text(self) -> str | None:
        """The stamp as stored (compared as text by a rerun that does not work it out)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        return None if row is None else str(row[0])

    def prints(self) -> dict[str, bytes]:
        """What the last synced run recorded of its inputs and OUT (``rerun.py``)."""
        return {k: bytes(v) for k, v in self.db.execute("SELECT key, value FROM prints")}

    def blob(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        if row is not None and not isinstance(row[0], bytes):
            raise StateError(damaged(self.path, f"its {key} is not bytes"), path=self.path)
        return None if row is None else bytes(row[0])

    def bounds(self) -> list[tuple[int, bytes]]:
        """The rows of ``freq_bounds``' table: a group's fingerprint (signed) and its limits."""
        return self.db.execute("SELECT owner, data FROM bounds").fetchall()

    def history(self, limit: int = 20) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self.db.execute("SELECT run, finished, counts FROM runs ORDER BY run DESC LIMIT ?", (limit,))
        return [(r[0], r[1], orjson.loads(r[2])) for r in rows]

    # ------------------------------------------------------------ writing --

    def commit_run(
        self,
        *,
        run: int,
        started: str,
        inputs: list[str],
        counts: Callable[[], dict[str, int]],
        documents: Iterable[Stored],
        supersessions: Iterable[tuple[str, str, str, str]],
        blobs: Callable[[], dict[str, bytes | bytearray]],
        changes: Callable[[], list[dict[str, Any]]],
        columns: Callable[[], str | None] | None = None,
        bounds: Callable[[], tuple[list[int] | None, list[tuple[int, bytes]]]] | None = None,
    ) -> None:
        """Write the documents that changed and add the run, all or nothing.

        ``documents`` holds only new or changed rows (a row is replaced whole, but
        for a signature ``AS_STORED``: a document not read again keeps its own):
        an unchanged document costs nothing, so a nightly run that adds 10k files to
        a million-document state writes 10k rows. It may be a generator that
        works out the run's counts as it goes: ``counts``, ``blobs`` and
        ``changes`` (the run's change list, kept until OUT holds it: see
        ``unwritten_changes``) are called after it. ``columns`` then writes the
        file of the rows' columns as they now stand (``row_image``) and names it, or
        None: the name is recorded in the same transaction. Without it, the file
        named stays named unless a document is written. ``bounds``: the groups whose
        limits go (``freq_bounds``; their fingerprints, signed; None: all) and the rows to write.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM prints")  # until OUT holds this run's outputs
            before = self.db.total_changes
            self.db.executemany(
                _UPSERT,
                (
                    (
                        d.key,
                        storable_path(d.file),
                        d.offset,
                        d.line,
                        d.size,
                        d.mtime_ns,
                        d.sha256,
                        d.status,
                        d.error,
                        None if d.content is None else _signed(d.content),
                        d.shingles,
                        d.signature,
                        d.signals,
                        d.component,
                        d.record_json,
                        d.first_seen,
                        d.last_seen,
                        d.gone,
                    )
                    for d in documents
                ),
            )
            wrote = self.db.total_changes > before  # (read before any other statement changes rows)
            self.db.executemany(
                "INSERT INTO supersessions VALUES (?,?,?,?,?)", ((run, *s) for s in supersessions)
            )
            for key, value in blobs().items():
                self.db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?)", (key, value))
            if bounds is not None:
                gone, written = bounds()
                if gone is None:
                    self.db.execute("DELETE FROM bounds")
                else:
                    self.db.executemany("DELETE FROM bounds WHERE owner = ?", ((o,) for o in gone))
                self.db.executemany("INSERT OR REPLACE INTO bounds VALUES (?, ?)", written)
            listed = b"".join(orjson.dumps(change) + b"\n" for change in changes())
            self.db.execute(
                "INSERT OR REPLACE INTO blobs VALUES (?, ?)", (f"{_CHANGES}{run}", zlib.compress(listed, 1))
            )
            self.db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?)",
                (
                    run,
                    started,
                    now(),
                    orjson.dumps(list(map(printable, inputs))).decode(),
                    orjson.dumps(counts()).decode(),
                ),
            )
            # dedup only adds and replaces rows: fewer at the next open is an edit (``check_count``).
            # A run that wrote none carries the count on (a count of a cold 1M state: 1.4 s).
            if wrote:
                self.db.execute(
                    "INSERT OR REPLACE INTO meta SELECT 'rows', ? || ' ' || count(*) FROM documents", (run,)
                )
            else:
                self.db.execute(
                    "UPDATE meta SET value = ? || substr(value, instr(value, ' ')) "
                    "WHERE key = 'rows' AND value LIKE ? || ' %'",
                    (run, run - 1),
                )
            if columns is not None:
                name = columns()
                self.db.execute("DELETE FROM columns")
                if name is not None:
                    self.db.execute("INSERT INTO columns VALUES (?)", (name,))
            self.db.execute("COMMIT")
        except BaseException as err:  # also a failure of the manifest written as the rows stream
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise unusable(self.path, err) from err
            raise

    def mark_synced(self, run: int, prints: dict[str, bytes] | None = None) -> None:
        """Record that OUT now holds the outputs of ``run`` (and the change lists up to it).

        ``prints``: what a rerun compares to know it has nothing to do (``rerun.py``);
        None forgets them (the next run does all its work).
        """
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('outputs', ?)", (str(run),))
        self.db.execute("DELETE FROM blobs WHERE key LIKE ?", (f"{_CHANGES}%",))
        self.db.execute("DELETE FROM prints")
        self.db.executemany("INSERT INTO prints VALUES (?, ?)", (prints or {}).items())
        self.db.execute("COMMIT")

    def unwritten_changes(self) -> dict[int, bytes]:
        """The change lists (JSON lines) of runs committed but killed before OUT held them."""
        rows = self.db.execute("SELECT key, value FROM blobs WHERE key LIKE ?", (f"{_CHANGES}%",))
        try:
            return {int(k.removeprefix(_CHANGES)): zlib.decompress(v) for k, v in rows}
        except (ValueError, zlib.error) as err:
            raise StateError(damaged(self.path, f"a stored change list: {err}"), path=self.path) from err


_ALL = ", ".join(COLUMNS)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _signed(value: int) -> int:
    """SQLite integers are signed 64-bit; content keys are unsigned."""
    return value - (1 << 64) if value >= 1 << 63 else value
