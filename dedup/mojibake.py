"""ftfy's mojibake repair, with its badness test searched only where it can match.

ftfy tells mojibake by one large regex (``ftfy.badness.BADNESS_RE``) searched
over the whole text, and asks it again after every repair step. On a repaired
article, where it finds nothing, that last search is most of ftfy's cost: ~770
of ~1,080 us on the noisy corpus's 4.6 KB articles (one in 18 carries the mark).
Every alternative of the regex needs a non-ASCII character and spans at most a
few characters, so a match lies within that span of one: searching those windows
gives ftfy's answer. That is checked on the pattern when first asked (the ftfy
installed may have changed it); if it cannot be shown, ftfy's own search is used.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import Any

import ftfy
from ftfy import chardata
from ftfy.badness import BADNESS_RE

_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_WIDE = 64  # a pattern reaching further is searched whole: windows would merge anyway


def is_bad(text: str) -> bool:
    """``ftfy.badness.is_bad``: does the text look like it holds mojibake.

    Example:
        >>> is_bad("The mayor\\u00e2\\u20ac\\u2122s office"), is_bad("na\\u00efve caf\\u00e9")
        (True, False)
    """
    width = _window()
    if width is None:
        return BADNESS_RE.search(text) is not None
    search, reach, size = BADNESS_RE.search, width - 1, len(text)
    start = end = -1
    for run in _NON_ASCII.finditer(text):
        lo, hi = run.start() - reach, run.end() + reach
        if lo <= end:  # overlaps the window open: one search for both
            end = hi
            continue
        if end >= 0 and search(text, max(start, 0), min(end, size)):
            return True
        start, end = lo, hi
    return end >= 0 and search(text, max(start, 0), min(end, size)) is not None


def fix_encoding_and_explain(text: str) -> tuple[str, list[Any]]:
    """``ftfy.fix_encoding_and_explain(text)``: the text repaired, and ftfy's steps.

    ftfy's loop, with its test of whether a step has anything to do (ASCII, or not
    ``is_bad``) made here first: the step is only called when it will look further.

    Example:
        >>> fix_encoding_and_explain("caf\\u00c3\\u00a9")
        ('café', [('encode', 'latin-1'), ('decode', 'utf-8')])
    """
    one_step = getattr(ftfy, "_fix_encoding_one_step_and_explain", None)
    if one_step is None or _window() is None:
        fixed, steps = ftfy.fix_encoding_and_explain(text)
        return fixed, list(steps or ())
    config = ftfy.TextFixerConfig()
    lossless = config._replace(replace_lossy_sequences=False)
    plan: list[Any] = []
    while True:
        if chardata.possible_encoding(text, "ascii") or not is_bad(text):
            return text, plan  # what ftfy's step returns unchanged, ending its loop
        before = text
        text, steps = one_step(text, config if lossy_possible(text) else lossless)
        plan.extend(steps or ())
        if text == before:
            return text, plan


def lossy_possible(text: str) -> bool:
    """Whether ftfy's ``replace_lossy_sequences`` could change ``text`` once encoded (a no-op
    otherwise, ~250 us a 4.6 KB text: its pattern is searched at every byte).

    Each of its matches holds byte 1A (U+FFFD in a sloppy codec) or a ``?`` with a
    byte from a non-ASCII character at most three before it.

    Example:
        >>> lossy_possible("Why? Because."), lossy_possible("caf\u00c3?"), lossy_possible("\ufffd")
        (False, True, True)
    """
    if "\ufffd" in text or "\x1a" in text:
        return True
    at = text.find("?")
    while at >= 0:
        if not text[max(at - 3, 0) : at].isascii():
            return True
        at = text.find("?", at + 1)
    return False


@cache
def _window() -> int | None:
    return search_width(BADNESS_RE)


def search_width(pattern: re.Pattern[str]) -> int | None:
    """The longest match of ``pattern``, if each of its matches holds a non-ASCII character and it
    looks at nothing but what it matches (no assertion but ``^``, no flag set inside it); else None
    (search the whole text).

    Example:
        >>> search_width(re.compile("[\u00c3\u00c2][ ]")), search_width(re.compile("a[\u00e9]?"))
        (2, None)
    """
    try:
        # The stdlib's regex parser: private, so any surprise means "not shown".
        _parser, _constants = (importlib.import_module(f"re.{name}") for name in ("_parser", "_constants"))

        if pattern.flags & (re.MULTILINE | re.IGNORECASE):
            return None
        parsed = _parser.parse(pattern.pattern, pattern.flags)
        width = parsed.getwidth()[1]
        plain = _plain(parsed.data, _constants) and _needs_non_ascii(parsed.data, _constants)
        if not 0 < width <= _WIDE or not plain:
            return None
        return int(width)
    except Exception:  # a parser that changed: the whole-text search is always right
        return None


def _plain(items: list[tuple[Any, Any]], c: Any) -> bool:
    """Nothing in ``items`` looks outside the characters it matches: no assertion but ``^``, no
    back-reference, no flag set inside the pattern (``c``: the parser's opcodes)."""
    for op, av in items:
        if op is c.BRANCH:
            if not all(_plain(alt.data, c) for alt in av[1]):
                return False
        elif op is c.SUBPATTERN:
            if av[1] or av[2] or not _plain(av[-1].data, c):  # (?i:...) and the like
                return False
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            if not _plain(av[2].data, c):
                return False
        elif op is c.AT:
            if av is not c.AT_BEGINNING and av is not c.AT_BEGINNING_STRING:
                return False
        elif op not in (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY):
            return False
    return True


def _needs_non_ascii(items: list[tuple[Any, Any]], c: Any) -> bool:
    """Every way through ``items`` (``_plain``) matches a character that is not ASCII."""
    needed = False
    for op, av in items:
        if op is c.BRANCH:
            needed = needed or all(_needs_non_ascii(alt.data, c) for alt in av[1])
        elif op is c.SUBPATTERN:
            needed = needed or _needs_non_ascii(av[-1].data, c)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            needed = needed or (av[0] >= 1 and _needs_non_ascii(av[2].data, c))
        elif op is c.LITERAL:
            needed = needed or av > 0x7F
        elif op is c.IN:
            needed = needed or _non_ascii_set(av, c)
    return needed


def _non_ascii_set(av: list[tuple[Any, Any]], c: Any) -> bool:
    """A character class whose members are all outside ASCII."""
    for op, arg in av:
        if op is c.LITERAL and arg > 0x7F:
            continue
        if op is c.RANGE and arg[0] > 0x7F:
            continue
        return False
    return True
