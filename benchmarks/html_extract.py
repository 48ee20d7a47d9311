"""HTML main-content extractors on the scrape corpus's pages: cost per page and template leaks.

    python benchmarks/html_extract.py [--cache DIR] [--seed N]

Every page of the scrape corpus (corpora/scrape.py) sits in a heavy site template.
"Leaked" counts pages whose extracted text holds template text (cookie banner,
tracking script, "most read" list, legal footer, navigation); "lost" counts pages
whose extracted text misses the article's last paragraph. dedup's extractor
(resiliparse, ``dedup.extract.main_text``) is always measured; trafilatura and
selectolax are measured when installed (``pip install trafilatura lxml_html_clean
selectolax``), for the comparison the README quotes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpora.scrape import scrape_corpus  # noqa: E402
from corpora.sources import DEFAULT_CACHE  # noqa: E402

TEMPLATE_MARKS = ("We use cookies", "dataLayer", "Most read", "Registered office", "Manage preferences")


def _extractors(only_dedup: bool = False) -> dict[str, Callable[[str], str]]:
    from dedup import extract

    found: dict[str, Callable[[str], str]] = {"resiliparse (dedup.extract)": extract.main_text}
    if only_dedup:
        return found
    try:
        import trafilatura

        found["trafilatura"] = lambda page: trafilatura.extract(page) or ""
    except ImportError:
        pass
    try:
        from selectolax.lexbor import LexborHTMLParser

        def lexbor(page: str) -> str:
            tree = LexborHTMLParser(page)
            tree.strip_tags(["script", "style", "nav", "footer", "aside", "header"])
            return tree.body.text(separator="\n") if tree.body else ""

        found["selectolax (lexbor, tags stripped)"] = lexbor
    except ImportError:
        pass
    return found


def measure(pages: list[tuple[str, str]], *, only_dedup: bool = False) -> list[tuple[str, float, int, int]]:
    """(extractor, us/page, leaked, lost) for each extractor."""
    rows = []
    for name, fn in _extractors(only_dedup).items():
        t0 = time.perf_counter()
        texts = [fn(page) for page, _ in pages]
        us = (time.perf_counter() - t0) / len(pages) * 1e6
        leaked = sum(any(m in t for m in TEMPLATE_MARKS) for t in texts)
        lost = sum(last[:60] not in t for t, (_, last) in zip(texts, pages, strict=True))
        rows.append((name, us, leaked, lost))
    return rows


def load_pages(corpus: Path) -> list[tuple[str, str]]:
    """(page HTML, the article's last paragraph as text) for every UTF-8 page of the corpus."""
    import html

    out = []
    for path in sorted((corpus / "pages").rglob("*.html")):
        page = path.read_text("utf-8")
        paragraphs = [p.split("</p>")[0] for p in page.split("<p>")[1:]]
        body = [p for p in paragraphs if not p.startswith(("We use cookies", "By Staff"))]
        footer_free = [p for p in body if "All rights reserved" not in p]
        out.append((page, html.unescape(footer_free[-1]) if footer_free else ""))
    return out


def print_table(rows: list[tuple[str, float, int, int]], n: int) -> None:
    print(f"{'extractor':<36} | {'us/page':>8} | {'leaked':>9} | {'lost':>9}")
    print("-" * 72)
    for name, us, leaked, lost in rows:
        print(f"{name:<36} | {us:>8,.0f} | {leaked:>4}/{n:<4} | {lost:>4}/{n:<4}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    corpus, _ = scrape_corpus(args.cache, args.seed)
    pages = load_pages(corpus)
    print_table(measure(pages), len(pages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
