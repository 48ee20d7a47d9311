"""Compiled (numba) versions of pass 1's per-byte loops; the numpy/regex code stays the reference.

Pass 1 spends most of its time in loops over a document's bytes: token hashes,
the OCR skeleton, shingles, the MinHash signature, and the cheap scans that decide
whether a cleanliness pattern can match at all. Written as plain loops and compiled,
they run 5-10x faster than the array and regex versions and give the same values
bit for bit (``tests/test_kernels.py`` checks every kernel against its reference).

The kernels are compiled when this module is imported, with explicit signatures,
so that a parent process compiles them once before it forks its workers. Compiled
code is cached on disk (numba's ``cache=True``): next to this file when its
``__pycache__`` is writable, else in the user's cache directory
(``~/.cache/numba``), or wherever ``NUMBA_CACHE_DIR`` says. When no cache
location is writable the kernels are compiled in memory on every run; when numba
cannot be imported, or ``DEDUP_KERNELS=0`` is set, ``AVAILABLE`` is False and
callers use the reference code. Every kernel takes the lookup tables it depends on
(``normalize.WORD_BYTE`` and the like) as arguments, so they follow any change there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np


def _load_numba() -> Any:
    """The numba module, or None when it cannot be imported or DEDUP_KERNELS=0 asks for the reference."""
    if os.environ.get("DEDUP_KERNELS", "1") == "0":
        return None
    try:
        import numba
    except ImportError:  # pragma: no cover - the reference path is tested with DEDUP_KERNELS=0
        return None
    return numba


_NUMBA = _load_numba()
AVAILABLE = _NUMBA is not None


def _compile(signature: str | None) -> Callable[[Callable[..., Any]], Any]:
    """njit with a disk cache, or without one when numba finds no writable cache directory."""

    def decorate(fn: Callable[..., Any]) -> Any:
        if _NUMBA is None:
            return fn
        args = (signature,) if signature else ()
        try:
            return _NUMBA.njit(*args, cache=True, nogil=True)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return _NUMBA.njit(*args, nogil=True)(fn)

    return decorate


# Arguments are typed read-only (np.frombuffer of bytes); writable arrays convert to them.
_BYTES = "Array(uint8, 1, 'C', readonly=True)"
_TABLE = "Array(boolean, 1, 'C', readonly=True)"
_U8TABLE = "Array(uint8, 1, 'C', readonly=True)"
_U64 = "Array(uint64, 1, 'C', readonly=True)"
_U32 = "Array(uint32, 1, 'C', readonly=True)"


@_compile(None)
def _fmix64(h: Any) -> Any:
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@_compile(None)
def _fmix32(h: Any) -> Any:
    """MurmurHash3's 32-bit finalizer; numba widens uint32 arithmetic, so each product is cut back."""
    h ^= h >> np.uint32(16)
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(13)
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    return np.uint32(h ^ (h >> np.uint32(16)))


@_compile(f"uint64[::1]({_BYTES}, {_TABLE})")
def token_hashes(buf: Any, word: Any) -> Any:
    """``signatures.hash_token_bytes``: sum(b_j+1 * P^j) per run of word bytes, length mixed in, fmix64."""
    n = buf.shape[0]
    out = np.empty(n // 2 + 1, dtype=np.uint64)
    count = 0
    i = 0
    while i < n:
        if not word[buf[i]]:
            i += 1
            continue
        start = i
        h = np.uint64(0)
        power = np.uint64(1)
        while i < n and word[buf[i]]:
            h += (np.uint64(buf[i]) + np.uint64(1)) * power
            power *= np.uint64(0x9E3779B97F4A7C15)
            i += 1
        out[count] = _fmix64(h ^ (np.uint64(i - start) << np.uint64(56)))
        count += 1
    return out[:count].copy()


@_compile(f"uint8[::1]({_BYTES}, {_TABLE}, {_U8TABLE}, Array(uint8, 2, 'C', readonly=True))")
def skeleton(buf: Any, word: Any, fold: Any, digraphs: Any) -> Any:
    """``normalize.skeleton_bytes``: digraphs replaced left to right, bytes folded, doubled word bytes cut.

    One left-to-right pass gives what replacing each digraph in turn gives because
    no two digraphs share a letter (tests check it against the reference).
    """
    second = np.zeros(256, dtype=np.int64)  # first letter -> second letter + 1 (0: starts no digraph)
    replace = np.zeros(256, dtype=np.uint8)
    for d in range(digraphs.shape[0]):
        second[digraphs[d, 0]] = np.int64(digraphs[d, 1]) + 1
        replace[digraphs[d, 0]] = digraphs[d, 2]
    n = buf.shape[0]
    out = np.empty(n, dtype=np.uint8)
    m = 0
    i = 0
    while i < n:
        c = buf[i]
        i += 1
        if second[c] and i < n and np.int64(buf[i]) + 1 == second[c]:
            c = replace[c]
            i += 1
        c = fold[c]
        if m > 0 and word[c] and out[m - 1] == c:
            continue
        out[m] = c
        m += 1
    return out[:m].copy()


@_compile(None)
def _shingle_values(th: Any, k: Any, multipliers: Any) -> Any:
    width = min(k, th.shape[0])
    n = th.shape[0] - width + 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        acc = np.uint64(0)
        for j in range(width):
            acc += th[i + j] * multipliers[j]
        out[i] = _fmix64(acc)
    return out


@_compile(None)
def _sorted_distinct(values: Any) -> Any:
    """Sorted distinct values: one counting pass on the top bits, then insertion sort within buckets.

    Shingle hashes are fmix64 outputs, so the top bits spread them evenly and each
    bucket holds a few values; a crowded bucket (many equal values) falls back to
    ``np.sort``, which numba runs slower than this on the usual input.
    """
    n = values.shape[0]
    if n == 0:
        return values.copy()
    bits = 1
    while (1 << bits) < n:
        bits += 1
    shift = np.uint64(64 - bits)
    counts = np.zeros((1 << bits) + 1, dtype=np.int64)
    for v in values:
        counts[np.int64(v >> shift) + 1] += 1
    crowded = False
    for b in range(1 << bits):
        if counts[b + 1] > 32:
            crowded = True
        counts[b + 1] += counts[b]
    if crowded:
        ordered = np.sort(values)
    else:
        ordered = np.empty(n, dtype=np.uint64)
        for v in values:
            bucket = np.int64(v >> shift)
            ordered[counts[bucket]] = v
            counts[bucket] += 1
        for i in range(1, n):
            v = ordered[i]
            j = i - 1
            while j >= 0 and ordered[j] > v:
                ordered[j + 1] = ordered[j]
                j -= 1
            ordered[j + 1] = v
    m = 1
    for i in range(1, n):
        if ordered[i] != ordered[m - 1]:
            ordered[m] = ordered[i]
            m += 1
    return ordered[:m].copy()


@_compile(f"uint64[::1]({_U64}, int64, {_U64})")
def shingles(th: Any, k: Any, multipliers: Any) -> Any:
    """``signatures.shingles_of``: sorted distinct fmix64(sum th[i+j] * M[j]) over windows of k."""
    if th.shape[0] == 0:
        return np.empty(0, dtype=np.uint64)
    return _sorted_distinct(_shingle_values(th, k, multipliers))


@_compile(f"uint32[::1]({_U64}, {_U32}, {_U32})")
def signature(values: Any, a: Any, b: Any) -> Any:
    """``Signer.sign``: min over shingles of a_k * fmix32(low 32 bits) + b_k, modulo 2^32."""
    sig = np.full(a.shape[0], np.uint32(0xFFFFFFFF), dtype=np.uint32)
    for v in values:
        h = _fmix32(np.uint32(v & np.uint64(0xFFFFFFFF)))
        for p in range(a.shape[0]):
            x = np.uint32(a[p] * h + b[p])
            if x < sig[p]:
                sig[p] = x
    return sig


@_compile(None)
def _folding_keeps_tokens(word: Any, fold: Any, digraphs: Any) -> Any:
    """Whether folding maps word bytes to word bytes and digraphs are made of word bytes."""
    for c in range(256):
        if word[c] != word[fold[c]]:
            return False
    for d in range(digraphs.shape[0]):
        if not (word[digraphs[d, 0]] and word[digraphs[d, 1]] and word[digraphs[d, 2]]):
            return False
    return True


@_compile(None)
def _both_token_hashes(buf: Any, word: Any, fold: Any, digraphs: Any) -> Any:
    """(``token_hashes(buf)``, ``token_hashes(skeleton(buf))``) in one pass over the bytes.

    A token's skeleton is folded from its own bytes only (no digraph or doubled
    letter crosses a non-word byte), so each token is hashed both ways at once.
    """
    second = np.zeros(256, dtype=np.int64)
    replace = np.zeros(256, dtype=np.uint8)
    for d in range(digraphs.shape[0]):
        second[digraphs[d, 0]] = np.int64(digraphs[d, 1]) + 1
        replace[digraphs[d, 0]] = digraphs[d, 2]
    n = buf.shape[0]
    plain = np.empty(n // 2 + 1, dtype=np.uint64)
    folded = np.empty(n // 2 + 1, dtype=np.uint64)
    count = 0
    i = 0
    while i < n:
        if not word[buf[i]]:
            i += 1
            continue
        start = i
        h = np.uint64(0)
        power = np.uint64(1)
        g = np.uint64(0)
        gpower = np.uint64(1)
        length = 0
        prev = -1
        while i < n and word[buf[i]]:
            c = buf[i]
            h += (np.uint64(c) + np.uint64(1)) * power
            power *= np.uint64(0x9E3779B97F4A7C15)
            i += 1
            if second[c] and i < n and np.int64(buf[i]) + 1 == second[c]:
                h += (np.uint64(buf[i]) + np.uint64(1)) * power
                power *= np.uint64(0x9E3779B97F4A7C15)
                i += 1
                c = replace[c]
            c = fold[c]
            if c != prev:
                g += (np.uint64(c) + np.uint64(1)) * gpower
                gpower *= np.uint64(0x9E3779B97F4A7C15)
                length += 1
                prev = c
        plain[count] = _fmix64(h ^ (np.uint64(i - start) << np.uint64(56)))
        folded[count] = _fmix64(g ^ (np.uint64(length) << np.uint64(56)))
        count += 1
    return plain[:count].copy(), folded[:count].copy()


@_compile(
    f"Tuple((uint64[::1], int64, uint32[::1]))({_BYTES}, {_TABLE}, {_U8TABLE}, "
    f"Array(uint8, 2, 'C', readonly=True), int64, {_U64}, {_U32}, {_U32})"
)
def fingerprint(
    buf: Any, word: Any, fold: Any, digraphs: Any, k: Any, multipliers: Any, a: Any, b: Any
) -> Any:
    """Pass 1 in one call: (token hashes, distinct skeleton shingle count, signature).

    Plain and folded token hashes come from one pass over the bytes when folding
    keeps every word byte a word byte (it does: tokens then have the same bounds in
    both); otherwise the skeleton is built first, as ``skeleton`` does.
    """
    if _folding_keeps_tokens(word, fold, digraphs):
        hashes, folded = _both_token_hashes(buf, word, fold, digraphs)
    else:
        hashes = token_hashes(buf, word)
        folded = token_hashes(skeleton(buf, word, fold, digraphs), word)
    if folded.shape[0] == 0:
        return hashes, 0, signature(folded, a, b)
    values = _sorted_distinct(_shingle_values(folded, k, multipliers))
    return hashes, values.shape[0], signature(values, a, b)


@_compile(None)
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


@_compile(f"UniTuple(int64, 3)({_BYTES}, {_TABLE})")
def raw_scan(buf: Any, after_space: Any) -> Any:
    """(``len(text.split())``, treebank spacing possible, gaps possible) of UTF-8 text, one pass.

    The two cues are ``quality._spacing_cues``: a space before punctuation or after
    an opening bracket, ````` or ``''``, `` n'``, or two spaces, ``" "``, ``()``.
    """
    special = np.zeros(256, dtype=np.bool_)  # bytes that may start a space or a cue; others are word bytes
    for c in (9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 34, 39, 40, 91, 96, 0xC2, 0xE1, 0xE2, 0xE3):
        special[c] = True
    n = buf.shape[0]
    words = 0
    treebank = 0
    gaps = 0
    inside = False
    i = 0
    while i < n:
        c = buf[i]
        if not special[c]:
            if not inside:
                words += 1
                inside = True
            i += 1
            continue
        if i + 1 < n:
            d = buf[i + 1]
            if c == 32:
                if after_space[d]:
                    treebank = 1
                elif d == 32:
                    gaps = 1
                elif d == 110 and i + 2 < n:  # " n'" or " n\u2019"
                    e = buf[i + 2]
                    if e == 39 or (e == 0xE2 and i + 4 < n and buf[i + 3] == 0x80 and buf[i + 4] == 0x99):
                        treebank = 1
            elif c == 40 or c == 91:
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
            inside = False
            i += space
            continue
        if not inside:
            words += 1
            inside = True
        i += 1
    return words, treebank, gaps


@_compile(f"int64({_BYTES})")
def ocr_mix(buf: Any) -> Any:
    """Count of ``quality._OCR_MIX`` matches (``wou1d``, ``0ne11``) in lower-case UTF-8 text, or -1.

    A match is a whole word of ASCII letters and digits shaped letters-digits-letters
    or digits-letters(2+)-digits. -1 when such a word touches a non-ASCII character:
    whether that character is a word character (so no match) is the regex's call.
    """
    n = buf.shape[0]
    count = 0
    i = 0
    while i < n:
        c = buf[i]
        alnum = (97 <= c <= 122) or (48 <= c <= 57) or (65 <= c <= 90) or c == 95
        if not alnum:
            i += 1
            continue
        start = i
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


@_compile(
    f"int64({_BYTES}, Array(uint8, 2, 'C', readonly=True), {_U64}, Array(boolean, 2, 'C', readonly=True))"
)
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


def warm() -> bool:
    """Whether compiled kernels are in use; importing this module already compiled them.

    Call it (or import this module) in a parent process before forking workers, so
    that the workers inherit compiled code instead of each compiling or loading it.
    """
    return AVAILABLE
