"""What texts added to banded ones, or taken out of them, change in ``index.banding``'s output.

A cron run's texts are mostly the last run's: banding them all again costs a read of
every band key (37 s at a million texts). Only the buckets that hold an added or a
removed text change, and only their pairs and stars are worked out again; the
result equals ``banding`` of the texts as they are now (``tests/test_index_delta.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dedup.index import (
    MAX_BUCKET,
    _all_band_keys,
    _bucket_pairs,
    _star_rows,
    band_width,
    decode_pairs,
    holding,
    sorted_rows,
)
from dedup.signature_spill import Blocks, InMemory, blocks_of
from dedup.signatures import distinct


@dataclass(frozen=True, slots=True)
class Added:
    """What texts added to banded ones change in ``banding``'s output (``pairs_with``)."""

    pairs: np.ndarray  # int64[m, 2]: the pairs proposed now that hold a new text
    dropped: np.ndarray  # int64[d, 2]: pairs of old texts proposed before and not now
    stars: np.ndarray  # int64[k, 3]: the star rows (``banding``) of all texts now


def pairs_with(
    signatures: np.ndarray | Blocks, new: np.ndarray, stars: np.ndarray, *, bands: int, rows: int
) -> Added:
    """What adding the ``new`` texts changes in ``banding``'s output for the others.

    ``stars`` are the old texts' star rows, numbered as now; the caller has
    checked that each star's first text still comes first. The old texts'
    buckets are not sorted again: a cron run that brings a few texts to a large
    state only looks the new band keys up among the old ones. A bucket over
    ``MAX_BUCKET`` whose first text is new, or that grows past it, changes old
    pairs: they are dropped unless another band still proposes them (checked on
    their band keys against the new stars). ``Added.stars`` is the whole new table.
    ``signatures``: a matrix, or blocks of it (a cron run's are streamed: ``stored.streamed``).

    Example:
        >>> sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [5, 6, 3, 4], [7, 8, 0, 0]], dtype=np.uint32)
        >>> pairs_with(sigs, np.array([2]), np.empty((0, 3), dtype=np.int64), bands=2, rows=2).pairs.tolist()
        [[0, 2]]
    """
    n = len(signatures)
    if not len(new):  # texts taken out, none added (``pairs_without`` did the work)
        nothing = np.empty((0, 2), dtype=np.int64)
        return Added(nothing, nothing, sorted_rows(stars))
    is_new = np.zeros(n, dtype=bool)
    is_new[new] = True
    found = [np.empty(0, dtype=np.int64)]
    star_rows, moved, maybe_dropped = [stars], [], [np.empty(0, dtype=np.int64)]
    for band, members, keys in _holders(signatures, new, bands, rows):
        if len(members) < 2:
            continue
        stars_here, a, b = _buckets(members, keys)
        for bucket in stars_here:
            fresh = is_new[bucket]
            old = bucket[~fresh]
            if not fresh[0] and len(old) > MAX_BUCKET:  # the same star, with the new texts on it
                found.append(bucket[0] * n + bucket[fresh])
                star_rows.append(_star_rows(band, bucket[0], bucket[fresh]))
                continue
            # A new first text, or a bucket grown into a star: the old pairs it linked may go.
            if len(old) > MAX_BUCKET:
                maybe_dropped.append(old[0] * n + old[1:])
                moved.append((band, int(old[0])))
            elif len(old) > 1:
                i, j = _bucket_pairs(len(old))
                maybe_dropped.append(old[i] * n + old[j])
            linked = bucket[1:] if fresh[0] else bucket[1:][fresh[1:]]
            found.append(bucket[0] * n + linked)
            star_rows.append(_star_rows(band, bucket[0], bucket[1:]))
        keep = is_new[a] | is_new[b]
        found.append(a[keep] * n + b[keep])
    table = np.concatenate(star_rows)
    if moved:  # the rows of stars whose first text changed are replaced by the new star's
        gone = np.isin(table[:, 0] * n + table[:, 1], [band * n + first for band, first in moved])
        table = table[~gone]
    codes = distinct(np.concatenate(found))
    maybe = distinct(np.concatenate(maybe_dropped))
    dropped = _not_proposed(signatures, maybe, table, bands=bands, rows=rows)
    return Added(decode_pairs(codes, n), decode_pairs(dropped, n), sorted_rows(table))


@dataclass(frozen=True, slots=True)
class Removed:
    """What texts taken out of banded ones change in ``banding``'s output (``pairs_without``)."""

    pairs: np.ndarray  # int64[m, 2]: pairs of the texts left that no band proposed before and one does now
    lost: int  # the distinct pairs proposed before that held a text taken out
    stars: np.ndarray  # int64[k, 3]: the star rows (``banding``) of the texts left, numbered as before


def pairs_without(
    signatures: np.ndarray | Blocks, gone: np.ndarray, stars: np.ndarray, *, bands: int, rows: int
) -> Removed:
    """What taking the ``gone`` texts out changes in ``banding``'s output for the others.

    Numbered as before (the gone texts still in ``signatures``); ``stars`` is the
    star table of them all. Taking texts out never stops a band proposing a pair of
    two texts left: a bucket only shrinks, a star keeps its first text unless it is
    gone, and a bucket that falls to ``MAX_BUCKET`` links all its pairs. So the pairs
    lost are those holding a gone text, and the pairs found are the ones a shrunk
    bucket links now (a star's new first text, a star become a clique) that no
    band proposed before.

    Example:
        >>> sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [5, 6, 3, 4], [7, 8, 0, 0]], dtype=np.uint32)
        >>> pairs_without(sigs, np.array([2]), np.empty((0, 3), dtype=np.int64), bands=2, rows=2).lost
        1
    """
    n = len(signatures)
    is_gone = np.zeros(n, dtype=bool)
    is_gone[gone] = True
    lost, found = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    star_rows, moved = [], []
    for band, members, keys in _holders(signatures, gone, bands, rows):
        stars_here, a, b = _buckets(members, keys)
        for bucket in stars_here:
            left = bucket[~is_gone[bucket]]
            if is_gone[bucket[0]]:  # its star from a gone text: every pair lost, the star moves
                lost.append(bucket[0] * n + bucket[1:])
                moved.append(band * n + int(bucket[0]))
                if len(left) > MAX_BUCKET:
                    found.append(left[0] * n + left[1:])
                    star_rows.append(_star_rows(band, left[0], left[1:]))
                elif len(left) > 1:
                    i, j = _bucket_pairs(len(left))
                    found.append(left[i] * n + left[j])
                continue
            taken = bucket[is_gone[bucket]]
            lost.append(bucket[0] * n + taken)
            if len(left) <= MAX_BUCKET:  # the star falls to a clique: its other pairs are new
                moved.append(band * n + int(bucket[0]))
                i, j = _bucket_pairs(len(left))
                i, j = i[i > 0], j[i > 0]
                found.append(left[i] * n + left[j])
        out = is_gone[a] | is_gone[b]
        lost.append(a[out] * n + b[out])
    table = stars[~is_gone[stars[:, 2]]]
    if moved:
        table = table[~np.isin(table[:, 0] * n + table[:, 1], np.array(moved, dtype=np.int64))]
    table = np.concatenate([table, *star_rows])
    candidates = distinct(np.concatenate(found))
    new = _not_proposed(signatures, candidates, stars, bands=bands, rows=rows)
    return Removed(decode_pairs(new, n), len(distinct(np.concatenate(lost))), sorted_rows(table))


def _buckets(members: np.ndarray, keys: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The texts grouped by key in one band, each bucket ascending: the buckets over ``MAX_BUCKET``
    (linked as stars), and every pair (a, b) of the others, a before b (``index.band_block``'s rule)."""
    order = np.argsort(keys, kind="stable")  # members ascending within a bucket
    members, ordered = members[order], keys[order]
    same = ordered[1:] == ordered[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    lengths = np.diff(np.append(starts, len(members)))
    large = lengths > MAX_BUCKET
    stars = [
        members[at : at + k] for at, k in zip(starts[large].tolist(), lengths[large].tolist(), strict=True)
    ]
    a, b = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for length in np.unique(lengths[(lengths > 1) & ~large]).tolist():
        i, j = _bucket_pairs(int(length))
        at_start = starts[lengths == length]
        a.append(members[at_start[:, None] + i[None, :]].ravel())
        b.append(members[at_start[:, None] + j[None, :]].ravel())
    return stars, np.concatenate(a), np.concatenate(b)


def _holders(
    signatures: np.ndarray | Blocks, texts: np.ndarray, bands: int, rows: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(band, the texts whose key in it is one of ``texts``', ascending, and their keys), band by band."""
    from dedup.band_store import StoredSignatures

    if isinstance(signatures, StoredSignatures):  # the stored keys where they lie
        yield from signatures.touching(texts, bands)
        return
    for band, keys in enumerate(_all_band_keys(blocks_of(signatures, band_width(rows)), bands, rows)):
        members = holding(keys, keys[texts])
        yield band, members, keys[members]


def _not_proposed(
    signatures: np.ndarray | Blocks, codes: np.ndarray, stars: np.ndarray, *, bands: int, rows: int
) -> np.ndarray:
    """The pairs (codes, a < b) no band proposes: never in one bucket, or only in stars of a third text.

    ``stars`` is the whole star table of the texts the question is about: as they are now
    (``pairs_with``: which pairs are no longer proposed), or as they were (``pairs_without``:
    which pairs were not proposed before).
    """
    if not len(codes):
        return codes
    n = len(signatures)
    a, b = codes // n, codes % n
    # Only these texts' keys are compared: their rows of each block, not every text's keys.
    texts, at = np.unique(np.concatenate([a, b]), return_inverse=True)
    at_a, at_b = at[: len(a)], at[len(a) :]
    proposed = np.zeros(len(codes), dtype=bool)
    source = _subset(signatures, texts, band_width(rows))
    for band, keys in enumerate(_all_band_keys(source, bands, rows)):
        here = stars[stars[:, 0] == band]
        centre = np.full(n, -1, dtype=np.int64)
        centre[here[:, 2]] = here[:, 1]
        centre[here[:, 1]] = here[:, 1]
        together = keys[at_a] == keys[at_b]
        linked = (centre[a] < 0) | (centre[a] == a)  # no star, or a star from a (b > a is never first)
        proposed |= together & linked
    return codes[~proposed]


def _subset(signatures: np.ndarray | Blocks, texts: np.ndarray, width: int) -> Blocks:
    """Some texts' signatures as blocks (in ``texts`` order)."""
    from dedup.band_store import StoredSignatures

    if isinstance(signatures, StoredSignatures):
        return InMemory(signatures.subset(texts), width)
    return _Rows(blocks_of(signatures, width), texts)


class _Rows:
    """Some texts' rows of each block of ``source`` (a few texts' band keys without every text's)."""

    def __init__(self, source: Blocks, texts: np.ndarray) -> None:
        self.source, self.texts = source, texts
        self.num_perm, self.width = source.num_perm, source.width

    def __len__(self) -> int:
        return len(self.texts)

    def blocks(self) -> Iterator[np.ndarray]:
        for block in self.source.blocks():
            yield block[self.texts]
