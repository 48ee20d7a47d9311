"""Texts taken out of banded ones (``index_delta.pairs_without``, ``KnownPairs.without``): what banding
the texts left gives, where the keys lie in a matrix or in the state's band store; and a cron
night that deletes or edits files takes them out instead of banding every text again."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_band_store import _store
from test_cron_rerun import outputs
from test_state import _DAY1, _DAY2, _write, random_texts

from dedup import Config, band_store, index, index_delta, index_workers, run, stored
from dedup.errors import DedupError


def _signatures(rng: np.random.Generator, n: int) -> np.ndarray:
    # Few distinct values: buckets of every size, many over index.MAX_BUCKET (linked as stars).
    signatures = rng.integers(0, int(rng.choice([2, 4, 12, 1024])), size=(n, 16), dtype=np.uint32)
    signatures[rng.choice(n, size=int(rng.integers(0, n)) % 150, replace=False), :2] = 0  # a star, often
    return signatures


@pytest.mark.parametrize("seed", range(60))
def test_texts_taken_out_leave_what_banding_the_rest_gives(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 500))
    signatures = _signatures(rng, n)
    gone = np.sort(rng.choice(n, size=int(rng.integers(1, max(2, n // 3))), replace=False))
    if seed % 2:  # the first text gone: the first of many buckets, stars among them
        gone = np.union1d(gone, [0])
    before, stars = index.banding(signatures, bands=8, rows=2)
    removed = index_delta.pairs_without(signatures, gone, stars, bands=8, rows=2)
    left = np.setdiff1d(np.arange(n), gone)
    after, after_stars = index.banding(signatures[left], bands=8, rows=2)
    held = np.isin(before, gone).any(axis=1)
    assert removed.lost == np.count_nonzero(held)
    number = np.full(n, -1)
    number[left] = np.arange(len(left))
    kept = number[before[~held]]
    both = np.concatenate((kept, number[removed.pairs].reshape(-1, 2)))
    assert len(np.unique(both, axis=0)) == len(both)  # a new pair was proposed by no band before
    assert np.array_equal(np.unique(both, axis=0), after)
    assert np.array_equal(
        np.concatenate((removed.stars[:, :1], number[removed.stars[:, 1:]]), axis=1), after_stars
    )


@pytest.mark.parametrize("seed", range(40))
def test_stored_pairs_less_gone_texts_plus_new_ones_are_the_pairs_of_banding_all(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 600))
    signatures = _signatures(rng, n)
    sizes, contents, old, banded_all = random_texts(rng, signatures, 2)
    config = Config(jobs=1)
    known = stored.KnownPairs.loads(banded_all(old).dumps())
    assert known is not None
    gone = rng.choice(old, size=int(rng.integers(1, max(2, len(old) // 3))), replace=False)
    new = np.setdiff1d(np.arange(n), old)[: int(rng.integers(0, n - len(old) + 1))]
    now = np.sort(np.concatenate((np.setdiff1d(old, gone), new)))  # the known ones in their order
    assert known.extended(signatures[now], contents[now], sizes[now], config) is None  # no keys given
    extended = known.extended(signatures[now], contents[now], sizes[now], config, before=signatures[old])
    if extended is None:  # a new text before a star's first: banded anew
        return
    everything = banded_all(now)
    assert np.array_equal(extended.pairs, everything.pairs)
    assert extended.proposed == everything.proposed
    assert np.array_equal(extended.stars, everything.stars)
    assert np.array_equal(extended.contents, everything.contents)


@pytest.mark.parametrize("seed", range(15))
def test_texts_taken_out_where_the_keys_lie_equal_the_matrix(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    signatures = _signatures(rng, n)
    contents = rng.permutation(np.arange(1, n + 1, dtype=np.uint64) * 7919)
    # Stored in another order, in segments, with texts of runs before (not among these).
    others = rng.integers(0, 4, size=(int(rng.integers(0, 20)), 16), dtype=np.uint32)
    order = rng.permutation(n)
    keys = np.concatenate((contents[order], np.arange(10**9, 10**9 + len(others), dtype=np.uint64)))
    rows = np.concatenate((signatures[order], others))
    cuts = sorted(rng.choice(len(keys), size=min(len(keys) - 1, 2), replace=False).tolist())
    store = _store(tmp_path, keys, rows, cuts)
    nothing = np.empty((0, 16), dtype=np.uint32)
    view = band_store.StoredSignatures.made(store, contents, contents, np.empty(0, dtype=np.int64), nothing)
    assert view is not None
    gone = np.sort(rng.choice(n, size=int(rng.integers(1, max(2, n // 4))), replace=False))
    _, stars = index.banding(signatures, bands=8, rows=2)
    want = index_delta.pairs_without(signatures, gone, stars, bands=8, rows=2)
    got = index_delta.pairs_without(view, gone, stars, bands=8, rows=2)
    assert np.array_equal(got.pairs, want.pairs) and np.array_equal(got.stars, want.stars)
    assert got.lost == want.lost
    store.close()


def test_a_night_that_deletes_and_edits_files_takes_their_texts_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each night's outputs and state equal those of the same night banded afresh (the band store
    removed), and no night with the store bands every text again."""
    root = tmp_path / "in"
    _write(root, {**_DAY1, **_DAY2})
    run([root], tmp_path / "out", Config(jobs=1, state=str(tmp_path / "state")))
    names = sorted(p.name for p in root.iterdir())
    nights = [
        lambda: (root / names[0]).unlink(),  # the first text: first in its buckets
        lambda: (root / names[5]).write_text((root / names[5]).read_text() + " Corrected at noon."),
        lambda: [(root / name).unlink() for name in names[7:12]],
        lambda: _write(
            root,
            {
                "d99-new.txt": _DAY1[sorted(_DAY1)[9]] + " And a new line.",
                names[0]: _DAY2["d03-a-clean.txt"],
            },
        ),
    ]

    def banded_afresh(*args: object, **kwargs: object) -> object:
        raise DedupError("banded every text again")

    for night, change in enumerate(nights):
        change()
        for side in ("store", "afresh"):
            shutil.copytree(tmp_path / "state", tmp_path / side / "state")
            shutil.copytree(tmp_path / "out", tmp_path / side / "out", copy_function=shutil.copy2)
        shutil.rmtree(tmp_path / "afresh" / "state" / band_store.DIRECTORY)
        with monkeypatch.context() as patch:
            patch.setattr(index_workers, "known_pairs", banded_afresh)
            run([root], tmp_path / "store" / "out", Config(jobs=1, state=str(tmp_path / "store" / "state")))
        run([root], tmp_path / "afresh" / "out", Config(jobs=1, state=str(tmp_path / "afresh" / "state")))
        sides = {
            side: outputs(tmp_path / side / "out", tmp_path / side / "state") for side in ("store", "afresh")
        }
        assert sides["store"] == sides["afresh"], night
        for what in ("state", "out"):
            shutil.rmtree(tmp_path / what)
            shutil.move(tmp_path / "store" / what, tmp_path / what)
        shutil.rmtree(tmp_path / "afresh")
