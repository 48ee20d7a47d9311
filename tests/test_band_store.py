"""The state's band keys beside it (``band_store``): new texts banded against them where they lie give
what banding the whole matrix gives, and a store that is damaged, stale or missing costs time only."""

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_cron_rerun import outputs
from test_state import _DAY1, _DAY2, _write

from dedup import Config, band_store, index, index_delta, run

STAMP = "a stamp"


def _store(tmp_path: Path, contents: np.ndarray, signatures: np.ndarray, cuts: list[int]) -> band_store.Store:
    """The texts written as segments, cut at ``cuts``."""
    bands = signatures.shape[1] // 2
    for lo, hi in itertools.pairwise([0, *cuts, len(contents)]):
        columns = iter(np.ascontiguousarray(signatures[lo:hi].view(np.uint64).T))
        band_store.write(tmp_path / band_store.DIRECTORY, STAMP, contents[lo:hi], columns, bands)
    store = band_store.Store.open(tmp_path, STAMP, signatures.shape[1] // 2)
    assert store is not None
    return store


@pytest.mark.parametrize("seed", range(30))
def test_new_texts_banded_where_the_keys_lie_equal_the_matrix(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    # Few distinct values: buckets of every size, many over index.MAX_BUCKET (linked as stars).
    signatures = rng.integers(0, int(rng.integers(1, 12)), size=(n, 16), dtype=np.uint32)
    contents = rng.permutation(np.arange(1, n + 1, dtype=np.uint64) * 7919)
    new = np.sort(rng.choice(n, size=int(rng.integers(1, max(2, n // 8))), replace=False))
    if seed % 2:
        new = np.union1d(new, [0])
    old = np.setdiff1d(np.arange(n), new)
    _, stars = index.banding(signatures[old], bands=8, rows=2)
    stars[:, 1:] = old[stars[:, 1:]]
    # Stored: the old texts in any order, some twice, some new ones too, and texts no longer here.
    gone = rng.integers(0, 8, size=(int(rng.integers(0, 20)), 16), dtype=np.uint32)
    twice = rng.choice(old, size=min(len(old), 5), replace=False) if seed % 3 else old[:0]
    also = new[: int(rng.integers(0, len(new) + 1))]
    stored = rng.permutation(np.concatenate((old, twice, also)))
    keys = np.concatenate((contents[stored], np.arange(10**9, 10**9 + len(gone), dtype=np.uint64)))
    rows = np.concatenate((signatures[stored], gone))
    cut = min(len(keys) - 1, int(rng.integers(0, 4)))
    cuts = sorted(rng.choice(len(keys), size=cut, replace=False).tolist())
    store = _store(tmp_path, keys, rows, cuts)
    made = band_store.StoredSignatures.made(store, contents, contents[old], new, signatures[new])
    assert made is not None
    want = index_delta.pairs_with(signatures, new, stars, bands=8, rows=2)
    got = index_delta.pairs_with(made, new, stars, bands=8, rows=2)
    for field in ("pairs", "dropped", "stars"):
        assert np.array_equal(getattr(got, field), getattr(want, field)), field
    sizes = rng.integers(1, 300, size=n)
    assert np.array_equal(
        index.prefilter(want.pairs, made, sizes, jaccard=0.5, containment=0.7),
        index.prefilter(want.pairs, signatures, sizes, jaccard=0.5, containment=0.7),
    )
    texts = rng.permutation(n)[: int(rng.integers(0, n + 1))]
    assert np.array_equal(made.subset(texts), signatures[texts])
    assert np.array_equal(np.hstack(list(made.blocks())), signatures)
    store.close()


def test_a_known_text_not_stored_or_a_new_one_not_read_is_no_store(tmp_path: Path) -> None:
    signatures = np.arange(64, dtype=np.uint32).reshape(4, 16)
    contents = np.array([11, 22, 33, 44], dtype=np.uint64)
    store = _store(tmp_path, contents[:2], signatures[:2], [])
    made = band_store.StoredSignatures.made
    assert made(store, contents, contents[:3], np.array([3]), signatures[3:]) is None  # 33 known, not stored
    assert made(store, contents, contents[:2], np.array([3]), signatures[3:]) is None  # 33 new, not read
    assert made(store, contents, contents[:2], np.array([2, 3]), signatures[2:]) is not None


def test_a_damaged_segment_is_not_used(tmp_path: Path) -> None:
    signatures = np.arange(3 * 16, dtype=np.uint32).reshape(3, 16)
    contents = np.array([5, 6, 7], dtype=np.uint64)
    _store(tmp_path, contents, signatures, []).close()
    (path,) = (tmp_path / band_store.DIRECTORY).glob("*.bands")
    good = path.read_bytes()
    head = 8 + 8 + 8 + 16 + 8
    for at, what in ((head + 3, "content keys"), (10, "header"), (len(good) - 3, "footer")):
        path.write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
        assert band_store.Store.open(tmp_path, STAMP, 8) is None, what
        assert not path.exists(), what  # removed: the next full run writes the keys anew
        path.write_bytes(good)
    path.write_bytes(good[:-1])
    assert band_store.Store.open(tmp_path, STAMP, 8) is None
    path.write_bytes(good)
    assert band_store.Store.open(tmp_path, "another stamp", 8) is None
    path.write_bytes(good)
    at = head + 8 * 3 + 8 * 3 * 5 + 2  # a byte of band 5
    path.write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
    store = band_store.Store.open(tmp_path, STAMP, 8)
    assert store is not None and np.array_equal(store.band(4).view(np.uint32), signatures[:, 8:10].ravel())
    with pytest.raises(band_store.Damaged):
        store.band(5)
    store.close()
    path.unlink()
    os.mkfifo(path)  # never waited on
    assert band_store.Store.open(tmp_path, STAMP, 8) is None


def test_cron_runs_with_the_store_equal_runs_without(tmp_path: Path) -> None:
    """Three nights (texts added twice, a file deleted), the state copied before each: without its
    store, with it, with a band damaged."""
    root = tmp_path / "in"
    _write(root, _DAY1)
    run([root], tmp_path / "out", Config(jobs=1, state=str(tmp_path / "state")))
    segments = lambda state: sorted((state / band_store.DIRECTORY).glob("*.bands"))  # noqa: E731
    assert len(segments(tmp_path / "state")) == 1  # the first run's texts
    days = (_DAY2, {"d20-more.txt": _DAY2["d03-a-clean.txt"] + " Updated at noon."}, "d20-more.txt")
    for day, change in enumerate(days):
        if isinstance(change, str):  # a file gone: its text taken out of the stored buckets
            (root / change).unlink()
        else:
            _write(root, change)
        sides = {}
        for side in ("without", "with", "damaged"):
            shutil.copytree(tmp_path / "state", tmp_path / side / "state")
            shutil.copytree(tmp_path / "out", tmp_path / side / "out", copy_function=shutil.copy2)
            if side == "without":
                shutil.rmtree(tmp_path / side / "state" / band_store.DIRECTORY)
            if side == "damaged":
                path = segments(tmp_path / side / "state")[0]
                data = bytearray(path.read_bytes())
                data[len(data) // 2] ^= 0xFF
                path.write_bytes(bytes(data))
            before = len(segments(tmp_path / side / "state"))
            run([root], tmp_path / side / "out", Config(jobs=1, state=str(tmp_path / side / "state")))
            sides[side] = outputs(tmp_path / side / "out", tmp_path / side / "state")
            after = len(segments(tmp_path / side / "state"))
            if isinstance(change, str):  # taken out where it lies: kept, or written anew if damaged
                assert after == (before if side == "with" else 1), (day, side)
            else:  # appended to, or written anew
                assert after == (before + 1 if side == "with" else 1), (day, side)
        assert sides["with"] == sides["without"] == sides["damaged"]
        shutil.rmtree(tmp_path / "state")
        shutil.rmtree(tmp_path / "out")
        shutil.copytree(tmp_path / "with" / "state", tmp_path / "state")
        shutil.copytree(tmp_path / "with" / "out", tmp_path / "out", copy_function=shutil.copy2)
        for side in sides:
            shutil.rmtree(tmp_path / side)


def test_leftovers_of_a_killed_write_go_and_foreign_names_do_not_stop_appends(tmp_path: Path) -> None:
    signatures = np.arange(2 * 16, dtype=np.uint32).reshape(2, 16)
    _store(tmp_path, np.array([1, 2], dtype=np.uint64), signatures, []).close()
    directory = tmp_path / band_store.DIRECTORY
    (directory / ".killed-mid-write.tmp").write_bytes(b"x" * 100)
    (directory / "12345678.bands").mkdir()  # a directory, with a segment's suffix
    (directory / "notes.txt").write_text("someone's")
    store = band_store.Store.open(tmp_path, STAMP, 8)
    assert store is not None and not (directory / ".killed-mid-write.tmp").exists()
    store.append(STAMP, np.array([3], dtype=np.uint64), signatures[:1] + 7)
    store.close()
    store = band_store.Store.open(tmp_path, STAMP, 8)
    assert store is not None and store.contents.tolist() == [1, 2, 3]
    rows = np.ascontiguousarray(np.concatenate((signatures, signatures[:1] + 7))[:, :2])
    assert np.array_equal(store.band(0), rows.view(np.uint64).ravel())
    store.close()
    assert (directory / "notes.txt").exists()
