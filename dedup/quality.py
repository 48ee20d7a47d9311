"""Cleanliness signals: how damaged a copy of an article looks, measured, not guessed.

Each signal is a rate (per 1,000 characters or per 100 words, so that a truncated
copy is not rewarded just for being short) and has a weight and a saturation
scale; ``damage`` sums ``weight * min(1, rate / scale)``. Intrinsic signals need
only the document; relative signals (completeness, outvoted tokens) compare it
with the other members of its cluster.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dedup.normalize import BOILERPLATE_LINE, HTML_ENTITY, HTML_TAG, MARKDOWN_LINK


@dataclass(frozen=True, slots=True)
class Signal:
    weight: float
    scale: float
    unit: str
    meaning: str


SIGNALS: dict[str, Signal] = {
    "mojibake": Signal(
        1.0, 2.0, "per 1k chars", "characters ftfy had to repair (a\u0302\u20ac\u2122 for \u2019)"
    ),
    "markup": Signal(0.8, 2.0, "per 1k chars", "HTML tags and entities, markdown links and emphasis"),
    "treebank": Signal(0.8, 2.0, "per 100 words", "tokeniser spacing: 'ca n't', 'Trump 's', 'word ,'"),
    "gaps": Signal(0.8, 0.6, "per 100 words", "holes left by dropped words: runs of spaces, empty quotes"),
    "repetition": Signal(
        0.8, 0.08, "fraction", "words in phrases said 3+ times, above 2% (same-length starts)"
    ),
    "boilerplate": Signal(0.5, 2.0, "lines", "site furniture: Advertisement, Subscribe, navigation, cookies"),
    "one_line": Signal(0.2, 1.0, "flag", "a long text with its paragraphs joined into one line"),
    "ocr": Signal(
        0.8, 1.0, "per 100 words", "letters/digits mixed in words, and words the other copies outvote"
    ),
}
# Completeness is not damage: it only decides between copies that are about as clean.
COMPLETENESS_WEIGHT = 0.15

_TREEBANK = re.compile(
    r"(?<=\w) (?:[,.;:!?%](?=\s|$)|[)\]]|n['\u2019]t\b|['\u2019](?:s|re|ve|ll|d|m)\b)|[(\[] (?=\w)|``|''",
    re.IGNORECASE | re.MULTILINE,
)
_GAPS = re.compile(r"(?<=\w)[^\S\n]{2,}(?=\w)|[\"\u201c][^\S\n]*[\"\u201d]|\([^\S\n]*\)")
_MARKDOWN_EMPHASIS = re.compile(
    r"\*\*|__|^#{1,6} |^\s*[*-] \[|(?<![\w*])[*_](?=[^\s*_])[^*_\n]{1,80}(?<=[^\s*_])[*_](?![\w*])",
    re.MULTILINE,
)
_OCR_MIX = re.compile(r"\b[a-z]+[0-9]+[a-z]+\b|\b[0-9]+[a-z]{2,}[0-9]+\b|[a-z][|!][a-z]")
_WORDS = re.compile(r"\S+")


def intrinsic(raw: str, repaired: str, tokens: Sequence[str]) -> dict[str, float]:
    """Signals measured on one document alone.

    Args:
        raw: the decoded text as stored.
        repaired: ``normalize.repair(raw)`` (mojibake fixed).
        tokens: ``normalize.tokens(repaired)``.

    Example:
        >>> s = intrinsic("He said , `` no . ''", "He said , `` no . ''", ["he", "said", "no"])
        >>> s["treebank"] > 0
        True
    """
    chars = max(len(raw), 1) / 1000
    words = max(len(_WORDS.findall(raw)), 1) / 100
    markup = (
        len(HTML_TAG.findall(repaired))
        + len(HTML_ENTITY.findall(repaired))
        + len(MARKDOWN_LINK.findall(repaired))
        + len(_MARKDOWN_EMPHASIS.findall(repaired))
    )
    longest = max(len(line) for line in raw.splitlines()) if raw.strip() else 0
    return {
        "mojibake": (max(len(raw) - len(repaired), 0) + raw.count("\ufffd")) / chars,
        "markup": markup / chars,
        "treebank": len(_TREEBANK.findall(raw)) / words,
        "gaps": len(_GAPS.findall(raw)) / words,
        "boilerplate": float(len(BOILERPLATE_LINE.findall(repaired))),
        "one_line": 1.0 if len(raw) > 1500 and longest > 0.95 * len(raw.strip()) else 0.0,
        "ocr": len(_OCR_MIX.findall(repaired)) / words,
    }


def repeated_phrase_fraction(tokens: Sequence[str], n: int = 3, min_count: int = 3) -> float:
    """Share of words inside n-grams that occur ``min_count``+ times, above a natural 2%.

    Substituting a phrase for every pronoun ("The city attorney ... The city
    attorney") repeats it far more than news prose repeats its names (Gopher's
    duplicate n-gram fractions, reduced to one number).
    """
    if len(tokens) < n * min_count:
        return 0.0
    grams = list(zip(*(tokens[i:] for i in range(n)), strict=False))
    counts = Counter(grams)
    covered = np.zeros(len(tokens), dtype=bool)
    for i, gram in enumerate(grams):
        if counts[gram] >= min_count:
            covered[i : i + n] = True
    return max(float(covered.mean()) - 0.02, 0.0)


def relative(
    members: Sequence[Sequence[str]],
    shingles: Sequence[np.ndarray],
    frequency: Callable[[Sequence[str]], Sequence[int]] | None = None,
) -> list[dict[str, float]]:
    """Signals that need the other copies: completeness, outvoted words, repetition.

    ``completeness`` is the share of the cluster's shingles (union over members)
    that a member holds. ``outvoted`` counts, per 100 words, words that no other
    member has, where another member has a different word between the same two
    words on each side (``said that tbe mayor would`` against ``said that the mayor
    would``) and that word is more common: an OCR slip or a typo. "More common" is
    by ``frequency`` (corpus document frequency) when given, else by counts within
    the cluster, so that two copies that merely differ do not both lose.
    ``repetition`` is measured over the first N words of every member, N the
    shortest member's length: long texts repeat more, and truncation keeps the start.
    """
    union = np.unique(np.concatenate(shingles)) if shingles else np.empty(0, dtype=np.uint64)
    vocab_count: Counter[str] = Counter()
    middles: dict[tuple[str, ...], dict[int, set[str]]] = {}
    for m, toks in enumerate(members):
        vocab_count.update(set(toks))
        for i in range(2, len(toks) - 2):
            context = (toks[i - 2], toks[i - 1], toks[i + 1], toks[i + 2])
            middles.setdefault(context, {}).setdefault(m, set()).add(toks[i])
    suspects: list[list[tuple[str, str]]] = [[] for _ in members]
    for m, toks in enumerate(members):
        for i in range(2, len(toks) - 2):
            word = toks[i]
            if vocab_count[word] != 1:
                continue
            seen = middles[toks[i - 2], toks[i - 1], toks[i + 1], toks[i + 2]]
            # A rival the member itself also uses in this context is another phrase, not a slip.
            rivals = sorted(set().union(*(w for other, w in seen.items() if other != m)) - seen[m])
            if rivals:
                suspects[m].append((word, rivals[0]))
    words = sorted({w for pairs in suspects for pair in pairs for w in pair})
    if frequency is not None:
        common = dict(zip(words, frequency(words), strict=True))
    else:
        totals: Counter[str] = Counter(t for toks in members for t in toks)
        common = {w: totals[w] for w in words}
    # Truncation keeps the beginning: compare repetition over the same stretch of each copy.
    window = max(min(len(toks) for toks in members), 100)
    out = []
    for toks, sh, pairs in zip(members, shingles, suspects, strict=True):
        outvoted = sum(1 for word, rival in pairs if common[word] < common[rival])
        out.append(
            {
                "completeness": len(sh) / len(union) if len(union) else 1.0,
                "outvoted": 100 * outvoted / max(len(toks), 1),
                "repetition": repeated_phrase_fraction(toks[:window]),
            }
        )
    return out


def damage(signals: dict[str, float]) -> dict[str, float]:
    """Weighted, saturated penalty per signal (0 = no sign of that damage).

    ``outvoted`` words add to the ``ocr`` signal.
    """
    rates = dict(signals)
    rates["ocr"] = rates.get("ocr", 0.0) + rates.get("outvoted", 0.0)
    return {
        name: round(sig.weight * min(1.0, rates.get(name, 0.0) / sig.scale), 6)
        for name, sig in SIGNALS.items()
    }


def score(signals: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(score, penalties): 1 minus damage, minus a small share for missing text.

    A clean truncated copy (completeness 0.45 costs 0.08) beats a complete copy
    with any real damage, and a complete clean copy beats a truncated clean one.
    """
    penalties = damage(signals)
    penalties["incomplete"] = round(COMPLETENESS_WEIGHT * (1.0 - signals.get("completeness", 1.0)), 6)
    return round(1.0 - sum(penalties.values()), 6), penalties
