"""Cron mode: the filter in front of the batch path (``run_filter.Batch``), over the ``--state``
of earlier runs. The pipeline asks it, at each stage, what it already knows:

- the run as a whole (``unchanged``): INPUTs, options and OUT as the last run
  left them (``rerun.py``): the run is recorded, no stage runs;
- pass 1: an unchanged document is not read, its stored features are used;
- index: the last run's candidate pairs, when the texts are the same; else only
  new texts are banded against the stored ones, where their band keys lie
  (``cron_index``, ``band_store``, ``stored.KnownPairs``);
- pass 2: a group whose members did not change keeps its stored records; in a
  giant group (``large_groups``), a verified component whose texts and their reach
  did not change, and a pair of texts compared as last run keeps its verdict;
- records: what changed against the state (new, changed, superseded, gone);
  unchanged records copied as bytes from OUT's last manifest (``cron_manifest``);
  the state rows to replace, and the file of their columns (``row_image``);
- outputs: ``canonical/`` brought up to date in place, the run's change list.
"""

from __future__ import annotations

import contextlib
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from dedup import (
    copies,
    cron_manifest,
    manifest,
    readahead,
    records,
    rerun,
    row_image,
    row_image_commit,
    state,
    stored,
)
from dedup.changes import Changes, find_changes
from dedup.config import Config
from dedup.document import DocumentTable, Source
from dedup.errors import StateError
from dedup.hooks import Checkpoint
from dedup.rows import Kept, Matched, Rows, kept_before
from dedup.run_filter import Batch, Pass1
from dedup.state import Stored
from dedup.state_checks import LIMITS_MARK, damaged, kept_mark, limits_kept

if TYPE_CHECKING:  # the stages load numba and scipy: not for a run with nothing to do
    from dedup.freq_bounds import Found, Ledger
    from dedup.frequency import TokenFrequency
    from dedup.groups import Grouped, Groups
    from dedup.parallel import Engine
    from dedup.pass1 import FeatureTable
    from dedup.pass2 import Corpus, Verdicts


_PAIR_VERDICTS = "split_pair_verdicts"  # the state's blob of ``pair_verdicts.PairVerdicts``


class Incremental(Batch):
    """A run with a ``--state``: what the state knows is not done again, OUT is updated in place."""

    bounded = True

    def __init__(self, store: state.State, config: Config) -> None:
        super().__init__()
        self.store, self.config = store, config
        self.previous: Rows | None = None  # the state's rows, as columns
        self.matched = Matched()  # each document's row (pass 1's filter looks it up)
        self.signatures: stored.SignatureRows | None = None  # of the texts read this run
        self.prints = stored.GroupPrints(0)  # node -> fingerprint of its group
        self.changes = Changes([], {}, {}, [])
        self.unwritten: dict[int, bytes] = {}
        self.known: stored.KnownPairs | None = None  # the last run's candidate pairs
        self.found: stored.KnownPairs | None = None  # this run's, when banded anew (stored at commit)
        self.table: Future[bytes] | None = None  # the token counts to store, being compressed
        self.fresh: Sequence[int] = ()  # which documents pass 1 read
        self.early: copies.Early | None = None  # copies of new files sure to be kept, made during pass 2
        self.listing: bytes | None = None  # rerun.inputs_print, taken before anything was read
        self.listings: dict[Source, bytes] = {}  # find's listing of each INPUT directory, for pass 1
        self.top: bytes | None = None  # the hash of the first INPUT directory's own entries (rerun.py)
        self.last_prints: dict[str, bytes] = {}  # as the last run stored them, if OUT holds its outputs
        self.out_intact = False  # OUT's print as the run began is the one the last run left
        self.placed = row_image.Placed()  # where this run's manifest holds each record
        self.last_manifest: cron_manifest.LastManifest | None = None  # the last run's, copied from
        self.out: Path | None = None
        self.ledger: Ledger | None = None  # the limits kept verdicts rest on, and this run's
        self.stale: np.ndarray | None = None  # the fingerprints of groups whose limits were crossed
        self.reading: threading.Thread | None = None  # the state's files asked for (``readahead``)

    def unchanged(
        self, sources: Sequence[Source], out: Path, checkpoint: Checkpoint
    ) -> dict[str, Any] | None:
        clock = time.perf_counter()
        store, self.out = self.store, out
        self.listings = {}
        last = store.last_run()
        self.last_prints = prints = store.prints() if last > 0 and store.synced_run() == last else {}
        self.listing = rerun.inputs_print(sources, self.config, self.listings, self._ahead)
        # OUT as the last run left it (its manifest, canonical/'s directories): nothing to list there.
        self.out_intact = "out" in prints and prints["out"] == rerun.out_print(out)
        if not (
            self.listing is not None
            and prints.get("inputs") == self.listing
            and prints.get("stamp") == (store.stamp_text() or "").encode()
            and self.out_intact
        ):
            store.check_stamp()  # a run with work to do: refused here if built with other parameters
            return None
        self.run_id = last + 1
        summary = orjson.loads(prints["summary"])
        # What a full rerun counts: the same records, no pair verified, nothing changed.
        # (In the last run's order: the state's runs keep the counts as the records were tallied.)
        counts = {**store.history(1)[0][2], "verified_pairs": 0, **Changes([], {}, {}, []).counts()}
        # The limits still hold (no count moved): the mark that they are kept names this run too.
        kept = limits_kept(store.blob(LIMITS_MARK), store.last_run())
        store.commit_run(
            run=self.run_id,
            started=state.now(),
            inputs=[s.root for s in sources],
            counts=lambda: counts,
            documents=(),
            supersessions=(),
            blobs=lambda: {LIMITS_MARK: kept_mark(last + 1)} if kept else {},
            changes=self.changes.delta,
        )
        checkpoint("committed")
        manifest.remove_leftovers(out)  # as a full run would (a report of an earlier run misleads)
        checked = time.perf_counter() - clock
        self.write_changes(out)
        timings = {"read_sign": checked, "index": 0.0, "verify_cluster_score": 0.0}
        timings["write"] = time.perf_counter() - clock - checked
        summary.update(run=self.run_id, counts=counts, timings_s={k: round(v, 3) for k, v in timings.items()})
        manifest.write_summary(out, summary)
        checkpoint("written")
        # OUT's manifest and canonical/ are as they were (the top's print stored again: one a state
        # from an earlier version lacks would have every rerun import the stages)
        store.mark_synced(self.run_id, prints | ({"top": self.top} if self.top is not None else {}))
        return summary

    def _ahead(self, top: bytes) -> None:
        """The first INPUT's own entries are listed, its subdirectories not yet. Where those entries
        moved since the last run (a file added or removed in a subdirectory moves its mtime), the
        listing did, and this run has work: the state's files it reads whole are asked of the
        kernel (``readahead``), and the stages' modules (numba's kernels among them, ~0.6 s) are
        imported now, while find lists the rest, instead of after it. A run with
        nothing to do imports none of them, but once where no print of those entries is stored
        (a state an earlier version wrote, or whose first INPUT's own find failed last run)."""
        self.top = top
        if top != self.last_prints.get("top"):
            self.reading = self.reading or readahead.cron_run(self.store, self.out)
            from dedup import cron_pass1, index, pass1, pass2  # noqa: F401

    def begin(self) -> TokenFrequency:
        from dedup.frequency import TokenFrequency

        self.kept = {}
        self.started = state.now()
        self.previous = Rows(self.store)
        self.unwritten = self.store.unwritten_changes()  # read before this run's commit replaces them
        pairs = self.store.blob("candidate_pairs")
        self.known, self.found = None if pairs is None else stored.KnownPairs.loads(pairs), None
        from dedup.freq_bounds import Bounds, Ledger
        from dedup.pair_verdicts import PairVerdicts

        self.pair_verdicts = PairVerdicts.loads(self.store.blob(_PAIR_VERDICTS))
        kept = limits_kept(self.store.blob(LIMITS_MARK), self.store.last_run())
        self.ledger = Ledger(Bounds.from_rows(self.store.bounds()) if kept else None)
        self.run_id = self.store.last_run() + 1
        frequency = TokenFrequency()
        if (table := self.store.blob("token_frequency")) is None and "ok" in self.previous.statuses:
            # Counted again from the texts read alone, the counts would be too small: other verdicts.
            raise StateError(
                damaged(self.store.path, "its token frequencies are missing"), path=self.config.state
            )
        if table is not None:
            try:
                frequency.loads(table)
            except ValueError as err:
                raise StateError(
                    f"state {self.config.state}: stored token frequencies are unreadable ({err}); "
                    "run with --rebuild",
                    path=self.config.state,
                ) from err
        # Not started by the rerun check (an INPUT file, a change below the first one's own entries):
        # now, the state open (its rows' image read), not before (it would wait behind the bands).
        self.reading = self.reading or readahead.cron_run(self.store, self.out, image=False)
        return frequency

    def read_all(
        self, sources: Sequence[Source], config: Config, frequency: TokenFrequency, pass1: Pass1
    ) -> tuple[DocumentTable, FeatureTable, Sequence[int]]:
        """Pass 1 with the state in front (``cron_pass1``): an unchanged document is taken from it."""
        from dedup import cron_pass1

        assert self.previous is not None and pass1.spill is None and pass1.tables is None, "a batch run's"
        self.matched = Matched()
        listings, self.listings = self.listings, {}  # a second pass 1 (``Stale``) walks the INPUTs
        docs, feats, fresh = cron_pass1.read_all(
            sources,
            config,
            frequency,
            self.previous,
            self.matched,
            suspects=self.suspects,
            progress=pass1.progress,
            checkpoint=pass1.checkpoint,
            batch_size=pass1.batch_size,
            engine=pass1.engine,
            rows=pass1.rows,
            listings=listings,
            texts=pass1.texts,
        )
        # None read: the stored counts hold. Else the table is final: compressed (zstd lets go of the
        # GIL) during the index and pass 2, not in the commit (~0.1 s at 100k).
        self.table = None
        if any(fresh):
            compressing = ThreadPoolExecutor(1)
            self.table = compressing.submit(frequency.dumps)
            compressing.shutdown(wait=False)
        self.fresh = fresh
        return docs, feats, fresh

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
        from dedup import cron_index
        from dedup.groups import Grouped, group_pairs

        assert self.out is not None
        banded = cron_index.banded(
            config,
            feats,
            corpus,
            fresh,
            bands,
            rows,
            engine,
            known=self.known,
            store=self.store,
            out=self.out,
        )
        self.signatures, self.found = banded.signatures, banded.found
        found, comp_of = group_pairs(banded.pairs, len(corpus.sizes))
        return Grouped(banded.proposed, len(banded.pairs), found, comp_of)

    def judge(self, corpus: Corpus, grouped: Grouped) -> Groups:
        assert self.previous is not None and grouped.comp_of is not None  # grouped here (``candidates``)
        groups, comp_of = grouped.groups, grouped.comp_of
        self.kept = kept = Kept(self.previous, len(corpus.docs))
        # Groups whose verdicts rest on counts that grew past their limits are judged again; all
        # of them where the state holds no limits (one made by an earlier version).
        assert self.ledger is not None  # ``begin`` made it
        self.stale = self.ledger.stale(corpus.frequency)
        self.prints, same = stored.unchanged_groups(
            corpus, groups, comp_of, self.previous, self.matched, kept, self.stale
        )
        changed = ~same
        if self._in_place():
            assert self.out is not None
            self.close()  # a second pass (``Stale``) copies afresh
            alone = copies.new_alone(corpus, comp_of, self.fresh)
            self.early = copies.Early(self.out, corpus.docs, alone)
        return groups.take(np.flatnonzero(changed))

    def judge_components(self, corpus: Corpus, comps: list[list[int]]) -> Sequence[bool]:
        assert self.previous is not None and isinstance(self.kept, Kept)  # ``judge`` made it
        return stored.judged_components(
            corpus, comps, self.previous, self.matched, self.kept, self.prints, self.stale
        ).tolist()

    def settled(self, found: Found) -> None:
        assert self.ledger is not None
        self.ledger.add(found, self.prints.column)

    def compare(self, docs: DocumentTable, verdicts: Verdicts) -> None:
        assert self.run_id is not None and self.previous is not None
        self.changes = find_changes(docs, verdicts, self.previous, self.matched, self.run_id)

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
        assert self.run_id is not None and self.previous is not None and self.signatures is not None
        self.placed, self.last_manifest = row_image.Placed(), self._last_manifest()
        return cron_manifest.emit(
            docs,
            feats,
            verdicts,
            self.previous,
            self.matched,
            fresh,
            self.signatures,
            self.prints,
            self.changes,
            self.run_id,
            fh,
            tally,
            self.placed,
            self.last_manifest,
        )

    def _last_manifest(self) -> cron_manifest.LastManifest | None:
        """OUT's manifest, if it is the one the last run wrote: the rows' image says where each stored
        record is in it (``rerun.file_print`` taken when OUT was synced, and again now)."""
        assert self.previous is not None and self.out is not None
        path = self.out / manifest.MANIFEST
        if not self.previous.from_image or self.last_prints.get("manifest") != rerun.opened_print(path):
            return None
        try:
            return cron_manifest.LastManifest(path)
        except OSError:
            return None

    def commit(
        self,
        sources: Sequence[Source],
        rows: Iterator[Stored],
        tally: records.Tally,
        frequency: TokenFrequency,
    ) -> None:
        assert self.run_id is not None and self.previous is not None
        image = row_image_commit.Changed(self.previous, self.store.path.parent)
        try:
            self._commit(sources, image.noted(rows), tally, frequency, image)
        finally:
            image.close()
            if self.last_manifest is not None:
                self.last_manifest.close()
            if self.signatures is not None:
                self.signatures.close()  # stored, or the commit failed
        row_image.tidy(self.store.path.parent, row_image.named(self.store))

    def _commit(
        self,
        sources: Sequence[Source],
        rows: Iterator[Stored],
        tally: records.Tally,
        frequency: TokenFrequency,
        image: row_image_commit.Changed,
    ) -> None:
        assert self.run_id is not None
        run = self.run_id
        self.store.commit_run(
            run=run,
            started=self.started,
            inputs=[s.root for s in sources],
            counts=lambda: {**tally.counts, **self.counts(tally)},
            documents=rows,
            supersessions=self.changes.supersessions,
            blobs=lambda: {
                # Counted from the documents read: none read, the stored counters hold.
                **({"token_frequency": self.table.result()} if self.table is not None else {}),
                **({"candidate_pairs": self.found.dumps()} if self.found is not None else {}),
                **({_PAIR_VERDICTS: self.pair_verdicts.dumps()} if self.pair_verdicts is not None else {}),
                LIMITS_MARK: kept_mark(run),
            },
            changes=self.changes.delta,
            columns=lambda: image.write(self.store, self.placed),
            bounds=lambda: (
                self.ledger.rows(self.prints.kept, self.prints.column) if self.ledger else ([], [])
            ),
        )

    def counts(self, tally: records.Tally) -> dict[str, int]:
        return self.changes.counts()

    @contextlib.contextmanager
    def copying(
        self, out: Path, docs: DocumentTable, fresh: Sequence[int], config: Config, checkpoint: Checkpoint
    ) -> Iterator[Callable[[Sequence[int]], None]]:
        """The kept documents noted as the records name them, copied once the state has committed:
        ``canonical/`` is brought up to date in place (``copies.sync``)."""
        noted = array("q")
        yield noted.extend
        self._copy(out, docs, noted.tolist(), fresh, config, checkpoint)

    def _copy(
        self,
        out: Path,
        docs: DocumentTable,
        kept: list[int],
        fresh: Sequence[int],
        config: Config,
        checkpoint: Checkpoint,
    ) -> None:
        assert self.previous is not None
        if self._in_place():
            previous, row_of = self.previous, self.matched.rows()
            keys = previous.keys  # a document with a row has its key as path: not decoded again
            paths = [
                keys[r] if r >= 0 else docs.paths[i] for i, r in zip(kept, row_of[kept].tolist(), strict=True)
            ]
            copies.sync(
                out,
                docs,
                kept,
                kept_before(previous),
                fresh,
                config,
                checkpoint,
                paths,
                self.early,
                self.out_intact,
            )
        else:
            copies.write(out, docs, kept, config)
        self.close()

    def _in_place(self) -> bool:
        """Whether OUT holds the last run's outputs: ``canonical/`` is brought up to date in place."""
        run_id, out = self.run_id, self.out
        assert run_id is not None and out is not None
        return run_id > 1 and self.store.synced_run() == run_id - 1 and (out / manifest.CANONICAL).is_dir()

    def close(self) -> None:
        if self.early is not None:
            self.early.close()
            self.early = None

    def write_changes(self, out: Path) -> None:
        assert self.run_id is not None
        for run, listed in sorted(self.unwritten.items()):  # of a run killed before OUT held them
            if run < self.run_id:
                manifest.write_delta(out, run, map(orjson.loads, listed.splitlines()))
        manifest.write_delta(out, self.run_id, self.changes.delta())

    def synced(self) -> None:
        assert self.run_id is not None
        prints: dict[str, bytes] = {}
        if self.out is not None:  # the manifest's, for the next run's ``LastManifest``
            prints["manifest"] = rerun.opened_print(self.out / manifest.MANIFEST)
        if self.listing is not None and self.out is not None:  # what the next run compares (rerun.py)
            prints |= {
                **({"top": self.top} if self.top is not None else {}),
                "inputs": self.listing,
                "out": rerun.out_print(self.out),
                "summary": (self.out / manifest.SUMMARY).read_bytes(),
                "stamp": (self.store.stamp_text() or "").encode(),
            }
        self.store.mark_synced(self.run_id, prints)
