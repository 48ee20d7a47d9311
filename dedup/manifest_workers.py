"""The manifest's records made on the workers, a range of documents at a time, written in order.

Most documents have no candidate: their record (ranked alone, scored, named,
serialised) was made as the driver wrote the manifest, ~26 us of Python each:
half of a clean 100k run's write stage, with the workers idle. Here each task
makes the records of ``PART`` consecutive documents and returns them as one
bytes object with their counts (``records.Tally.part``); the driver writes the
parts in document order, so the manifest is byte-identical with any engine and
any number of workers, and counts each part's kept documents as it arrives
(a batch run's copies are made meanwhile: ``copies.Staged``).

A forked worker inherits the run's tables and pass 2's records on disk; a
Dask worker is sent them once (``dask_workers``): the tables' files and the
records' file by their paths in OUT (``columns``), which it maps and reads.
Below ``LOCAL_FROM`` documents the parts are made here: starting workers would
cost more than they save.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np
import orjson

from dedup import parallel, records
from dedup.copies import Into, Staged
from dedup.pass2 import Verdicts

PART = 2048  # documents per task: ~1.5 MB of records
LOCAL_FROM = 20_000
COPIES_HERE = 64  # a lone text with this many exact copies over several parts is ranked once, in the driver


class Recorder:
    """The stage: a range of documents -> their manifest lines and their tally; with ``into``, the
    part's kept whole files copied there too (``Staged.to_workers``)."""

    def __init__(self, verdicts: Verdicts, into: Into | None = None) -> None:
        self.verdicts, self.into = verdicts, into
        self._made: set[str] = set()  # directories made in ``into`` by this process

    def __call__(self, span: tuple[int, int]) -> tuple[bytes, records.Tally]:
        tally = records.Tally.part()
        lines = []
        for i in range(*span):
            record = self.verdicts.record(i)
            lines.append(orjson.dumps(record))
            tally.add_made(i, record)
        if self.into is not None:
            docs = self.verdicts.corpus.docs
            self.into.copy(docs, [i for i in tally.canonical.tolist() if docs.offset(i) < 0], self._made)
        self.verdicts.forget()  # copies ranked with a text of this part, in later parts: ranked again there
        lines.append(b"")
        return b"\n".join(lines), tally


def spans(documents: int, part: int = PART) -> Iterator[tuple[int, int]]:
    """[start, stop) of each part, in order.

    Example:
        >>> list(spans(5, part=2))
        [(0, 2), (2, 4), (4, 5)]
    """
    return ((start, min(start + part, documents)) for start in range(0, documents, part))


def across_parts(verdicts: Verdicts, part: int, copies: int) -> np.ndarray:
    """The lone texts (no record from pass 2) with at least ``copies`` exact copies, in more than one part.

    Members of a node are in document order (``Corpus.order`` is a stable sort).
    """
    corpus = verdicts.corpus
    starts = corpus.starts
    several = np.flatnonzero(np.diff(starts) >= max(copies, 2))
    first, last = corpus.order[starts[several]], corpus.order[starts[several + 1] - 1]
    apart = first // part != last // part
    lone = [doc not in verdicts.settled and doc not in verdicts.kept for doc in first[apart].tolist()]
    return several[apart][np.array(lone, dtype=bool)]


def write(
    fh: BinaryIO,
    verdicts: Verdicts,
    tally: records.Tally,
    engine: parallel.Engine | None,
    staged: Staged | None = None,
) -> None:
    """Every document's record to ``fh``, in order, counted into ``tally`` part by part.

    ``staged``: where a batch run's kept documents go; forked workers copy their parts'
    whole files into it themselves (a Dask worker may not share OUT's file system, nor
    the inputs' names: the driver's threads copy those).

    A part forgets the records of copies it ranked for later parts (a worker would
    hold them to the end); a text with ``COPIES_HERE`` copies over several parts is
    ranked once, here, first (``Verdicts.settle_copies``) rather than once a part.
    The records of pass 2 are then flushed to their file: a worker reads them there.
    """
    documents = len(verdicts.corpus.docs)
    for node in across_parts(verdicts, PART, COPIES_HERE).tolist():
        verdicts.settle_copies(node)
    verdicts.settled.flush()
    stage = Recorder(verdicts)
    made: Iterable[tuple[bytes, records.Tally]] = map(stage, spans(documents, PART))
    if engine is not None and parallel.worth_sending(engine, documents, LOCAL_FROM):
        if staged is not None and isinstance(engine, parallel.Processes):
            stage = Recorder(verdicts, staged.to_workers())
        made = engine.ordered(stage, spans(documents, PART), window_per_worker=4)
    try:
        for lines, counted in made:
            fh.write(lines)
            tally.absorb(counted)
    finally:  # an error here (a failed copy, a full disk) stops the workers now, not at garbage collection
        close = getattr(made, "close", None)
        if close is not None:
            close()
