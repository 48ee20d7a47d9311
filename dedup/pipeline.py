"""The one place that knows the order of the stages.

    readers -> pass 1 (pass1.py, in worker processes: parallel.py)
            -> index (candidate pairs of distinct texts)
            -> pass 2 (pass2.py, per connected group of candidates)
            -> records (records.py) -> manifest.jsonl, canonical/ (copies.py), summary.json

Pass 1 streams every document through reading, normalising, signing and the
intrinsic quality signals, and keeps a row per document (signals) and per
distinct text (signature). The index proposes candidate pairs of texts; pass 2
reads the documents of each connected group a second time, verifies pairs on
exact shingle sets, clusters without chaining and ranks each cluster's members.
Documents with no candidate never leave pass 1. Cron mode (incremental.py) is a
filter in front of each stage; a run without ``--state`` gets its null version.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedup import __version__ as dedup_version
from dedup import columns, manifest, parallel, readers, records, run_filter, session
from dedup.config import Config
from dedup.document import Source
from dedup.errors import InputChangedError, OutputError
from dedup.hooks import Checkpoint, Progress, no_checkpoint
from dedup.record_spill import SpilledRecords
from dedup.signature_spill import RowSpill, Spilled

if TYPE_CHECKING:  # loaded when a run has work to do: a cron run with none never imports numba or scipy
    from dedup import pass2
    from dedup.groups import Groups


@dataclass(slots=True)
class RunResult:
    """What ``run`` did: the counts printed by the CLI and stored in summary.json."""

    out: Path
    summary: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)


def run(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: Config,
    *,
    progress: Progress | None = None,
    checkpoint: Checkpoint = no_checkpoint,
    batch_size: int | None = None,
) -> RunResult:
    """Deduplicate INPUTs into OUT: manifest.jsonl, canonical/ and summary.json.

    With ``config.state`` the run is incremental: unchanged documents are not
    signed again, groups of documents that did not change keep their verdicts,
    and OUT (then also holding ``runs/``, one change list per run) is brought up
    to date in place.

    Args:
        inputs: directories, text or HTML files, JSON Lines or WARC containers (plain or
            compressed), or ``-`` for JSON Lines on standard input.
        out: output directory (created; must be empty unless ``config.force``, or,
            with a state, hold this state's previous outputs).
        config: validated options.
        progress: called as ``progress(stage, done, total)`` now and then (the CLI draws it);
            stages ``read`` (total unknown: inputs are streamed), ``verify`` (groups of
            candidates), ``write`` (records), ``copy`` (canonical copies).
        checkpoint: called as ``checkpoint(name)`` at the points a crash must be
            survivable (``pass1``, ``committed``, ``canonical``, ``written``): the
            crash-safety tests kill the process there.
        batch_size: documents per pass-1 worker task (default ``pass1.BATCH``).

    Raises:
        InputError: an INPUT is missing or unusable, or changed during the run.
        OutputError: OUT cannot be used or written.
        StateError: the state is locked, was built with other parameters, or is unusable.

    Example:
        >>> import tempfile
        >>> result = run(["corpora/sample"], tempfile.mkdtemp(), Config(jobs=1))
        >>> result.counts["documents"] == result.counts["ok"] + result.counts["skipped"]
        True
    """
    out_path = Path(out)
    sources = readers.discover(inputs)
    try:
        with _few_collections(), session.opened(config, out_path, [s.root for s in sources]) as cache:
            if (summary := cache.unchanged(sources, out_path, checkpoint)) is not None:
                return RunResult(out=out_path, summary=summary, counts=summary["counts"])
            with (
                readers.stdin_copied(sources, out_path) as read,  # `-` is read twice: copied into OUT first
                parallel.engine(config) as engine,
            ):
                return _run(read, out_path, config, cache, engine, progress, checkpoint, batch_size)
    except OSError as err:  # what no stage turned into a message: still one line, never a traceback
        where = err.filename or out_path
        raise OutputError(f"{where}: {err.strerror or err}", path=where) from err


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """The cyclic garbage collector run rarely while the run lasts (its thresholds put back after).

    A run makes millions of container objects that live to its end (documents, a
    cron run's stored rows) and few reference cycles: with CPython's thresholds a
    cron run over a million documents made 59 full collections, 4.9 s of its 67 s,
    and 19 collections of the youngest objects with these (peak memory unchanged).
    """
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run(
    sources: Sequence[Source],
    out: Path,
    config: Config,
    cache: run_filter.Batch,
    engine: parallel.Engine,
    progress: Progress | None,
    checkpoint: Checkpoint,
    batch_size: int | None,
) -> RunResult:
    manifest.remove_leftovers(out)
    while True:
        try:
            with (
                columns.directory_in(out, wanted=config.state is None) as tables,  # cron: in memory
                columns.directory_in(out, prefix=".texts.") as texts,  # (``text_spill``)
            ):
                return _judge_and_write(
                    sources, out, config, cache, engine, progress, checkpoint, batch_size, tables, texts
                )
        except Stale as stale:
            # A file taken from the state (same size and mtime) had other bytes when pass 2
            # read it again: edited in place with its mtime kept. Start again, reading it.
            cache.suspects.add(stale.file)


class Stale(Exception):
    """Pass 2 found a file the state vouched for (not read this run) edited in place."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.file = file


def _unread_copies(corpus: pass2.Corpus, tasks: Groups, fresh: Sequence[int]) -> list[int]:
    """Whole files judged again in this run's groups but read by no stage: stored copies of a text."""
    if isinstance(fresh, run_filter.AllRead):  # a batch run read every document
        return []
    docs = corpus.docs
    return [
        i
        for n in tasks.all_nodes().tolist()
        for i in corpus.members(n)[1:]
        if not fresh[i] and docs.offset(i) < 0
    ]


def _judge_and_write(
    sources: Sequence[Source],
    out: Path,
    config: Config,
    cache: run_filter.Batch,
    engine: parallel.Engine,
    progress: Progress | None,
    checkpoint: Checkpoint,
    batch_size: int | None,
    tables: Path | None,
    texts: Path | None,
) -> RunResult:
    from dedup import index, pass1, pass2

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    bands, rows_per_band = index.band_layout(threshold=config.lsh_threshold, num_perm=config.num_perm)
    frequency = cache.begin()
    # A batch run keeps its signatures on disk until the index has read them (1 KB per text).
    width = index.band_width(rows_per_band)
    spill = None if config.state else Spilled.beside(out, num_perm=config.num_perm, width=width)
    # A cron run keeps the signatures of the texts it reads till its state stores them, on disk too.
    given = RowSpill(out, num_perm=config.num_perm) if config.state else None
    try:
        how = run_filter.Pass1(
            progress, checkpoint, batch_size or pass1.BATCH, engine, spill, tables, given, texts
        )
        docs, feats, fresh = cache.read_all(sources, config, frequency, how)
        readers.check_found(docs, config, sources)  # a run that read nothing is an error
        corpus = pass2.Corpus.of(config, docs, feats, frequency)
        corpus.bounded = cache.bounded
        timings["read_sign"] = time.perf_counter() - clock

        clock = time.perf_counter()
        grouped = cache.candidates(config, feats, corpus, fresh, bands, rows_per_band, engine, tables)
        timings["index"] = time.perf_counter() - clock
    except BaseException:
        if given is not None:  # else kept to the commit (``stored.SignatureRows`` closes it)
            given.close()
        raise
    finally:
        if spill is not None:
            spill.close()

    clock = time.perf_counter()
    n_proposed, n_candidates = grouped.proposed, grouped.candidates
    tasks = cache.judge(corpus, grouped)
    del grouped  # ``comp_of`` (a cron run's) is 8 bytes a text
    # Records of grouped documents wait on disk for the write stage (~1 KB each: record_spill).
    with SpilledRecords.beside(out, len(docs), tables) as settled:
        try:
            tasks, verified = _settle(corpus, tasks, engine, out, settled, progress, cache, tables)
            corpus.texts.discard()  # (before most of them are written to the disk)
            # Pass 2 read one document per text; an exact copy of it that the state vouched for
            # (same size and mtime, not read) may have been edited in place since: check its bytes.
            for i in _unread_copies(corpus, tasks, fresh):
                readers.reread(docs[i], config)
        except InputChangedError as err:
            unread = {docs.file(i) for i in range(len(docs)) if not fresh[i]}
            if err.path in unread and err.path not in cache.suspects:
                raise Stale(str(err.path)) from err
            raise
        verdicts = pass2.Verdicts(corpus, settled, cache.kept)
        cache.compare(docs, verdicts)
        timings["verify_cluster_score"] = time.perf_counter() - clock

        clock = time.perf_counter()
        # The manifest is streamed into a temporary file, renamed into place last.
        with manifest.atomic_file(out / manifest.MANIFEST) as manifest_fh:
            with cache.copying(out, docs, fresh, config, checkpoint) as kept:
                tally = records.Tally(n_proposed, n_candidates, verified, progress, len(docs), kept)
                rows = cache.emit(manifest_fh, docs, feats, verdicts, fresh, tally, engine)
                cache.commit(sources, rows, tally, frequency)
                checkpoint("committed")
                if progress:
                    progress("copy", 0, tally.counts["canonical"])
            if progress:
                progress("copy", tally.counts["canonical"], tally.counts["canonical"])
            counts = {**tally.counts, **cache.counts(tally)}
            timings["write"] = time.perf_counter() - clock
            summary = _summary(sources, config, cache.run_id, counts, timings, bands, rows_per_band)
            cache.write_changes(out)
            manifest.write_summary(out, summary)
        checkpoint("written")
        cache.synced()
        return RunResult(out=out, summary=summary, counts=counts)


def _settle(
    corpus: pass2.Corpus,
    tasks: Groups,
    engine: parallel.Engine,
    out: Path,
    settled: SpilledRecords,
    progress: Progress | None,
    cache: run_filter.Batch,
    tables: Path | None,
) -> tuple[Groups, int]:
    """Pass 2: every group verified, clustered and ranked into ``settled``; (the tasks run, pairs verified).

    Giant groups are split first (``large_groups``); the records pass 2 reads again
    from compressed streams are spooled in OUT meanwhile.
    """
    from dedup import large_groups, pass2

    verified = 0
    corpus.texts.verify()
    with readers.spooled(corpus.docs, _firsts(corpus, tasks), out):
        tasks = large_groups.split(
            corpus,
            tasks,
            engine,
            memo=cache.pair_verdicts,
            known=lambda comps: cache.judge_components(corpus, comps),
            into=None if tables is None else tables / "split",
        )
        for done, (results, n_edges, found) in enumerate(pass2.settle_all(corpus, tasks, engine), start=1):
            settled.update(results)
            verified += n_edges
            if found is not None:
                cache.settled(found)
            if progress:
                progress("verify", done, len(tasks))
    return tasks, verified


def _firsts(corpus: pass2.Corpus, tasks: Groups, chunk: int = 65_536) -> Iterator[int]:
    """Each grouped text's first document, a chunk at a time, where pass 2 reads it again (its
    comparison text not written: ``text_spill``): a list of them all (~40 bytes a grouped text,
    15 MB at the noisy 1M) set the driver's peak while the spool was made."""
    nodes = tasks.all_nodes()
    for lo in range(0, len(nodes), chunk):
        some = nodes[lo : lo + chunk]
        some = some[~corpus.texts.held(some)]
        yield from corpus.order[corpus.starts[some]].tolist()


def _summary(
    sources: Sequence[Source],
    config: Config,
    run_id: int | None,
    counts: dict[str, int],
    timings: dict[str, float],
    bands: int,
    rows_per_band: int,
) -> dict[str, Any]:
    """summary.json: counts, options, versions and the scheme the signatures were made with."""
    from dedup import index, normalize
    from dedup.signatures import datasketch_version, scheme_stamp

    return {
        "dedup": dedup_version,
        "datasketch": datasketch_version(),
        "minhash": scheme_stamp(num_perm=config.num_perm, seed=config.seed, shingle_size=config.shingle_size),
        "normalization_version": normalize.NORMALIZATION_VERSION,
        "lsh": {
            "threshold": config.lsh_threshold,
            "weights": list(index.LSH_WEIGHTS),
            "bands": bands,
            "rows": rows_per_band,
        },
        "config": config.as_dict(),
        "inputs": [{"path": readers.printable(s.root), "kind": s.kind, "label": s.label} for s in sources],
        "run": run_id,
        "counts": counts,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
