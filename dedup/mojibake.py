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
    plan: list[Any] = []
    while True:
        if chardata.possible_encoding(text, "ascii") or not is_bad(text):
            return text, plan  # what ftfy's step returns unchanged, ending its loop
        before = text
        text, steps = one_step(text, config)
        plan.extend(steps or ())
        if text == before:
            return text, plan


@cache
def _window() -> int | None:
    return search_width(BADNESS_RE)


def search_width(pattern: re.Pattern[str]) -> int | None:
    """The longest match of ``pattern``, if each of its matches holds a non-ASCII character and it
    has no assertion but ``^`` at the start; else None (search the whole text).

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
        if not 0 < width <= _WIDE or not _needs_non_ascii(parsed.data, _constants):
            return None
        return int(width)
    except Exception:  # a parser that changed: the whole-text search is always right
        return None


def _needs_non_ascii(items: list[tuple[Any, Any]], c: Any) -> bool:
    """Every way through ``items`` matches a character that is not ASCII; no assertion but ``^``
    (``c``: the parser's opcodes)."""
    needed = False
    for op, av in items:
        if op is c.BRANCH:
            if not all(_needs_non_ascii(alt.data, c) for alt in av[1]):
                return False
            needed = True
        elif op is c.SUBPATTERN:
            needed = _needs_non_ascii(av[-1].data, c) or needed
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            if not _allowed(av[2].data, c):
                return False
            needed = needed or (av[0] >= 1 and _needs_non_ascii(av[2].data, c))
        elif op is c.LITERAL:
            needed = needed or av > 0x7F
        elif op is c.IN:
            needed = needed or _non_ascii_set(av, c)
        elif op is c.AT:
            if av is not c.AT_BEGINNING and av is not c.AT_BEGINNING_STRING:
                return False
        elif op is not c.ANY and op is not c.NOT_LITERAL:
            return False
    return needed


def _allowed(items: list[tuple[Any, Any]], c: Any) -> bool:
    """No assertion or back-reference inside an optional part."""
    for op, av in items:
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT, c.GROUPREF, c.GROUPREF_EXISTS):
            return False
        if op is c.BRANCH and not all(_allowed(alt.data, c) for alt in av[1]):
            return False
        if op is c.SUBPATTERN and not _allowed(av[-1].data, c):
            return False
        if op in (c.MAX_REPEAT, c.MIN_REPEAT) and not _allowed(av[2].data, c):
            return False
    return True


def _non_ascii_set(av: list[tuple[Any, Any]], c: Any) -> bool:
    """A character class whose members are all outside ASCII."""
    for op, arg in av:
        if op is c.LITERAL and arg > 0x7F:
            continue
        if op is c.RANGE and arg[0] > 0x7F:
            continue
        return False
    return True
