"""MinHash signatures -> candidate pairs, banded the way datasketch's ``MinHashLSH`` bands.

The band layout (how many bands of how many rows) comes from datasketch for the
configured threshold and a recall-weighted 1:9 false positive/negative weighting.
The buckets themselves are found by sorting band keys in numpy, as datatrove's
bucket stage does, rather than by inserting each document into ``MinHashLSH``:
that costs ~300 us and ~8 KB per document, i.e. minutes and 8 GB at a million.
With two rows a band key is the two 32-bit values side by side, so two documents
share a bucket exactly when ``MinHashLSH`` would put them together
(tests/test_index.py checks the pairs against ``MinHashLSH.query``).

The index only proposes; ``cluster.Thresholds`` decides on exact shingle sets. A
pair whose estimated overlap is far below both thresholds (``prefilter``) is
dropped before the documents are read a second time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Final

import numpy as np

from dedup import kernels, table_kernels
from dedup.signature_spill import Blocks, blocks_of
from dedup.signatures import distinct

# Missing a true pair is worse than verifying a false one: weight recall 9:1.
LSH_WEIGHTS = (0.1, 0.9)
# A bucket this large is linked as a star (first member to each other), not all pairs.
MAX_BUCKET = 64


# datasketch's layout at the default options, as MinHashLSH works it out (tests/test_index.py):
# working it out imports scipy's integration and integrates ~2,900 times, ~0.4 s of every run.
KNOWN_LAYOUTS: Final[Mapping[tuple[float, int], tuple[int, int]]] = MappingProxyType({(0.15, 256): (128, 2)})


def band_layout(*, threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) datasketch chooses for this threshold and dedup's weights.

    Example:
        >>> band_layout(threshold=0.15, num_perm=256)
        (128, 2)
    """
    if (threshold, num_perm) in KNOWN_LAYOUTS:
        return KNOWN_LAYOUTS[threshold, num_perm]
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    return lsh.b, lsh.r


def band_keys(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    """uint64 key of one band for every signature; equal keys = equal band values."""
    cols = signatures[:, band * rows : (band + 1) * rows].astype(np.uint64)
    if rows == 1:
        return cols[:, 0]
    if rows == 2:
        return (cols[:, 0] << np.uint64(32)) | cols[:, 1]
    key = np.zeros(len(signatures), dtype=np.uint64)
    for j in range(rows):  # wider bands: a mixed 64-bit combination (collisions ~2^-64)
        key = (key ^ cols[:, j]) * np.uint64(0x9E3779B97F4A7C15)
        key ^= key >> np.uint64(29)
    return key


def _all_band_keys(signatures: Blocks, bands: int, rows: int) -> Iterator[np.ndarray]:
    """The keys of every band, in band order, from blocks of eight bands (``band_width``)."""
    band = 0
    for block in signatures.blocks():
        here = min(block.shape[1] // rows, bands - band)
        if here <= 0:
            break
        yield from block_keys(block, here, rows)
        band += here


def block_keys(block: np.ndarray, bands: int, rows: int) -> Iterator[np.ndarray]:
    """The keys of the first ``bands`` bands of one block of signatures, in band order.

    With two rows a band's two uint32 values, side by side in memory, already are
    a uint64 key: the block is viewed as uint64 and transposed, so that each row's
    cache line is read once per eight bands, not once per band (a fifth of the
    banding time at 110k).
    """
    if rows == 2 and len(block):
        yield from np.ascontiguousarray(block[:, : 2 * bands].view(np.uint64).T)
    else:
        for j in range(bands):
            yield band_keys(block, j, rows)


def band_width(rows: int) -> int:
    """Permutations per block that banding reads at once: eight bands."""
    return 8 * rows


def candidate_pairs(signatures: np.ndarray | Blocks, *, bands: int, rows: int) -> np.ndarray:
    """All pairs (i < j) that share a bucket in at least one band, sorted, as int64[m, 2].

    Example:
        >>> sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [5, 6, 3, 4], [7, 8, 0, 0]], dtype=np.uint32)
        >>> candidate_pairs(sigs, bands=2, rows=2).tolist()
        [[0, 1], [0, 2]]
    """
    return banding(signatures, bands=bands, rows=rows)[0]


def banding(signatures: np.ndarray | Blocks, *, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``candidate_pairs``, and the buckets over ``MAX_BUCKET``, linked as stars.

    The stars as int64[k, 3] rows (band, first member, other member), sorted. Only
    they make the pairs depend on the texts' order: a cron run may reuse the pairs
    for renumbered texts when every star keeps its first member (``stored.KnownPairs``).
    A block's bands are banded together (``band_block``); ``index_workers`` bands
    each block in a task of its own, with the same result.
    """
    n = len(signatures)
    stars = [np.empty((0, 3), dtype=np.int64)]
    found = [np.empty(0, dtype=np.int64)]
    band = 0
    for block in blocks_of(signatures, band_width(rows)).blocks():
        here = min(block.shape[1] // rows, bands - band)
        if here <= 0:
            break
        codes, star_rows = band_block(block, first_band=band, bands=here, rows=rows)
        found.append(codes)
        stars.append(star_rows)
        if len(found) > 4:  # a near-duplicate pair is proposed by many blocks: keep each once
            found = [merged(found)]
        band += here
    return decode_pairs(merged(found), n), sorted_rows(np.concatenate(stars))


def band_block(block: np.ndarray, *, first_band: int, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs one block of signatures proposes: (sorted distinct pair codes ``i * n + j``, i < j;
    the star rows of its buckets over ``MAX_BUCKET``, unsorted).

    ``block`` is ``uint32[n, width]``, every text's permutations of bands
    ``first_band`` to ``first_band + bands``; ``n`` is every text, so codes of
    several blocks combine (``merged``).
    """
    n = len(block)
    stars = [np.empty((0, 3), dtype=np.int64)]
    found = [np.empty(0, dtype=np.int64)]
    for band, keys in enumerate(block_keys(block, bands, rows), start=first_band):
        order = np.argsort(keys)  # not stable, 5x faster: pairs are ordered below, not taken from here
        ordered = keys[order]
        same = ordered[1:] == ordered[:-1]
        if not same.any():
            continue
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        lengths = np.diff(np.append(starts, n))
        twos = starts[lengths == 2]  # the common case, vectorised
        a, b = order[twos], order[twos + 1]
        found.append(np.minimum(a, b) * n + np.maximum(a, b))
        for start, length in zip(starts[lengths > 2], lengths[lengths > 2], strict=True):
            members = np.sort(order[start : start + length])
            if length > MAX_BUCKET:
                found.append(members[0] * n + members[1:])
                stars.append(_star_rows(band, members[0], members[1:]))
            else:
                i, j = _bucket_pairs(int(length))
                found.append(members[i] * n + members[j])
    return merged(found, runs_sorted=False), np.concatenate(stars)


def merged(runs: list[np.ndarray], *, runs_sorted: bool = True) -> np.ndarray:
    """The distinct values of all arrays in ``runs``, sorted; ``runs`` is emptied (their memory goes first).

    Sorted runs side by side are sorted stably: timsort's merge, linear in their
    length per level, not a sort from scratch (``runs_sorted=False``: a plain sort).

    Example:
        >>> merged([np.array([1, 4, 6]), np.array([2, 4])]).tolist()
        [1, 2, 4, 6]
    """
    joined = np.concatenate(runs) if runs else np.empty(0, dtype=np.int64)
    runs.clear()
    return distinct(joined, kind="stable" if runs_sorted else "quicksort")


def _star_rows(band: int, centre: int, members: np.ndarray) -> np.ndarray:
    rows = np.empty((len(members), 3), dtype=np.int64)
    rows[:, 0], rows[:, 1], rows[:, 2] = band, centre, members
    return rows


def sorted_rows(rows: np.ndarray) -> np.ndarray:
    """int64[k, 3] rows in lexicographic order (a star table is stored sorted: deterministic bytes)."""
    return rows[np.lexsort(rows.T[::-1])] if len(rows) else rows.reshape(0, 3)


@lru_cache(maxsize=MAX_BUCKET)
def _bucket_pairs(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of all pairs in a bucket of this size (made once per size: buckets of three
    or four are common, and ``triu_indices`` per bucket was half the banding time)."""
    return np.triu_indices(length, 1)


def prefilter(
    pairs: np.ndarray,
    signatures: np.ndarray | Blocks,
    sizes: np.ndarray,
    *,
    jaccard: float,
    containment: float,
    width: int = 16,
) -> np.ndarray:
    """Drop pairs whose MinHash-estimated Jaccard and containment are both hopeless.

    Containment is estimated from the Jaccard estimate and the two set sizes
    (|A and B| = J (|A| + |B|) / (1 + J)). The cut is at 60% of each threshold:
    with 256 permutations that is about five standard errors below it. Equal
    permutations are counted a block at a time (``width`` of a matrix; a spill's own).
    """
    if len(pairs) == 0:
        return pairs
    from dedup.band_store import StoredSignatures

    if isinstance(signatures, StoredSignatures):  # only the paired texts' signatures, read once
        texts, at = np.unique(pairs, return_inverse=True)
        local = at.reshape(pairs.shape)
        kept = prefilter(
            local,
            signatures.subset(texts),
            sizes[texts],
            jaccard=jaccard,
            containment=containment,
            width=width,
        )
        return texts[kept]
    source = blocks_of(signatures, width)
    same = np.zeros(len(pairs), dtype=np.int32)
    step = 65536  # pairs at a time: two rows of a block each, 8 MB at 16 permutations
    for block in source.blocks():
        for lo in range(0, len(pairs), step):
            a, b = pairs[lo : lo + step, 0], pairs[lo : lo + step, 1]
            same[lo : lo + step] += np.count_nonzero(block[a] == block[b], axis=1)
    keep = np.zeros(len(pairs), dtype=bool)
    for lo in range(0, len(pairs), step):
        a, b = pairs[lo : lo + step, 0], pairs[lo : lo + step, 1]
        est = same[lo : lo + step] / source.num_perm
        sa, sb = sizes[a].astype(np.float64), sizes[b].astype(np.float64)
        shared = est * (sa + sb) / (1 + est)
        est_containment = shared / np.maximum(np.minimum(sa, sb), 1)
        keep[lo : lo + step] = (est >= 0.6 * jaccard) | (est_containment >= 0.6 * containment)
    return pairs[keep]


def candidates(
    signatures: np.ndarray | Blocks,
    sizes: np.ndarray,
    *,
    bands: int,
    rows: int,
    jaccard: float,
    containment: float,
) -> tuple[int, np.ndarray, np.ndarray]:
    """The pairs of texts pass 2 verifies: (how many banding proposed, those the prefilter keeps,
    the star rows, ``banding``)."""
    proposed, stars = banding(signatures, bands=bands, rows=rows)
    kept = prefilter(
        proposed, signatures, sizes, jaccard=jaccard, containment=containment, width=band_width(rows)
    )
    return len(proposed), kept, stars


def holding(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The positions, ascending, of the ``keys`` equal to one of ``wanted`` (uint64 both).

    A cron run looks a few new texts' keys up among every text's, once per band:
    a table of ~64 slots per wanted key (one multiply, one lookup per key) rules
    out nearly all keys before the exact test (``np.searchsorted`` over all keys
    was 6 ms a band at 100k texts, ~0.8 s of a +1,000 run).

    Example:
        >>> holding(np.array([5, 7, 5, 9], dtype=np.uint64), np.array([5, 8], dtype=np.uint64)).tolist()
        [0, 2]
    """
    if not len(wanted) or not len(keys):
        return np.empty(0, dtype=np.int64)
    bits = max(min(len(wanted).bit_length() + 6, len(keys).bit_length() + 2), 10)
    if kernels.AVAILABLE:
        return table_kernels.holding(np.ascontiguousarray(keys), np.sort(wanted), bits)
    shift = np.uint64(64 - bits)
    mult = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hashing: the top bits mix every key bit
    table = np.zeros(1 << bits, dtype=bool)
    table[(wanted * mult) >> shift] = True
    maybe = np.flatnonzero(table[(keys * mult) >> shift])
    ordered = np.sort(wanted)
    at = np.minimum(np.searchsorted(ordered, keys[maybe]), len(ordered) - 1)
    return maybe[ordered[at] == keys[maybe]]


def decode_pairs(codes: np.ndarray, n: int) -> np.ndarray:
    """Pair codes (i * n + j) as int64[m, 2], written in place: no temporaries of the codes' size."""
    pairs = np.empty((len(codes), 2), dtype=np.int64)
    np.divmod(codes, max(n, 1), out=(pairs[:, 0], pairs[:, 1]))
    return pairs
