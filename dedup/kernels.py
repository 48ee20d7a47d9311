"""Compiled (numba) versions of pass 1's per-byte loops; the numpy/regex code stays the reference.

Pass 1 spends most of its time in loops over a document's bytes: token hashes,
the OCR skeleton, shingles, the MinHash signature, and the cheap scans that decide
whether a cleanliness pattern can match at all. Written as plain loops and compiled,
they run 5-10x faster than the array and regex versions and give the same values
bit for bit (``tests/test_kernels.py`` checks every kernel against its reference).
This module holds the matching kernels and the loader; ``quality_kernels`` the scans,
``table_kernels`` the loops over the run's tables.

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

import contextlib
import hashlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
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


def jit(signature: str | None) -> Callable[[Callable[..., Any]], Any]:
    """njit with a disk cache, or without one when numba finds no writable cache directory.

    numba finds a cached kernel stale only when the kernel's own file changed, not
    when a helper it calls from another module did (a checkout that changes
    ``kernels._fmix64`` alone would run ``table_kernels``' old machine code). So each
    kernel's cache entries are keyed by the sources of the compiled helpers it
    calls, whichever module they are in (``_SourcesCache``); a kernel whose helpers'
    sources cannot be read is compiled in memory.

    Without numba the function is returned as it is (and left unused: ``AVAILABLE`` is False).
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        if _NUMBA is None:
            return fn
        dispatcher = _NUMBA.njit(nogil=True)(fn)
        # RuntimeError: "cannot cache function ...: no locator available"; compiled in memory then.
        with contextlib.suppress(RuntimeError):
            dispatcher._cache = _SourcesCache(fn, _helper_sources(fn))
        if signature:  # compiled now, as njit does with a signature
            dispatcher.compile(signature)
            dispatcher.disable_compile()
        return dispatcher

    return decorate


def _helper_sources(fn: Callable[..., Any]) -> str:
    """A digest of the source files of the compiled functions ``fn`` calls by a global name (as
    every kernel here calls its helpers), followed through their calls.

    Raises:
        RuntimeError: a helper's source file cannot be read (numba could not cache it either).
    """
    files: set[str] = set()
    pending = [fn]
    seen: set[Callable[..., Any]] = set()
    while pending:
        current = pending.pop()
        for name in current.__code__.co_names:
            helper = getattr(current.__globals__.get(name), "py_func", None)
            if helper is not None and helper not in seen:
                seen.add(helper)
                files.add(inspect.getfile(helper))
                pending.append(helper)
    digest = hashlib.sha256()
    for path in sorted(files):
        try:
            digest.update(path.encode() + b"\0" + Path(path).read_bytes())
        except OSError as err:
            raise RuntimeError(f"cannot cache: {path}: {err}") from err
    return digest.hexdigest()


if _NUMBA is not None:
    from numba.core.caching import FunctionCache

    class _SourcesCache(FunctionCache):
        """numba's function cache with the helpers' sources in every entry's key."""

        def __init__(self, py_func: Callable[..., Any], sources: str) -> None:
            self._sources = sources
            super().__init__(py_func)

        def _index_key(self, sig: Any, codegen: Any) -> Any:
            return (*super()._index_key(sig, codegen), self._sources)


# Arguments are typed read-only (np.frombuffer of bytes); writable arrays convert to them.
BYTES = "Array(uint8, 1, 'C', readonly=True)"
TABLE = "Array(boolean, 1, 'C', readonly=True)"
U8TABLE = "Array(uint8, 1, 'C', readonly=True)"
U64 = "Array(uint64, 1, 'C', readonly=True)"
U32 = "Array(uint32, 1, 'C', readonly=True)"


@jit(None)
def _fmix64(h: Any) -> Any:
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@jit(None)
def _fmix32(h: Any) -> Any:
    """MurmurHash3's 32-bit finalizer; numba widens uint32 arithmetic, so each product is cut back."""
    h ^= h >> np.uint32(16)
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(13)
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    return np.uint32(h ^ (h >> np.uint32(16)))


@jit(f"uint64[::1]({BYTES}, {TABLE})")
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


@jit(f"uint8[::1]({BYTES}, {TABLE}, {U8TABLE}, Array(uint8, 2, 'C', readonly=True))")
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


@jit(f"uint64[::1]({U64}, int64, {U64})")
def shingle_values(th: Any, k: Any, multipliers: Any) -> Any:
    """fmix64(sum th[i+j] * M[j]) over each window of k token hashes (fewer when the text is
    shorter), in text order with repeats: ``signatures.shingles_of`` sorts them with numpy,
    whose sort beats any this module compiles (8 against 15 us for ~760 shingles)."""
    width = min(k, th.shape[0])
    n = th.shape[0] - width + 1 if th.shape[0] else 0
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        acc = np.uint64(0)
        for j in range(width):
            acc += th[i + j] * multipliers[j]
        out[i] = _fmix64(acc)
    return out


@jit(f"uint32[::1]({U64}, {U32}, {U32})")
def signature(values: Any, a: Any, b: Any) -> Any:
    """``Signer.sign``: min over shingles of a_k * fmix32(low 32 bits) + b_k, modulo 2^32.

    A block of shingles' pre-mixed hashes at a time (32 KB: it stays in cache), one
    permutation at a time over the block: the inner loop is a min over a contiguous
    array, which the compiler vectorises (~25% faster than one shingle at a time
    over the permutations). Repeated values change nothing, so ``values`` need not
    be distinct.
    """
    sig = np.full(a.shape[0], np.uint32(0xFFFFFFFF), dtype=np.uint32)
    mixed = np.empty(min(max(values.shape[0], 1), 8192), dtype=np.uint32)
    for start in range(0, values.shape[0], mixed.shape[0]):
        block = mixed[: min(mixed.shape[0], values.shape[0] - start)]
        for i in range(block.shape[0]):
            block[i] = _fmix32(np.uint32(values[start + i] & np.uint64(0xFFFFFFFF)))
        for p in range(a.shape[0]):
            ap, bp, best = a[p], b[p], sig[p]
            for h in block:
                best = min(best, np.uint32(ap * h + bp))
            sig[p] = best
    return sig


@jit(f"int64({U64}, {U64})")
def shared_count(a: Any, b: Any) -> Any:
    """How many values two sorted arrays of distinct values share: one merge, ~1.3 us for two
    texts of ~700 shingles, where ``np.intersect1d`` sorted them together (~11 us)."""
    i = j = n = 0
    while i < a.shape[0] and j < b.shape[0]:
        x, y = a[i], b[j]
        if x < y:
            i += 1
        elif y < x:
            j += 1
        else:
            n += 1
            i += 1
            j += 1
    return n


@jit(f"int64({U64})")
def distinct_count(values: Any) -> Any:
    """How many distinct values: an open-addressing set, ~4x faster than sorting them.

    A value's slot is the top bits of its product with an odd constant (values alike
    in their high bits spread too); 0 marks a free slot, so a 0 is counted apart.
    """
    bits = 4
    while (1 << bits) < 2 * values.shape[0]:
        bits += 1
    mask, shift = np.uint64((1 << bits) - 1), np.uint64(64 - bits)
    slots = np.zeros(1 << bits, dtype=np.uint64)
    count, zero = 0, 0
    for v in values:
        if v == 0:
            zero = 1
            continue
        h = (v * np.uint64(0x9E3779B97F4A7C15)) >> shift
        while slots[h] != 0 and slots[h] != v:
            h = (h + np.uint64(1)) & mask
        if slots[h] == 0:
            slots[h] = v
            count += 1
    return count + zero


@jit(None)
def _folding_keeps_tokens(word: Any, fold: Any, digraphs: Any) -> Any:
    """Whether folding maps word bytes to word bytes and digraphs are made of word bytes."""
    for c in range(256):
        if word[c] != word[fold[c]]:
            return False
    for d in range(digraphs.shape[0]):
        if not (word[digraphs[d, 0]] and word[digraphs[d, 1]] and word[digraphs[d, 2]]):
            return False
    return True


@jit(None)
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


@jit(f"UniTuple(uint64[::1], 2)({BYTES}, {TABLE}, {U8TABLE}, Array(uint8, 2, 'C', readonly=True))")
def token_and_skeleton_hashes(buf: Any, word: Any, fold: Any, digraphs: Any) -> Any:
    """(``token_hashes(buf)``, ``token_hashes(skeleton(buf))``): one pass over the bytes when
    folding keeps every word byte a word byte (it does: tokens then have the same bounds in
    both); otherwise the skeleton is built first."""
    if _folding_keeps_tokens(word, fold, digraphs):
        return _both_token_hashes(buf, word, fold, digraphs)
    return token_hashes(buf, word), token_hashes(skeleton(buf, word, fold, digraphs), word)


@jit(
    f"Tuple((uint64[::1], int64, uint32[::1]))({BYTES}, {TABLE}, {U8TABLE}, "
    f"Array(uint8, 2, 'C', readonly=True), int64, {U64}, {U32}, {U32})"
)
def fingerprint(
    buf: Any, word: Any, fold: Any, digraphs: Any, k: Any, multipliers: Any, a: Any, b: Any
) -> Any:
    """Pass 1 in one call: (token hashes, distinct skeleton shingle count, signature)."""
    hashes, folded = token_and_skeleton_hashes(buf, word, fold, digraphs)
    if folded.shape[0] == 0:
        return hashes, 0, signature(folded, a, b)
    values = shingle_values(folded, k, multipliers)  # the signature and count need no sorting
    return hashes, distinct_count(values), signature(values, a, b)


@jit(None)
def bmp_code_point(buf: Any, i: Any) -> Any:
    r"""(code point, bytes) of the UTF-8 sequence at ``buf[i]`` (surrogates passed); its lead byte is
    below 0xF0: a character of the BMP. The compiled scans that follow ``\w`` or ``\s`` on a
    str's UTF-8 decode it here."""
    b = np.int64(buf[i])
    if b < 0x80:
        return b, 1
    size = 3 if b >= 0xE0 else 2
    code = b & (0x0F if size == 3 else 0x1F)
    for k in range(1, size):
        code = (code << 6) | (np.int64(buf[i + k]) & 0x3F)
    return code, size


@jit(f"Tuple((Array(uint8, 1, 'C'), boolean))({BYTES}, {TABLE})")
def separated(buf: Any, word: Any) -> Any:
    """``normalize.token_bytes`` of a text's UTF-8 bytes (surrogates passed): each run of non-ASCII
    characters that are not word characters (``word``, one flag a code point of the BMP) made one
    space. (bytes, True), or False where a character is beyond the BMP (the caller asks the pattern).
    """
    out = np.empty(buf.shape[0], dtype=np.uint8)
    n, i, run = 0, 0, False
    while i < buf.shape[0]:
        b = np.int64(buf[i])
        if b < 0x80:
            out[n] = b
            n, i, run = n + 1, i + 1, False
            continue
        if b >= 0xF0:
            return out[:0], False
        code, size = bmp_code_point(buf, i)
        if word[code]:
            out[n : n + size] = buf[i : i + size]
            n, run = n + size, False
        elif not run:
            out[n] = 32
            n, run = n + 1, True
        i += size
    return out[:n], True


def warm() -> bool:
    """Whether compiled kernels are in use; importing the kernel modules already compiled them.

    Call it in a parent process before forking workers, so that the workers inherit
    compiled code instead of each compiling or loading it.
    """
    from dedup import quality_kernels, table_kernels  # noqa: F401  (compiled on import)

    return AVAILABLE
