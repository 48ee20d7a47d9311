"""Tokens -> word-shingle hash sets -> MinHash signatures.

Hashing each shingle string in Python is the slow part of MinHash, so each token is
hashed once (xxh3, cached) and k consecutive token hashes are combined into a
shingle hash with numpy. Signatures use datasketch's ``affine32`` permutation
scheme and parameters (drawn as ``datasketch.MinHash`` draws them: ``permutations``),
applied to the whole shingle array at once; the result is bit-identical to feeding the same
32-bit shingle hashes to ``MinHash.update_batch`` (tests/test_signatures.py checks
this), and wraps as a ``LeanMinHash`` for the LSH index.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Literal

import numpy as np

from dedup import kernels
from dedup.normalize import OCR_DIGRAPH_TABLE, OCR_FOLD_TABLE, TOKENISATION, WORD_BYTE, skeleton_bytes

if TYPE_CHECKING:
    from datasketch import LeanMinHash

SCHEME = "affine32"
_MASK32 = np.uint64(0xFFFFFFFF)
# Odd 64-bit multipliers, one per shingle position, so "a b" and "b a" differ.
_POSITION_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15 ^ (i * 0xBF58476D1CE4E5B9 % (1 << 64)) | 1 for i in range(20)], dtype=np.uint64
)
# Token hashes are polynomial hashes of the token's bytes, sum(b_j * P^(j - start)),
# computed for all tokens of a document at once from one prefix sum.
_P = 0x9E3779B97F4A7C15
_POWERS_CACHED = 1 << 16


def _geometric(ratio: int, n: int) -> np.ndarray:
    """[1, r, r^2, ...] modulo 2^64 (uint64 arithmetic wraps)."""
    steps = np.full(n, ratio, dtype=np.uint64)
    steps[0] = 1
    return np.cumprod(steps, dtype=np.uint64)


_P_INVERSE = pow(_P, -1, 1 << 64)
_POWERS = _geometric(_P, _POWERS_CACHED)
_INVERSES = _geometric(_P_INVERSE, _POWERS_CACHED)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n <= _POWERS_CACHED:
        return _POWERS[:n], _INVERSES[:n]
    return _geometric(_P, n), _geometric(_P_INVERSE, n)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """Avalanche the linear combination so that shingle hashes look random in all bits."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def hash_token_bytes(data: bytes | np.ndarray, *, compiled: bool = True) -> np.ndarray:
    """64-bit hash of every token (run of ``normalize.WORD_BYTE`` bytes), in order.

    ``compiled=False`` runs the numpy reference the compiled kernel is tested against.

    Example:
        >>> a, b = hash_token_bytes(b"the cat, the"), hash_token_bytes(b"cat")
        >>> bool(a[0] == a[2] and a[1] == b[0] and a[0] != a[1])
        True
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if compiled and kernels.AVAILABLE:
        return kernels.token_hashes(buf, WORD_BYTE)
    edges = np.diff(WORD_BYTE[buf].view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if len(starts) == 0:
        return np.empty(0, dtype=np.uint64)
    powers, inverses = _powers(len(buf))
    prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
    np.cumsum((buf.astype(np.uint64) + np.uint64(1)) * powers, out=prefix[1:])
    h = (prefix[ends] - prefix[starts]) * inverses[starts]
    return _fmix64(h ^ ((ends - starts).astype(np.uint64) << np.uint64(56)))


def token_hashes(tokens: Sequence[str]) -> np.ndarray:
    """64-bit hash of each token, in order (the same values pass 1 computes from the text)."""
    return hash_token_bytes(" ".join(tokens).encode("utf-8"))


def shingle_hashes(tokens: Sequence[str], k: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the document's word k-grams.

    A document shorter than k words is one shingle of all its words, so that short
    texts still compare (and exact duplicates still collide).

    Example:
        >>> len(shingle_hashes("a b c a b c".split(), 3))
        3
    """
    if not tokens:
        return np.empty(0, dtype=np.uint64)
    return shingles_of(token_hashes(tokens), k)


def document_shingles(tokens: Sequence[str], k: int) -> np.ndarray:
    """The shingle set a document is compared by: k-grams of its OCR-folded tokens."""
    return shingles_of(hash_token_bytes(skeleton_bytes(" ".join(tokens).encode("utf-8"))), k)


def shingles_of(th: np.ndarray, k: int, *, compiled: bool = True) -> np.ndarray:
    """``shingle_hashes`` from already hashed tokens (``compiled=False``: the numpy reference)."""
    if len(th) == 0:
        return np.empty(0, dtype=np.uint64)
    if compiled and kernels.AVAILABLE:
        return distinct(kernels.shingle_values(th, k, _POSITION_MULTIPLIERS))
    width = min(k, len(th))

    n = len(th) - width + 1
    acc = np.zeros(n, dtype=np.uint64)
    for j in range(width):
        acc += th[j : j + n] * _POSITION_MULTIPLIERS[j]
    return distinct(_fmix64(acc))


def distinct(values: np.ndarray, kind: Literal["quicksort", "stable"] = "quicksort") -> np.ndarray:
    """Sorted distinct values of a flat array: what ``np.unique`` returns, by a sort.

    numpy 2.3+ finds a plain ``np.unique``'s values with a hash table: ~9x slower
    than a sort for a few hundred values, ~100x for millions (2M int64: 1.7 s
    against 0.02 s), where banding's pair codes are. ``kind="stable"`` is timsort:
    linear on sorted runs laid side by side (``index.merged``).

    Example:
        >>> distinct(np.array([3, 1, 3, 2], dtype=np.uint64)).tolist()
        [1, 2, 3]
    """
    if len(values) < 2:
        return values.copy()
    ordered = np.sort(values, kind=kind)
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


HASH_CHUNK = 1 << 18  # bytes hashed at once: hashing holds ~40 bytes of arrays per byte


def hash_tokens(buf: np.ndarray, chunk: int = HASH_CHUNK) -> np.ndarray:
    """``hash_token_bytes`` a piece at a time, cut between tokens: the same hashes in bounded memory.

    A 15 MB one-line file otherwise took 600 MB for this step alone. (A single
    token longer than ``chunk`` is cut, and hashes as two.)

    Example:
        >>> buf = np.frombuffer(b"the cat sat on the mat", np.uint8)
        >>> bool((hash_tokens(buf, chunk=5) == hash_token_bytes(buf)).all())
        True
    """
    if len(buf) <= chunk:
        return hash_token_bytes(buf)
    parts, start = [], 0
    while start < len(buf):
        end = min(start + chunk, len(buf))
        if end < len(buf):
            separators = np.flatnonzero(~WORD_BYTE[buf[start:end]])
            if len(separators):
                end = start + int(separators[-1]) + 1
        parts.append(hash_token_bytes(buf[start:end]))
        start = end
    return np.concatenate(parts)


def vocabulary_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``distinct(values)``, each value's place in it). Without the kernels, one argsort: half
    the time of ``distinct`` then ``np.searchsorted`` up to ~30,000 values (pass 2's groups).

    Example:
        >>> [a.tolist() for a in vocabulary_ids(np.array([30, 10, 30, 20], dtype=np.uint64))]
        [[10, 20, 30], [2, 0, 2, 1]]
    """
    if kernels.AVAILABLE and values.dtype in (np.uint64, np.int64):
        from dedup import table_kernels

        # Numbered in order first seen by pass 1's table of distinct texts (``assign_nodes``),
        # then only the distinct values sorted: the same arrays, ~70 -> ~40 us a noisy group.
        keys = np.ascontiguousarray(values).view(np.uint64)
        size = 16
        while size < 2 * len(keys):
            size *= 2
        first = np.empty(len(keys), dtype=np.int64)
        count = table_kernels.assign_nodes(
            np.zeros(size, dtype=np.uint64), np.zeros(size, dtype=np.int64), keys, 0, first
        )
        seen = np.empty(count, dtype=np.uint64)
        seen[first] = keys
        seen = seen.view(values.dtype)
        order = np.argsort(seen)
        rank = np.empty(count, dtype=np.intp)
        rank[order] = np.arange(count)
        return seen[order], rank[first]
    order = np.argsort(values)
    ordered = values[order]
    new = np.empty(len(ordered), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    places = np.empty(len(ordered), dtype=np.intp)
    places[order] = np.cumsum(new) - 1
    return ordered[new], places


def find_sorted(
    table: np.ndarray, wanted: np.ndarray, sorter: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` is in the ascending ``table`` (or ``table[sorter]``), and whether it
    is there at all: ``table[at] == wanted`` where found (``at`` is an index into ``sorter`` then).

    Example:
        >>> at, found = find_sorted(np.array([2, 5, 9]), np.array([5, 3, 9, 11]))
        >>> at[found].tolist(), found.tolist()
        ([1, 2], [True, False, True, False])
    """
    wanted = np.asarray(wanted)
    if not len(table):
        return np.zeros(len(wanted), dtype=np.intp), np.zeros(len(wanted), dtype=bool)
    at = np.minimum(searched(table, wanted, sorter), len(table) - 1)
    return at, (table[at] if sorter is None else table[sorter[at]]) == wanted


_SORTED_FROM = 1 << 16  # wanted values ``searched`` sorts first


def searched(table: np.ndarray, wanted: np.ndarray, sorter: np.ndarray | None = None) -> np.ndarray:
    """``np.searchsorted(table, wanted, sorter=sorter)`` of an ascending ``table`` (or
    ``table[sorter]``, ``sorter`` a permutation), the same places; many ``wanted`` are
    sorted first: each search then starts where the last ended, in memory just read (a million
    content keys among a million: 0.37 s in their own order, 0.06 s sorted, the sort included).

    Example:
        >>> searched(np.array([2, 5, 9]), np.array([9, 1, 5, 7])).tolist()
        [2, 0, 1, 2]
    """
    wanted = np.asarray(wanted)
    if wanted.size < _SORTED_FROM:
        return np.searchsorted(table, wanted, sorter=sorter)
    flat = wanted.ravel()
    order = np.argsort(flat)
    at = np.empty(len(flat), dtype=np.intp)
    at[order] = np.searchsorted(table, flat[order], sorter=sorter)
    return at.reshape(wanted.shape)


def permutations(*, num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's ``affine32`` parameters (odd multipliers a, offsets b; uint32), drawn as
    ``MinHash(num_perm=num_perm, seed=seed)`` draws them.

    Drawn here, not taken from a ``MinHash``: importing datasketch imports scipy's
    integration (~0.3 s of every run's start). tests/test_signatures.py checks them
    against datasketch's own.

    Example:
        >>> a, b = permutations(num_perm=4, seed=1)
        >>> a.dtype, bool((a % 2 == 1).all()), b.shape
        (dtype('uint32'), True, (4,))
    """
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


class Signer:
    """MinHash signatures of shingle-hash arrays with datasketch's parameters.

    Example:
        >>> signer = Signer(num_perm=64, seed=1)
        >>> sig = signer.sign(shingle_hashes("the quick brown fox jumps over".split(), 5))
        >>> sig.dtype, sig.shape
        (dtype('uint32'), (64,))
    """

    def __init__(self, *, num_perm: int, seed: int) -> None:
        self.num_perm, self.seed = num_perm, seed
        self.a, self.b = permutations(num_perm=num_perm, seed=seed)
        self._a, self._b = self.a[:, None], self.b[:, None]
        self._empty = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)

    def sign(self, shingles: np.ndarray, *, compiled: bool = True) -> np.ndarray:
        """uint32[num_perm]: min over shingles of a_k * fmix32(h) + b_k (mod 2^32).

        ``compiled=False`` runs the numpy reference the compiled kernel is tested against.
        """
        if compiled and kernels.AVAILABLE:
            return kernels.signature(shingles, self.a, self.b)
        if len(shingles) == 0:
            return self._empty.copy()
        hv = _fmix32((shingles & _MASK32).astype(np.uint32))
        # A (num_perm, n) buffer, updated in place, for at most SIGN_CHUNK shingles at a time:
        # a 15 MB one-line file has 2.5M shingles, 2.5 GB in one buffer.
        result = None
        for start in range(0, len(hv), SIGN_CHUNK):
            work = np.multiply(self._a, hv[None, start : start + SIGN_CHUNK])
            np.add(work, self._b, out=work)
            least = work.min(axis=1)
            result = least if result is None else np.minimum(result, least, out=result)
        assert result is not None
        return result

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        """Wrap a signature for datasketch's LSH index."""
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=SCHEME)


def token_and_skeleton_hashes(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``hash_token_bytes`` of ``data`` and of its OCR skeleton (``skeleton_bytes``): one
    compiled pass over the bytes (pass 2 made them in three, ~44 against ~24 us a text).

    Example:
        >>> plain, folded = token_and_skeleton_hashes(b"tbe cornmunity")
        >>> bool((folded == hash_token_bytes(skeleton_bytes(b"the community"))).all()), len(plain)
        (True, 2)
    """
    if kernels.AVAILABLE:
        buf = np.frombuffer(data, dtype=np.uint8)
        return kernels.token_and_skeleton_hashes(buf, WORD_BYTE, OCR_FOLD_TABLE, OCR_DIGRAPH_TABLE)
    return hash_token_bytes(data), hash_token_bytes(skeleton_bytes(data))


def fingerprint(words: bytes, k: int, signer: Signer) -> tuple[np.ndarray, int, np.ndarray]:
    """Pass 1's matching features of a document's ``normalize.token_bytes``, in one compiled call.

    Returns (token hashes, number of distinct k-shingles of the OCR skeleton, MinHash
    signature): what ``hash_token_bytes``, ``skeleton_bytes``, ``shingles_of`` and
    ``Signer.sign`` give one after the other, without building the sorted shingle
    array pass 1 does not keep. Without numba it runs those reference steps.

    Example:
        >>> signer = Signer(num_perm=16, seed=1)
        >>> hashes, count, sig = fingerprint(b"the cat sat on the mat", 5, signer)
        >>> shingles = document_shingles("the cat sat on the mat".split(), 5)
        >>> len(hashes), count, sig.tolist() == signer.sign(shingles).tolist()
        (6, 2, True)
    """
    buf = np.frombuffer(words, dtype=np.uint8)
    if kernels.AVAILABLE:
        hashes, count, signature = kernels.fingerprint(
            buf, WORD_BYTE, OCR_FOLD_TABLE, OCR_DIGRAPH_TABLE, k, _POSITION_MULTIPLIERS, signer.a, signer.b
        )
        return hashes, count, signature
    shingles = shingles_of(hash_token_bytes(skeleton_bytes(words)), k)
    return hash_token_bytes(buf), len(shingles), signer.sign(shingles)


SIGN_CHUNK = 16_384  # shingles per MinHash block: 16 MB of work at 256 permutations


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: datasketch's affine32 pre-mix of every input hash."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def datasketch_version() -> str:
    """``datasketch.__version__`` without importing datasketch: the installed package's metadata,
    as datasketch reads it, "0.0.0" without any."""
    try:
        return metadata.version("datasketch")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def scheme_stamp(*, num_perm: int, seed: int, shingle_size: int) -> dict[str, object]:
    """Everything that changes signature values, for summary.json (and, later, the state)."""
    return {
        "datasketch": datasketch_version(),
        "scheme": SCHEME,
        "num_perm": num_perm,
        "seed": seed,
        "shingle_size": shingle_size,
        "token_hash": "poly64-fmix64",
        "tokens": TOKENISATION,
    }


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Exact (jaccard, containment, shared) of two sorted unique shingle-hash arrays.

    Containment is the share of the smaller set found in the larger one: a clean
    truncated copy is "contained" in a complete garbled copy even when their Jaccard
    is low.
    """
    if len(a) == 0 or len(b) == 0:
        return 0.0, 0.0, 0
    if kernels.AVAILABLE and a.dtype == b.dtype == np.uint64:
        shared = kernels.shared_count(np.ascontiguousarray(a), np.ascontiguousarray(b))
    else:
        shared = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - shared
    return shared / union, shared / min(len(a), len(b)), shared
