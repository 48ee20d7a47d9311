"""Signatures are datasketch's own, and similarity is exact."""

import numpy as np
import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import table_kernels  # noqa: F401  (compiled on import: not inside hypothesis's timed examples)
from dedup.signatures import Signer, datasketch_version, distinct, permutations, shingle_hashes, similarity


def test_the_version_stamped_is_datasketchs_own() -> None:
    import datasketch

    assert datasketch_version() == datasketch.__version__


@settings(derandomize=True, max_examples=25)
@given(st.integers(1, 600), st.integers(0, 2**32 - 1))
def test_permutations_are_the_ones_datasketch_draws(num_perm: int, seed: int) -> None:
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    ours = permutations(num_perm=num_perm, seed=seed)
    assert [x.dtype for x in ours] == [a.dtype, b.dtype]
    assert np.array_equal(ours[0], a) and np.array_equal(ours[1], b)


@settings(derandomize=True, max_examples=40)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=200, unique=True), st.sampled_from([16, 128]))
def test_signature_is_bit_identical_to_datasketch_update_batch(values: list[int], num_perm: int) -> None:
    shingles = np.array(sorted(values), dtype=np.uint64)
    reference = MinHash(num_perm=num_perm, seed=7, scheme="affine32", hashfunc=lambda v: v)
    reference.update_batch([int(v) & 0xFFFFFFFF for v in shingles])
    ours = Signer(num_perm=num_perm, seed=7).sign(shingles)
    assert np.array_equal(ours, reference.hashvalues)


def test_lean_minhash_estimates_jaccard_like_datasketch() -> None:
    signer = Signer(num_perm=256, seed=1)
    a = shingle_hashes([f"w{i}" for i in range(300)], 3)
    b = shingle_hashes([f"w{i}" for i in range(100, 400)], 3)
    estimate = signer.lean(signer.sign(a)).jaccard(signer.lean(signer.sign(b)))
    exact = similarity(a, b)[0]
    assert abs(estimate - exact) < 0.1


def test_empty_document_gets_datasketchs_empty_signature() -> None:
    sig = Signer(num_perm=32, seed=1).sign(np.empty(0, dtype=np.uint64))
    assert np.array_equal(sig, MinHash(num_perm=32, seed=1).hashvalues)


def test_shingles_depend_on_word_order_and_are_unique_sorted() -> None:
    ab = shingle_hashes(["a", "b", "c", "d", "e"], 2)
    assert len(ab) == 4 and np.all(np.diff(ab.astype(np.float64)) > 0)
    assert not np.array_equal(ab, shingle_hashes(["e", "d", "c", "b", "a"], 2))


def test_short_documents_are_one_shingle() -> None:
    assert len(shingle_hashes(["just", "two"], 5)) == 1
    assert len(shingle_hashes([], 5)) == 0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (range(0, 10), range(0, 10), (1.0, 1.0, 10)),
        (range(0, 10), range(0, 5), (0.5, 1.0, 5)),
        (range(0, 10), range(10, 20), (0.0, 0.0, 0)),
        (range(0, 4), range(2, 8), (2 / 8, 2 / 4, 2)),
    ],
)
def test_similarity_is_exact(a: range, b: range, expected: tuple[float, float, int]) -> None:
    sa, sb = (np.array(list(x), dtype=np.uint64) for x in (a, b))
    assert similarity(sa, sb) == pytest.approx(expected)


@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300),
    st.sampled_from([np.int64, np.uint64]),
)
def test_distinct_is_np_unique_by_a_sort(values: list[int], dtype: type) -> None:
    # distinct replaces np.unique wherever arrays can be large (banding's pair codes):
    # the same values, order and dtype.
    array = np.array([v % 2**64 if dtype is np.uint64 else v for v in values], dtype=dtype)
    array = np.concatenate([array, array[::3]])  # repeats
    got, want = distinct(array), np.unique(array)
    assert got.dtype == want.dtype
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("shape", [(70_000,), (40_000, 2), (5,)])
@pytest.mark.parametrize("with_sorter", [False, True])
def test_searched_finds_the_places_searchsorted_finds(shape: tuple[int, ...], with_sorter: bool) -> None:
    # Many wanted values are sorted before the search (``searched``): the places must be
    # numpy's own, in the wanted values' order and shape, repeats and misses included.
    from dedup.signatures import searched

    rng = np.random.default_rng(3)
    table = rng.integers(0, 1 << 40, 50_000, dtype=np.int64).astype(np.uint64)
    wanted = np.concatenate(
        (rng.choice(table, size=int(np.prod(shape)) // 2), rng.integers(0, 1 << 40, 10**6))
    )
    wanted = wanted[: int(np.prod(shape))].astype(np.uint64).reshape(shape)
    if with_sorter:
        sorter = np.argsort(table)
        expected = np.searchsorted(table, wanted, sorter=sorter)
        assert np.array_equal(searched(table, wanted, sorter), expected)
    else:
        table = np.sort(table)
        assert np.array_equal(searched(table, wanted), np.searchsorted(table, wanted))


def test_searched_of_other_dtypes_and_an_empty_table_is_numpys() -> None:
    from dedup.signatures import searched

    rng = np.random.default_rng(5)
    table = np.sort(rng.integers(0, 1 << 40, 1000))  # int64
    wanted = rng.integers(0, 1 << 40, 70_000).astype(np.uint64)  # many: the sorted path
    assert np.array_equal(searched(table, wanted), np.searchsorted(table, wanted))
    empty = np.zeros(0, dtype=np.uint64)
    assert np.array_equal(searched(empty, wanted), np.searchsorted(empty, wanted))


@settings(derandomize=True, max_examples=60)
@given(st.lists(st.integers(0, 40), max_size=300), st.sampled_from([np.uint64, np.int64]))
def test_vocabulary_ids_are_each_value_s_place_among_the_distinct(values: list[int], dtype: type) -> None:
    from dedup.signatures import vocabulary_ids

    given_ = np.array(values, dtype=dtype)
    vocabulary, ids = vocabulary_ids(given_)
    assert vocabulary.tolist() == sorted(set(values)) and vocabulary.dtype == given_.dtype
    assert ids.tolist() == [vocabulary.tolist().index(v) for v in values]


@settings(derandomize=True, max_examples=80)
@given(
    st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=1, max_size=40),
    st.lists(st.integers(0, 1000), max_size=400),
)
def test_vocabulary_ids_of_any_64_bit_values_with_repeats(pool: list[int], picks: list[int]) -> None:
    """Signed values sort as signed (the kernel hashes them as unsigned), 0 and all."""
    from dedup.signatures import vocabulary_ids

    for dtype in (np.int64, np.uint64):
        chosen = [pool[p % len(pool)] for p in picks]
        values = [v % (1 << 64) for v in chosen] if dtype is np.uint64 else chosen
        given_ = np.array(values, dtype=dtype)
        vocabulary, ids = vocabulary_ids(given_)
        assert vocabulary.tolist() == sorted(set(values)) and vocabulary.dtype == given_.dtype
        assert ids.tolist() == [vocabulary.tolist().index(v) for v in values]
