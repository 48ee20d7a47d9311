"""Compiled loops over the run's tables (see ``dedup.kernels`` for how they are built).

The token count-min sketch (a batch's counts added to it, its estimates), the node
table of distinct texts (``text_nodes.NodeKeys``, ``grouped``), the band keys a cron
run looks up (``index.holding``) and the components of a table of pairs
(``cluster.labelled``). Each has its reference beside its caller (numpy, or scipy);
``tests/test_kernels.py`` and ``tests/test_columns.py`` check that they agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dedup.kernels import U32, U64, _fmix64, jit


@jit(f"void(Array(uint32, 2, 'C'), {U64}, {U32}, {U64}, uint64)")
def count_min_add(table: Any, hashes: Any, times: Any, multipliers: Any, shift: Any) -> None:
    """Add ``times[k]`` to token ``hashes[k]``'s cell in every row (``np.add.at`` per row, fused).

    The driver merges every pass-1 batch's counts: 5x faster than computing the
    cells as an array and adding them row by row (200,000 hashes: 12 -> 2.4 ms).
    """
    for r in range(table.shape[0]):
        row, m = table[r], multipliers[r]
        for k in range(hashes.shape[0]):
            row[(hashes[k] * m) >> shift] += times[k]


@jit(f"uint32[::1](Array(uint32, 2, 'C', readonly=True), {U64}, {U64}, uint64)")
def count_min_get(table: Any, hashes: Any, multipliers: Any, shift: Any) -> Any:
    """The smallest of token ``hashes[k]``'s cells over the rows (a count-min sketch's estimate)."""
    out = np.empty(hashes.shape[0], dtype=np.uint32)
    for k in range(hashes.shape[0]):
        h = hashes[k]
        best = table[0, (h * multipliers[0]) >> shift]
        for r in range(1, table.shape[0]):
            best = min(best, table[r, (h * multipliers[r]) >> shift])
        out[k] = best
    return out


@jit("void(Array(int64, 1, 'C', readonly=True), int64[::1], int64[::1])")
def group_by_node(node_of: Any, starts: Any, order: Any) -> None:
    """``np.argsort(node_of, kind="stable")`` without the skipped (-1), as a counting sort into
    ``order`` (one per document not skipped), and each node's first place in it into ``starts``
    (zeros in, ``nodes + 1`` long): no temporary the size of the corpus."""
    for i in range(node_of.shape[0]):
        if node_of[i] >= 0:
            starts[node_of[i] + 1] += 1
    for n in range(1, starts.shape[0]):
        starts[n] += starts[n - 1]
    for i in range(node_of.shape[0]):  # starts[n] as node n's cursor: it ends at node n + 1's start
        n = node_of[i]
        if n >= 0:
            order[starts[n]] = i
            starts[n] += 1
    for n in range(starts.shape[0] - 1, 0, -1):
        starts[n] = starts[n - 1]
    starts[0] = 0


@jit(f"int64(uint64[::1], int64[::1], {U64}, int64, int64[::1])")
def assign_nodes(slots: Any, nodes: Any, keys: Any, count: Any, out: Any) -> Any:
    """Each key's node in an open-addressing table (``nodes`` holds node + 1, 0 when free): the
    node found, or the next one (``count`` so far) for a key not seen before; returns the new count.
    ``text_nodes.NodeKeys`` keeps the table under half full."""
    mask = np.uint64(slots.shape[0] - 1)
    for j in range(keys.shape[0]):
        key = keys[j]
        h = _fmix64(key) & mask
        while True:
            n = nodes[h]
            if n == 0:
                slots[h] = key
                nodes[h] = count + 1
                out[j] = count
                count += 1
                break
            if slots[h] == key:
                out[j] = n - 1
                break
            h = (h + np.uint64(1)) & mask
    return count


@jit(f"void({U64}, Array(int64, 1, 'C', readonly=True), uint64[::1], int64[::1])")
def move_nodes(old_slots: Any, old_nodes: Any, slots: Any, nodes: Any) -> None:
    """``assign_nodes``'s table moved into a larger one (empty), each key with its node."""
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(old_slots.shape[0]):
        if old_nodes[i]:
            key = old_slots[i]
            h = _fmix64(key) & mask
            while nodes[h]:
                h = (h + np.uint64(1)) & mask
            slots[h] = key
            nodes[h] = old_nodes[i]


@jit(f"int64[::1]({U64}, {U64}, int64)")
def holding(keys: Any, wanted: Any, bits: Any) -> Any:
    """``index.holding`` in one pass over ``keys``: the positions, ascending, of those equal to one of
    ``wanted`` (sorted), a table of ``2**bits`` flags ruling out nearly all before a binary search.
    The reference's temporaries of the keys' size (a product, a shift, a lookup: ~8 ms a band of a
    million stored texts) are not made; only the positions' array, 8 bytes a key at most."""
    shift = np.uint64(64 - bits)
    mult = np.uint64(0x9E3779B97F4A7C15)
    table = np.zeros(1 << bits, dtype=np.bool_)
    for j in range(wanted.shape[0]):
        table[(wanted[j] * mult) >> shift] = True
    out = np.empty(keys.shape[0], dtype=np.int64)
    n = 0
    for i in range(keys.shape[0]):
        key = keys[i]
        if table[(key * mult) >> shift]:
            lo, hi = 0, wanted.shape[0]
            while lo < hi:
                mid = (lo + hi) >> 1
                if wanted[mid] < key:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < wanted.shape[0] and wanted[lo] == key:
                out[n] = i
                n += 1
    return out[:n].copy()


_FREE = np.uint64(0xFFFFFFFFFFFFFFFF)  # a free slot's second word in ``batch_counts``' table


@jit(f"Tuple((uint64[::1], int64[::1], boolean))({U64}, Array(int64, 1, 'C', readonly=True), uint64[:, ::1])")
def batch_counts(values: Any, starts: Any, table: Any) -> Any:
    """``frequency.counts`` of the documents ``values[starts[d]:starts[d + 1]]``, by an open-addressing
    ``table`` of (value, document << 32 | count) slots, free ones marked ``_FREE``, left free again.

    The values come out in the order first seen, not sorted (the sketch adds them in any order):
    no sort of each document's ~740 values and of the batch's 95,000 (~23 against ~11 us a noisy
    document). False when more than half the slots would be taken: the table is then left
    as it is, to be dropped.
    """
    mask = np.uint64(table.shape[0] - 1)
    low = np.uint64(0xFFFFFFFF)
    order = np.empty(min(values.shape[0], table.shape[0] >> 1), dtype=np.int64)
    n = 0
    for d in range(starts.shape[0] - 1):
        tag = np.uint64(d) << np.uint64(32)
        for k in range(starts[d], starts[d + 1]):
            value = values[k]
            h = _fmix64(value) & mask
            while True:
                word = table[h, 1]
                if word == _FREE:
                    if n == order.shape[0]:  # too full: the table is dropped for a larger one
                        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64), False
                    table[h, 0] = value
                    table[h, 1] = tag | np.uint64(1)
                    order[n] = h
                    n += 1
                    break
                if table[h, 0] == value:
                    if word >> np.uint64(32) != np.uint64(d):
                        table[h, 1] = tag | ((word & low) + np.uint64(1))
                    break
                h = (h + np.uint64(1)) & mask
    keys = np.empty(n, dtype=np.uint64)
    times = np.empty(n, dtype=np.int64)
    for j in range(n):
        h = order[j]
        keys[j] = table[h, 0]
        times[j] = np.int64(table[h, 1] & low)
        table[h, 1] = _FREE
    return keys, times, True


@jit("int64[::1](int64, Array(int64, 1, 'C', readonly=True), Array(int64, 1, 'C', readonly=True))")
def component_roots(n: int, a: Any, b: Any) -> Any:
    """Each of nodes ``0..n-1``'s component, named by its smallest node, the pairs
    ``(a[k], b[k])`` linking them: union by the smaller root, paths halved.

    scipy's ``connected_components`` did it (its reference in ``cluster.labelled``), through a
    sparse matrix built first and labels ranked by a sort; these are ranked already.
    """
    parent = np.arange(n)
    for k in range(a.shape[0]):
        x, y = a[k], b[k]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:
            parent[y] = x
        elif y < x:
            parent[x] = y
    for i in range(n):  # a parent is never above its child: ascending, each one's root is settled
        parent[i] = parent[parent[i]]
    return parent
