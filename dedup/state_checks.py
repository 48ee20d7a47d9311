"""How the state's rows are checked, and how names and errors are stored (``state``'s helpers);
whether its tables of limits can be trusted (the mark the last run left).

A row read back must be what a run wrote, or the state is damaged and only a
rebuild helps: the checks exist twice, as an SQL condition that finds such rows
without reading every row into Python, and as Python that says what is wrong.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from dedup.document import Status
from dedup.errors import StateError

if TYPE_CHECKING:
    from dedup.state import Stored

STATUSES = frozenset(str(s) for s in Status)
_HEX_DIGITS = frozenset("0123456789abcdef")
DAMAGED_FACTS = f"""(
    typeof(key) != 'text' OR typeof(file) NOT IN ('text', 'blob')
    OR status NOT IN ({", ".join(f"'{s}'" for s in sorted(STATUSES))})
    OR (signature IS NOT NULL AND (typeof(signature) != 'blob' OR length(signature) != ?1))
    OR (signals IS NOT NULL AND (typeof(signals) != 'blob' OR length(signals) != ?2))
    OR (sha256 IS NOT NULL AND (typeof(sha256) != 'text' OR length(sha256) != 64))
    OR typeof(offset) != 'integer' OR typeof(line) != 'integer' OR typeof(size) != 'integer'
    OR typeof(mtime_ns) != 'integer' OR typeof(first_seen) != 'integer'
    OR (content IS NOT NULL AND typeof(content) != 'integer')
    OR (shingles IS NOT NULL AND typeof(shingles) != 'integer')
    OR (gone IS NOT NULL AND typeof(gone) != 'integer')
)"""  # what ``row_damage`` finds wrong but the record and sha256 digits (``rows.Rows`` checks those)
DAMAGED = f"""({DAMAGED_FACTS}
    OR typeof(record) != 'text' OR substr(record, 1, 8) != '{{"path":' OR substr(record, -1) != '}}'
    OR instr(record, '"cluster":') = 0 OR instr(record, '"canonical":') = 0
)"""  # the rows ``row_damage`` finds wrong, as an SQL condition


def record_damage(text: object) -> str | None:
    """What is wrong with a stored manifest record, if anything (as ``DAMAGED`` finds it)."""
    if not (isinstance(text, str) and text.startswith('{"path":') and text.endswith("}")):
        return "has an unreadable manifest record"
    if '"cluster":' not in text or '"canonical":' not in text:
        return "has an incomplete manifest record"
    return None


def row_damage(row: Stored, widths: tuple[int, int]) -> str | None:
    """What is wrong with a stored row, if anything (``DAMAGED`` finds the rows, this says why)."""
    if not isinstance(row.key, str) or not isinstance(row.file, (str, bytes)):
        return "has no path"
    if row.status not in STATUSES:
        return f"has an unknown status {row.status!r}"
    sha = row.sha256
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= _HEX_DIGITS):
        return "has an unreadable sha256"
    numbers = (row.offset, row.line, row.size, row.mtime_ns, row.first_seen)
    optional = (row.content, row.shingles, row.gone)
    if not all(type(n) is int for n in numbers) or not all(n is None or type(n) is int for n in optional):
        return "has a number that is not one"
    for blob, width in zip((row.signature, row.signals), widths, strict=True):
        if blob is not None and (not isinstance(blob, bytes) or len(blob) != width):
            return "has a signature or signals of the wrong size"
    return record_damage(row.record_json)


def storable_path(path: str | bytes) -> str | bytes:
    """A file's path as SQLite can hold it: text, or bytes when the name is not UTF-8.

    ``os.scandir`` gives such a name's bytes as surrogates, which no UTF-8 text
    holds; the bytes themselves are stored (a BLOB) and ``stored_path`` turns
    them back into the name the file system knows.
    """
    if isinstance(path, bytes):
        return path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def stored_path(path: str | bytes) -> str:
    """A path as ``storable_path`` stored it, as the file system's name again."""
    return path if isinstance(path, str) else os.fsdecode(path)


def damaged(path: Path, what: str) -> str:
    """The message for a state that cannot be trusted: only a rebuild helps."""
    return f"state {path.parent} is damaged ({what}); run with --rebuild to discard it and build it anew"


def unusable(path: Path, err: sqlite3.Error) -> StateError:
    """A SQLite error as a StateError: a damaged file (rebuild it), or one that cannot be used now."""
    if type(err) is sqlite3.DatabaseError:  # "file is not a database", "disk image is malformed"
        return StateError(damaged(path, str(err)), path=path)
    if str(err).startswith("Could not decode"):  # a text column that is not UTF-8: a flipped byte
        return StateError(damaged(path, "a stored text is not UTF-8"), path=path)
    return StateError(f"cannot use state {path}: {err}", path=path)


# The state's table of ``freq_bounds.Bounds`` holds every group's limits when this blob names the
# last run: after a run of a version that keeps none (even one run, after a rollback) some groups
# have none, so every group is judged again, once.
LIMITS_MARK = "frequency_bounds"


def kept_mark(run: int) -> bytes:
    """The ``LIMITS_MARK`` blob of a state whose table holds every group's limits, written by ``run``."""
    return b"FB2 run " + str(run).encode()


def limits_kept(mark: bytes | None, last_run: int) -> bool:
    """Whether the state's table holds every group's limits, as its last run left them.

    Example:
        >>> limits_kept(kept_mark(7), 7), limits_kept(kept_mark(6), 7)  # an earlier version ran since
        (True, False)
    """
    return mark == kept_mark(last_run)
