"""Pass 1: one document -> its features; all documents -> the document and feature tables.

Every document is read, normalised, signed and measured (its intrinsic quality
signals) once, in worker processes that receive paths in batches. Documents
with the same normalised text share one node, the unit the index and pass 2
work on. A cron run has its state in front (``cron_pass1``): an unchanged
document is not read, its stored features are used.
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import xxhash

from dedup import normalize, parallel, quality, readers, text_spill
from dedup.columns import Column, Sparse
from dedup.config import Config
from dedup.document import Document, DocumentTable, Features, Source, Status
from dedup.frequency import BatchCounter, Counts, TokenFrequency, combined
from dedup.hooks import Checkpoint, Progress, no_checkpoint
from dedup.run_filter import AllRead
from dedup.signature_spill import RowSpill, Spilled
from dedup.signatures import Signer, fingerprint
from dedup.text_nodes import NodeKeys

BATCH = 128  # documents per worker task

Analysed = tuple[list[tuple[Document, Features | None]], Counts]


def analyse(
    doc: Document,
    config: Config,
    signer: Signer,
    made: list[str] | None = None,
    opened: int | OSError | None = None,
) -> tuple[Document, Features | None, np.ndarray | None]:
    """Read (if not yet read), normalise, sign and measure one document; drop its text.

    Returns the document, its features (``None`` when skipped) and its distinct
    token hashes and short-line keys, for the corpus token and line frequencies.
    A document with features has its comparison text appended to ``made``.
    ``opened``: its file as ``readers.Ahead`` opened it.
    """
    readers.read_file(doc, config, opened)
    text, doc.text = doc.text, None
    if doc.status is not Status.OK or text is None:
        return doc, None, None
    repaired, plan = normalize.repair_planned(text)
    comparison, boilerplate_lines = normalize.comparison(repaired)
    words = normalize.token_bytes(comparison)
    hashes, shingles, signature = fingerprint(words, config.shingle_size, signer)
    if len(hashes) == 0:
        doc.status, doc.error = Status.EMPTY, "no words left after removing markup and boilerplate"
        return doc, None, None
    measured = quality.intrinsic(text, repaired, comparison, boilerplate_lines=boilerplate_lines)
    if made is not None:
        made.append(comparison)
    return (
        doc,
        Features(
            content=xxhash.xxh3_64_intdigest(hashes.tobytes()),
            shingles=shingles,
            signature=signature,
            signals=np.array([measured[name] for name in quality.INTRINSIC], dtype=np.float32),
            repair=plan,
        ),
        np.concatenate((hashes, normalize.line_keys(comparison))),
    )


class Analyser:
    """The pass-1 stage: a batch of documents -> their features and the batch's token counts.

    Built once, in the parent; the engine hands it to each worker (a forked one
    inherits it, a Dask worker is sent it). The comparison texts it makes are
    written to ``texts`` for pass 2 (``text_spill``).
    """

    def __init__(self, config: Config, texts: Path | None = None) -> None:
        self.config = config
        self.signer = Signer(num_perm=config.num_perm, seed=config.seed)
        self.texts = text_spill.Writer(texts)
        self.counter = BatchCounter()

    def __call__(self, batch: list[Document]) -> Analysed:
        results, vocabularies = [], []
        made, waiting, held = list[str](), list[Features](), 0  # texts not written yet, and theirs
        with readers.Ahead(batch, self.config) as ahead:
            for doc in batch:
                doc, features, hashes = analyse(doc, self.config, self.signer, made, ahead.take(doc))
                results.append((doc, features))
                if hashes is not None and not (doc.counted and doc.counted == doc.sha256):
                    vocabularies.append(hashes)  # (the same bytes a cron run counted before: not again)
                if features is not None:
                    waiting.append(features)
                    held += len(made[-1])
                    if held > text_spill.CHUNK:  # a batch of large files: not all its texts at once
                        self._write(made, waiting)
                        made, waiting, held = [], [], 0
        self._write(made, waiting)
        return results, self.counter(vocabularies)

    def _write(self, made: list[str], waiting: list[Features]) -> None:
        for features, where in zip(waiting, self.texts.put(made), strict=True):
            features.text_at = where


class Read:
    """One task done by ``Reader``: its documents analysed, their token counts; a piece's marks and span."""

    __slots__ = ("_packed", "delta", "marks", "piece", "results", "span")

    def __init__(
        self,
        results: list[list[tuple[Document, Features | None]]],
        delta: Counts,
        marks: bytes,
        piece: readers.Piece | None,
        span: readers.Span,
    ) -> None:
        self.results = results
        self.delta = delta  # the token counts of the whole task
        self.marks = marks  # per record, how the driver names it (``readers.Joiner``)
        self.piece = piece
        self.span = span
        self._packed: bytes | None = None

    def __reduce__(self) -> tuple[Callable[[bytes], Read], tuple[bytes]]:
        # One bytes object: Dask sends every numpy array of a result as a frame of its own,
        # and a 25k-article shard's two arrays per article kept a worker busy for minutes.
        # Packed once: Dask serialises a result again each time it is asked for it.
        if self._packed is None:
            state = (self.results, self.delta, self.marks, self.piece, self.span)
            self._packed = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        return _unpack_read, (self._packed,)


def _unpack_read(data: bytes) -> Read:
    return Read(*pickle.loads(data))


class Reader:
    """The pass-1 stage when the workers read the containers too (``readers.plan``'s tasks).

    A batch of whole files is analysed as ``Analyser`` does; a piece of a
    container is opened, decompressed and parsed here, in the worker, and its
    records analysed ``batch_size`` at a time (texts never cross to the driver).
    A piece's token counts are combined here and sent once (``frequency.combined``).
    """

    def __init__(self, config: Config, batch_size: int = BATCH, texts: Path | None = None) -> None:
        self.config = config
        self.batch_size = batch_size
        self.analyser = Analyser(config, texts)

    def __call__(self, task: readers.Task) -> Read:
        if isinstance(task, list):
            results, delta = self.analyser(task)
            return Read([results], delta, bytes(len(task)), None, readers.Span())
        span = readers.Span()
        analysed, marks, parts = [], bytearray(), []
        for chunk in parallel.bundles(readers.read_piece(task, self.config, span), self.batch_size):
            marks.extend(mark for _, mark in chunk)
            results, delta = self.analyser([doc for doc, _ in chunk])
            analysed.append(results)
            parts.append(delta)
            if len(parts) == 64:  # bounded: ~1 MB of counts per batch until combined
                parts = [combined(parts)]
        return Read(analysed, combined(parts), bytes(marks), task, span)


class FeatureTable:
    """What pass 1 keeps, column by column, in manifest order.

    Per document: its node (distinct normalised text; -1 when skipped) and its
    intrinsic signals. Per node: its content key, shingle count and signature.
    Flat arrays, not an object per document: at a million documents the
    difference is gigabytes.

    Features must be set in manifest order: node numbers (first appearance)
    break ties in clustering, and must not depend on timing or ``--jobs``.
    With ``spill`` the signatures go to disk as they come (``signature_spill``);
    a cron run's, given only for the texts read, with ``rows`` (``RowSpill``).
    """

    def __init__(
        self,
        num_perm: int,
        spill: Spilled | None = None,
        rows: RowSpill | None = None,
        directory: Path | None = None,
        texts: Path | None = None,
    ) -> None:
        self.num_perm = num_perm
        self.spill = spill
        self.rows = rows  # cron mode: the signatures given, on disk (else in ``_given``)
        self.directory = directory  # a batch run's columns are files there (``columns``)
        self.node_of = Column.named("q", directory, "node_of")
        self.signals = Column.named("f", directory, "signals", len(quality.INTRINSIC))
        self.contents = Column.named("Q", directory, "contents")
        self.sizes = Column.named("q", directory, "sizes")
        # Cron mode: the signatures given (in ``rows``, on disk; else here) and their nodes. The
        # matrix is made when asked for: them when every text has one (a first run), else zeros
        # (pages not yet touched) with theirs set, and the stored texts' rows filled in by the caller.
        self._given, self._given_nodes = array("I"), array("q")
        self._matrix: np.ndarray | None = None
        self.repairs = Sparse(directory, "repairs")  # document -> ftfy's steps, for pass 2
        self.texts = text_spill.Texts(texts, directory)  # node -> where its comparison text is, for pass 2
        self._nodes = NodeKeys(directory)  # content key -> node (a file when the columns are)
        self._width = 4 * len(quality.INTRINSIC)
        self._zeros = bytes(self._width)

    def reserve(self, n: int = 1) -> None:
        """Make room for the next ``n`` documents (skipped until ``set``)."""
        if n == 1:
            self.node_of.append(-1)
            self.signals.extend(self._zeros)
            return
        self.node_of.extend(np.full(n, -1, dtype=np.int64).tobytes())
        self.signals.extend(self._zeros * n)

    def add(self, first: int, found: Sequence[Features | None]) -> None:
        """The features of the next documents, ``first`` on (None: skipped): their texts looked up at once."""
        keys = np.array([f.content for f in found if f is not None], dtype=np.uint64)
        nodes = iter(self._nodes.assign(keys).tolist())
        for doc, feat in enumerate(found, start=first):
            self.reserve()
            if feat is not None:
                signature, signals = feat.signature.tobytes(), feat.signals.tobytes()
                self._set(doc, next(nodes), feat.content, feat.shingles, signature, signals, feat.text_at)
                if feat.repair is not None:
                    self.repairs[doc] = feat.repair

    def set(self, doc: int, content: int, shingles: int, signature: bytes | None, signals: bytes) -> None:
        """A document's features (in manifest order): its signature is kept once per distinct text.

        ``signature`` None: not known yet (a stored text's, filled in later through ``matrix``).
        """
        self._set(doc, self._nodes.node(content), content, shingles, signature, signals)

    def set_stored(
        self, docs: np.ndarray, contents: np.ndarray, shingles: np.ndarray, signals: np.ndarray
    ) -> None:
        """Stored texts' features (a cron run's unchanged documents, ascending, after every document
        set before them): ``set`` of each without a signature, at once."""
        self.set_batch(docs, contents, shingles, signals, np.zeros(len(docs), dtype=bool), [])

    def set_batch(
        self,
        docs: np.ndarray,
        contents: np.ndarray,
        shingles: np.ndarray,
        signals: np.ndarray,
        given: np.ndarray,
        signatures: Sequence[bytes],
        texts: Sequence[text_spill.Where | None] = (),
    ) -> None:
        """``set`` of each of ``docs`` (ascending, after every document set before them), at once:
        ``signals`` float32 rows; the documents ``given`` have their ``signatures`` and ``texts``
        (in order; no texts: none written), the others' come later (a cron run's stored texts)."""
        assert self._matrix is None, "texts added after the signature matrix was made"
        assert self.spill is None, "a spilled table holds every signature: set one by one"
        before = len(self.contents)
        contents = np.asarray(contents, dtype=np.uint64)
        nodes = self._nodes.assign(contents)
        new = np.flatnonzero(nodes >= before)
        first = new[np.unique(nodes[new], return_index=True)[1]]  # each new text's first document
        self.contents.extend(contents[first].tobytes())
        self.sizes.extend(shingles[first].astype(np.int64).tobytes())
        if len(texts):
            places = (np.cumsum(given) - 1)[first].tolist()
            for k, read in zip(places, given[first].tolist(), strict=True):
                self.texts.add(texts[k] if read else None)
        else:
            self.texts.add_none(len(first))
        signed = first[given[first]]
        if len(signed):
            taken = [signatures[k] for k in (np.cumsum(given) - 1)[signed].tolist()]  # (places in it)
            if self.rows is not None:
                for signature in taken:
                    self.rows.append(signature)
            else:
                self._given.frombytes(b"".join(taken))
            self._given_nodes.extend(nodes[signed].tolist())
        self.node_of.set_rows(docs, nodes)
        self.signals.set_rows(docs, np.ascontiguousarray(signals).view(np.float32))

    def _set(
        self,
        doc: int,
        n: int,
        content: int,
        shingles: int,
        signature: bytes | None,
        signals: bytes,
        text: text_spill.Where | None = None,
    ) -> None:
        assert len(signals) == self._width, "signals of another layout"
        if n == len(self.contents):
            assert self._matrix is None, "texts added after the signature matrix was made"
            self.contents.append(content)
            self.sizes.append(shingles)
            self.texts.add(text)
            if self.spill is not None:
                assert signature is not None, "a spilled table holds every signature"
                self.spill.append(signature)
            elif signature is not None:
                if self.rows is not None:
                    self.rows.append(signature)
                else:
                    self._given.frombytes(signature)
                self._given_nodes.append(n)
        self.node_of[doc] = n
        self.signals.set_row(doc, signals)

    def done(self) -> None:
        """No more documents: the content lookup is not needed any more, the columns are sealed."""
        self._nodes.close()
        for column in (self.node_of, self.signals, self.contents, self.sizes, self.repairs, self.texts):
            column.seal()

    def matrix(self) -> np.ndarray:
        """uint32[nodes, num_perm]: the signatures, made once and then written in place (none when spilled).

        A text set without a signature has zeros until the caller fills its row.
        """
        if self._matrix is None:
            if self.rows is not None:
                given = self.rows.rows(0, len(self.rows))
            else:
                given = np.frombuffer(self._given, dtype=np.uint32).reshape(-1, self.num_perm)
            if self.spill is not None:
                self._matrix = given[:0]
            elif len(given) == len(self.contents):  # every text's, in node order
                self._matrix = given
            else:
                self._matrix = np.zeros((len(self.contents), self.num_perm), dtype=np.uint32)
                self._matrix[np.frombuffer(self._given_nodes, dtype=np.int64)] = given
                self._given, self._given_nodes = array("I"), array("q")
        return self._matrix

    def given(self) -> tuple[np.ndarray, np.ndarray | RowSpill]:
        """(nodes, their signatures: uint32[k, num_perm] or ``rows``): the texts set with their
        signature, as set; none spilled.

        Views of the table: asked for before ``matrix`` (cron mode streams the others).
        """
        assert self._matrix is None and self.spill is None, "the signatures are in a matrix or on disk"
        nodes = np.frombuffer(self._given_nodes, dtype=np.int64)
        if self.rows is not None:
            return nodes, self.rows
        return nodes, np.frombuffer(self._given, dtype=np.uint32).reshape(len(nodes), self.num_perm)

    def banded(self) -> np.ndarray | Spilled:
        """The signatures, as banding and the prefilter read them."""
        return self.matrix() if self.spill is None else self.spill

    def drop_signatures(self) -> None:
        """Free the largest table once the candidate pairs are found (unless a state stores it: its
        ``rows`` are then the stored rows', ``stored.SignatureRows``, which closes them)."""
        self._given, self._given_nodes, self.rows = array("I"), array("q"), None
        self._matrix = np.zeros((0, self.num_perm), dtype=np.uint32)
        if self.spill is not None:
            self.spill.close()
            self.spill = None


def read_all(
    sources: Sequence[Source],
    config: Config,
    frequency: TokenFrequency,
    *,
    progress: Progress | None = None,
    checkpoint: Checkpoint = no_checkpoint,
    batch_size: int = BATCH,
    engine: parallel.Engine | None = None,
    piece_bytes: int = readers.PIECE_BYTES,
    spill: Spilled | None = None,
    tables: Path | None = None,
    texts: Path | None = None,
) -> tuple[DocumentTable, FeatureTable, Sequence[int]]:
    """Read, normalise and sign every document, in manifest order (the workers read the containers
    too: ``readers.plan``). A cron run's pass 1, with its state in front, is ``cron_pass1``.

    Args:
        sources: the INPUTs (``readers.discover``).
        config: the run's options.
        frequency: the corpus token frequencies, counted into.
        progress: called as ``progress("read", documents, None)`` after each batch.
        checkpoint: called as ``checkpoint("pass1")`` after each batch (crash tests).
        batch_size: documents per worker task.
        engine: where the batches are analysed (default: ``config.workers`` forked processes).
        piece_bytes: a plain JSONL file is read in pieces of this many bytes.
        spill: where the signatures go instead of memory.
        tables: a directory for the document and feature columns (else memory).
        texts: a directory for the comparison texts, for pass 2 (``text_spill``; else none).

    Returns the documents, their features, and a flag per document: read in this run (all).

    Example:
        >>> sources = readers.discover(["corpora/sample"])
        >>> docs, feats, fresh = read_all(sources, Config(jobs=1), TokenFrequency())
        >>> len(docs) == len(fresh) == len(feats.node_of) and all(fresh)
        True
    """
    engine = engine or parallel.Processes(config.workers)
    tasks = readers.plan(sources, config, batch_size=batch_size, piece_bytes=piece_bytes)
    feats = FeatureTable(config.num_perm, spill, directory=tables, texts=texts)
    table = DocumentTable(list(sources), tables)
    return _read_tasks(
        table, tasks, Reader(config, batch_size, texts), feats, frequency, progress, checkpoint, engine
    )


def _read_tasks(
    table: DocumentTable,
    tasks: Iterator[readers.Task],
    stage: Reader,
    feats: FeatureTable,
    frequency: TokenFrequency,
    progress: Progress | None,
    checkpoint: Checkpoint,
    engine: parallel.Engine,
) -> tuple[DocumentTable, FeatureTable, Sequence[int]]:
    """``read_all`` with the workers reading: results in task order, each record numbered as it arrives."""
    joiner = readers.Joiner()
    for read in engine.ordered(stage, tasks, window_per_worker=4):
        if joiner.begin(read.piece):  # not the pieces after damage that ended their container
            frequency.merge(read.delta)
            marks = iter(read.marks)
            for results in read.results:
                first = len(table)
                for doc, _ in results:
                    joiner.name(doc, next(marks))
                    doc.index = len(table)
                    table.append(doc)
                feats.add(first, [feat for _, feat in results])
            if read.piece is not None:
                joiner.end(read.span)
        checkpoint("pass1")
        if progress:
            progress("read", len(table), None)
    feats.done()
    table.seal()
    return table, feats, AllRead(len(table))
