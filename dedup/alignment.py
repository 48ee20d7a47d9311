"""Two copies of an article aligned word by word, and the corpus's vote on the words they disagree on.

Anchors are 3-grams unique in both copies, kept in the longest chain in order in
both (as patience diff does); between two anchors a short stretch where the copies
differ is split by difflib into replaced, inserted and deleted words. Where a word
is replaced, the side whose rarest word the corpus holds less often is the slip
(``outvoted``: ``tbe`` for ``the``). ``align_kernels`` does the same on token ids,
compiled; this is its reference, and ``evidence`` shows what it found.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np


def outvoted_words(
    members: Sequence[Sequence[Any]],
    frequency: Callable[[Sequence[Any]], Sequence[int]],
    decided: list[tuple[int, Any, Any, int]] | None = None,
) -> list[int]:
    """Per member, how many of its words other members replace by commoner ones (``outvoted``).

    ``decided``, if given, gets every decision: (member, the rarest word of its stretch, of
    the other's, outcome: 0 neither blamed, 1 the member, 2 the other): ``freq_bounds``.
    """
    grams = [unique_trigrams(toks) for toks in members]
    blamed = [0] * len(members)
    for a in range(len(members)):
        for b in range(a + 1, len(members)):
            for seg_a, seg_b in edits(members[a], members[b], grams[a], grams[b]):
                # Only replaced words say whose words are wrong (the side with the rarer one):
                # words one copy lacks may be its deletion or the other's insertion. Blaming
                # repeated insertions was tried: it blamed clean copies for garbled copies'
                # repeatedly dropped phrases (truncated_clean canonical 1.000 -> 0.943, seed 2).
                if seg_a and seg_b:
                    (rarest_a, rarity_a), (rarest_b, rarity_b) = (
                        _rarest(seg_a, frequency),
                        _rarest(seg_b, frequency),
                    )
                    outcome = 0
                    if rarity_a + MARGIN < rarity_b:
                        blamed[a] += len(seg_a)
                        outcome = 1
                    elif rarity_b + MARGIN < rarity_a:
                        blamed[b] += len(seg_b)
                        outcome = 2
                    if decided is not None:
                        decided.append((a, rarest_a, rarest_b, outcome))
    return blamed


ALIGN_MAX_TOKENS = 50_000  # tokens of a copy that alignment and repetition look at (~300 KB of text)
MARGIN = 0.3  # in log(1 + document frequency): held by 2 documents against 1 is enough
MAX_BUBBLE = 12  # longer differing stretches are rewrites or revisions, not slips


def unique_trigrams(tokens: Sequence[str]) -> dict[tuple[str, ...], int]:
    """Word 3-grams that occur once, with their position: anchors for alignment."""
    grams = list(zip(tokens, tokens[1:], tokens[2:], strict=False))
    counts = Counter(grams)
    return {gram: i for i, gram in enumerate(grams) if counts[gram] == 1}


def edits(
    a: Sequence[str], b: Sequence[str], ga: dict[tuple[str, ...], int], gb: dict[tuple[str, ...], int]
) -> Iterator[tuple[Sequence[str], Sequence[str]]]:
    """Stretches where a and b differ between two shared anchors, as (a's words, b's words).

    Anchors are 3-grams unique in both texts, kept in the longest chain that is in
    order in both (as patience diff does); inside a stretch difflib splits it into
    replaced, inserted and deleted words (one side empty). Text before the first or
    after the last anchor (headers, truncated tails) is not compared.
    """
    anchors = sorted((ga[g], gb[g]) for g in ga.keys() & gb.keys())
    chain = np.array(longest_increasing(anchors), dtype=np.int64).reshape(-1, 2)
    # Most neighbouring anchors overlap or touch (nothing between them): look only at gaps.
    gaps = np.maximum(np.diff(chain, axis=0) - 3, 0)
    widest = gaps.max(axis=1, initial=0)
    fits = (widest > 0) & (widest <= MAX_BUBBLE)
    for k in np.flatnonzero(fits).tolist():
        (i1, j1), (i2, j2) = chain[k].tolist(), chain[k + 1].tolist()
        seg_a, seg_b = a[i1 + 3 : i2], b[j1 + 3 : j2]
        if seg_a == seg_b:
            continue
        if not seg_a or not seg_b:
            yield seg_a, seg_b
            continue
        matcher = difflib.SequenceMatcher(None, seg_a, seg_b, autojunk=False)
        for op, a1, a2, b1, b2 in matcher.get_opcodes():
            if op != "equal":
                yield seg_a[a1:a2], seg_b[b1:b2]


def longest_increasing(pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of (i, j) pairs, sorted by i, whose j also increase."""
    if all(p[1] < q[1] for p, q in itertools.pairwise(pairs)):  # copies in the same order: the usual case
        return list(pairs)
    tails: list[int] = []  # tails[k]: smallest j ending an increasing run of length k+1
    tail_index: list[int] = []
    back = [-1] * len(pairs)
    for n, (_, j) in enumerate(pairs):
        k = bisect.bisect_left(tails, j)
        if k == len(tails):
            tails.append(j)
            tail_index.append(n)
        else:
            tails[k], tail_index[k] = j, n
        back[n] = tail_index[k - 1] if k else -1
    chain = []
    n = tail_index[-1] if tail_index else -1
    while n >= 0:
        chain.append(pairs[n])
        n = back[n]
    return chain[::-1]


def _rarest(words: Sequence[Any], frequency: Callable[[Sequence[Any]], Sequence[int]]) -> tuple[Any, float]:
    """The rarest word (the first of equals) and log(1 + its document frequency): one odd word makes
    a stretch suspect."""
    counts = frequency(words)
    at = min(range(len(counts)), key=counts.__getitem__)
    return words[at], float(np.log1p(counts[at]))


def replacements(a: Sequence[str], b: Sequence[str]) -> list[tuple[Sequence[str], Sequence[str]]]:
    """Words of ``a`` that ``b`` replaces by other words, as the ``outvoted`` signal aligns them.

    Example:
        >>> text = "the mayor said on monday that the new bridge would open in the spring of next year"
        >>> slip = text.replace("would", "wou1d").split()
        >>> [(list(x), list(y)) for x, y in replacements(slip, text.split())]
        [(['wou1d'], ['would'])]
    """
    return [(x, y) for x, y in edits(a, b, unique_trigrams(a), unique_trigrams(b)) if x and y]
