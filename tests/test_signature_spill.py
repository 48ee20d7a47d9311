"""A batch run's signatures on disk (``signature_spill``): the same candidate pairs and prefilter
verdicts as from the matrix, read back a block at a time; the files live only between pass 1 and
the index, and a killed run's are removed by the next run."""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.config import Config
from dedup.index import MAX_BUCKET, band_width, candidate_pairs, prefilter
from dedup.pipeline import run
from dedup.signature_spill import Spilled

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def readable_pairs(matrix: np.ndarray, bands: int, rows: int) -> list[list[int]]:
    """Banding as it reads: a bucket per band value; a bucket over MAX_BUCKET linked as a star."""
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, row in enumerate(matrix.tolist()):
            buckets[tuple(row[band * rows : (band + 1) * rows])].append(i)
        for members in buckets.values():
            if len(members) > MAX_BUCKET:
                pairs.update((members[0], m) for m in members[1:])
            else:
                pairs.update(itertools.combinations(members, 2))
    return sorted([a, b] for a, b in pairs)


@st.composite
def signatures(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    rows = draw(st.integers(1, 3))
    num_perm = draw(st.sampled_from([8, 20, 64]))
    bands = draw(st.integers(1, num_perm // rows))
    n = draw(st.integers(0, 90))
    # Few distinct values per permutation, so that buckets form (some over MAX_BUCKET).
    values = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    matrix = np.random.default_rng(seed).integers(0, values, size=(n, num_perm), dtype=np.uint32)
    return matrix, bands, rows


@settings(max_examples=60, deadline=None)
@given(case=signatures(), flush_rows=st.integers(1, 50))
def test_spilled_signatures_give_the_pairs_and_prefilter_of_the_matrix(
    tmp_path_factory, case: tuple[np.ndarray, int, int], flush_rows: int
) -> None:
    matrix, bands, rows = case
    num_perm = matrix.shape[1]
    directory = tmp_path_factory.mktemp("spill")
    with Spilled(directory, num_perm=num_perm, width=band_width(rows), flush_rows=flush_rows) as spill:
        for row in matrix:
            spill.append(row.tobytes())
        expected = readable_pairs(matrix, bands, rows)
        pairs = candidate_pairs(spill, bands=bands, rows=rows)
        assert pairs.tolist() == expected
        assert candidate_pairs(matrix, bands=bands, rows=rows).tolist() == expected
        sizes = np.random.default_rng(len(matrix)).integers(1, 400, size=len(matrix))
        a, b = pairs[:, 0], pairs[:, 1]
        est = (matrix[a] == matrix[b]).mean(axis=1)  # the estimate as it reads, over every permutation
        shared = est * (sizes[a] + sizes[b]) / (1 + est)
        keep = (est >= 0.6 * 0.5) | (shared / np.maximum(np.minimum(sizes[a], sizes[b]), 1) >= 0.6 * 0.5)
        kept = prefilter(pairs, spill, sizes, jaccard=0.5, containment=0.5)
        assert kept.tolist() == pairs[keep].tolist()
        assert (
            prefilter(pairs, matrix, sizes, jaccard=0.5, containment=0.5, width=3).tolist() == kept.tolist()
        )
    assert not directory.exists()


def test_a_batch_runs_signatures_are_on_disk_during_pass_1_and_gone_after(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".signatures.killed.tmp").mkdir()  # what a killed run leaves
    (out / ".signatures.killed.tmp" / "block-000").write_bytes(b"\0" * 64)
    seen: list[list[str]] = []

    def checkpoint(name: str) -> None:
        if name == "pass1":
            seen.append(
                sorted(
                    f.name for p in out.iterdir() if p.name.startswith(".signatures.") for f in p.iterdir()
                )
            )

    run([str(SAMPLE)], out, Config(jobs=1, force=True), checkpoint=checkpoint)
    # One spill, this run's (the killed run's removed first): a file per block of eight bands.
    assert seen and all(names == [f"block-{k:03d}" for k in range(16)] for names in seen)
    assert not [p for p in out.iterdir() if p.name.startswith(".signatures.")]


def test_a_cron_run_keeps_its_signatures_in_memory_for_its_state(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spills: list[int] = []

    def checkpoint(name: str) -> None:
        if name == "pass1" and out.exists():
            spills.append(len([p for p in out.iterdir() if p.name.startswith(".signatures.")]))

    run([str(SAMPLE)], out, Config(jobs=1, state=str(tmp_path / "state")), checkpoint=checkpoint)
    assert spills and set(spills) == {0}


def test_a_spill_that_cannot_open_its_blocks_leaves_no_file_open_and_no_directory(tmp_path: Path) -> None:
    directory = tmp_path / "spill"
    (directory / "block-004").mkdir(parents=True)  # the fifth block cannot be opened for writing
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(IsADirectoryError):
        Spilled(directory, num_perm=256, width=16)
    assert len(os.listdir("/proc/self/fd")) == before
    assert not directory.exists()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=30))
def test_a_table_in_memory_gives_each_text_its_first_signature_and_zeros_where_none_was_given(
    docs: list[tuple[int, bool]],
) -> None:
    # Cron mode sets stored texts without their signature (filled in later, in place): the matrix
    # holds every given one at its text's row, zeros for the others, and its rows can be written.
    from dedup.pass1 import FeatureTable
    from dedup.quality import INTRINSIC

    table = FeatureTable(num_perm=4)
    signals = bytes(4 * len(INTRINSIC))
    first: dict[int, np.ndarray | None] = {}
    for i, (content, signed) in enumerate(docs):
        table.reserve()
        signature = np.full(4, content * 10 + i, dtype=np.uint32) if signed else None
        first.setdefault(content, signature)
        table.set(i, content, 3, None if signature is None else signature.tobytes(), signals)
    matrix = table.matrix()
    assert matrix.shape == (len(first), 4)
    for node, signature in enumerate(first.values()):
        assert matrix[node].tolist() == ([0] * 4 if signature is None else signature.tolist())
    if len(matrix):
        matrix[0] = 7
        assert table.matrix()[0].tolist() == [7] * 4


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), max_size=40),
    st.lists(st.integers(1, 8), min_size=1, max_size=10),
)
def test_features_set_in_batches_are_those_set_one_by_one(
    docs: list[tuple[int, bool, bool]], cuts: list[int]
) -> None:
    # A cron run sets its analysed documents and the stored ones between them a batch at a time
    # (``set_batch``): the same nodes, texts, signatures and signals as ``set`` of each in turn.
    from dedup.pass1 import FeatureTable
    from dedup.quality import INTRINSIC

    width = len(INTRINSIC)
    one, batched = FeatureTable(num_perm=4), FeatureTable(num_perm=4)
    one.reserve(len(docs))
    batched.reserve(len(docs))
    present = [i for i, (_, _, skipped) in enumerate(docs) if not skipped]
    for i in present:
        content, signed, _ = docs[i]
        signature = np.full(4, content * 10 + i, dtype=np.uint32) if signed else None
        signals = np.full(width, i / 7, dtype=np.float32)
        one.set(
            i, content, content + 3, None if signature is None else signature.tobytes(), signals.tobytes()
        )
    at = 0
    for size in itertools.cycle(cuts):
        if at >= len(present):
            break
        chunk = np.array(present[at : at + size], dtype=np.int64)
        at += size
        given = np.array([docs[i][1] for i in chunk.tolist()], dtype=bool)
        batched.set_batch(
            chunk,
            np.array([docs[i][0] for i in chunk.tolist()], dtype=np.uint64),
            np.array([docs[i][0] + 3 for i in chunk.tolist()], dtype=np.int64),
            np.array([np.full(width, i / 7, dtype=np.float32) for i in chunk.tolist()]).reshape(-1, width),
            given,
            [np.full(4, docs[i][0] * 10 + i, dtype=np.uint32).tobytes() for i in chunk[given].tolist()],
        )
    for table in (one, batched):
        table.done()
    assert batched.node_of.numbers().tolist() == one.node_of.numbers().tolist()
    assert batched.contents.numbers().tolist() == one.contents.numbers().tolist()
    assert batched.sizes.numbers().tolist() == one.sizes.numbers().tolist()
    assert batched.signals.numbers().tolist() == one.signals.numbers().tolist()
    assert batched.matrix().tolist() == one.matrix().tolist()
