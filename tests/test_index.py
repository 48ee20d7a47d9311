"""Banding by sorting finds exactly the pairs datasketch's MinHashLSH finds."""

import numpy as np
from datasketch import MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.config import Config
from dedup.index import KNOWN_LAYOUTS, LSH_WEIGHTS, band_layout, candidate_pairs, holding, prefilter
from dedup.signatures import Signer, shingle_hashes


def corpus_signatures(seed: int, n: int = 60) -> np.ndarray:
    """Documents over a small vocabulary, many of them overlapping: plenty of shared buckets."""
    rng = np.random.default_rng(seed)
    signer = Signer(num_perm=64, seed=1)
    base = [list(rng.integers(0, 40, size=30)) for _ in range(n // 3)]
    docs = []
    for i in range(n):
        words = list(base[i % len(base)])
        words[rng.integers(0, 30)] = int(rng.integers(100, 200))
        docs.append([f"w{w}" for w in words[: rng.integers(10, 30)]])
    return np.stack([signer.sign(shingle_hashes(d, 2)) for d in docs])


@settings(derandomize=True, max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.15, 0.3, 0.6]))
def test_pairs_equal_minhashlsh_query(seed: int, threshold: float) -> None:
    sigs = corpus_signatures(seed)
    signer = Signer(num_perm=64, seed=1)
    lsh = MinHashLSH(threshold=threshold, num_perm=64, weights=LSH_WEIGHTS)
    for i, sig in enumerate(sigs):
        lsh.insert(i, signer.lean(sig))
    expected = sorted({(i, j) for i, sig in enumerate(sigs) for j in lsh.query(signer.lean(sig)) if j > i})
    bands, rows = band_layout(threshold=threshold, num_perm=64)
    assert (bands, rows) == (lsh.b, lsh.r)
    assert [tuple(p) for p in candidate_pairs(sigs, bands=bands, rows=rows).tolist()] == expected
    assert expected  # the corpus does have near-duplicates


def test_huge_buckets_are_linked_as_a_star() -> None:
    sigs = np.zeros((100, 4), dtype=np.uint32)  # 100 identical signatures
    pairs = candidate_pairs(sigs, bands=2, rows=2)
    assert len(pairs) == 99 and set(pairs[:, 0].tolist()) == {0}


def test_prefilter_keeps_contained_pairs_and_drops_strangers() -> None:
    signer = Signer(num_perm=256, seed=1)
    words = [f"w{i}" for i in range(600)]
    teaser = shingle_hashes(words[:200], 5)  # a third of the article: Jaccard ~0.33, containment 1
    article = shingle_hashes(words, 5)
    stranger = shingle_hashes([f"x{i}" for i in range(590)] + words[:10], 5)
    sigs = np.stack([signer.sign(s) for s in (teaser, article, stranger)])
    sizes = np.array([len(teaser), len(article), len(stranger)])
    pairs = np.array([[0, 1], [1, 2], [0, 2]])
    kept = prefilter(pairs, sigs, sizes, jaccard=0.5, containment=0.5)
    assert kept.tolist() == [[0, 1]]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=300),
    st.lists(st.integers(0, 2**64 - 1), max_size=40),
    st.integers(0, 2**32),
)
def test_holding_finds_exactly_the_keys_equal_to_a_wanted_one(
    keys: list[int], extra: list[int], seed: int
) -> None:
    # Wanted keys drawn partly from the keys (hits, repeated) and partly at random (mostly misses);
    # small values too, whose low bits alone would all fall in one slot of a plain modulo table.
    arr = np.array(keys + [k % 8 for k in keys[:20]], dtype=np.uint64)
    rng = np.random.default_rng(seed)
    picked = arr[rng.integers(0, len(arr), min(len(arr), 30))] if len(arr) else arr
    wanted = np.concatenate((picked, np.array(extra, dtype=np.uint64)))
    assert holding(arr, wanted).tolist() == np.flatnonzero(np.isin(arr, wanted)).tolist()


def test_the_layouts_kept_are_the_ones_minhashlsh_works_out() -> None:
    defaults = Config()
    assert (defaults.lsh_threshold, defaults.num_perm) in KNOWN_LAYOUTS  # a default run imports no datasketch
    for (threshold, num_perm), layout in KNOWN_LAYOUTS.items():
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
        assert layout == (lsh.b, lsh.r) == band_layout(threshold=threshold, num_perm=num_perm)
    lsh = MinHashLSH(threshold=0.5, num_perm=128, weights=LSH_WEIGHTS)  # not kept: worked out
    assert band_layout(threshold=0.5, num_perm=128) == (lsh.b, lsh.r)
