"""Text -> comparison tokens, with formatting noise removed.

Two copies of one article should give the same tokens whatever the scraper did to
their formatting: mojibake, HTML tags and entities, markdown links, curly quotes,
Penn-Treebank spacing (``ca n't``, ``Trump 's``, ``word ,``), joined paragraphs,
case, and site boilerplate lines. What normalisation cannot undo (dropped words,
OCR slips, substituted phrases) is left for containment to absorb.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence

import ftfy
import numpy as np
import xxhash

from dedup import kernels, mojibake

NORMALIZATION_VERSION = 3  # bump when tokens() change: stored signatures depend on them (3: invisible marks)
# Recorded in the scheme stamp: version 2 made every character of these scripts a token.
TOKENISATION = "words; overlapping character bigrams in Han, kana, Thai, Lao, Khmer and Myanmar runs"

# A comment's body stops at the next "<!--": without that, each of many unclosed
# "<!--" would scan to the end of the text (quadratic time; 65 s at 280 KB).
HTML_TAG = re.compile(
    r"<!--(?:[^<-]++|<(?!!--)|-(?!->))*+-->|</?[a-zA-Z][a-zA-Z0-9]{0,15}(?:\s[^<>]{0,400})?/?>"
)
HTML_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,10});")
MARKDOWN_LINK = re.compile(r"!?\[([^\[\]\n]{0,300})\]\([^()\s]{0,500}\)")

# A short line that is site furniture rather than article text. Kept generic on
# purpose (phrases seen on news sites), not a list of one generator's strings.
_BOILERPLATE_PHRASES = (
    r"advertisement|advertising|sponsored( content)?|promoted( stories)?"
    r"|subscribe|newsletter|sign up|log ?in|register now|create an account"
    r"|cookies?|privacy policy|terms of (use|service)|all rights reserved|copyright|\u00a9"
    r"|share (this|on)|follow us|like us on|tweet this|email this|print this"
    r"|read more|related( articles| stories| coverage)?:?|more from|recommended|most (popular|read)"
    r"|trending|click here|continue reading|skip to( main)? content|back to top|listen to this"
    r"|image (copyright|caption|source)|photo credit|getty images|watch:|video:"
)
BOILERPLATE_LINE = re.compile(
    rf"^[^\S\n]*(?=[^\n]{{0,100}}$)(?:[^\n]*\b(?:{_BOILERPLATE_PHRASES})\b[^\n]*"
    r"|(?:[^\n|\u00bb\u203a]{1,25}[|\u00bb\u203a]){2,}[^\n|\u00bb\u203a]{1,25})[^\S\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
_BOILERPLATE_MAX = 100  # the pattern's line-length limit, after leading space
_BOILERPLATE_ONE = re.compile(BOILERPLATE_LINE.pattern, re.IGNORECASE)  # one line at a time
_BOILERPLATE_LOWER = re.compile(BOILERPLATE_LINE.pattern)  # an ASCII line, lowered

# OCR confusion classes (rn/m, cl/d, vv/w, 1/l/i, 0/o, c/e, u/n, h/b, 5/s, doubled
# letters): folded so that a slip does not break the shingles around it. Both sides
# fold alike, so clean pairs lose nothing; scoring still sees the real tokens.
_OCR_DIGRAPHS = ((b"rn", b"m"), (b"cl", b"d"), (b"vv", b"w"))
_OCR_FOLD = bytes.maketrans(b"1i0cub5", b"lloenhs")
# The same folding as arrays, for the compiled skeleton (dedup/kernels.py).
OCR_FOLD_TABLE = np.frombuffer(_OCR_FOLD, dtype=np.uint8)
OCR_DIGRAPH_TABLE = np.array([[a[0], a[1], b[0]] for a, b in _OCR_DIGRAPHS], dtype=np.uint8)
_MOJIBAKE_MARK = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_NOT = re.compile(r"n['\u2019]t\b")  # "can't" and treebank "ca n't" both -> "ca not"
_WORD = re.compile(r"[^\W_]+")
_NON_ASCII_SEPARATORS = re.compile(r"[^\x00-\x7f\w]+")


def _bmp_table(outside: str) -> np.ndarray:
    """One flag per code point of the BMP: False where the pattern ``outside`` matches it."""
    kept = re.sub(outside, "\0", "".join(map(chr, range(1 << 16))))
    return np.frombuffer(kept.encode("utf-32-le", "surrogatepass"), np.uint32) != 0


# Which characters of the BMP the patterns' \w (and \s) match, as the compiled scans read them.
WORD_BMP = _bmp_table(r"\W")
SPACE_BMP = _bmp_table(r"\S")
# Scripts written without spaces between words: a clause would be one "word", and one
# slipped character would break every shingle of it. Runs of them become overlapping
# character bigrams instead (as CJK search analysers do): a k-shingle then spans k + 1
# characters, a slip changes at most k + 1 shingles, and a bigram's corpus frequency
# tells a slip from the right character where a single character's cannot.
UNSPACED_RANGES = (  # Thai and Lao, Myanmar, Khmer, kana, CJK (ideographs and their extensions)
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x3040, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3134F),
)
_UNSPACED = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in UNSPACED_RANGES) + "]+")
# The UTF-8 lead bytes of those ranges (a lead byte holds a code point's top bits: one per 64
# code points is enough): looked for in bytes first, as the character class costs ~9 ns a
# character of a text without any (38 against 12 us at 4 KB).
_UNSPACED_LEADS = re.compile(
    b"["
    + b"".join(
        re.escape(bytes([lead]))
        for lead in sorted(
            {chr(c).encode()[0] for lo, hi in UNSPACED_RANGES for c in [*range(lo, hi, 64), hi]}
        )
    )
    + b"]"
)


def has_unspaced(text: str) -> bool:
    """Whether ``text`` holds a character of a script written without spaces (then ``spaced_words``
    may drop some of its tokens; without one, it keeps them all).

    Example:
        >>> has_unspaced("caf\u00e9 \u2014 ok"), has_unspaced("q3 \u6771\u4eac")
        (False, True)
    """
    return bool(_UNSPACED_LEADS.search(text.encode("utf-8", "surrogatepass")) and _UNSPACED.search(text))


def spaced_flags(data: bytes, count: int) -> np.ndarray:
    """``is_spaced`` of the first ``count`` tokens of ``token_bytes`` data, from the code point each
    starts with (a token made of an unspaced run is one of its bigrams: ``comparison``), in numpy.

    Example:
        >>> spaced_flags(token_bytes("q3 \u6771\u4eac caf\u00e9"), 3).tolist()
        [True, False, True]
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    word = WORD_BYTE[buf]
    starts = np.flatnonzero(word & ~np.concatenate(([False], word[:-1])))[:count]
    after = np.concatenate((buf, np.zeros(3, dtype=np.uint8))).astype(np.int64)
    lead, *more = (after[starts + k] for k in range(4))
    # A token starts with ASCII or a UTF-8 lead byte; two bytes are below every range.
    three = ((lead & 0x0F) << 12) | ((more[0] & 0x3F) << 6) | (more[1] & 0x3F)
    four = ((lead & 0x07) << 18) | ((more[0] & 0x3F) << 12) | ((more[1] & 0x3F) << 6) | (more[2] & 0x3F)
    code = np.where(lead >= 0xF0, four, np.where(lead >= 0xE0, three, 0))
    unspaced = np.zeros(len(starts), dtype=bool)
    for lo, hi in UNSPACED_RANGES:
        unspaced |= (code >= lo) & (code <= hi)
    return ~unspaced


def spaced_words(tokens: Sequence[str]) -> Sequence[str]:
    """The tokens that are words of space-delimited scripts (not bigrams of a CJK or Thai run).

    Example:
        >>> spaced_words(["東京", "京の", "q3", "café"])
        ['q3', 'café']
    """
    if all(t.isascii() for t in tokens):
        return tokens
    return [t for t in tokens if not _UNSPACED.match(t)]


def is_spaced(token: str) -> bool:
    """Whether ``spaced_words`` keeps this token."""
    return token.isascii() or not _UNSPACED.match(token)


def _bigrams(run: re.Match[str]) -> str:
    chars = run.group()
    return " " + " ".join(chars[i : i + 2] for i in range(max(1, len(chars) - 1))) + " "


# Bytes that make up tokens: what [^\W_] matches in ASCII, and every byte of a
# non-ASCII character (token_bytes only lets letters through there).
WORD_BYTE = np.zeros(256, dtype=bool)
for _lo, _hi in ((b"0", b"9"), (b"a", b"z"), (b"A", b"Z")):
    WORD_BYTE[ord(_lo) : ord(_hi) + 1] = True
WORD_BYTE[0x80:] = True


RepairPlan = tuple[tuple[str, str], ...]  # ftfy's steps: ("encode", "sloppy-windows-1252"), ...


def repair(text: str, plan: RepairPlan | None = None) -> str:
    """Undo mojibake (ftfy).

    ftfy is only asked when the text has the mark of UTF-8 read as cp1252 or
    latin-1 (a lead byte like ``Ã`` or ``â`` followed by a continuation-range
    character): most text has none, and asking costs ~1 ms per document. With
    the ``plan`` that ``repair_planned`` found for this text, its steps are
    replayed without searching again (pass 2 re-reads texts pass 1 repaired).

    Example:
        >>> repair("The mayor\\u00e2\\u20ac\\u2122s caf\\u00c3\\u00a9") == "The mayor\\u2019s caf\\u00e9"
        True
        >>> repair("na\\u00efve caf\\u00e9")  # real accents are left alone
        'naïve café'
    """
    if plan is not None:
        return ftfy.apply_plan(text, list(plan)) if plan else text
    return repair_planned(text)[0]


def repair_planned(text: str) -> tuple[str, RepairPlan | None]:
    """``repair``, and the steps ftfy took (``None`` when ftfy was not asked).

    Example:
        >>> repair_planned("caf\\u00c3\\u00a9")
        ('café', (('encode', 'latin-1'), ('decode', 'utf-8')))
    """
    if text.isascii() or not _MOJIBAKE_MARK.search(text):
        return text, None
    fixed, plan = mojibake.fix_encoding_and_explain(text)
    return fixed, tuple((step, name) for step, name in plan)


def strip_boilerplate(text: str) -> tuple[str, int]:
    """``text`` with its boilerplate lines emptied, and how many there were.

    The same as ``BOILERPLATE_LINE.subn("", text)``, ~5x faster: the regex engine
    tries ``^`` at every character, while only short lines (or lines with leading
    space) can match, and most lines of an article are long paragraphs.

    Example:
        >>> strip_boilerplate("Storm hits coast.\\nAdvertisement\\nPower is out.")
        ('Storm hits coast.\\n\\nPower is out.', 1)
    """
    lines = text.split("\n")
    # ASCII lines are lowered and matched case-sensitively: the same lines, ~30% faster.
    ascii_only = text.isascii()
    found = 0
    for k, line in enumerate(lines):
        if (
            line
            and (len(line) <= _BOILERPLATE_MAX or line[:1].isspace())
            and (
                _BOILERPLATE_LOWER.fullmatch(line.lower()) if ascii_only else _BOILERPLATE_ONE.fullmatch(line)
            )
        ):
            lines[k] = ""
            found += 1
    return ("\n".join(lines), found) if found else (text, 0)


def comparison_text(repaired: str) -> str:
    """Strip markup and boilerplate and fold case: the text shingles are made from.

    Example:
        >>> comparison_text("<p>Trump 's aide ca n&#8217;t go.</p>\\nAdvertisement").split()
        ['trump', "'s", 'aide', 'ca', 'not', 'go.']
    """
    return comparison(repaired)[0]


def comparison(repaired: str) -> tuple[str, int | None]:
    """``comparison_text``, and ``strip_boilerplate(repaired)``'s count when it came for free.

    Most texts have no markup: boilerplate lines are then stripped from
    ``repaired`` itself, and pass 1's quality signals need not count them again
    (~20 us a document). ``None`` when markup was removed first.

    Example:
        >>> comparison("Storm hits.\\nAdvertisement")
        ('storm hits.\\n', 1)
    """
    tags, entities, links = "<" in repaired, "&" in repaired, has_link(repaired)  # each looked for once
    text = HTML_TAG.sub(" ", repaired) if tags else repaired
    if entities and "&" in text:
        text = unescape(text)
    if (links or entities) and has_link(text):  # (an entity may have been a bracket)
        text = MARKDOWN_LINK.sub(r"\1", text)
    text, found = strip_boilerplate(text)
    if not text.isascii():
        text = _INVISIBLE.sub("", text)  # (the text itself back when none is found: no copy)
        text = unicodedata.normalize("NFKC", text)
        if has_unspaced(text):
            text = _UNSPACED.sub(_bigrams, text)
    text = text.casefold()
    if "n't" in text or "n\u2019t" in text:
        text = _NOT.sub(" not", text)
    return text, None if tags or entities or links else found  # with markup, the count was of other text


def unescape(text: str) -> str:
    """``html.unescape``, for any text: it reads a decimal reference with ``int()``, which refuses over
    4,300 digits (a ValueError that crashed the run). A reference of 8 or more digits, less its
    leading zeros, is past U+10FFFF, which ``html.unescape`` makes U+FFFD: made here first.

    Example:
        >>> unescape("a &amp; b &#" + "9" * 5000 + "; &#00000000065;") == "a & b \ufffd A"
        True
    """
    if "&#" in text:
        text = _LONG_REFERENCE.sub(_shortened, text)
    return html.unescape(text)


_LONG_REFERENCE = re.compile(r"&#([0-9]{8,});?")


def _shortened(match: re.Match[str]) -> str:
    digits = match.group(1).lstrip("0") or "0"
    return "\ufffd" if len(digits) > 7 else f"&#{digits};"


# Characters that show nothing and split nothing: a soft hyphen (hyphenation plugins put one in
# every long word, ``&shy;``), zero-width spaces and joiners, the word joiner, a byte-order mark.
# As \W they cut a word in two, and a copy full of them shared ~10% of the clean copy's shingles.
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def has_link(text: str) -> bool:
    """Whether ``text`` holds ``](``, as a markdown link does: ``]`` first, one ``memchr`` (~0.2 us a
    4 KB text, where a two-character search takes ~4; most texts have no ``]``).

    Example:
        >>> has_link("see [the report](https://example.org)"), has_link("a [note] (b)")
        (True, False)
    """
    return "]" in text and "](" in text


LINE_MAX = 200  # site furniture is short; a long line is a paragraph of some article


def line_keys(comparison: str) -> np.ndarray:
    """Hashes of the distinct short lines of a comparison text, for the corpus line frequencies.

    A line that many unrelated documents share (navigation, an ad label, a
    copyright line) is site furniture whatever its language; counting lines across
    the corpus finds it where the English phrase list cannot.

    Example:
        >>> len(line_keys("home | news\\n\\nthe storm hit.\\nhome | news"))
        2
    """
    lines = dict.fromkeys(line.strip() for line in comparison.split("\n"))
    keys = [
        xxhash.xxh3_64_intdigest(line.encode("utf-8", "surrogatepass"))
        for line in lines
        if 0 < len(line) <= LINE_MAX
    ]
    return np.array(keys, dtype=np.uint64)


def without_lines(comparison: str, keys: set[int]) -> str:
    """``comparison`` without the lines whose ``line_keys`` are in ``keys``.

    Example:
        >>> text = "home | news\\nthe storm hit.\\nhome | news"
        >>> without_lines(text, set(line_keys("home | news").tolist()))
        'the storm hit.'
    """
    kept = [
        line
        for line in comparison.split("\n")
        if xxhash.xxh3_64_intdigest(line.strip().encode("utf-8", "surrogatepass")) not in keys
    ]
    return "\n".join(kept)


def token_bytes(comparison: str) -> bytes:
    """The tokens of a comparison text as bytes, separated by non-word bytes.

    ASCII punctuation and spaces already separate the same tokens ``tokens``
    finds; non-ASCII characters that are not letters or digits (a curly quote, a
    dash) become spaces, so that they never count as part of a word. (3x faster
    than ``findall`` and join on the texts that need it.)

    Example:
        >>> token_bytes("trump\\u2019s caf\\u00e9 \\u2014 ok")
        b'trump s caf\\xc3\\xa9   ok'
    """
    if comparison.isascii():
        return comparison.encode("ascii")
    if kernels.AVAILABLE:  # the pattern's character classes cost ~40 us a 4 KB text, the kernel ~6
        data, whole = kernels.separated(
            np.frombuffer(comparison.encode("utf-8", "surrogatepass"), np.uint8), WORD_BMP
        )
        if whole:
            return data.tobytes()
    return _NON_ASCII_SEPARATORS.sub(" ", comparison).encode("utf-8")


def skeleton_bytes(data: bytes, *, compiled: bool = True) -> np.ndarray:
    """``token_bytes`` with OCR-confusable letters folded together, for matching only.

    ``compiled=False`` runs the reference the compiled kernel is tested against.

    Example:
        >>> bytes(skeleton_bytes(b"tbe cornmunity wou1d")) == bytes(skeleton_bytes(b"the community would"))
        True
    """
    if compiled and kernels.AVAILABLE:
        return kernels.skeleton(
            np.frombuffer(data, dtype=np.uint8), WORD_BYTE, OCR_FOLD_TABLE, OCR_DIGRAPH_TABLE
        )
    for digraph, letter in _OCR_DIGRAPHS:
        data = data.replace(digraph, letter)
    folded = np.frombuffer(data.translate(_OCR_FOLD), dtype=np.uint8)
    if len(folded) < 2:
        return folded
    keep = np.ones(len(folded), dtype=bool)
    keep[1:] = (folded[1:] != folded[:-1]) | ~WORD_BYTE[folded[1:]]
    return folded[keep]


def words(comparison: str) -> list[str]:
    """The tokens of a comparison text (``tokens`` of a text already through ``comparison_text``)."""
    return _WORD.findall(comparison)


def tokens(repaired: str) -> list[str]:
    """Words of the comparison text; punctuation and spacing no longer matter.

    Example:
        >>> tokens("Trump's aide can't go") == tokens("Trump 's aide ca n't go .")
        True
        >>> tokens("東京の天気はQ3 OK")
        ['東京', '京の', 'の天', '天気', '気は', 'q3', 'ok']
    """
    return words(comparison_text(repaired))
