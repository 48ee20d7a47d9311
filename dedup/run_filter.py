"""The filter in front of each stage, and its null version: a run without ``--state``.

``session`` locks and opens what a run writes and yields its filter: ``Batch``
for a run without a state (nothing stored, nothing skipped, OUT written whole),
``incremental.Incremental`` with one. The pipeline asks the filter, at each
stage, what it already knows (``incremental`` says what a state lets it skip).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from dedup import copies, records
from dedup.config import Config
from dedup.document import DocumentTable, Source
from dedup.hooks import Checkpoint, Progress
from dedup.signature_spill import RowSpill, Spilled
from dedup.state import Stored

if TYPE_CHECKING:  # the stages load numba and scipy: not for a run with nothing to do
    from dedup.freq_bounds import Found
    from dedup.frequency import TokenFrequency
    from dedup.groups import Grouped, Groups
    from dedup.pair_verdicts import PairVerdicts
    from dedup.parallel import Engine
    from dedup.pass1 import FeatureTable
    from dedup.pass2 import Corpus, Verdicts


class AllRead(Sequence[int]):
    """A batch run's flag per document, "read in this run": all set, without a byte each (a
    ``bytearray`` of them was 100 MB of the driver's heap at 100M documents). A cron run's
    flags are a ``bytearray``.

    Example:
        >>> fresh = AllRead(3)
        >>> len(fresh), fresh[2], all(fresh), any(AllRead(0))
        (3, 1, True, False)
    """

    __slots__ = ("_n",)

    def __init__(self, n: int) -> None:
        self._n = n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...

    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            return AllRead(len(range(self._n)[i]))
        if not -self._n <= i < self._n:
            raise IndexError("document index out of range")
        return 1


@dataclasses.dataclass(frozen=True, slots=True)
class Pass1:
    """How the run's pass 1 goes: the options of ``pass1.read_all`` and ``cron_pass1.read_all``."""

    progress: Progress | None
    checkpoint: Checkpoint
    batch_size: int
    engine: Engine
    spill: Spilled | None = None  # a batch run's signatures, on disk
    tables: Path | None = None  # a batch run's columns, in files
    rows: RowSpill | None = None  # a cron run's signatures of the texts it reads, on disk
    texts: Path | None = None  # the comparison texts, for pass 2 (``text_spill``)


class Batch:
    """The null filter: a run without a state reads everything and writes OUT whole."""

    run_id: int | None = None  # a cron run's number, for summary.json
    pair_verdicts: PairVerdicts | None = None  # giant groups' pairs verified in an earlier run
    bounded = False  # whether pass 2 says what counts its verdicts rest on (``freq_bounds``)

    def __init__(self) -> None:
        self.kept: Mapping[int, str] = {}  # document -> stored record (JSON), when its group did not change
        self.staged: copies.Staged | None = None  # a batch run's ``canonical/``, while it is written
        # Files found edited in place (same size and mtime) when read again: not taken from the state.
        self.suspects: set[str] = set()

    def unchanged(
        self, sources: Sequence[Source], out: Path, checkpoint: Checkpoint
    ) -> dict[str, Any] | None:
        """If the run has nothing to do, record it and return its summary (``rerun.py``); else None."""
        return None

    def begin(self) -> TokenFrequency:
        """Start the run (or start it again); the token frequencies to count into."""
        from dedup.frequency import TokenFrequency

        self.kept = {}
        return TokenFrequency()

    def read_all(
        self, sources: Sequence[Source], config: Config, frequency: TokenFrequency, pass1: Pass1
    ) -> tuple[DocumentTable, FeatureTable, Sequence[int]]:
        """Pass 1: every document read (``pass1.read_all``)."""
        from dedup.pass1 import read_all

        assert pass1.rows is None, "a cron run's"
        return read_all(
            sources,
            config,
            frequency,
            progress=pass1.progress,
            checkpoint=pass1.checkpoint,
            batch_size=pass1.batch_size,
            engine=pass1.engine,
            spill=pass1.spill,
            tables=pass1.tables,
            texts=pass1.texts,
        )

    def candidates(
        self,
        config: Config,
        feats: FeatureTable,
        corpus: Corpus,
        fresh: Sequence[int],
        bands: int,
        rows: int,
        engine: Engine,
        tables: Path | None,
    ) -> Grouped:
        """The candidate pairs of texts banded from the signatures, grouped by connected component
        (by ``engine``'s workers, the groups saved in ``tables``, when the signatures are on disk
        and many: ``index_workers``)."""
        from dedup import index_workers  # with scipy: only runs with work to do import it

        found = index_workers.grouped(config, feats.banded(), corpus.sizes, bands, rows, engine, tables)
        feats.drop_signatures()  # 1 KB per text, the largest table: only a state stores them
        return found

    def judge(self, corpus: Corpus, grouped: Grouped) -> Groups:
        """The groups pass 2 still settles (one that did not change keeps its verdicts in ``kept``)."""
        return grouped.groups

    def judge_components(self, corpus: Corpus, comps: list[list[int]]) -> Sequence[bool]:
        """Whether each of a giant group's verified components keeps its stored records (not settled
        again)."""
        return [False] * len(comps)

    def settled(self, found: Found) -> None:
        """The limits of one pass-2 task's verdicts (``bounded``), per node."""

    def compare(self, docs: DocumentTable, verdicts: Verdicts) -> None:
        """Work out, before the records are written, what changed against the state."""

    def emit(
        self,
        fh: Any,
        docs: DocumentTable,
        feats: FeatureTable,
        verdicts: Verdicts,
        fresh: Sequence[int],
        tally: records.Tally,
        engine: Engine,
    ) -> Iterator[Stored]:
        """Write every record to the manifest, in order, and count it; yield the state rows to replace.

        The records are made by ``engine``'s workers when there are many (``manifest_workers``).
        """
        from dedup import manifest_workers

        manifest_workers.write(fh, verdicts, tally, engine, self.staged)
        fh.flush()  # a full disk fails the run here, before the summary, its copies taken back
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

    @contextlib.contextmanager
    def copying(
        self, out: Path, docs: DocumentTable, fresh: Sequence[int], config: Config, checkpoint: Checkpoint
    ) -> Iterator[Callable[[Sequence[int]], None]]:
        """Where the kept documents go as the records name them (``records.Tally``'s ``kept``).

        A batch run copies them meanwhile into a staged ``canonical/``, swapped in
        when the block ends without an error (``copies.Staged``).
        """
        with copies.Staged(out, docs, config) as staged:
            self.staged = staged  # forked workers copy into it (``emit``)
            try:
                yield staged.add
            finally:
                self.staged = None

    def write_changes(self, out: Path) -> None:
        """The run's change list (``runs/``), before the summary."""

    def synced(self) -> None:
        """OUT now holds this run's outputs."""

    def close(self) -> None:
        """The run is over, done or not: stop what it left running."""
