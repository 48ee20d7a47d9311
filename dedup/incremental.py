"""Cron mode: a filter in front of the batch path, over the ``--state`` of earlier runs.

``session`` locks and opens what a run writes and yields its filter:
``Batch`` for a run without a state (the null filter: nothing stored, nothing
skipped, OUT written whole), ``Incremental`` with one. The pipeline asks the
filter, at each stage, what it already knows:

- pass 1: an unchanged document is not read, its stored features are used;
- pass 2: a group whose members did not change keeps its stored records;
- records: what changed against the state (new, changed, superseded, gone) and
  the state rows to replace;
- outputs: ``canonical/`` brought up to date in place, the run's change list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import xxhash

from dedup import copies, locks, manifest, records, state
from dedup.changes import Changes, find_changes
from dedup.config import Config
from dedup.document import Document, DocumentTable, Source, Status
from dedup.errors import ConfigError, OutputError, StateError
from dedup.frequency import TokenFrequency
from dedup.pass1 import FeatureTable
from dedup.pass2 import Corpus, Task, Verdicts
from dedup.state import Stored

_STATUS = {str(s): s for s in Status}


@contextlib.contextmanager
def session(config: Config, out: Path, roots: Sequence[str]) -> Iterator[Batch]:
    """Check and lock what the run writes, and open its state: the filter for the run.

    Raises:
        OutputError: OUT cannot be used (or the state directory overlaps an INPUT).
        StateError: the state is locked, was built with other parameters, or is unusable.
    """
    if config.state is None:
        manifest.prepare_out(out, roots, force=config.force)
        # Overlapping runs into one OUT.
        with locks.locked(out, config.lock_timeout, manifest.OUT_LOCK, what="OUT"):
            yield Batch()
        return
    directory = Path(config.state)
    manifest.check_apart(directory, roots, "--state")
    try:
        manifest.check_apart(directory, [str(out)], "--state")
    except OutputError as err:  # a run would replace or delete the state among its outputs
        raise ConfigError(f"--state {directory} overlaps OUT {out}: keep them apart") from err
    for path, what in ((directory, "--state"), (out, "OUT")):  # before the state is made: nothing half-made
        manifest.check_creatable(path, what)
    with locks.locked(directory, config.lock_timeout):
        store = state.State(directory, config.stamp(), rebuild=config.rebuild)
        try:
            ours = store.last_run() > 0 or config.rebuild  # OUT holds this state's last outputs
            manifest.prepare_out(out, roots, force=config.force, ours_ok=ours)
            # Two cron runs with different states must not write one OUT at once either.
            with locks.locked(out, config.lock_timeout, manifest.OUT_LOCK, what="OUT"):
                yield Incremental(store, config)
        except sqlite3.Error as err:  # reading a damaged state, or writing to a full disk
            raise state.unusable(store.path, err) from err
        finally:
            store.close()


class Batch:
    """The null filter: a run without a state reads everything and writes OUT whole."""

    run_id: int | None = None  # a cron run's number, for summary.json
    keeps_signatures = False  # signatures are only kept to be stored: 1 KB per text, the largest table

    def __init__(self) -> None:
        self.kept: dict[int, str] = {}  # document -> its stored record (JSON), when its group did not change
        # Files found edited in place (same size and mtime) when read again: not taken from the state.
        self.suspects: set[str] = set()

    def begin(self) -> TokenFrequency:
        """Start the run (or start it again); the token frequencies to count into."""
        self.kept.clear()
        return TokenFrequency()

    def stored(self, doc: Document) -> Stored | None:
        """Pass 1's filter: the stored row of a document that has not changed."""
        return None

    def judge(
        self, corpus: Corpus, comps: list[list[int]], comp_of: np.ndarray, tasks: list[Task]
    ) -> list[Task]:
        """The pass-2 tasks still to do (a group that did not change keeps its verdicts in ``kept``)."""
        return tasks

    def compare(self, docs: DocumentTable, verdicts: Verdicts) -> None:
        """Work out, before the records are written, what changed against the state."""

    def emit(
        self,
        fh: Any,
        docs: DocumentTable,
        feats: FeatureTable,
        verdicts: Verdicts,
        fresh: bytearray,
        tally: records.Tally,
    ) -> Iterator[Stored]:
        """Write every record to the manifest, in order, and count it; yield the state rows to replace."""
        for i in range(len(docs)):
            record = verdicts.record(i)
            fh.write(orjson.dumps(record) + b"\n")
            tally.add(i, record["status"], record["canonical"], record["cluster"])
        yield from ()

    def commit(
        self,
        sources: Sequence[Source],
        rows: Iterator[Stored],
        tally: records.Tally,
        frequency: TokenFrequency,
    ) -> None:
        """Consume ``rows`` (``emit``: it writes the manifest as it goes) and store them."""
        deque(rows, maxlen=0)

    def counts(self, tally: records.Tally) -> dict[str, int]:
        """What changed against the state: without one, every document is new."""
        return {"new": tally.counts["documents"], "changed": 0, "superseded": 0, "gone": 0}

    def copy(
        self,
        out: Path,
        docs: DocumentTable,
        kept: list[int],
        fresh: bytearray,
        config: Config,
        checkpoint: copies.Checkpoint,
    ) -> None:
        """The canonical copies of the kept documents."""
        copies.write(out, docs, kept, config)

    def write_changes(self, out: Path) -> None:
        """The run's change list (``runs/``), before the summary."""

    def synced(self) -> None:
        """OUT now holds this run's outputs."""


class Incremental(Batch):
    """A run with a ``--state``: what the state knows is not done again, OUT is updated in place."""

    keeps_signatures = True

    def __init__(self, store: state.State, config: Config) -> None:
        super().__init__()
        self.store, self.config = store, config
        self.previous: dict[str, Stored] = {}
        self.prints: dict[int, str] = {}  # node -> fingerprint of its group
        self.changes = Changes([], {}, {}, [])
        self.unwritten: dict[int, bytes] = {}

    def begin(self) -> TokenFrequency:
        self.kept.clear()
        self.started = state.now()
        self.previous = self.store.documents()
        self.unwritten = self.store.unwritten_changes()  # read before this run's commit replaces them
        self.run_id = self.store.last_run() + 1
        frequency = TokenFrequency()
        if (table := self.store.blob("token_frequency")) is not None:
            try:
                frequency.loads(table)
            except (ValueError, zlib.error) as err:
                raise StateError(
                    f"state {self.config.state}: stored token frequencies are unreadable ({err}); "
                    "run with --rebuild",
                    path=self.config.state,
                ) from err
        return frequency

    def stored(self, doc: Document) -> Stored | None:
        prev = self.previous.get(doc.path)
        return prev if doc.file not in self.suspects and unchanged(doc, prev) else None

    def judge(
        self, corpus: Corpus, comps: list[list[int]], comp_of: np.ndarray, tasks: list[Task]
    ) -> list[Task]:
        self.prints, same = _unchanged_groups(corpus, comps, comp_of, self.previous, self.kept)
        return [t for c, t in enumerate(tasks) if c not in same]

    def compare(self, docs: DocumentTable, verdicts: Verdicts) -> None:
        assert self.run_id is not None
        self.changes = find_changes(docs, verdicts, self.previous, self.run_id)

    def emit(
        self,
        fh: Any,
        docs: DocumentTable,
        feats: FeatureTable,
        verdicts: Verdicts,
        fresh: bytearray,
        tally: records.Tally,
    ) -> Iterator[Stored]:
        assert self.run_id is not None
        return _emit(
            docs, feats, verdicts, self.previous, fresh, self.prints, self.changes, self.run_id, fh, tally
        )

    def commit(
        self,
        sources: Sequence[Source],
        rows: Iterator[Stored],
        tally: records.Tally,
        frequency: TokenFrequency,
    ) -> None:
        assert self.run_id is not None
        self.store.commit_run(
            run=self.run_id,
            started=self.started,
            inputs=[s.root for s in sources],
            counts=lambda: {**tally.counts, **self.counts(tally)},
            documents=rows,
            supersessions=self.changes.supersessions,
            blobs=lambda: {"token_frequency": frequency.dumps()},
            changes=self.changes.delta,
        )

    def counts(self, tally: records.Tally) -> dict[str, int]:
        return self.changes.counts()

    def copy(
        self,
        out: Path,
        docs: DocumentTable,
        kept: list[int],
        fresh: bytearray,
        config: Config,
        checkpoint: copies.Checkpoint,
    ) -> None:
        run_id, store = self.run_id, self.store
        assert run_id is not None
        if run_id > 1 and store.synced_run() == run_id - 1 and (out / manifest.CANONICAL).is_dir():
            before = {p: s for p, s in self.previous.items() if s.gone is None and s.canonical}
            copies.sync(out, docs, kept, before, fresh, config, checkpoint)
        else:
            copies.write(out, docs, kept, config)

    def write_changes(self, out: Path) -> None:
        assert self.run_id is not None
        for run, listed in sorted(self.unwritten.items()):  # of a run killed before OUT held them
            if run < self.run_id:
                manifest.write_delta(out, run, map(orjson.loads, listed.splitlines()))
        manifest.write_delta(out, self.run_id, self.changes.delta())

    def synced(self) -> None:
        assert self.run_id is not None
        self.store.mark_synced(self.run_id)


def unchanged(doc: Document, prev: Stored | None) -> bool:
    """Whether a document is as the state stored it; if so, take its stored facts.

    A whole file is unchanged when its size and mtime are (it is then not read
    at all); a JSONL line, read anyway, when its sha256 is.
    """
    if prev is None or prev.gone is not None:
        return False
    if doc.offset < 0:
        if prev.offset >= 0:
            return False
        try:
            info = os.stat(doc.file)
        except OSError:
            return False
        if (prev.size, prev.mtime_ns) != (info.st_size, info.st_mtime_ns):
            return False
        doc.size, doc.mtime_ns, doc.sha256 = prev.size, prev.mtime_ns, prev.sha256 or ""
        doc.status, doc.error = _STATUS[prev.status], prev.error
    elif doc.status is not Status.OK or prev.sha256 != doc.sha256 or prev.status != Status.OK:
        return False
    doc.text = None
    return True


def _fingerprint(corpus: Corpus, group: Sequence[int]) -> str:
    """Identity of a group of documents judged together: unchanged => its verdicts still hold."""
    docs = corpus.docs
    lines = sorted(f"{docs.paths[d]}\t{docs.sha256(d)}" for n in group for d in corpus.members(n))
    return xxhash.xxh3_64_hexdigest("\n".join(lines).encode())


def _unchanged_groups(
    corpus: Corpus,
    comps: list[list[int]],
    comp_of: np.ndarray,
    previous: dict[str, Stored],
    kept: dict[int, str],
) -> tuple[dict[int, str], set[int]]:
    """Fingerprint every group (component, or lone text) and find the ones the state already judged.

    Fills ``kept`` (document -> stored record) for the documents of unchanged
    groups; returns the fingerprint of each node and the unchanged components.
    A lone text with one document, the common case, is fingerprinted inline.
    """
    docs = corpus.docs
    prints: dict[int, str] = {}

    def judged(group: Sequence[int]) -> bool:
        print_ = _fingerprint(corpus, group)
        prints.update((n, print_) for n in group)
        members = [d for n in group for d in corpus.members(n)]
        stored = [previous.get(docs.paths[d]) for d in members]
        if not all(_judged_as(p, print_) for p in stored):
            return False
        kept.update((d, p.record_json) for d, p in zip(members, stored, strict=True) if p is not None)
        return True

    unchanged = {c for c, group in enumerate(comps) if judged(group)}
    lone = np.flatnonzero(comp_of < 0)
    single = (corpus.starts[lone + 1] - corpus.starts[lone]) == 1
    for n, d in zip(lone[single].tolist(), corpus.order[corpus.starts[lone[single]]].tolist(), strict=True):
        path = docs.paths[d]
        print_ = prints[n] = xxhash.xxh3_64_hexdigest(f"{path}\t{docs.sha256(d)}".encode())
        p = previous.get(path)
        if p is not None and _judged_as(p, print_):
            kept[d] = p.record_json
    for n in lone[~single].tolist():
        judged([n])
    return prints, unchanged


def _judged_as(prev: Stored | None, print_: str) -> bool:
    """Whether a stored document was judged, last run, in a group with this fingerprint."""
    return prev is not None and prev.gone is None and prev.component == print_


def _emit(
    docs: DocumentTable,
    feats: FeatureTable,
    verdicts: Verdicts,
    previous: dict[str, Stored],
    fresh: bytearray,
    prints: dict[int, str],
    changes: Changes,
    run_id: int,
    fh: Any,
    tally: records.Tally,
) -> Iterator[Stored]:
    """Write every record to the manifest in order, count it, and yield the state rows that changed.

    One pass, one record in memory at a time. ``last_seen`` is written when a
    document is first stored or goes missing: a present document was last seen
    in the latest run.
    """
    for i in range(len(docs)):
        stored = verdicts.kept.get(i)
        prev = previous.get(docs.paths[i])
        if stored is not None and prev is not None and prev.line == docs.line(i):
            # Its group did not change: the stored line is the record, written as it is.
            fh.write(stored.encode() + b"\n")
            canonical = prev.canonical
            tally.add(i, prev.status, canonical, None if canonical else prev.cluster)
            text = stored  # its row changes only if the file moved or was touched
        else:
            record = verdicts.record(i)
            path = record["path"]
            if path in changes.supersedes:
                record["supersedes"] = changes.supersedes[path]
            line = orjson.dumps(record)
            fh.write(line + b"\n")
            tally.add(i, record["status"], record["canonical"], record["cluster"])
            if prev is None or prev.gone is not None:
                changes.new += 1
                changes.listed.append({"change": "new", **records.brief(record)})
            elif fresh[i] and ((prev.sha256 or "") != docs.sha256(i) or prev.status != record["status"]):
                changes.changed += 1
                changes.listed.append({"change": "changed", **records.brief(record)})
            text = line.decode()
        node = feats.node_of[i]
        component = prints.get(node) if node >= 0 else None
        if (
            prev is not None
            and prev.gone is None
            and prev.record_json == text
            and prev.component == component
            and (prev.file, prev.offset, prev.size, prev.mtime_ns)
            == (docs.file(i), docs.offset(i), docs.size(i), docs.mtime_ns(i))
        ):
            continue
        doc = docs[i]
        feat = feats.feature(i)
        yield Stored(
            key=doc.path,
            file=doc.file,
            offset=doc.offset,
            line=doc.line,
            size=doc.size,
            mtime_ns=doc.mtime_ns,
            sha256=doc.sha256 or None,
            status=str(doc.status),
            error=doc.error,
            content=None if feat is None else feat.content,
            shingles=None if feat is None else feat.shingles,
            signature=None if feat is None else feat.signature.tobytes(),
            signals=None if feat is None else feat.signals.tobytes(),
            component=component,
            record_json=text,
            first_seen=prev.first_seen if prev else run_id,
            last_seen=run_id,
            gone=None,
        )
    for key, gone_run in changes.gone.items():
        prev = previous[key]
        fh.write(orjson.dumps(records.gone(key, prev.sha256, prev.size, gone_run)) + b"\n")
        if prev.gone is None:
            yield dataclasses.replace(prev, gone=gone_run, last_seen=gone_run - 1)
