"""A text as pass 2 compares it: its comparison tokens, exact shingles and short lines' counts.

Pass 2 takes each text of a group again (``pass2.load``: the comparison text pass
1 wrote, else its document read again) and compares it as ``compared_from``
makes it, or as ``hashed_from`` does with token hashes for the compiled alignment
(``relative_of_ids``). ``explain`` shows a pair as ``compared`` sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from dedup import align_kernels, alignment, normalize, quality
from dedup.frequency import TokenFrequency
from dedup.signatures import HASH_CHUNK, hash_tokens, shingles_of, token_and_skeleton_hashes, token_hashes


class Compared(NamedTuple):
    """What pass 2 compares and ranks a text by."""

    tokens: list[str]
    shingles: np.ndarray
    lines: np.ndarray  # corpus document frequency of each distinct short line (empty without a sketch)
    keys: np.ndarray  # those lines' keys (``normalize.line_keys``; empty without a sketch)


def compared(
    text: str, shingle_size: int, frequency: TokenFrequency | None = None, furniture_over: int = 0
) -> Compared:
    """A text's comparison tokens and exact shingle set, as pass 2 (and ``explain``) see it.

    With the corpus ``frequency``, short lines held by more than ``furniture_over``
    documents are left out: more documents than the text and all its candidates
    cannot all be copies of one article, so such a line is a site's furniture
    (a help box, a navigation bar, a standard notice), and pages that share only
    it are not duplicates.
    """
    comparison = normalize.comparison_text(normalize.repair(text))
    return compared_from(comparison, shingle_size, frequency, furniture_over)


def compared_from(
    comparison: str, shingle_size: int, frequency: TokenFrequency | None = None, furniture_over: int = 0
) -> Compared:
    """``compared`` of the text whose comparison text (``normalize.comparison_text``) this is."""
    counts, keys = np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.uint64)
    if frequency is not None:
        comparison, counts, keys = without_furniture(comparison, frequency, furniture_over)
    toks = normalize.words(comparison)
    # signatures.document_shingles, hashed a piece at a time (bounded memory for a giant text).
    folded = normalize.skeleton_bytes(" ".join(toks).encode("utf-8"))
    return Compared(toks, shingles_of(hash_tokens(folded), shingle_size), counts, keys)


def without_furniture(
    comparison: str, frequency: TokenFrequency, furniture_over: int
) -> tuple[str, np.ndarray, np.ndarray]:
    """``comparison`` less its short lines the corpus holds in more than ``furniture_over``
    documents (none with 0); and its short lines' counts and keys (``freq_bounds`` limits them)."""
    keys = normalize.line_keys(comparison)
    counts = frequency.get(keys)
    drop = counts > furniture_over
    if furniture_over and drop.any():
        comparison = normalize.without_lines(comparison, set(keys[drop].tolist()))
    return comparison, counts, keys


class Hashed(NamedTuple):
    """``Compared`` with the tokens as their hashes (what pass 2's compiled alignment takes)."""

    hashes: np.ndarray  # token hashes (``signatures.token_hashes``) of the first ALIGN_MAX_TOKENS tokens
    spaced: np.ndarray | None  # which of them ``normalize.spaced_words`` keeps (None: all)
    shingles: np.ndarray
    lines: np.ndarray
    keys: np.ndarray


def hashed_from(comparison: str, shingle_size: int, frequency: TokenFrequency, furniture_over: int) -> Hashed:
    """``compared_from`` without making a string of every word, when the text allows.

    An article's token bytes (``normalize.token_bytes``) hold the same tokens as
    ``normalize.words``, and its skeleton the same folded tokens; which tokens
    ``spaced_words`` keeps is read from the bytes too (``spaced_flags``; None: all).
    The words are only made for a text longer than one hashing piece (its pieces
    are cut as ``compared`` cuts them): every non-ASCII text made them, 460 against
    96 us a noisy text.
    """
    comparison, counts, keys = without_furniture(comparison, frequency, furniture_over)
    data = normalize.token_bytes(comparison)
    unspaced = not data.isascii() and normalize.has_unspaced(comparison)
    if len(data) <= HASH_CHUNK:
        hashes, folded = token_and_skeleton_hashes(data)
        hashes = hashes[: alignment.ALIGN_MAX_TOKENS]
    else:
        toks = normalize.words(comparison)
        hashes = token_hashes(toks[: alignment.ALIGN_MAX_TOKENS])
        folded = hash_tokens(normalize.skeleton_bytes(" ".join(toks).encode("utf-8")))
        del toks
    spaced = normalize.spaced_flags(data, len(hashes)) if unspaced else None
    shingles = shingles_of(folded, shingle_size)
    return Hashed(hashes, spaced, shingles, counts, keys)


def relative_of_ids(
    members: Sequence[np.ndarray],
    shingles: Sequence[np.ndarray],
    frequency: np.ndarray,
    template: Sequence[float],
    spaced: Sequence[np.ndarray | None],
) -> tuple[list[dict[str, float]], np.ndarray]:
    """``quality.relative`` with tokens as int64 ids (equal ids: equal words), aligned by the kernels;
    and the outvoted decisions, on ids (``align_kernels.outvoted``).

    ``frequency[t]`` is word t's corpus document frequency; ``spaced[m]`` marks member
    m's tokens that ``spaced_words`` keeps (None: all). A group with more distinct
    words than the kernels' packed 3-grams hold is aligned by ``quality``'s code, on the ids.
    """
    window = max(min(len(ids) for ids in members), 100)
    words = [
        ids[:window] if keep is None else ids[:window][keep[:window]]
        for ids, keep in zip(members, spaced, strict=True)
    ]
    if len(frequency) < 1 << align_kernels.ID_BITS:
        starts = np.cumsum([0, *map(len, members)])
        logs = np.log1p(frequency.astype(np.float64))
        margin, bubble = alignment.MARGIN, alignment.MAX_BUBBLE
        counted, decisions = align_kernels.outvoted(
            np.concatenate(members), starts, frequency, logs, margin, bubble
        )
        blamed = counted.tolist()
        repeated = [align_kernels.repeated_words(w, 3) / len(w) if len(w) >= 9 else 0.0 for w in words]
        repetition = [max(r - 0.02, 0.0) for r in repeated]
    else:
        counts = frequency.tolist()
        decided: list[tuple[int, Any, Any, int]] = []
        blamed = alignment.outvoted_words(
            [ids.tolist() for ids in members], lambda ws: [counts[w] for w in ws], decided
        )
        decisions = np.array(decided, dtype=np.int64).reshape(-1, 4)
        repetition = [quality.repeated_phrase_fraction(w.tolist()) for w in words]
    return quality.relative_signals(members, shingles, blamed, repetition, template), decisions
