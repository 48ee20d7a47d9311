"""Containers read where the work is done: the driver plans tasks from a stat, the workers read them.

The driver walks the INPUTs (a listing and a ``stat`` per container, never a
read) and makes the pass-1 tasks in manifest order: whole files in batches of
paths, and each container as pieces. A plain JSONL file is cut into byte ranges
of ``PIECE_BYTES`` (a piece holds the lines that start in its range, so no line
is cut); a compressed stream or a WARC can only be read from its start, and is
one piece. A worker opens the file, decompresses and parses its piece and hands
back records numbered from the piece's start; the driver takes the results in
task order and names them as one reader of the whole container would
(``Joiner``): the same paths, line numbers and indices as reading it here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dedup.config import Config
from dedup.document import Document, Source, Status
from dedup.readers.containers import CONTAINER_KINDS, compression, container_kind
from dedup.readers.files import file_documents, leaves
from dedup.readers.jsonl import AS_IS, LineNames, Span, jsonl_lines
from dedup.readers.warc import warc_documents

PIECE_BYTES = 4 << 20  # a plain JSONL piece: ~1,000 articles of the scale corpus, ~0.1 s of work


@dataclass(frozen=True, slots=True)
class Piece:
    """The lines of a container that start in ``[start, stop)`` (``stop`` -1: to the end of the file)."""

    source: Source  # the container (kind ``jsonl`` or ``warc``)
    start: int
    stop: int


Task = list[Document] | Piece


def openable(doc: Document, config: Config) -> bool:
    """Whether a container found in a directory may be opened; if not, why, in its status."""
    if not config.follow_links and leaves(doc.file, doc.source.root):
        doc.status, doc.error = Status.OUTSIDE, "a link out of the INPUT directory (see --follow-links)"
        return False
    try:
        regular = stat.S_ISREG(os.stat(doc.file).st_mode)
    except OSError as err:
        doc.status, doc.error = Status.UNREADABLE, f"cannot read: {err.strerror or err}"
        return False
    if not regular:
        doc.status, doc.error = Status.UNREADABLE, "cannot read: not a regular file"
    return regular


def pieces(source: Source, piece_bytes: int = PIECE_BYTES) -> Iterator[Piece]:
    """A container's pieces, from the size ``stat`` gives; the last reads to the end (a file may grow).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(suffix=".jsonl") as fh:
        ...     _ = fh.write(b"x" * 10); fh.flush()
        ...     [(p.start, p.stop) for p in pieces(Source("jsonl", fh.name, ""), piece_bytes=4)]
        [(0, 4), (4, 8), (8, -1)]
    """
    if source.kind != "jsonl" or compression(source.root):
        yield Piece(source, 0, -1)
        return
    try:
        size = os.stat(source.root).st_size
    except OSError:  # the worker's open says why
        size = 0
    starts = range(0, max(size, 1), piece_bytes)
    for start in starts:
        yield Piece(source, start, -1 if start == starts[-1] else start + piece_bytes)


def plan(
    sources: Sequence[Source], config: Config, *, batch_size: int, piece_bytes: int = PIECE_BYTES
) -> Iterator[Task]:
    """Pass 1's tasks in manifest order: whole files (unread) in lists, containers in pieces.

    A container that may not be opened (a FIFO, a device, a link out) is a
    document of its own, recorded in a batch and never opened.
    """
    batch: list[Document] = []
    for source in sources:
        if source.kind in CONTAINER_KINDS:
            if batch:
                yield batch
                batch = []
            yield from pieces(source, piece_bytes)
            continue
        for doc in file_documents(source, config, 0, False):
            if source.kind == "dir" and not doc.error and container_kind(doc.file) and openable(doc, config):
                if batch:
                    yield batch
                    batch = []
                inner = Source(container_kind(doc.file) or "", doc.file, doc.path, output=doc.path)
                yield from pieces(inner, piece_bytes)
                continue
            batch.append(doc)
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def read_piece(piece: Piece, config: Config, span: Span) -> Iterator[tuple[Document, int]]:
    """A piece's records, each with how the driver names it (``jsonl.LineNames``); ``span`` filled in."""
    if piece.source.kind == "warc":
        span.ended = True
        for doc in warc_documents(piece.source, config, 0):
            yield doc, AS_IS
        return
    yield from jsonl_lines(piece.source, config, piece.start, piece.stop, span)


class Joiner:
    """The driver's side of pieces: their records named in task order, as one reader would name them.

    Holds the current container's ``LineNames`` (its paths, to keep ids unique):
    dropped when the next container starts.
    """

    def __init__(self) -> None:
        self._names: LineNames | None = None

    def begin(self, piece: Piece | None) -> bool:
        """A task's results arrive: whether its records are kept (not after damage ended the container)."""
        if piece is None:
            return True
        if piece.start == 0:
            self._names = LineNames(piece.source)
        assert self._names is not None, "a container's pieces come in order, its first first"
        return not self._names.ended

    def name(self, doc: Document, mark: int) -> None:
        if mark != AS_IS:
            assert self._names is not None
            self._names.name(doc, mark)

    def end(self, span: Span) -> None:
        """A piece's records are all named: the next piece's lines count on from these."""
        assert self._names is not None
        self._names.end_piece(span)
