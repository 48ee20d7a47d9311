"""Charset detectors on the scrape corpus's legacy-encoded copies: which decodes them back exactly?

    python benchmarks/encodings.py [--cache DIR] [--seed N]

Each windows-1252, latin-1 and GB18030 copy of the scrape corpus (corpora/scrape.py)
has a UTF-8 twin; a detector is right when its guess decodes the copy to the twin's
text (latin-1 copies had their curly quotes straightened, so they are compared with
the same straightening). resiliparse's detector is what dedup uses after BOM,
declaration and UTF-8 (``dedup.readers.decode``); charset-normalizer and chardet
are measured when installed.
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

_STRAIGHT = {0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-", 0x2014: "-"}


def _detectors() -> dict[str, Callable[[bytes], str | None]]:
    from resiliparse.parse.encoding import detect_encoding

    found: dict[str, Callable[[bytes], str | None]] = {"resiliparse": detect_encoding}
    try:
        import charset_normalizer

        def normalizer(data: bytes) -> str | None:
            best = charset_normalizer.from_bytes(data).best()
            return best.encoding if best else None

        found["charset-normalizer"] = normalizer
    except ImportError:
        pass
    try:
        import chardet

        found["chardet"] = lambda data: chardet.detect(data)["encoding"]
    except ImportError:
        pass
    return found


def pairs(corpus: Path) -> list[tuple[str, bytes, str]]:
    """(kind, legacy bytes, expected text) for every legacy-encoded copy with a UTF-8 twin."""
    out = []
    for path in sorted((corpus / "enc").glob("*-cp1252.txt")):
        twin = path.with_name(path.name.replace("-cp1252", "-utf8")).read_text("utf-8")
        # what survives the legacy code page ("?" for characters it lacks) is what a detector can restore
        cp1252 = twin.encode("cp1252", errors="replace").decode("cp1252")
        out.append(("windows-1252", path.read_bytes(), cp1252))
        latin = path.with_name(path.name.replace("-cp1252", "-latin1"))
        straight = twin.translate(_STRAIGHT).encode("latin-1", errors="replace").decode("latin-1")
        out.append(("latin-1", latin.read_bytes(), straight))
    for path in sorted((corpus / "zh").glob("*-gb.txt")):
        twin = path.with_name(path.name.replace("-gb", "")).read_text("utf-8")
        out.append(("gb18030", path.read_bytes(), twin))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    corpus, _ = scrape_corpus(args.cache, args.seed)
    found = pairs(corpus)
    kinds = sorted({k for k, _, _ in found})
    print(f"{'detector':<20} | " + " | ".join(f"{k:>14}" for k in kinds) + f" | {'us/file':>8}")
    print("-" * (24 + 17 * len(kinds) + 11))
    for name, detect in _detectors().items():
        right = dict.fromkeys(kinds, 0)
        total = dict.fromkeys(kinds, 0)
        t0 = time.perf_counter()
        for kind, data, expected in found:
            total[kind] += 1
            guess = detect(data)
            try:
                text = data.decode(guess) if guess else None
            except (LookupError, UnicodeDecodeError):
                text = None
            right[kind] += text == expected
        us = (time.perf_counter() - t0) / len(found) * 1e6
        cells = " | ".join(f"{right[k]:>6} of {total[k]:<4}" for k in kinds)
        print(f"{name:<20} | {cells} | {us:>8,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
