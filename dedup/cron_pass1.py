"""Pass 1 of a cron run: the documents the state vouches for are taken from it, the others read.

A whole file is unchanged when its size and mtime are as stored (it is then not
read at all); a JSONL line, read anyway, when its sha256 is. The workers analyse
the rest (``pass1.Analyser``) while this process walks the inputs. Features must
be set in manifest order (node numbers break ties): the stored ones wait behind
documents still in the workers and are set in bulk, a few thousand at once, from
the state's columns (``Rows``), where they were a ``Stored`` object and a call each.
A listed directory whose files to read are each one document (no container, no
FIFO) goes into the table whole, at once: a run of unchanged files at a time was
~100 us a run, ~1,000 runs in a 100k night that brings 1,000 files.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dedup import listing, parallel, readers
from dedup.config import Config
from dedup.document import Document, DocumentTable, Features, Source, Status, printable
from dedup.frequency import TokenFrequency
from dedup.hooks import Checkpoint, Progress, no_checkpoint
from dedup.pass1 import BATCH, Analyser, FeatureTable
from dedup.readers.containers import containers_among
from dedup.readers.files import mtime_ns
from dedup.row_image import file_hashes

if TYPE_CHECKING:
    from dedup.rows import Matched, Rows
    from dedup.signature_spill import RowSpill

_STATUS = {str(s): s for s in Status}
_CODES = {str(s): code for code, s in enumerate(Status)}  # as ``DocumentTable`` codes them
_SET_FROM = 4096  # stored documents waiting before they are set (when none is in the workers)
_TAKE = 1 << 16  # listed files put into the table at once


def read_all(
    sources: Sequence[Source],
    config: Config,
    frequency: TokenFrequency,
    previous: Rows,
    matched: Matched,
    *,
    suspects: set[str] | frozenset[str] = frozenset(),
    progress: Progress | None = None,
    checkpoint: Checkpoint = no_checkpoint,
    batch_size: int = BATCH,
    engine: parallel.Engine | None = None,
    rows: RowSpill | None = None,
    listings: Mapping[Source, bytes] | None = None,
    texts: Path | None = None,
) -> tuple[DocumentTable, FeatureTable, bytearray]:
    """Every document, in manifest order: read and analysed, or its stored features taken.

    ``matched`` is told each document's row (``Matched.add``); ``suspects``: files
    found edited in place, never taken from the state. ``rows``: where the
    signatures of the texts read go (else memory). ``listings``: INPUT directories
    as find listed them (``rerun.inputs_print``): their files are taken from there,
    the unchanged ones at once, not walked and stat'ed again. ``texts``: where the
    comparison texts of the texts read go, for pass 2 (``text_spill``). Returns the documents,
    their features, and a flag per document: read in this run.
    """
    listings = listings or {}
    codes = np.array([_CODES[s] for s in previous.statuses], dtype=np.uint8)  # stored -> table status
    erring = np.zeros(len(previous), dtype=bool)  # the rows stored with an error message
    erring[np.fromiter(previous.errors, dtype=np.int64, count=len(previous.errors))] = True
    engine = engine or parallel.Processes(config.workers)
    table = DocumentTable(list(sources))
    feats = FeatureTable(config.num_perm, rows=rows, texts=texts)
    fresh = bytearray()
    waiting = _Waiting(feats, previous)
    in_flight = 0
    reached = 0  # the table up to here holds only documents set, waiting, or in the workers

    def taken(doc: Document) -> Iterator[Document]:
        nonlocal in_flight
        r = _unchanged(doc, previous, matched, suspects)
        table.append(doc)
        feats.reserve()
        fresh.append(r < 0)
        if r < 0:
            in_flight += 1
            yield doc
        else:
            waiting.add(doc.index, r)

    def to_analyse() -> Iterator[Document]:
        nonlocal reached, in_flight
        for source in sources:
            found = listing.files(listings[source], config.globs, source.root) if source in listings else None
            if found is None:  # walked, a stat a file
                for doc in readers.iter_documents([source], config, read=False, start=len(table)):
                    yield from taken(doc)
                    reached = len(table)
                    if not in_flight and len(waiting) >= _SET_FROM:
                        waiting.set_before(reached)
                continue
            prefix = os.path.join(source.root, "")
            keys = _keys(source, found.rels)
            rows, same_file, same, containers = _stored(found, keys, prefix, previous, suspects)
            if not containers and found.regular.all():  # a document a file: all at once, the rest read
                first = len(table)
                for at in range(0, len(keys), _TAKE):  # (a first run at 1M: every file, a table's worth)
                    run = slice(at, at + _TAKE)
                    _take(table, source, found, keys, prefix, run, rows, same, previous, codes, erring)
                matched.extend(rows, same_file)
                feats.reserve(len(keys))
                fresh.extend((~same).astype(np.uint8).tobytes())
                unchanged = np.flatnonzero(same)
                waiting.add_all(first + unchanged, rows[unchanged])
                for k in np.flatnonzero(~same).tolist():
                    if not in_flight and len(waiting) >= _SET_FROM:
                        waiting.set_before(first + k)
                    doc = Document(index=first + k, path=keys[k], source=source, file=prefix + found.rels[k])
                    doc.counted = _counted(int(rows[k]), doc.file, previous, suspects)
                    reached = first + k + 1
                    in_flight += 1
                    yield doc
                reached = len(table)
                continue
            done = 0
            for k in [*np.flatnonzero(~same).tolist(), len(keys)]:
                if k > done:  # unchanged files, taken from the state at once
                    first = len(table)
                    run = slice(done, k)
                    _take(table, source, found, keys, prefix, run, rows, same, previous, codes, erring)
                    matched.extend(rows[run], same_file[run])
                    feats.reserve(k - done)
                    fresh.extend(bytes(k - done))
                    waiting.extend(first, rows[run])
                if k < len(keys):
                    file = prefix + found.rels[k]
                    listed = Document(index=len(table), path=keys[k], source=source, file=file)
                    for doc in readers.within(listed, config, read=False):
                        yield from taken(doc)
                done = k + 1
                reached = len(table)
                if not in_flight and len(waiting) >= _SET_FROM:
                    waiting.set_before(reached)

    tasks = parallel.bundles(to_analyse(), batch_size)
    for results, delta in engine.ordered(Analyser(config, texts), tasks, window_per_worker=4):
        frequency.merge(delta)
        waiting.set_with(results)
        for doc, feat in results:
            table.update(doc)
            if feat is not None and feat.repair is not None:
                feats.repairs[doc.index] = feat.repair
        in_flight -= len(results)
        if not in_flight:
            waiting.set_before(reached)
        checkpoint("pass1")
        if progress:
            progress("read", reached, None)
    waiting.set_before(len(table))
    feats.done()
    return table, feats, fresh


def _unchanged(doc: Document, previous: Rows, matched: Matched, suspects: set[str] | frozenset[str]) -> int:
    """The row of a document as the state stored it (its stored facts then taken), else -1."""
    r = previous.index.get(doc.path)
    matched.add(r, r is not None and previous.same_file(r, doc.file))
    if r is None or previous.gone[r] or doc.file in suspects:
        return -1
    sha = previous.sha256(r)
    if doc.offset < 0:
        if previous.offset[r] >= 0:
            return -1
        try:
            info = os.stat(doc.file)
        except OSError:
            return -1
        if previous.size[r] != info.st_size or previous.mtime_ns[r] != mtime_ns(info):
            doc.counted = sha or ""  # (touched, or edited: its sha256 says which once it is read)
            return -1
        doc.size, doc.mtime_ns, doc.sha256 = info.st_size, mtime_ns(info), sha or ""
        doc.status, doc.error = _STATUS[previous.status_of(r)], previous.errors.get(r)
    elif doc.status is not Status.OK or sha != doc.sha256 or previous.status_of(r) != Status.OK:
        return -1
    doc.text = None
    return r


def _keys(source: Source, rels: list[str]) -> list[str]:
    """The manifest paths of a directory's files (``printable``; all ASCII and no backslash: as they are)."""
    if not (joined := "".join(rels)).isascii() or "\\" in joined:
        return [source.key(printable(rel)) for rel in rels]
    return [f"{source.label}/{rel}" for rel in rels] if source.label else rels


def _stored(
    found: listing.Files, keys: list[str], prefix: str, previous: Rows, suspects: set[str] | frozenset[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Each listed file's stored row (-1: none), whether that row's file is this one (``Matched``),
    and whether it is unchanged: as ``_unchanged`` finds, with find's size and mtime for a stat;
    and where the containers are (never unchanged: their lines are read, their records compared)."""
    index = previous.index
    rows = np.fromiter((index.get(key, -1) for key in keys), dtype=np.int64, count=len(keys))
    has = np.flatnonzero(rows >= 0)
    same_file = np.zeros(len(keys), dtype=bool)
    rels = found.rels
    hashes = file_hashes(prefix, [rels[k] for k in has.tolist()])
    r = rows[has]
    same_file[has] = np.frombuffer(previous.file_hash, dtype=np.uint64)[r] == hashes
    same = np.zeros(len(keys), dtype=bool)
    same[has] = (
        (np.frombuffer(previous.gone, dtype=np.int64)[r] == 0)
        & (np.frombuffer(previous.offset, dtype=np.int64)[r] < 0)
        & (np.frombuffer(previous.size, dtype=np.int64)[r] == found.sizes[has])
        & (np.frombuffer(previous.mtime_ns, dtype=np.int64)[r] == found.mtimes[has])
    )
    same &= found.regular
    containers = containers_among(rels)
    same[containers] = False
    if suspects:
        for k in np.flatnonzero(same).tolist():
            if prefix + rels[k] in suspects:
                same[k] = False
    return rows, same_file, same, containers


def _counted(r: int, file: str, previous: Rows, suspects: set[str] | frozenset[str]) -> str:
    """The sha256 under which a listed file to read (stored at row ``r``, -1: none) is already in the
    corpus counts, as ``_unchanged`` sets ``Document.counted`` (read with those bytes, a touched file
    is not counted twice); else "". Without ``_unchanged``'s stat: a file a stat would find as stored (put
    back between find and now) is read rather than taken from the state (the same record if its
    bytes are the stored ones)."""
    if r < 0 or previous.gone[r] or file in suspects or previous.offset[r] >= 0:
        return ""
    return previous.sha256(r) or ""


def _take(
    table: DocumentTable,
    source: Source,
    found: listing.Files,
    keys: list[str],
    prefix: str,
    run: slice,
    rows: np.ndarray,
    same: np.ndarray,
    previous: Rows,
    codes: np.ndarray,
    erring: np.ndarray,
) -> None:
    """Listed files ``run`` into the table at once: the unchanged ones (``same``) as ``_unchanged``
    and ``append`` leave each, the others as ``append`` enters a document not read yet (the
    workers' ``update`` fills them in). ``erring``: per stored row, whether it has an error message
    (a lookup of all of them each call was quadratic where many documents are skipped)."""
    first, rels, rows, same = len(table), found.rels[run], rows[run], same[run]
    n = len(rels)
    at = np.flatnonzero(same)
    taken = rows[at]
    statuses = np.full(n, _CODES[str(Status.OK)], dtype=np.uint8)
    statuses[at] = codes[np.frombuffer(previous.status, dtype=np.uint8)[taken]]
    shas = np.zeros((n, 32), dtype=np.uint8)
    shas[at] = np.frombuffer(previous.sha, dtype=np.uint8).reshape(-1, 32)[taken]
    errors = previous.errors
    erred = at[erring[taken]].tolist()
    named: list[int] = []
    if not (joined := "".join(rels)).isascii() or "\\x" in joined:  # a name that may not be its path
        named = [k for k, rel in enumerate(rels) if not rel.isascii() or "\\x" in rel]
    table.extend_files(
        source,
        keys[run],
        np.where(same, found.sizes[run], 0),
        np.where(same, found.mtimes[run], 0),
        statuses,
        shas.tobytes(),
        {first + k: errors[int(rows[k])] for k in erred},
        {first + k: prefix + rels[k] for k in named},
    )


class _Waiting:
    """Unchanged documents (ascending) and their rows, waiting to have their stored features set."""

    def __init__(self, feats: FeatureTable, previous: Rows) -> None:
        self.feats, self.previous = feats, previous
        self.docs: array[int] = array("q")
        self.rows: array[int] = array("q")

    def __len__(self) -> int:
        return len(self.docs)

    def add(self, doc: int, row: int) -> None:
        self.docs.append(doc)
        self.rows.append(row)

    def extend(self, first: int, rows: np.ndarray) -> None:
        """Documents ``first`` on, one for each of ``rows``."""
        self.add_all(np.arange(first, first + len(rows), dtype=np.int64), rows)

    def add_all(self, docs: np.ndarray, rows: np.ndarray) -> None:
        """Documents ``docs`` (ascending, after those waiting), one for each of ``rows``."""
        self.docs.frombytes(docs.astype(np.int64).tobytes())
        self.rows.frombytes(rows.astype(np.int64).tobytes())

    def set_before(self, limit: int) -> None:
        """Set the features of the waiting documents before ``limit``: a stored text's, without its
        signature (banding streams it in: ``stored.streamed``); none for a document stored skipped."""
        if self.docs and self.docs[0] < limit:
            self.feats.set_stored(*self._taken(limit))

    def set_with(self, results: Sequence[tuple[Document, Features | None]]) -> None:
        """The features of documents the workers analysed (ascending) and of the waiting ones before
        the last of them, merged in manifest order and set at once: a call per analysed document
        was ~0.1 ms, 1 s of a +10,000 night at 1M."""
        if not results:
            return
        docs, contents, shingles, signals = self._taken(results[-1][0].index)
        read = [(doc.index, feat) for doc, feat in results if feat is not None]
        if read:
            merged = np.concatenate((docs, np.array([d for d, _ in read], dtype=np.int64)))
            order = np.argsort(merged, kind="stable")
            given = np.repeat([False, True], [len(docs), len(read)])[order]
            new_signals = np.array([f.signals for _, f in read], dtype=np.float32)
            docs = merged[order]
            contents = np.concatenate((contents, np.array([f.content for _, f in read], dtype=np.uint64)))[
                order
            ]
            shingles = np.concatenate((shingles, np.array([f.shingles for _, f in read], dtype=np.int64)))[
                order
            ]
            signals = np.concatenate((signals.view(np.float32), new_signals))[order]
            self.feats.set_batch(
                docs,
                contents,
                shingles,
                signals,
                given,
                [f.signature.tobytes() for _, f in read],
                [f.text_at for _, f in read],
            )
        else:
            self.feats.set_stored(docs, contents, shingles, signals)

    def _taken(self, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The waiting documents before ``limit`` that have stored features, taken out of the queue:
        (documents, content keys, shingle counts, signals as uint8 rows)."""
        cut = bisect_left(self.docs, limit)
        docs = np.array(self.docs[:cut], dtype=np.int64)
        rows = np.array(self.rows[:cut], dtype=np.int64)
        del self.docs[:cut], self.rows[:cut]
        previous = self.previous
        has = np.frombuffer(previous.has_content, dtype=np.uint8)[rows].astype(bool)
        has &= np.frombuffer(previous.has_signals, dtype=np.uint8)[rows].astype(bool)
        has &= previous.ok(rows)
        docs, rows = docs[has], rows[has]
        width = previous.signals_width
        return (
            docs,
            np.frombuffer(previous.content, dtype=np.uint64)[rows],
            np.frombuffer(previous.shingles, dtype=np.int64)[rows],
            np.frombuffer(previous.signals, dtype=np.uint8).reshape(-1, width)[rows],
        )
