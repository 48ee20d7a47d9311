"""HTML page -> the article's title and main text; the site template never becomes tokens.

A scraped page is mostly template: style and script blocks, navigation, a cookie
banner, "most read" lists, a legal footer. Matching or scoring the whole page
made every page of a site one cluster. resiliparse's main-content extractor does
the work (measured against trafilatura and selectolax in the README: as clean as
trafilatura at a tenth of its cost); dedup only adds the headline from ``<title>``
when the main text does not already start with it.
"""

from __future__ import annotations

import re

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

# Deeper than any article page (their DOMs nest tens of levels, rarely hundreds): a CSS selector
# that matches an element nested this deep, checked by lexbor in C (0.2-2 ms a page).
MAX_DEPTH = 1000
_NESTED = " > ".join(["*"] * MAX_DEPTH)

# "Headline | Site", "Headline - Site", "Site: Headline": the headline is the longest part.
_TITLE_PARTS = re.compile(r"\s+[|\u2013\u2014\u00b7\u00bb-]\s+|:\s+")


def headline(title: str) -> str:
    """The article's headline in a page title, without the site's name.

    Example:
        >>> headline("Storm hits the coast | Daily Site")
        'Storm hits the coast'
    """
    parts = [p.strip() for p in _TITLE_PARTS.split(title) if p.strip()]
    return max(parts, key=len) if parts else ""


def main_text(html: str) -> str:
    """The headline and main content of an HTML page, as plain text with paragraphs on their own lines.

    Falls back to all visible text when no main content is found (a page that is
    only a list, say), and gives ``""`` for a page with no text at all.

    Example:
        >>> page = (
        ...     "<html><head><title>Storm hits | Site</title><script>var x;</script></head>"
        ...     "<body><nav><a href=/>Home</a></nav><article><p>The storm hit the coast.</p>"
        ...     "<p>Power is out.</p></article><footer>All rights reserved.</footer></body></html>"
        ... )
        >>> print(main_text(page))
        Storm hits
        The storm hit the coast.
        <BLANKLINE>
        Power is out.
    """
    tree = HTMLTree.parse(html)
    body = ""
    if not _too_deep(html, tree):
        body = extract_plain_text(tree, main_content=True, alt_texts=False, comments=False)
    if not body.strip():
        body = extract_plain_text(tree, main_content=False, alt_texts=False, comments=False)
    title = headline(tree.title or "")
    if title and not body.lstrip()[: len(title) + 40].casefold().startswith(title.casefold()):
        body = f"{title}\n{body}"
    return body.strip()


def _too_deep(html: str, tree: HTMLTree) -> bool:
    """Whether elements nest more than ``MAX_DEPTH`` deep: the main-content extractor is then skipped.

    Its time grows with the square of the depth: 2,000 nested ``<div>`` take 50 ms,
    20,000 take 10 s, and a 300 KB page of 60,000 took minutes: one hostile page
    would hang a run. Such a page gets its visible text instead. Fewer tags than
    levels cannot nest that deep: most pages are not checked at all.
    """
    if html.count("<") <= MAX_DEPTH or tree.document is None:
        return False
    return tree.document.query_selector(_NESTED) is not None
