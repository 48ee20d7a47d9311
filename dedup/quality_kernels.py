"""Compiled byte scans behind ``quality.intrinsic`` (see ``dedup.kernels`` for how they are built).

Word count, the cues that decide whether the treebank, gap and inline-boilerplate
patterns can match at all, and the count of letter/digit-mixed words: one pass over
the UTF-8 bytes each, instead of ``str.split``, several ``in`` tests and a regex.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dedup.kernels import BYTES, TABLE, U64, bmp_code_point, jit


@jit(None)
def _unicode_space(buf: Any, i: Any, n: Any) -> Any:
    """Length of the whitespace character (``str.isspace``) starting at byte i, 0 if none."""
    c = buf[i]
    if c == 32 or 9 <= c <= 13 or 28 <= c <= 31:
        return 1
    if c < 0xC2 or i + 1 >= n:
        return 0
    d = buf[i + 1]
    if c == 0xC2:
        return 2 if d == 0x85 or d == 0xA0 else 0
    if i + 2 >= n:
        return 0
    e = buf[i + 2]
    if c == 0xE1:
        return 3 if d == 0x9A and e == 0x80 else 0
    if c == 0xE2:
        if d == 0x80:
            return 3 if 0x80 <= e <= 0x8A or e == 0xA8 or e == 0xA9 or e == 0xAF else 0
        return 3 if d == 0x81 and e == 0x9F else 0
    if c == 0xE3:
        return 3 if d == 0x80 and e == 0x80 else 0
    return 0


_SPACE_OF = np.zeros(256, dtype=np.int64)  # 1 for the ASCII bytes str.isspace() takes
_SPACE_OF[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1
# Bytes looked at closely: quotes and brackets that may start a cue, and the lead bytes
# of the non-ASCII whitespace characters (and of \u201c / \u2019).
_RARE = np.zeros(256, dtype=np.bool_)
_RARE[[34, 39, 40, 91, 96, 0xC2, 0xE1, 0xE2, 0xE3]] = True


def raw_scan(buf: np.ndarray, after_space: np.ndarray) -> tuple[int, int, int]:
    """(``len(text.split())``, treebank spacing possible, gaps possible) of UTF-8 text, one pass.

    The two cues are ``quality._spacing_cues``: a space before punctuation or after
    an opening bracket, ````` or ``''``, `` n'``, or two spaces, ``" "``, ``()``.
    """
    return _raw_scan(buf, after_space, _SPACE_OF, _RARE)


@jit(f"UniTuple(int64, 3)({BYTES}, {TABLE}, Array(int64, 1, 'C', readonly=True), {TABLE})")
def _raw_scan(buf: Any, after_space: Any, space_of: Any, rare: Any) -> Any:
    """``raw_scan``: every byte but ``_RARE``'s is counted without a branch on the word's edge
    (one per word was mispredicted: 17 -> 11 us for a 4.5 KB article)."""
    n = buf.shape[0]
    words = 0
    treebank = 0
    gaps = 0
    inside = 0
    i = 0
    while i < n:
        c = buf[i]
        if not rare[c]:
            blank = space_of[c]
            words += (1 - inside) * (1 - blank)
            inside = 1 - blank
            if c == 32 and i + 1 < n:
                d = buf[i + 1]
                if after_space[d]:
                    treebank = 1
                elif d == 32:
                    gaps = 1
                elif d == 110 and i + 2 < n:  # " n'" or " n\u2019"
                    e = buf[i + 2]
                    if e == 39 or (e == 0xE2 and i + 4 < n and buf[i + 3] == 0x80 and buf[i + 4] == 0x99):
                        treebank = 1
            i += 1
            continue
        if i + 1 < n:
            d = buf[i + 1]
            if c == 40 or c == 91:
                if d == 32:
                    treebank = 1
                if c == 40 and (d == 41 or (d == 32 and i + 2 < n and buf[i + 2] == 41)):
                    gaps = 1
            elif (c == 96 or c == 39) and d == c:
                treebank = 1
            elif c == 34 and d == 32 and i + 2 < n and buf[i + 2] == 34:
                gaps = 1
            elif c == 0xE2 and i + 6 < n:  # \u201c \u201d is E2 80 9C 20 E2 80 9D
                quotes = d == 0x80 and buf[i + 2] == 0x9C and buf[i + 3] == 32 and buf[i + 4] == 0xE2
                if quotes and buf[i + 5] == 0x80 and buf[i + 6] == 0x9D:
                    gaps = 1
        space = _unicode_space(buf, i, n)
        if space:
            inside = 0
            i += space
            continue
        words += 1 - inside
        inside = 1
        i += 1
    return words, treebank, gaps


@jit(None)
def _word_byte(c: Any) -> Any:
    return (97 <= c <= 122) or (48 <= c <= 57) or (65 <= c <= 90) or c == 95


@jit(f"int64({BYTES})")
def ocr_mix(buf: Any) -> Any:
    """Count of ``quality._OCR_MIX`` matches (``wou1d``, ``0ne11``) in lower-case UTF-8 text, or -1.

    A match is a whole word of ASCII letters and digits shaped letters-digits-letters
    or digits-letters(2+)-digits. -1 when such a word touches a non-ASCII character:
    whether that character is a word character (so no match) is the regex's call.
    Only the words around digits are looked at (a branch per word was 3 us per KB).
    """
    n = buf.shape[0]
    count = 0
    i = 0
    while i < n:
        c = buf[i]
        if c < 48 or c > 57:  # only a word with a digit can match: find its digits, then its start
            i += 1
            continue
        start = i
        while start > 0 and _word_byte(buf[start - 1]):
            start -= 1
        i = start
        runs = 0  # letter/digit stretches, as long as only [a-z0-9] are seen
        plain = True
        first_digit = False
        second = 0
        kind = -1
        while i < n:
            c = buf[i]
            if 97 <= c <= 122:
                k = 0
            elif 48 <= c <= 57:
                k = 1
            elif (65 <= c <= 90) or c == 95:
                plain = False
                k = 2
            else:
                break
            if k != kind:
                runs += 1
                kind = k
                if runs == 1:
                    first_digit = k == 1
            if runs == 2 and k == 0:
                second += 1
            i += 1
        if plain and runs == 3 and (not first_digit or second >= 2):
            if (start > 0 and buf[start - 1] >= 0x80) or (i < n and buf[i] >= 0x80):
                return -1
            count += 1
    return count


@jit(f"int64({BYTES}, Array(uint8, 2, 'C', readonly=True), {U64}, Array(boolean, 2, 'C', readonly=True))")
def contains_any(buf: Any, needles: Any, lengths: Any, opens: Any) -> Any:
    """1 if a needle of ``needle_table`` occurs in buf with ASCII case folded, else 0."""
    n = buf.shape[0]
    for i in range(n - 1):
        if not opens[buf[i], buf[i + 1]]:
            continue
        for r in range(needles.shape[0]):
            if i + lengths[r] > n:
                continue
            j = 0
            while j < lengths[r]:
                c = buf[i + j]
                if 65 <= c <= 90:
                    c += 32
                if c != needles[r, j]:
                    break
                j += 1
            if j == lengths[r]:
                return 1
    return 0


def needle_table(needles: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower-case ASCII needles (2+ characters) as ``contains_any`` takes them.

    Returns their padded rows, their lengths, and a 256 x 256 table of the byte pairs
    that open one in any case, so that most positions are passed over by one lookup.
    """
    rows = np.zeros((len(needles), max(map(len, needles))), dtype=np.uint8)
    opens = np.zeros((256, 256), dtype=bool)
    for r, text in enumerate(needles):
        assert len(text) >= 2 and text.isascii() and text == text.lower(), text
        rows[r, : len(text)] = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        first, second = ({ord(c), ord(c.upper())} for c in text[:2])
        for a in first:
            opens[a, list(second)] = True
    return rows, np.array([len(t) for t in needles], dtype=np.uint64), opens


@jit(None)
def _is(cps: Any, j: Any, table: Any) -> Any:
    return 0 <= j < cps.shape[0] and table[cps[j]]


@jit(None)
def _blank(cps: Any, j: Any, space: Any) -> Any:
    """``[^\\S\\n]`` at j: whitespace other than a newline."""
    return _is(cps, j, space) and cps[j] != 10


_AFTER_LOW = sum(1 << ord(c) for c in ",.;:!?%)'")  # what may follow a treebank space, < 64
_AFTER_HIGH = sum(1 << (ord(c) - 64) for c in "]nN")  # and in 64-127


@jit(None)
def _treebank_after(d: Any) -> Any:
    if d < 64:
        return (_AFTER_LOW >> d) & 1 == 1
    return (d < 128 and (_AFTER_HIGH >> (d - 64)) & 1 == 1) or d == 0x2019


@jit(None)
def _treebank_count(cps: Any, word: Any, space: Any) -> Any:
    # " (?<=\w )(?:[,.;:!?%](?=\s|$)|[)\]]|n[Q]t\b|[Q](?:s|re|ve|ll|d|m)\b)" | "\( (?=\w)" | "\[ (?=\w)"
    # | "``" | "''", IGNORECASE, where Q is ' or U+2019; of the letters, only "s" matches a
    # non-ASCII character (U+017F).
    n = cps.shape[0]
    count = 0
    i = 0
    while i < n:
        c = cps[i]
        if c > 96:  # every match starts with one of " ([`'"
            i += 1
            continue
        end = 0
        if c == 32 and i + 1 < n and _treebank_after(cps[i + 1]) and _is(cps, i - 1, word):
            d = cps[i + 1]
            if d == 44 or d == 46 or d == 59 or d == 58 or d == 33 or d == 63 or d == 37:
                if i + 2 == n or space[cps[i + 2]]:
                    end = i + 2
            elif d == 41 or d == 93:
                end = i + 2
            else:  # n't or 's ... and then \b: the letters end a word
                if (d | 32) == 110 and i + 3 < n and (cps[i + 2] == 39 or cps[i + 2] == 0x2019):
                    if (cps[i + 3] | 32) == 116:
                        end = i + 4
                elif (d == 39 or d == 0x2019) and i + 2 < n:
                    e = cps[i + 2] | 32 if cps[i + 2] < 128 else cps[i + 2]
                    f = cps[i + 3] | 32 if i + 3 < n and cps[i + 3] < 128 else -1
                    if e == 115 or e == 0x17F or e == 100 or e == 109:  # s, d, m
                        end = i + 3
                    elif ((e == 114 or e == 118) and f == 101) or (e == 108 and f == 108):  # re, ve, ll
                        end = i + 4
                if end and _is(cps, end, word):
                    end = 0
        elif i + 1 < n:
            d = cps[i + 1]
            opened = (c == 40 or c == 91) and d == 32 and _is(cps, i + 2, word)  # "( word"
            if opened or ((c == 96 or c == 39) and d == c):  # or `` ''
                end = i + 2
        if end:
            count += 1
            i = end
        else:
            i += 1
    return count


@jit(None)
def _gaps_count(cps: Any, word: Any, space: Any) -> Any:
    # "[^\S\n](?<=\w[^\S\n])[^\S\n]+(?=\w)" | "["“”](?<=\w ["“”])[^\S\n]*["“”](?= \w)" | "\([^\S\n]*\)"
    n = cps.shape[0]
    count = 0
    i = 0
    while i < n:
        c = cps[i]
        if 40 < c < 0x85:  # every match starts with whitespace, a quote or "("
            i += 1
            continue
        end = 0
        if c == 34 or c == 0x201C or c == 0x201D:
            if i >= 2 and cps[i - 1] == 32 and _is(cps, i - 2, word):
                j = i + 1
                while _blank(cps, j, space):
                    j += 1
                q = cps[j] if j < n else -1
                closed = q == 34 or q == 0x201C or q == 0x201D
                if closed and j + 1 < n and cps[j + 1] == 32 and _is(cps, j + 2, word):
                    end = j + 1
        elif c == 40:
            j = i + 1
            while _blank(cps, j, space):
                j += 1
            if j < n and cps[j] == 41:
                end = j + 1
        elif c != 10 and space[c] and _blank(cps, i + 1, space) and _is(cps, i - 1, word):
            j = i + 1
            while _blank(cps, j, space):
                j += 1
            if _is(cps, j, word):  # (a second blank was seen)
                end = j
        if end:
            count += 1
            i = end
        else:
            i += 1
    return count


@jit(f"UniTuple(int64, 2)({BYTES}, {TABLE}, {TABLE}, boolean, boolean)")
def spacing_counts(buf: Any, word: Any, space: Any, treebank: Any, gaps: Any) -> Any:
    """(``len(quality._TREEBANK.findall(text))``, ``len(quality._GAPS.findall(text))``) of UTF-8 text.

    ``buf`` is a str's UTF-8 (surrogates passed); ``word`` and ``space`` say, per code
    point of the BMP, what ``\\w`` and ``\\s`` match. The patterns are followed branch by
    branch on the text's code points, left to right past each match as ``findall`` goes:
    ~43 us a noisy text where ``re`` took ~230 (the gap pattern's first branch starts
    with a class, so ``re`` tries it at every character).
    (-1, -1) for a text with a character beyond the BMP: the patterns decide. A pattern
    not asked for (``treebank``, ``gaps``: the cues say it cannot match) counts 0.
    """
    n = 0
    cps = np.empty(buf.shape[0], dtype=np.int64)
    i = 0
    while i < buf.shape[0]:
        if buf[i] >= 0xF0:
            return -1, -1
        code, size = bmp_code_point(buf, i)
        cps[n] = code
        n += 1
        i += size
    tb = _treebank_count(cps[:n], word, space) if treebank else 0
    return tb, _gaps_count(cps[:n], word, space) if gaps else 0
