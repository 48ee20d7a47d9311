"""Compiled alignment behind ``quality.relative`` (see ``dedup.kernels`` for how kernels are built).

Pass 2 compares the copies of an article word by word: anchors (3-grams unique in
both copies), the longest chain of anchors in order, and difflib's replacements
inside each short stretch between anchors. On a corpus with heavily damaged copies
that is the larger part of pass 2, in Python. These kernels do the same on token
ids (one int per distinct word of a group: equal words, equal ids), with the same
tie-breaking as ``difflib`` and ``bisect``; ``tests/test_kernels.py`` checks them
against ``quality.relative``, which stays the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dedup.kernels import jit

I64 = "Array(int64, 1, 'C', readonly=True)"
F64 = "Array(float64, 1, 'C', readonly=True)"
ID_BITS = 21  # a trigram of ids is one int64: groups with 2**21 distinct words or more use the reference


@jit(None)
def _trigram_keys(ids: Any) -> Any:
    n = max(ids.shape[0] - 2, 0)
    keys = np.empty(n, dtype=np.int64)
    for i in range(n):
        keys[i] = (ids[i] << 42) | (ids[i + 1] << 21) | ids[i + 2]
    return keys


@jit(None)
def trigram_table(ids: Any) -> Any:
    """The 3-grams of ids in an open-addressing table, ~5x faster than sorting them: (the 3-grams'
    keys, each slot's key or -1 where free, its count, the position of its first 3-gram, each
    3-gram's slot).

    A key's slot is the top bits of its product with an odd constant (``_slot``).
    """
    keys = _trigram_keys(ids)
    bits = 4
    while (1 << bits) < 2 * keys.shape[0]:
        bits += 1
    table = np.full(1 << bits, -1, dtype=np.int64)
    counts = np.zeros(1 << bits, dtype=np.int32)  # int32: a group's tables of every member at once
    first = np.zeros(1 << bits, dtype=np.int32)  # (positions: at most ALIGN_MAX_TOKENS)
    where = np.empty(keys.shape[0], dtype=np.int32)
    shift = np.uint64(64 - bits)
    for i in range(keys.shape[0]):
        s = _slot(table, keys[i], shift)
        if table[s] < 0:
            table[s] = keys[i]
            first[s] = i
        counts[s] += 1
        where[i] = s
    return keys, table, counts, first, where


@jit(None)
def _shift(table: Any) -> Any:
    """64 less the bits of a slot of ``table`` (its length a power of 2)."""
    bits = 0
    while (1 << bits) < table.shape[0]:
        bits += 1
    return np.uint64(64 - bits)


@jit(None)
def _slot(table: Any, key: Any, shift: Any) -> Any:
    """The slot of ``key`` in ``trigram_table``'s table: where it is, or the free one it would take."""
    mask = table.shape[0] - 1
    h = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> shift)
    while table[h] >= 0 and table[h] != key:
        h = (h + 1) & mask
    return h


@jit(None)
def anchors(a: Any, b: Any) -> Any:
    """(i, j) of the 3-grams unique in both, sorted by i: ``sorted((ga[g], gb[g]) for g in shared)``
    (``alignment.edits``), from the ``trigram_table`` of each side.
    """
    keys, counts, where = a[0], a[2], a[4]
    _, table_b, counts_b, first_b, _ = b
    out = np.empty((keys.shape[0], 2), dtype=np.int64)
    shift = _shift(table_b)
    k = 0
    for i in range(keys.shape[0]):
        if counts[where[i]] == 1:
            s = _slot(table_b, keys[i], shift)
            if table_b[s] >= 0 and counts_b[s] == 1:
                out[k, 0] = i
                out[k, 1] = first_b[s]
                k += 1
    return out[:k]


@jit(None)
def longest_increasing(pairs: Any) -> Any:
    """``alignment.longest_increasing``: patience sorting with bisect_left, the same ties broken alike."""
    n = pairs.shape[0]
    increasing = True
    for k in range(1, n):
        if pairs[k - 1, 1] >= pairs[k, 1]:
            increasing = False
            break
    if increasing:
        return pairs
    tails = np.empty(n, dtype=np.int64)
    tail_index = np.empty(n, dtype=np.int64)
    back = np.full(n, -1, dtype=np.int64)
    size = 0
    for k in range(n):
        j = pairs[k, 1]
        lo, hi = 0, size
        while lo < hi:
            mid = (lo + hi) // 2
            if tails[mid] < j:
                lo = mid + 1
            else:
                hi = mid
        tails[lo] = j
        tail_index[lo] = k
        if lo == size:
            size += 1
        back[k] = tail_index[lo - 1] if lo else -1
    chain = np.empty((size, 2), dtype=np.int64)
    k = tail_index[size - 1] if size else -1
    m = size
    while k >= 0:
        m -= 1
        chain[m, 0] = pairs[k, 0]
        chain[m, 1] = pairs[k, 1]
        k = back[k]
    return chain


@jit(None)
def _longest_match(a: Any, alo: Any, ahi: Any, b: Any, blo: Any, bhi: Any) -> Any:
    """``difflib.SequenceMatcher.find_longest_match`` without junk: the first longest (i, j, k)."""
    besti, bestj, bestsize = alo, blo, 0
    prev = np.zeros(bhi - blo + 1, dtype=np.int64)  # prev[j - blo + 1]: match length ending at (i - 1, j)
    cur = np.zeros(bhi - blo + 1, dtype=np.int64)
    for i in range(alo, ahi):
        for j in range(blo, bhi):
            if a[i] == b[j]:
                k = prev[j - blo] + 1
                cur[j - blo + 1] = k
                if k > bestsize:
                    besti, bestj, bestsize = i - k + 1, j - k + 1, k
            else:
                cur[j - blo + 1] = 0
        prev, cur = cur, prev
    return besti, bestj, bestsize


@jit(None)
def replaced(a: Any, b: Any) -> Any:
    """The 'replace' opcodes of ``difflib.SequenceMatcher(None, a, b, autojunk=False)``: rows a1, a2, b1, b2.

    The matching blocks are found as difflib finds them (longest first, then each
    side recursively); a replacement is a gap between two blocks on both sides.
    """
    la, lb = a.shape[0], b.shape[0]
    blocks = np.empty((min(la, lb) + 1, 3), dtype=np.int64)
    count = 0
    queue = np.empty((2 * (min(la, lb) + 1), 4), dtype=np.int64)
    queue[0, 0], queue[0, 1], queue[0, 2], queue[0, 3] = 0, la, 0, lb
    pending = 1
    while pending:
        pending -= 1
        alo, ahi, blo, bhi = queue[pending, 0], queue[pending, 1], queue[pending, 2], queue[pending, 3]
        i, j, k = _longest_match(a, alo, ahi, b, blo, bhi)
        if k:
            blocks[count, 0], blocks[count, 1], blocks[count, 2] = i, j, k
            count += 1
            if alo < i and blo < j:
                queue[pending, 0], queue[pending, 1], queue[pending, 2], queue[pending, 3] = alo, i, blo, j
                pending += 1
            if i + k < ahi and j + k < bhi:
                queue[pending, 0], queue[pending, 1] = i + k, ahi
                queue[pending, 2], queue[pending, 3] = j + k, bhi
                pending += 1
    order = np.argsort(blocks[:count, 0])
    out = np.empty((count + 1, 4), dtype=np.int64)
    m = 0
    i = 0
    j = 0
    for r in range(count + 1):
        if r < count:
            ai, bj, size = blocks[order[r], 0], blocks[order[r], 1], blocks[order[r], 2]
        else:
            ai, bj, size = la, lb, 0
        if i < ai and j < bj:
            out[m, 0], out[m, 1], out[m, 2], out[m, 3] = i, ai, j, bj
            m += 1
        i, j = ai + size, bj + size
    return out[:m]


@jit(None)
def _rarest(ids: Any, lo: Any, hi: Any, frequency: Any) -> Any:
    """The rarest word of ids[lo:hi], the first of equals (as ``alignment._rarest``)."""
    rarest = ids[lo]
    for t in range(lo + 1, hi):
        if frequency[ids[t]] < frequency[rarest]:
            rarest = ids[t]
    return rarest


@jit(f"Tuple((int64[::1], int64[:, ::1]))({I64}, {I64}, {I64}, {F64}, float64, int64)")
def outvoted(ids: Any, starts: Any, frequency: Any, log_frequency: Any, margin: Any, max_bubble: Any) -> Any:
    """Words of each member that other members replace by commoner ones (``quality.relative``'s count),
    and every decision taken: (member, rarest word of its stretch, of the other's, outcome: 0 neither
    blamed, 1 the member, 2 the other), as ``freq_bounds`` needs them.

    Members are ids[starts[m]:starts[m + 1]]; frequency[t] is word t's document
    frequency and log_frequency[t] its ``np.log1p``. The same anchors, stretches and
    difflib replacements as ``alignment.edits``, on ids instead of strings.
    """
    members = starts.shape[0] - 1
    blamed = np.zeros(members, dtype=np.int64)
    decisions = np.empty((16, 4), dtype=np.int64)
    taken = 0
    tables = [trigram_table(ids[starts[m] : starts[m + 1]]) for m in range(members)]
    for x in range(members):
        a = ids[starts[x] : starts[x + 1]]
        for y in range(x + 1, members):
            b = ids[starts[y] : starts[y + 1]]
            chain = longest_increasing(anchors(tables[x], tables[y]))
            for c in range(chain.shape[0] - 1):
                i1, j1, i2, j2 = chain[c, 0], chain[c, 1], chain[c + 1, 0], chain[c + 1, 1]
                widest = max(i2 - i1 - 3, j2 - j1 - 3, 0)
                if widest == 0 or widest > max_bubble:
                    continue
                seg_a = a[i1 + 3 : max(i2, i1 + 3)]
                seg_b = b[j1 + 3 : max(j2, j1 + 3)]
                if seg_a.shape[0] == 0 or seg_b.shape[0] == 0:
                    continue  # only replaced words say whose words are wrong
                same = seg_a.shape[0] == seg_b.shape[0]
                if same:
                    for t in range(seg_a.shape[0]):
                        if seg_a[t] != seg_b[t]:
                            same = False
                            break
                if same:
                    continue
                ops = replaced(seg_a, seg_b)
                for r in range(ops.shape[0]):
                    rarest_a = _rarest(seg_a, ops[r, 0], ops[r, 1], frequency)
                    rarest_b = _rarest(seg_b, ops[r, 2], ops[r, 3], frequency)
                    rarity_a, rarity_b = log_frequency[rarest_a], log_frequency[rarest_b]
                    outcome = 0
                    if rarity_a + margin < rarity_b:
                        blamed[x] += ops[r, 1] - ops[r, 0]
                        outcome = 1
                    elif rarity_b + margin < rarity_a:
                        blamed[y] += ops[r, 3] - ops[r, 2]
                        outcome = 2
                    if taken == decisions.shape[0]:
                        grown = np.empty((2 * taken, 4), dtype=np.int64)
                        grown[:taken] = decisions
                        decisions = grown
                    decisions[taken, 0], decisions[taken, 1] = x, rarest_a
                    decisions[taken, 2], decisions[taken, 3] = rarest_b, outcome
                    taken += 1
    return blamed, decisions[:taken].copy()


@jit(f"int64({I64}, int64)")
def repeated_words(ids: Any, min_count: Any) -> Any:
    """Words inside 3-grams said ``min_count``+ times (``quality.repeated_phrase_fraction``'s count)."""
    keys, _, counts, _, where = trigram_table(ids)
    grams = keys.shape[0]
    frequent = np.zeros(grams, dtype=np.bool_)
    for s in range(grams):
        frequent[s] = counts[where[s]] >= min_count
    covered = 0
    for w in range(ids.shape[0]):  # a word is covered when one of the 3-grams holding it is frequent
        for s in range(max(w - 2, 0), min(w, grams - 1) + 1):
            if frequent[s]:
                covered += 1
                break
    return covered
