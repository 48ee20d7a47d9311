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
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np

from dedup import kernels, quality_kernels
from dedup.alignment import ALIGN_MAX_TOKENS, outvoted_words
from dedup.normalize import (
    HTML_ENTITY,
    HTML_TAG,
    MARKDOWN_LINK,
    SPACE_BMP,
    WORD_BMP,
    has_link,
    spaced_words,
    strip_boilerplate,
)


@dataclass(frozen=True, slots=True)
class Signal:
    weight: float
    scale: float
    unit: str
    meaning: str


# Bump when scores or verdicts change: a --state built before must then be rebuilt.
SCORING_VERSION = 4  # 4: articles a quoted paragraph glues are kept apart (``cluster.glued``)

# Measured on each document alone in pass 1 (``intrinsic``), in this order.
INTRINSIC = ("mojibake", "markup", "treebank", "gaps", "boilerplate", "one_line", "ocr")

SIGNALS: dict[str, Signal] = {
    "mojibake": Signal(
        1.0, 2.0, "per 1k chars", "characters ftfy had to repair (a\u0302\u20ac\u2122 for \u2019)"
    ),
    "markup": Signal(0.8, 8.0, "per 1k chars", "HTML tags and entities, markdown links and emphasis"),
    "treebank": Signal(0.8, 2.0, "per 100 words", "tokeniser spacing: 'ca n't', 'Trump 's', 'word ,'"),
    "gaps": Signal(0.8, 0.6, "per 100 words", "holes left by dropped words: runs of spaces, empty quotes"),
    "repetition": Signal(
        0.8, 0.08, "fraction", "words in phrases said 3+ times, above 2% (same-length starts)"
    ),
    "boilerplate": Signal(0.5, 2.0, "lines", "site furniture: Advertisement, Subscribe, navigation, cookies"),
    "one_line": Signal(0.2, 1.0, "flag", "paragraphs joined into one line (400+ characters, no line break)"),
    "ocr": Signal(0.8, 1.0, "per 100 words", "letters and digits mixed inside words (wou1d, 0bama)"),
    "outvoted": Signal(0.8, 1.0, "per 100 words", "words other copies replace by commoner ones: tbe/the"),
    "template": Signal(
        0.5,
        2.0,
        "lines",
        "lines found in more documents than the article has copies: furniture, any language",
    ),
}
# Completeness is not damage: it only decides between copies that are about as clean.
COMPLETENESS_WEIGHT = 0.15

# Read as "(?<=\w) (?:[,.;:!?%]...)" and "(?<=\w)[^\S\n]{2,}(?=\w)|(?<=\w )["“”]...": each
# branch consumes its first character before looking behind, so that the regex engine can
# skip ahead to the characters that start a match (~2x faster, the same matches). Every branch
# of _TREEBANK starts with one character, not a class: the engine skips only then (82 -> 53 us).
_TREEBANK = re.compile(
    r" (?<=\w )(?:[,.;:!?%](?=\s|$)|[)\]]|n['\u2019]t\b|['\u2019](?:s|re|ve|ll|d|m)\b)"
    r"|\( (?=\w)|\[ (?=\w)|``|''",
    re.IGNORECASE | re.MULTILINE,
)
_GAPS = re.compile(
    r"[^\S\n](?<=\w[^\S\n])[^\S\n]+(?=\w)"
    r"|[\"\u201c\u201d](?<=\w [\"\u201c\u201d])[^\S\n]*[\"\u201c\u201d](?= \w)|\([^\S\n]*\)"
)
# Site furniture glued into running text (paragraphs joined after it was added): each phrase as
# the words it starts with and the rest of its pattern. A match starts only where such words do.
_INLINE_PHRASES = (
    ("subscribe to ", r"(?:our|the) \w+"), ("sign up for ", r"(?:our|the) \w+"), ("click here", r"\b"),
    ("share this ", "(?:article|story|page)"), ("follow us on", ""), ("accept ", "(?:all )?cookies"),
    ("we use ", "(?:all )?cookies"), ("all rights reserved", ""), ("continue reading", ""),
    ("skip to ", "(?:main )?content"), ("download ", "(?:our|the) app"),
)  # fmt: skip
_INLINE_STARTS = tuple(start for start, _ in _INLINE_PHRASES)
_BOILERPLATE_INLINE = re.compile(
    r"\b(?:" + "|".join(re.escape(start) + rest for start, rest in _INLINE_PHRASES) + ")", re.IGNORECASE
)
_BOILERPLATE_INLINE_LOWER = re.compile(_BOILERPLATE_INLINE.pattern)  # for ASCII text, lowered


def inline_boilerplate(text: str) -> int:
    """How many inline boilerplate phrases ``text`` holds: ``len(_BOILERPLATE_INLINE.findall(text))``.

    ASCII text is lowered and matched case-sensitively, only where a branch's first
    words are (``str.find``), left to right past each match, as ``findall`` goes: the
    same matches (an IGNORECASE search folds every character it compares, ~180 us a
    document where a cue word is present; lowered, the search tries every position,
    ~115 us).

    Example:
        >>> inline_boilerplate("Click HERE to Subscribe to our newsletter. Click here.")
        3
    """
    if not text.isascii():
        return len(_BOILERPLATE_INLINE.findall(text))
    lowered = text.lower()
    starts = set()
    for words in _INLINE_STARTS:
        at = lowered.find(words)
        while at >= 0:
            starts.add(at)
            at = lowered.find(words, at + 1)
    count = end = 0
    for at in sorted(starts):
        if at >= end and (found := _BOILERPLATE_INLINE_LOWER.match(lowered, at)):
            count, end = count + 1, found.end()
    return count


# Substrings without which a pattern cannot match: `in` runs at memchr speed, a regex
# with look-behinds does not, and most documents have none of these artifacts.
_BOILERPLATE_CUES = (
    "subscribe", "sign up", "click here", "share this", "follow us", "cookies",
    "rights reserved", "continue reading", "skip to", "download",
)  # fmt: skip
_AFTER_SPACE = np.zeros(256, dtype=bool)  # treebank puts a space before these (0xE2: a curly quote)
_AFTER_SPACE[[ord(c) for c in ",.;:!?%)]'"] + [0xE2]] = True


def _spacing_cues(raw: str) -> tuple[bool, bool]:
    """(treebank spacing possible, gaps possible), from one pass over the bytes.

    A space before punctuation or after an opening bracket, a backtick pair, or
    two spaces in a row: without one of them neither pattern can match.
    """
    buf = np.frombuffer(raw.encode("utf-8", "replace"), dtype=np.uint8)
    space = buf[:-1] == 32
    treebank = bool(
        _AFTER_SPACE[buf[1:][space]].any()
        or ((buf[1:] == 32) & ((buf[:-1] == 40) | (buf[:-1] == 91))).any()
        or "``" in raw
        or "''" in raw
        or " n'" in raw
        or " n\u2019" in raw
    )
    gaps = bool((space & (buf[1:] == 32)).any()) or any(c in raw for c in _GAP_CUES)
    return treebank, gaps


_GAP_CUES = ('" "', "\u201c \u201d", "()", "( )")

_MARKDOWN_EMPHASIS = re.compile(
    r"\*\*|__|^#{1,6} |^\s*[*-] \[|(?<![\w*])[*_](?=[^\s*_])[^*_\n]{1,80}(?<=[^\s*_])[*_](?![\w*])",
    re.MULTILINE,
)
_OCR_MIX = re.compile(r"\b[a-z]+[0-9]+[a-z]+\b|\b[0-9]+[a-z]{2,}[0-9]+\b")  # wou1d, c0mment
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0") : ord("9") + 1] = True
_LOWER = np.zeros(256, dtype=bool)
_LOWER[ord("a") : ord("z") + 1] = True


def _letters_and_digits_touch(comparison: str) -> bool:
    """Cheap test before the OCR pattern: most texts have digits, few have them inside words."""
    buf = np.frombuffer(comparison.encode("utf-8", "replace"), dtype=np.uint8)
    digit, lower = _DIGIT[buf], _LOWER[buf]
    return bool((digit[1:] & lower[:-1]).any() or (lower[1:] & digit[:-1]).any())


_CUE_TABLE = quality_kernels.needle_table(_BOILERPLATE_CUES)


def _scans(raw: str, repaired: str, comparison: str, compiled: bool) -> tuple[int, int, int, bool, int]:
    """(words, treebank matches, gap matches, inline boilerplate possible, OCR-mixed words).

    The compiled scans read the UTF-8 bytes once each; a count of -1 leaves it to the
    pattern (the reference does so wherever the cheap cues say a match is possible).
    """
    if not (compiled and kernels.AVAILABLE):
        maybe_treebank, maybe_gaps = _spacing_cues(raw)
        return len(raw.split()), -int(maybe_treebank), -int(maybe_gaps), _any_cue(repaired), -1
    buf = np.frombuffer(raw.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    words, treebank, gaps = quality_kernels.raw_scan(buf, _AFTER_SPACE)
    if treebank or gaps:  # the cues say a pattern may match: count exactly
        treebank, gaps = quality_kernels.spacing_counts(buf, WORD_BMP, SPACE_BMP, treebank == 1, gaps == 1)
    if repaired is not raw:
        buf = np.frombuffer(repaired.encode("utf-8", "replace"), dtype=np.uint8)
    # The Kelvin sign is the one non-ASCII character whose lower() is an ASCII letter a cue needs.
    cue = quality_kernels.contains_any(buf, *_CUE_TABLE) == 1 or ("\u212a" in repaired and _any_cue(repaired))
    ocr = quality_kernels.ocr_mix(np.frombuffer(comparison.encode("utf-8", "replace"), dtype=np.uint8))
    return words, treebank, gaps, cue, ocr


def _any_cue(repaired: str) -> bool:
    lowered = repaired.lower()
    return any(cue in lowered for cue in _BOILERPLATE_CUES)


def intrinsic(
    raw: str, repaired: str, comparison: str, *, boilerplate_lines: int | None = None, compiled: bool = True
) -> dict[str, float]:
    """Signals measured on one document alone (rates, see ``SIGNALS``).

    Each pattern is only searched when a character it needs is present: most
    documents have no ``<``, ``&``, ``*`` or digits inside words, and pass 1 runs
    this on every document.

    Args:
        raw: the decoded text as stored.
        repaired: ``normalize.repair(raw)`` (mojibake fixed).
        comparison: ``normalize.comparison_text(repaired)``.
        boilerplate_lines: ``strip_boilerplate(repaired)``'s count, when known (``normalize.comparison``).
        compiled: byte scans by the compiled kernels (the default when numba is there), or
            by the reference code they are tested against.

    Example:
        >>> s = intrinsic("He said , `` no . ''", "He said , `` no . ''", "he said , `` no . ''")
        >>> s["treebank"] > 0
        True
    """
    word_count, treebank, gaps, maybe_inline, ocr = _scans(raw, repaired, comparison, compiled)
    chars = max(len(raw), 1) / 1000
    words = max(word_count, 1) / 100
    markup = 0
    if "<" in repaired:
        markup += len(HTML_TAG.findall(repaired))
    if "&" in repaired:
        markup += len(HTML_ENTITY.findall(repaired))
    if has_link(repaired):
        markup += len(MARKDOWN_LINK.findall(repaired))
    if "*" in repaired or "_" in repaired or "#" in repaired:
        markup += len(_MARKDOWN_EMPHASIS.findall(repaired))
    boilerplate = strip_boilerplate(repaired)[1] if boilerplate_lines is None else boilerplate_lines
    if maybe_inline:
        boilerplate += inline_boilerplate(repaired)
    if ocr < 0:
        ocr = len(_OCR_MIX.findall(comparison)) if _letters_and_digits_touch(comparison) else 0
    if treebank < 0:
        treebank = len(_TREEBANK.findall(raw))
    if gaps < 0:
        gaps = len(_GAPS.findall(raw))
    return {
        "mojibake": max(len(raw) - len(repaired), 0) / chars,
        "markup": markup / chars,
        "treebank": treebank / words,
        "gaps": gaps / words,
        "boilerplate": float(boilerplate),
        "one_line": 1.0 if len(raw) > 400 and "\n" not in raw.strip() else 0.0,
        "ocr": ocr / words,
    }


def relative_excess(signals: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    """Each damage signal minus the cluster's lowest value for it.

    What every copy shares (the source's own odd characters, a site footer, a
    writer's repeated phrases) is not damage done to one copy, so it must not
    decide which copy is cleanest.
    """
    floor = {name: min(s.get(name, 0.0) for s in signals) for name in SIGNALS}
    return [{**s, **{name: s.get(name, 0.0) - floor[name] for name in SIGNALS}} for s in signals]


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
    starts = np.fromiter(map(counts.__getitem__, grams), dtype=np.int64, count=len(grams)) >= min_count
    # A word is covered when one of the n grams holding it starts a frequent phrase.
    covered = np.convolve(starts, np.ones(n, dtype=np.int64))[: len(tokens)] > 0
    return max(float(covered.mean()) - 0.02, 0.0)


TEMPLATE_MIN_DOCUMENTS = 5


def template_lines(counts: np.ndarray, copies: int) -> float:
    """How many of a document's lines the corpus holds more often than this article has copies, less one.

    ``counts`` are the corpus document frequencies of its short lines; a line of the
    article itself is in at most its copies (and the odd quote), a site's furniture
    in every page of the site. One such line is let go: a byline or a dateline
    repeats across a site's pages too, and a teaser without it is not cleaner.

    Example:
        >>> template_lines(np.array([3, 40, 1, 12, 9]), copies=4)
        2.0
    """
    found = int(np.count_nonzero(counts >= template_from(copies)))
    return float(max(found - 1, 0))


def template_from(copies: int) -> int:
    """The corpus count from which a line of an article with this many copies is a template line."""
    return max(TEMPLATE_MIN_DOCUMENTS, 2 * copies)


def relative(
    members: Sequence[Sequence[str]],
    shingles: Sequence[np.ndarray],
    frequency: Callable[[Sequence[str]], Sequence[int]] | None = None,
    template: Sequence[float] | None = None,
    decided: list[tuple[int, Any, Any, int]] | None = None,
) -> list[dict[str, float]]:
    """Signals that need the other copies: completeness, outvoted words, repetition.

    ``completeness`` is the share of the cluster's shingles (union over members)
    that a member holds. ``outvoted`` is, per 100 words and averaged over the other
    members, how many of its words another copy has replaced by more common words
    (``tbe`` for ``the``, ``The city attorney`` for ``him``): OCR slips and pasted
    phrases. "More common" compares the rarest word of each side by document
    frequency: in the corpus (``frequency``) when given, else among the members.
    ``repetition`` is measured over the first N words of every member, N the
    shortest member's length: long texts repeat more, and truncation keeps the start.
    ``template`` (``template_lines`` of each member) is passed through; ``decided`` gets
    the outvoted decisions (``outvoted_words``).

    Only the first ``ALIGN_MAX_TOKENS`` tokens of a member are aligned and
    scored (rates are per word of that part): alignment holds a dict of every
    3-gram, ~200 MB and 14 s for two 3 MB one-line files. Articles are far shorter.
    """
    members = [toks[:ALIGN_MAX_TOKENS] for toks in members]
    if frequency is None:
        holders: Counter[str] = Counter(t for toks in members for t in set(toks))

        def frequency(words: Sequence[str]) -> list[int]:
            return [holders[w] for w in words]

    blamed = outvoted_words(members, frequency, decided)
    window = max(min(len(toks) for toks in members), 100)
    # Phrases of words: runs of bigrams (CJK, Thai) repeat names and set phrases naturally.
    repetition = [repeated_phrase_fraction(spaced_words(toks[:window])) for toks in members]
    return relative_signals(members, shingles, blamed, repetition, template)


def relative_signals(
    members: Sequence[Sized],
    shingles: Sequence[np.ndarray],
    blamed: Sequence[int],
    repetition: Sequence[float],
    template: Sequence[float] | None,
) -> list[dict[str, float]]:
    """The signals ``relative`` returns, from its counts: what both ways of counting share."""
    every = np.sort(np.concatenate(shingles)) if shingles else np.empty(0, dtype=np.uint64)
    union = int(np.count_nonzero(every[1:] != every[:-1])) + 1 if len(every) else 0  # distinct shingles
    others = max(len(members) - 1, 1)
    return [
        {
            "completeness": len(sh) / union if union else 1.0,
            "outvoted": 100 * blamed[m] / others / max(len(toks), 1),
            "repetition": repetition[m],
            "template": template[m] if template is not None else 0.0,
        }
        for m, (toks, sh) in enumerate(zip(members, shingles, strict=True))
    ]


def damage(signals: dict[str, float]) -> dict[str, float]:
    """Weighted, saturated penalty per signal (0 = no sign of that damage)."""
    penalties = {}
    for name, sig in SIGNALS.items():
        penalty = sig.weight * min(1.0, signals.get(name, 0.0) / sig.scale)
        penalties[name] = round(penalty, 6) if penalty else penalty  # round(0.0) is 0.0, ~150 ns later
    return penalties


def score(signals: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(score, penalties): 1 minus damage, minus a small share for missing text.

    A clean truncated copy (completeness 0.45 costs 0.08) beats a complete copy
    with any real damage, and a complete clean copy beats a truncated clean one.
    """
    penalties = damage(signals)
    penalties["incomplete"] = round(COMPLETENESS_WEIGHT * (1.0 - signals.get("completeness", 1.0)), 6)
    return round(1.0 - sum(penalties.values()), 6), penalties


# The patterns behind the signals, public so that ``dedup.evidence`` can show what they found.
PATTERNS: dict[str, re.Pattern[str]] = {
    "treebank": _TREEBANK,
    "gaps": _GAPS,
    "markdown": _MARKDOWN_EMPHASIS,
    "ocr": _OCR_MIX,
    "boilerplate_inline": _BOILERPLATE_INLINE,
}
