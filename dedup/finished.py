"""A finished run read back: its options, its manifest, and its documents' texts.

``explain``, ``show`` and ``report`` look at a run after the fact. The manifest
says where each document came from; its text is read again from the input,
and, when the input changed or vanished since the run, from the run's own
``canonical/`` copy (kept copies only: a duplicate's text lives only in its input).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from dedup.config import Config
from dedup.document import Document, Source, printable
from dedup.errors import DedupError, InputError, OutputError
from dedup.manifest import CANONICAL, MANIFEST, RUNS, SUMMARY, container_output
from dedup.readers import is_stdin_copy, locate, reload_text, stdin_copy, unprintable
from dedup.readers.decode import Undecodable, text_of
from dedup.readers.files import is_html, read_upto
from dedup.records import FIELDS


class FinishedRun:
    """The run whose outputs are in ``out``.

    Raises:
        OutputError: OUT holds no readable summary.json or manifest.jsonl.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        try:
            self.summary: dict[str, Any] = orjson.loads(_regular(self.out / SUMMARY))
        except (OSError, orjson.JSONDecodeError) as err:
            raise OutputError(f"no readable {SUMMARY} in {self.out}: {err}") from err
        if not (self.out / MANIFEST).is_file():
            raise OutputError(f"no {MANIFEST} in {self.out}")
        try:  # written by this dedup, as it writes it (not by a newer one, nor edited)
            options = dict(self.summary["config"])
            options["globs"] = tuple(options["globs"])
            self.config = Config(**options)
            self.sources = [
                Source(kind=s["kind"], root=_input_path(s["path"]), label=s["label"])
                for s in self.summary["inputs"]
            ]
        except (KeyError, TypeError, ValueError, DedupError) as err:
            raise OutputError(f"{self.out / SUMMARY} is not one this dedup writes: {err!r}") from err
        # Standard input was read from a copy in OUT, removed after the run: only canonical/ holds it.
        self.sources = [stdin_copy(s.root, s.label) if is_stdin_copy(s) else s for s in self.sources]

    def lines(self) -> Iterator[bytes]:
        """The manifest's lines, streamed (a million-document manifest is not loaded whole)."""
        try:
            with open(self.out / MANIFEST, "rb") as fh:
                yield from (line for line in fh if line.strip())
        except OSError as err:
            raise OutputError(f"cannot read {self.out / MANIFEST}: {err}") from err

    def records(self) -> Iterator[dict[str, Any]]:
        for line in self.lines():
            yield self.parsed(line)

    def parsed(self, line: bytes) -> dict[str, Any]:
        """One manifest line as a record (``OutputError`` if it is not one: truncated, edited)."""
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise OutputError(f"{self.out / MANIFEST}: unreadable line: {err}") from err
        if not isinstance(record, dict):
            raise OutputError(f"{self.out / MANIFEST}: a line that is not a record: {line[:80]!r}")
        if (wrong := shape_error(record)) is not None:
            raise OutputError(f"{self.out / MANIFEST}: a record unlike dedup's ({wrong}): {line[:80]!r}")
        return record

    def record(self, path: str) -> dict[str, Any]:
        """The record of one manifest path.

        Raises:
            InputError: the path is not in the manifest.
        """
        key = orjson.dumps(path)
        for line in self.lines():
            if key in line and (record := self.parsed(line)).get("path") == path:
                return record
        raise InputError(f"{path}: not in {self.out / MANIFEST}")

    def cluster(self, cluster: str) -> list[dict[str, Any]]:
        """The records of one cluster, canonical first, then in manifest order.

        Raises:
            InputError: no document is in that cluster.
        """
        key = orjson.dumps(cluster)
        members = [
            r for line in self.lines() if key in line if (r := self.parsed(line)).get("cluster") == cluster
        ]
        if not members:
            raise InputError(f"{cluster}: no such cluster in {self.out / MANIFEST}")
        if not any(r["canonical"] for r in members):  # (two: names of 48 bits, shared by two clusters)
            raise OutputError(f"{self.out / MANIFEST}: cluster {cluster} has no canonical member")
        return sorted(members, key=lambda r: not r["canonical"])

    def last_changes(self) -> list[dict[str, Any]]:
        """What the last cron run changed (``runs/run-NNNNNN.jsonl``); empty without a state."""
        if self.summary.get("run") is None:
            return []
        path = self.out / RUNS / f"run-{self.summary['run']:06d}.jsonl"
        try:
            return [orjson.loads(line) for line in _regular(path).splitlines() if line.strip()]
        except (OSError, orjson.JSONDecodeError):
            return []

    def text(self, record: dict[str, Any]) -> tuple[str | None, str]:
        """(text, where it was read from): the input, else the canonical copy, else ``None`` and why."""
        if record["status"] != "ok":
            return None, f"skipped ({record['status']})"
        if self._from_stdin(record["path"]):
            problem, why = "it was read from standard input, which is not kept", "standard input is not kept"
        else:
            try:
                return reload_text(self._locate(record), self.config), "input"
            except (InputError, ValueError) as err:  # ValueError: a gone JSONL's id with a NUL as a file name
                problem, why = str(err), "the input changed or vanished since the run"
        if record["canonical"] and (text := self._canonical_text(record)) is not None:
            return text, f"canonical copy ({why})"
        return None, f"unavailable: {printable(problem)}"  # it may name a file that is not UTF-8

    def _from_stdin(self, path: str) -> bool:
        """Whether the document was read from standard input, whose copy is gone with the run."""
        try:
            source, _ = self._source(path)
        except InputError:
            return False
        return is_stdin_copy(source) and not os.path.exists(source.root)

    def _source(self, path: str) -> tuple[Source, str]:
        for source in self.sources:
            prefix = f"{source.label}/" if source.label else ""
            if path.startswith(prefix):
                return source, path[len(prefix) :]
        raise InputError(f"{path}: not under any input of the run")

    def _locate(self, record: dict[str, Any]) -> Document:
        """Enough of a Document to read it again from its input (a container's record found by its path)."""
        doc = locate(record["path"], self.sources, self.config)
        doc.sha256 = record["sha256"] or ""  # what the run read: a changed input is an error
        return doc

    def _canonical_text(self, record: dict[str, Any]) -> str | None:
        """The text of a kept document from OUT/canonical/, if its bytes there are the ones the run read."""
        canonical = self.out / CANONICAL
        source, _ = self._source(record["path"])
        try:
            whole = canonical / record["path"]
            if whole.is_file():
                data = whole.read_bytes()
                if hashlib.sha256(data).hexdigest() != record["sha256"]:
                    return None
                return text_of(data, html=is_html(record["path"])).text
            # A container's kept records are in its canonical copy, in the same format.
            if source.kind == "dir":
                inside = Source("dir", str(canonical), source.label)
            else:
                inside = Source(source.kind, str(canonical / container_output(source)), source.label)
            doc = locate(record["path"], [inside], self.config)
            doc.sha256 = record["sha256"] or ""
            return reload_text(doc, self.config)
        except (OSError, ValueError, DedupError, Undecodable):  # ValueError: a NUL in a hand-edited path
            return None


_NONE = type(None)
_NUMBERS = frozenset((int, float))
_FIELD_TYPES: tuple[tuple[str, frozenset[type]], ...] = tuple(
    (name, frozenset(types))
    for name, types in {
        "path": (str,), "status": (str,), "canonical": (bool,), "score": (int, float, _NONE),
        **dict.fromkeys(("sha256", "cluster", "duplicate_of", "reason", "error", "warning"), (str, _NONE)),
        **dict.fromkeys(("size", "line"), (int, _NONE)),
        **dict.fromkeys(("similarity", "penalties", "signals"), (dict, _NONE)),
    }.items()
)  # fmt: skip
assert {name for name, _ in _FIELD_TYPES} == set(FIELDS)  # a field added to the manifest is added here
_SIMILARITY = frozenset(("jaccard", "containment", "shared"))


def shape_error(record: dict[str, Any]) -> str | None:
    """What makes a manifest record one dedup does not write (a field missing, or of another type:
    an OUT edited by hand), or None. ``show``, ``explain`` and ``report`` read these fields.

    Types are compared exactly (a bool is no number here): ``report`` reads every record, and
    ``isinstance`` made reading a 1M manifest ~7 s slower.

    Example:
        >>> shape_error({**dict.fromkeys(FIELDS), "path": "a.txt", "status": "ok", "canonical": 1})
        "'canonical' is int"
    """
    for name, types in _FIELD_TYPES:
        value = record.get(name, record)  # (the record itself: no field)
        if type(value) not in types:
            return f"no {name!r}" if value is record else f"{name!r} is {type(value).__name__}"
    if record["status"] == "ok":  # in a cluster, scored
        for name in ("cluster", "score", "penalties", "signals"):
            if record[name] is None:
                return f"{name!r} is None in a record of status ok"
    if record["similarity"] is not None and (missing := _SIMILARITY - record["similarity"].keys()):
        return f"no similarity.{min(missing)}"
    for name in ("similarity", "penalties", "signals"):
        for key, value in (record[name] or {}).items():
            if type(value) not in _NUMBERS:
                return f"{name}.{key} is {type(value).__name__}"
    return None


def _input_path(recorded: str) -> str:
    """An INPUT as ``summary.json`` records it (``printable``), as the file system names it.

    An OUT written before INPUT paths were escaped holds the name as it is: taken
    as it is when the escaped reading names nothing.
    """
    real = unprintable(recorded)
    return real if real == recorded or os.path.lexists(real) else recorded


READ_MAX = 1 << 28  # summary.json, a run's change list: far smaller, unless something took their place


def _regular(path: Path) -> bytes:
    """A regular file's bytes: a FIFO put in its place is not waited on, nor ``/dev/zero`` read for ever.

    Raises:
        OSError: it cannot be read, is not a regular file, or is over ``READ_MAX`` bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > READ_MAX:
            raise OSError(f"{path}: not a regular file of at most {READ_MAX} bytes")
        return read_upto(fd, info.st_size)
    finally:
        os.close(fd)
