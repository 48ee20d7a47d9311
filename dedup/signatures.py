"""Tokens -> word-shingle hash sets -> MinHash signatures.

Hashing each shingle string in Python is the slow part of MinHash, so each token is
hashed once (xxh3, cached) and k consecutive token hashes are combined into a
shingle hash with numpy. Signatures use datasketch's ``affine32`` permutation
scheme and parameters (taken from ``datasketch.MinHash`` itself), applied to the
whole shingle array at once; the result is bit-identical to feeding the same
32-bit shingle hashes to ``MinHash.update_batch`` (tests/test_signatures.py checks
this), and wraps as a ``LeanMinHash`` for the LSH index.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasketch
import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHash

from dedup.normalize import match_tokens

SCHEME = "affine32"
_MASK32 = np.uint64(0xFFFFFFFF)
# Odd 64-bit multipliers, one per shingle position, so "a b" and "b a" differ.
_POSITION_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15 ^ (i * 0xBF58476D1CE4E5B9 % (1 << 64)) | 1 for i in range(20)], dtype=np.uint64
)
_token_cache: dict[str, int] = {}
_TOKEN_CACHE_LIMIT = 1_000_000


def _token_hash(token: str) -> int:
    value = _token_cache.get(token)
    if value is None:
        if len(_token_cache) >= _TOKEN_CACHE_LIMIT:
            _token_cache.clear()
        value = _token_cache[token] = xxhash.xxh3_64_intdigest(token.encode())
    return value


def _fmix64(h: np.ndarray) -> np.ndarray:
    """Avalanche the linear combination so that shingle hashes look random in all bits."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def token_hashes(tokens: Sequence[str]) -> np.ndarray:
    """64-bit hash of each token, in order."""
    return np.fromiter((_token_hash(t) for t in tokens), dtype=np.uint64, count=len(tokens))


class TokenFrequency:
    """Approximate document frequency of every token in the corpus (a count-min sketch).

    Tells a slip (``scrvices``: one document) from the word it replaced
    (``services``: many), which two disagreeing copies cannot settle alone. Fixed
    size (``depth * width`` uint32 counters, 32 MB by default) whatever the corpus.

    Example:
        >>> freq = TokenFrequency(width=1 << 10)
        >>> freq.add(token_hashes(["the", "cat"])); freq.add(token_hashes(["the", "dog"]))
        >>> freq.get(token_hashes(["the", "cat", "cow"])).tolist()
        [2, 1, 0]
    """

    def __init__(self, *, width: int = 1 << 21, depth: int = 4) -> None:
        self._shift = np.uint64(64 - (width.bit_length() - 1))
        self._mult = _POSITION_MULTIPLIERS[:depth, None]
        self._rows = np.arange(depth)[:, None]
        self.table = np.zeros((depth, width), dtype=np.uint32)

    def _cells(self, hashes: np.ndarray) -> np.ndarray:
        return ((hashes[None, :] * self._mult) >> self._shift).astype(np.intp)

    def add(self, hashes: np.ndarray) -> None:
        """Count one document's tokens (each distinct token once)."""
        self.merge(self.delta([hashes]))

    def delta(self, documents: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Counts of a batch of documents, per row as (cells, counts): small to send between processes."""
        if not documents:
            return []
        cells = self._cells(np.concatenate([np.unique(h) for h in documents]))
        return [np.unique(row, return_counts=True) for row in cells]

    def merge(self, delta: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        for row, (cells, counts) in enumerate(delta):
            self.table[row, cells] += counts.astype(np.uint32)

    def get(self, hashes: np.ndarray) -> np.ndarray:
        return self.table[self._rows, self._cells(hashes)].min(axis=0)


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
    return shingle_hashes(match_tokens(list(tokens)), k)


def shingles_of(th: np.ndarray, k: int) -> np.ndarray:
    """``shingle_hashes`` from already hashed tokens."""
    width = min(k, len(th))
    n = len(th) - width + 1
    acc = np.zeros(n, dtype=np.uint64)
    for j in range(width):
        acc += th[j : j + n] * _POSITION_MULTIPLIERS[j]
    return np.unique(_fmix64(acc))


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
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
        self._a = np.asarray(a, dtype=np.uint32)[:, None]
        self._b = np.asarray(b, dtype=np.uint32)[:, None]
        self._empty = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)

    def sign(self, shingles: np.ndarray) -> np.ndarray:
        """uint32[num_perm]: min over shingles of a_k * fmix32(h) + b_k (mod 2^32)."""
        if len(shingles) == 0:
            return self._empty.copy()
        hv = _fmix32((shingles & _MASK32).astype(np.uint32))
        return (self._a * hv[None, :] + self._b).min(axis=1)

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        """Wrap a signature for datasketch's LSH index."""
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=SCHEME)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: datasketch's affine32 pre-mix of every input hash."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def scheme_stamp(*, num_perm: int, seed: int, shingle_size: int) -> dict[str, object]:
    """Everything that changes signature values, for summary.json (and, later, the state)."""
    return {
        "datasketch": datasketch.__version__,
        "scheme": SCHEME,
        "num_perm": num_perm,
        "seed": seed,
        "shingle_size": shingle_size,
        "token_hash": "xxh3_64",
    }


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Exact (jaccard, containment, shared) of two sorted unique shingle-hash arrays.

    Containment is the share of the smaller set found in the larger one: a clean
    truncated copy is "contained" in a complete garbled copy even when their Jaccard
    is low.
    """
    if len(a) == 0 or len(b) == 0:
        return 0.0, 0.0, 0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - shared
    return shared / union, shared / min(len(a), len(b)), shared
