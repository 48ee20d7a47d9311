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
def _unique_trigrams(ids: Any) -> Any:
    """``alignment.unique_trigrams``: (sorted keys of the 3-grams that occur once, their positions)."""
    keys = _trigram_keys(ids)
    order = np.argsort(keys)
    once = np.empty(keys.shape[0], dtype=np.int64)
    m = 0
    i = 0
    while i < keys.shape[0]:
        j = i + 1
        while j < keys.shape[0] and keys[order[j]] == keys[order[i]]:
            j += 1
        if j == i + 1:
            once[m] = order[i]
            m += 1
        i = j
    where = once[:m].copy()
    return keys[where], where


@jit(None)
def _anchors(ka: Any, pa: Any, kb: Any, pb: Any, length_a: Any) -> Any:
    """(i, j) of the 3-grams unique in both, sorted by i: ``sorted((ga[g], gb[g]) for g in shared)``."""
    at = np.full(max(length_a, 1), -1, dtype=np.int64)
    x = 0
    y = 0
    while x < ka.shape[0] and y < kb.shape[0]:
        if ka[x] < kb[y]:
            x += 1
        elif ka[x] > kb[y]:
            y += 1
        else:
            at[pa[x]] = pb[y]
            x += 1
            y += 1
    count = 0
    for i in range(at.shape[0]):
        if at[i] >= 0:
            count += 1
    out = np.empty((count, 2), dtype=np.int64)
    k = 0
    for i in range(at.shape[0]):
        if at[i] >= 0:
            out[k, 0] = i
            out[k, 1] = at[i]
            k += 1
    return out


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
    keys = []
    places = []
    for m in range(members):
        k, p = _unique_trigrams(ids[starts[m] : starts[m + 1]])
        keys.append(k)
        places.append(p)
    for x in range(members):
        a = ids[starts[x] : starts[x + 1]]
        for y in range(x + 1, members):
            b = ids[starts[y] : starts[y + 1]]
            chain = longest_increasing(_anchors(keys[x], places[x], keys[y], places[y], a.shape[0]))
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
    keys = _trigram_keys(ids)
    grams = keys.shape[0]
    order = np.argsort(keys)
    frequent = np.zeros(grams, dtype=np.bool_)
    i = 0
    while i < grams:
        j = i + 1
        while j < grams and keys[order[j]] == keys[order[i]]:
            j += 1
        if j - i >= min_count:
            for r in range(i, j):
                frequent[order[r]] = True
        i = j
    covered = 0
    for w in range(ids.shape[0]):  # a word is covered when one of the 3-grams holding it is frequent
        for s in range(max(w - 2, 0), min(w, grams - 1) + 1):
            if frequent[s]:
                covered += 1
                break
    return covered
