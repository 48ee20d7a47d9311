"""The index stage on the workers proposes, keeps and stars exactly what one process does."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import index, index_workers
from dedup.config import Config
from dedup.groups import Groups, group_pairs
from dedup.parallel import Processes
from dedup.pipeline import run
from dedup.signature_spill import Spilled


def planted(seed: int, texts: int, num_perm: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Signatures with near-duplicate families (a few permutations changed) and one family larger
    than ``index.MAX_BUCKET`` (a star), over a small alphabet (chance collisions too); their sizes."""
    rng = np.random.default_rng(seed)
    sigs = rng.integers(0, 2**32 - 1, size=(texts, num_perm), dtype=np.uint32)
    heads = rng.integers(0, texts, size=max(1, texts // 8))
    for i in range(texts):
        if rng.random() < 0.6:
            head = sigs[heads[i % len(heads)]]
            keep = rng.random(num_perm) < rng.uniform(0.4, 0.95)
            sigs[i] = np.where(keep, head, sigs[i])
    star = rng.choice(texts, size=min(texts, index.MAX_BUCKET + 20), replace=False)
    sigs[star, :4] = sigs[star[0], :4]  # two bands shared by 84 texts
    sigs[:, -8:] %= 5  # the last block collides by chance
    return sigs, rng.integers(10, 400, size=texts).astype(np.int64)


def _listed(groups: Groups) -> list[tuple[list[int], list[list[int]]]]:
    return [(nodes, pairs.tolist()) for nodes, pairs in groups]


def spilled(tmp: Path, sigs: np.ndarray, width: int) -> Spilled:
    spill = Spilled.beside(tmp, num_perm=sigs.shape[1], width=width)
    spill.extend(sigs)
    return spill


@settings(derandomize=True, max_examples=16, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    texts=st.integers(2, 700),
    threshold=st.sampled_from([0.15, 0.3, 0.5]),
    workers=st.sampled_from([1, 2]),
)
def test_workers_find_what_one_process_finds(
    tmp_path_factory: pytest.TempPathFactory, seed: int, texts: int, threshold: float, workers: int
) -> None:
    sigs, sizes = planted(seed, texts)
    bands, rows = index.band_layout(threshold=threshold, num_perm=64)
    expected = index.candidates(sigs, sizes, bands=bands, rows=rows, jaccard=0.5, containment=0.8)
    with spilled(tmp_path_factory.mktemp("spill"), sigs, index.band_width(rows)) as spill:
        got = index_workers.banded_by(
            Processes(workers), spill, sizes, bands=bands, rows=rows, jaccard=0.5, containment=0.8
        )
    assert got[0] == expected[0]
    assert np.array_equal(got[1], expected[1])
    assert np.array_equal(got[2], expected[2])
    with spilled(tmp_path_factory.mktemp("spill"), sigs, index.band_width(rows)) as spill:
        unstarred = index_workers.banded_by(
            Processes(workers),
            spill,
            sizes,
            bands=bands,
            rows=rows,
            jaccard=0.5,
            containment=0.8,
            stars=False,
        )
    assert unstarred[0] == expected[0] and np.array_equal(unstarred[1], expected[1]) and not len(unstarred[2])
    with spilled(tmp_path_factory.mktemp("spill"), sigs, index.band_width(rows)) as spill:
        into = spill.directory.parent / "groups"
        proposed, kept, found = index_workers.grouped_by(
            Processes(workers), spill, sizes, into, bands=bands, rows=rows, jaccard=0.5, containment=0.8
        )
        assert (proposed, kept) == (expected[0], len(expected[1]))
        assert _listed(found) == _listed(group_pairs(expected[1], texts)[0])
        if len(expected[1]):  # in files the driver maps, not in its heap
            assert isinstance(found.nodes, np.memmap) and isinstance(found.pairs, np.memmap)
    if texts > index.MAX_BUCKET + 20:  # not vacuous: pairs proposed, some dropped, some kept; a star
        assert expected[0] > len(expected[1]) > 0
        assert len(expected[2])


def test_the_driver_bands_small_runs_and_never_on_a_cluster() -> None:
    assert not index_workers.on_workers(None, 10**9)
    assert not index_workers.on_workers(Processes(1), 10**9)
    assert not index_workers.on_workers(Processes(2), index_workers.LOCAL_FROM - 1)
    assert index_workers.on_workers(Processes(2), index_workers.LOCAL_FROM)
    assert index_workers.on_workers(object(), 2)  # any other engine: a cluster


def test_a_task_run_again_changes_nothing(tmp_path: Path) -> None:
    """A Dask task may run twice (its worker was presumed lost): the same files, the same pairs."""
    sigs, sizes = planted(3, 500)
    bands, rows = index.band_layout(threshold=0.3, num_perm=64)

    class Twice(Processes):
        def ordered(self, stage, tasks, **kw):  # type: ignore[no-untyped-def]
            tasks = list(tasks)
            for task in tasks:
                stage(task)
            return super().ordered(stage, tasks, **kw)

    with spilled(tmp_path, sigs, index.band_width(rows)) as spill:
        once = index_workers.banded_by(
            Processes(1), spill, sizes, bands=bands, rows=rows, jaccard=0.5, containment=0.8
        )
        twice = index_workers.banded_by(
            Twice(1), spill, sizes, bands=bands, rows=rows, jaccard=0.5, containment=0.8
        )
        assert sorted(p.name for p in spill.directory.iterdir() if p.suffix == ".tmp") == []
        grouped = index_workers.grouped_by(
            Twice(1), spill, sizes, tmp_path / "g", bands=bands, rows=rows, jaccard=0.5, containment=0.8
        )
    assert once[0] == twice[0]
    assert np.array_equal(once[1], twice[1]) and np.array_equal(once[2], twice[2])
    assert grouped[:2] == (once[0], len(once[1])) and len(grouped[2]) > 0
    assert _listed(grouped[2]) == _listed(group_pairs(once[1], len(sigs))[0])


def test_a_run_banded_by_workers_writes_what_one_process_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_workers, "LOCAL_FROM", 2)
    calls = []
    by = index_workers.grouped_by
    monkeypatch.setattr(index_workers, "grouped_by", lambda *a, **k: calls.append(a[0]) or by(*a, **k))
    one = run(["corpora/sample"], tmp_path / "one", Config(jobs=1))
    two = run(["corpora/sample"], tmp_path / "two", Config(jobs=2))
    assert calls == [Processes(2)]  # -j 2 banded on its workers, -j 1 in the driver
    assert (tmp_path / "one/manifest.jsonl").read_bytes() == (tmp_path / "two/manifest.jsonl").read_bytes()
    assert one.counts["lsh_pairs"] == two.counts["lsh_pairs"] > one.counts["candidate_pairs"] > 0
    assert not list((tmp_path / "two").glob(".signatures*"))  # the shuffle's files went with the spill
