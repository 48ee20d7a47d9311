"""The index stage on the workers: a batch run's banding and prefilter as tasks, not in the driver.

A batch run's signatures are on disk, a file per block of eight bands
(``signature_spill.Spilled``). Two maps over them, on the run's engine (forked
processes, or a Dask cluster: OUT is on storage every worker sees):

1. A task per block file bands its bands (``index.band_block``: the same bucket
   rule and stars as in one process), and writes its distinct pair codes cut by
   the pair's first text into partitions, a file per (partition, block) beside
   the blocks: the shuffle.
2. A task per partition merges its files into the distinct pairs banding
   proposed and prefilters them on the block files, memory-mapped
   (``index.prefilter``).

Pairs are ordered by code and the partitions by first text, so the kept pairs,
taken in partition order, are ``index.candidates``'s exactly, with any engine
and number of workers (tests/test_index_workers.py). A batch run's kept pairs are
left in files and grouped by one more task (``grouped_by``); a cron run's driver
holds the star rows and the kept pairs: never a signature, a band key or a proposed pair
(the noisy 1M proposes 7.6M pairs and keeps 272k; with banding in the driver its
peak was 1,066 MB, 752 MB with it here: docs/dask.md, "Banding and the prefilter on the
workers"). A task that is run again (a Dask worker lost)
writes the same bytes, under a temporary name renamed into place.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedup import index, parallel
from dedup.config import Config
from dedup.groups import Grouped, Groups, group_pairs
from dedup.parallel import Engine
from dedup.signature_spill import Blocks, Spilled
from dedup.stored import KnownPairs

TEXTS_PER_PARTITION = 100_000  # first texts per partition of pairs: a task's pairs stay a few MB
MIN_PARTITIONS = 8  # enough tasks for a pool to start (``parallel.MIN_TASKS``) and to share
LOCAL_FROM = 20_000  # texts from which forked workers band (measured: benchmarks/index_workers.py)
SIZES = "sizes"  # the texts' shingle counts beside the blocks (int64), for the prefilter's estimate


def known_pairs(
    config: Config,
    signatures: np.ndarray | Blocks,
    sizes: np.ndarray,
    contents: np.ndarray,
    bands: int,
    rows: int,
    engine: Engine | None = None,
) -> KnownPairs:
    """Every text banded against every other (``index.candidates``), as a cron state stores the
    pairs: by ``engine``'s workers when the signatures are in block files and ``on_workers``."""
    proposed, pairs, stars = _found(config, signatures, sizes, bands, rows, engine, stars=True)
    return KnownPairs(bands, rows, proposed, contents.copy(), pairs, stars)


def candidate_pairs(
    config: Config, signatures: np.ndarray | Blocks, sizes: np.ndarray, bands: int, rows: int, engine: Engine
) -> tuple[int, np.ndarray]:
    """``known_pairs`` for a run without a state: (how many banding proposed, the pairs kept).

    The star rows are not kept (only a state stores them): at the noisy 1M they and
    their sorting were the driver's peak, ~20 MB over the end of pass 1.
    """
    proposed, pairs, _ = _found(config, signatures, sizes, bands, rows, engine, stars=False)
    return proposed, pairs


def grouped(
    config: Config,
    signatures: np.ndarray | Blocks,
    sizes: np.ndarray,
    bands: int,
    rows: int,
    engine: Engine,
    tables: Path | None,
) -> Grouped:
    """``candidate_pairs`` grouped by connected component: by a worker, into a directory of
    ``tables``, when the workers band (``grouped_by``); else in this process."""
    if tables is not None and isinstance(signatures, Spilled) and on_workers(engine, len(signatures)):
        proposed, kept, found = grouped_by(
            engine,
            signatures,
            sizes,
            tables / "groups",
            bands=bands,
            rows=rows,
            jaccard=config.jaccard,
            containment=config.containment,
        )
        return Grouped(proposed, kept, found, None)
    proposed, pairs = candidate_pairs(config, signatures, sizes, bands, rows, engine)
    found, comp_of = group_pairs(pairs, len(sizes))
    return Grouped(proposed, len(pairs), found, comp_of)


def _found(
    config: Config,
    signatures: np.ndarray | Blocks,
    sizes: np.ndarray,
    bands: int,
    rows: int,
    engine: Engine | None,
    *,
    stars: bool,
) -> tuple[int, np.ndarray, np.ndarray]:
    find = index.candidates
    if engine is not None and isinstance(signatures, Spilled) and on_workers(engine, len(signatures)):
        find = functools.partial(banded_by, engine, stars=stars)
    return find(
        signatures, sizes, bands=bands, rows=rows, jaccard=config.jaccard, containment=config.containment
    )


def on_workers(engine: Engine | None, texts: int) -> bool:
    """Whether to band on the workers: always on a cluster; with forked processes from
    ``LOCAL_FROM`` texts (``parallel.worth_sending``)."""
    return parallel.worth_sending(engine, texts, LOCAL_FROM)


def banded_by(
    engine: Engine,
    spill: Spilled,
    sizes: np.ndarray,
    *,
    bands: int,
    rows: int,
    jaccard: float,
    containment: float,
    stars: bool = True,
) -> tuple[int, np.ndarray, np.ndarray]:
    """``index.candidates`` of the spilled signatures, computed by ``engine``'s workers (without
    ``stars``, the star rows are dropped as they come: none returned)."""
    if len(spill) < 2:
        return 0, np.empty((0, 2), dtype=np.int64), np.empty((0, 3), dtype=np.int64)
    thresholds = (jaccard, containment)
    proposed, pairs, starred, _ = _filtered(engine, spill, sizes, bands, rows, thresholds, stars, left=False)
    found = index.sorted_rows(np.concatenate(starred)) if starred else np.empty((0, 3), dtype=np.int64)
    return proposed, np.concatenate(pairs), found


def grouped_by(
    engine: Engine,
    spill: Spilled,
    sizes: np.ndarray,
    into: Path,
    *,
    bands: int,
    rows: int,
    jaccard: float,
    containment: float,
) -> tuple[int, int, Groups]:
    """``banded_by`` without the stars, its kept pairs grouped by connected component
    (``groups.group_pairs``) by one worker and saved in ``into``, a new directory: (pairs banding
    proposed, pairs kept, the groups mapped). The driver never holds a pair: at the noisy 1M
    the pairs and their grouping were ~20 MB of its heap, ~20 bytes a document."""
    if len(spill) < 2:
        return 0, 0, Groups.of([])
    thresholds = (jaccard, containment)
    proposed, _, _, parts = _filtered(engine, spill, sizes, bands, rows, thresholds, False, left=True)
    grouping = Grouping(str(spill.directory), parts, len(spill), str(into))
    nodes, pairs, groups = next(iter(engine.ordered(grouping, iter([0]), window_per_worker=1)))
    return proposed, pairs, Groups.mapped(into, nodes, pairs, groups)


def _filtered(
    engine: Engine,
    spill: Spilled,
    sizes: np.ndarray,
    bands: int,
    rows: int,
    thresholds: tuple[float, float],
    stars: bool,
    *,
    left: bool,
) -> tuple[int, list[np.ndarray], list[np.ndarray], int]:
    """Both maps: (pairs proposed, the kept pairs of each partition (none when ``left`` in files),
    each block's star rows (none without ``stars``), the partitions)."""
    texts = len(spill)
    files = spill.files()
    directory = spill.directory
    np.ascontiguousarray(sizes, dtype=np.int64).tofile(directory / SIZES)
    parts = max(MIN_PARTITIONS, -(-texts // TEXTS_PER_PARTITION))
    bounds = tuple(p * texts // parts for p in range(parts + 1))
    tasks, band = [], 0
    for k, (path, width) in enumerate(files):
        here = min(width // rows, bands - band)
        if here <= 0:
            break
        tasks.append(BlockTask(k, str(path), width, band, here))
        band += here
    banded = BandBlocks(str(directory), texts, rows, bounds)
    # Iterators, not lists: a few tasks still go to the workers (``parallel.ordered``), as chosen.
    starred = [rows for rows in engine.ordered(banded, iter(tasks), window_per_worker=1) if stars]
    filed = tuple((str(p), w) for p, w in files)
    kept = Prefilter(str(directory), texts, len(tasks), filed, *thresholds, left=left)
    proposed, pairs = 0, [np.empty((0, 2), dtype=np.int64)]
    for count, found in engine.ordered(kept, iter(range(parts)), window_per_worker=2):
        proposed += count
        pairs.append(found)
    return proposed, pairs, starred, parts


@dataclass(frozen=True, slots=True)
class BlockTask:
    """One block file to band: its number, path and permutations, and the bands it holds."""

    number: int
    path: str
    width: int
    first_band: int
    bands: int


@dataclass(frozen=True, slots=True)
class BandBlocks:
    """Phase one's stage: a block banded, its pair codes written a partition a file; returns its stars."""

    directory: str
    texts: int
    rows: int
    bounds: tuple[int, ...]  # partition p: pairs whose first text is in [bounds[p], bounds[p + 1])

    def __call__(self, task: BlockTask) -> np.ndarray:
        shape = (self.texts, task.width)
        block = np.fromfile(_whole(Path(task.path), np.uint32, shape), dtype=np.uint32).reshape(shape)
        codes, stars = index.band_block(block, first_band=task.first_band, bands=task.bands, rows=self.rows)
        del block
        cuts = np.searchsorted(codes, np.asarray(self.bounds, dtype=np.int64) * self.texts)
        for p in range(len(self.bounds) - 1):
            _write(Path(self.directory) / _part_name(p, task.number), codes[cuts[p] : cuts[p + 1]])
        return stars


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Phase two's stage: a partition's distinct proposed pairs, and those the prefilter keeps."""

    directory: str
    texts: int
    banded_blocks: int
    files: tuple[tuple[str, int], ...]  # every block file: the estimate reads all permutations
    jaccard: float
    containment: float
    left: bool = False  # the kept pairs left in a file (``Grouping`` reads it), not returned

    def __call__(self, part: int) -> tuple[int, np.ndarray]:
        where = Path(self.directory)
        runs = [np.fromfile(where / _part_name(part, k), dtype=np.int64) for k in range(self.banded_blocks)]
        codes = index.merged(runs)
        pairs = index.decode_pairs(codes, self.texts)
        if len(pairs):
            sizes = _mapped(where / SIZES, np.int64, (self.texts,))
            blocks = _Mapped(self.files, self.texts)
            pairs = index.prefilter(pairs, blocks, sizes, jaccard=self.jaccard, containment=self.containment)
        if self.left:
            _write(where / _kept_name(part), np.ascontiguousarray(pairs, dtype=np.int64))
            return len(codes), np.empty((0, 2), dtype=np.int64)
        return len(codes), pairs


@dataclass(frozen=True, slots=True)
class Grouping:
    """The kept pairs of every partition, grouped (``groups.group_pairs``) and saved in ``into``:
    a single task, so that the pairs and the grouping's arrays live in a worker, not the driver.
    Returns the saved groups' counts (``Groups.mapped``)."""

    directory: str
    parts: int
    texts: int
    into: str

    def __call__(self, task: int) -> tuple[int, int, int]:
        where = Path(self.directory)
        parts = [np.fromfile(where / _kept_name(p), dtype=np.int64) for p in range(self.parts)]
        joined = np.concatenate(parts).reshape(-1, 2)
        del parts
        found, _ = group_pairs(joined, self.texts)
        into = Path(self.into)
        shutil.rmtree(into, ignore_errors=True)  # a task run again (a worker lost) starts afresh
        found.saved(into)
        return len(found.all_nodes()), len(joined), len(found)


class _Mapped:
    """The block files, memory-mapped (``signature_spill.Blocks``): the prefilter reads a partition's
    texts' rows of each, not every text's."""

    def __init__(self, files: tuple[tuple[str, int], ...], texts: int) -> None:
        self.files, self.texts = files, texts
        self.num_perm = sum(width for _, width in files)
        self.width = files[0][1]

    def __len__(self) -> int:
        return self.texts

    def blocks(self) -> Iterator[np.ndarray]:
        for path, width in self.files:
            yield _mapped(Path(path), np.uint32, (self.texts, width))


def _mapped(path: Path, dtype: type[np.generic], shape: tuple[int, ...]) -> np.ndarray:
    return np.memmap(_whole(path, dtype, shape), dtype=dtype, mode="r", shape=shape)


def _whole(path: Path, dtype: type[np.generic], shape: tuple[int, ...]) -> Path:
    """``path``, checked to hold ``shape``: an ``OSError`` (not numpy's ``ValueError``) when it does not."""
    want = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if (size := path.stat().st_size) != want:
        raise OSError(f"{path}: {size} bytes where {want} were written")
    return path


def _kept_name(part: int) -> str:
    return f"kept-{part:05d}"


def _part_name(part: int, block: int) -> str:
    return f"pairs-{part:05d}-{block:03d}"


def _write(path: Path, values: np.ndarray) -> None:
    """``values`` to ``path`` whole or not at all: a task run twice writes the same bytes."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        values.tofile(fh)
    os.replace(temporary, path)
