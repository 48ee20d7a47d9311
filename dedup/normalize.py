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

import ftfy

NORMALIZATION_VERSION = 1  # bump when tokens() changes: stored signatures depend on it

HTML_TAG = re.compile(r"<!--.*?-->|</?[a-zA-Z][a-zA-Z0-9]{0,15}(?:\s[^<>]{0,400})?/?>", re.DOTALL)
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

# OCR confusion classes (rn/m, cl/d, 1/l/i/|, 0/o, c/e, u/n, h/b, 5/s): folded so that a
# slip does not break the shingles around it. Both sides fold alike, so clean pairs
# lose nothing; scoring still sees the real tokens.
_OCR_DIGRAPHS = (("rn", "m"), ("cl", "d"), ("vv", "w"))
_OCR_FOLD = str.maketrans(
    {"1": "l", "i": "l", "|": "l", "!": "l", "0": "o", "c": "e", "u": "n", "b": "h", "5": "s"}
)
_REPEATS = re.compile(r"(.)\1+")
_skeletons: dict[str, str] = {}
_NOT = re.compile(r"\s*n['\u2019]t\b")  # "can't" and treebank "ca n't" both -> "ca not"
_WORD = re.compile(r"[^\W_]+")


def repair(text: str) -> str:
    """Undo mojibake (ftfy); ASCII text cannot hold any, so it is returned as is."""
    if text.isascii():
        return text
    return ftfy.fix_encoding(text)


def comparison_text(repaired: str) -> str:
    """Strip markup and boilerplate and fold case: the text shingles are made from.

    Example:
        >>> comparison_text("<p>Trump 's aide ca n&#8217;t go.</p>\\nAdvertisement").split()
        ['trump', "'s", 'aide', 'ca', 'not', 'go.']
    """
    text = HTML_TAG.sub(" ", repaired)
    if "&" in text:
        text = html.unescape(text)
    if "](" in text:
        text = MARKDOWN_LINK.sub(r"\1", text)
    text = BOILERPLATE_LINE.sub("", text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    return _NOT.sub(" not", text)


def skeleton(token: str) -> str:
    """The token with OCR-confusable letters folded together, for matching only.

    Example:
        >>> skeleton("tbe"), skeleton("the"), skeleton("cornmunity") == skeleton("community")
        ('the', 'the', True)
    """
    folded = _skeletons.get(token)
    if folded is None:
        folded = token
        for digraph, letter in _OCR_DIGRAPHS:
            folded = folded.replace(digraph, letter)
        folded = _REPEATS.sub(r"\1", folded.translate(_OCR_FOLD))
        if len(_skeletons) > 1_000_000:
            _skeletons.clear()
        _skeletons[token] = folded
    return folded


def match_tokens(tokens: list[str]) -> list[str]:
    """Tokens as shingles see them: OCR skeletons (see ``skeleton``)."""
    return [skeleton(t) for t in tokens]


def tokens(repaired: str) -> list[str]:
    """Words of the comparison text; punctuation and spacing no longer matter.

    Example:
        >>> tokens("Trump's aide can't go") == tokens("Trump 's aide ca n't go .")
        True
    """
    return _WORD.findall(comparison_text(repaired))
