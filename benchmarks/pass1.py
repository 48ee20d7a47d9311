"""Where pass 1 spends its time, per document: the profile behind the throughput plan.

    python benchmarks/pass1.py [--size 10000] [--docs 3000] [--cache DIR]

Takes DOCS documents of the scale corpus of SIZE articles (``corpora/scale.py``,
generated or reused from the cache), reads them once to warm the page cache, then
times each step of ``dedup.pass1.analyse`` in one process, one step at a time
over all documents, and prints microseconds per document. The steps are the ones
``analyse`` runs, called the same way; their sum is close to, but not exactly,
``analyse`` itself (printed last), which is what one worker does per document.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpora.scale import corpus_path, generate_scale  # noqa: E402
from corpora.sources import DEFAULT_CACHE  # noqa: E402
from dedup import normalize, quality, readers  # noqa: E402
from dedup.config import Config  # noqa: E402
from dedup.document import Status  # noqa: E402
from dedup.pass1 import analyse  # noqa: E402
from dedup.signatures import Signer, hash_token_bytes, shingles_of  # noqa: E402


def per_doc(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """Microseconds per item, best of three passes."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000, help="scale corpus to take documents from")
    ap.add_argument("--docs", type=int, default=3_000, help="documents to time")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()

    scale_dir = args.cache / "scale" / f"n{args.size}-dir-s1"
    generate_scale(args.size, scale_dir, fmt="dir", seed=1, cache_dir=args.cache)
    config = Config()
    sources = readers.discover([corpus_path(scale_dir, "dir")])
    docs = list(readers.iter_documents(sources, config, read=False))[: args.docs]
    raws = []
    for doc in docs:
        readers.read_file(doc, config)
        raws.append(doc.text)
    repaired = [normalize.repair(t) for t in raws]
    comparison = [normalize.comparison_text(t) for t in repaired]
    words = [normalize.token_bytes(c) for c in comparison]
    both = [
        np.concatenate((np.frombuffer(w, np.uint8), np.array([32], np.uint8), normalize.skeleton_bytes(w)))
        for w in words
    ]
    hashed = [hash_token_bytes(b) for b in both]
    shingles = [shingles_of(h[len(h) // 2 :], config.shingle_size) for h in hashed]
    signer = Signer(num_perm=config.num_perm, seed=config.seed)
    n = range(len(docs))

    def reread(doc: Any) -> None:
        doc.status, doc.text = Status.OK, None
        readers.read_file(doc, config)

    rows = [
        ("read file, sha256, decode", per_doc(reread, docs)),
        ("repair (ftfy where marked)", per_doc(normalize.repair, raws)),
        ("comparison text (markup, boilerplate, case)", per_doc(normalize.comparison_text, repaired)),
        ("token bytes", per_doc(normalize.token_bytes, comparison)),
        ("OCR skeleton", per_doc(normalize.skeleton_bytes, words)),
        ("token hashes (plain + skeleton)", per_doc(hash_token_bytes, both)),
        ("5-gram shingles", per_doc(lambda h: shingles_of(h[len(h) // 2 :], config.shingle_size), hashed)),
        (f"MinHash signature ({config.num_perm} perms)", per_doc(signer.sign, shingles)),
        ("cleanliness signals", per_doc(lambda i: quality.intrinsic(raws[i], repaired[i], comparison[i]), n)),
    ]
    total = per_doc(lambda doc: analyse(doc, config, signer), docs)
    print(
        f"pass 1, per document, one process, {len(docs):,} warm-cache documents of the {args.size:,} corpus"
    )
    print()
    print(f"{'step':46s} | {'us/doc':>7s}")
    print("-" * 57)
    for name, us in rows:
        print(f"{name:46s} | {us:7.0f}")
    print("-" * 57)
    print(f"{'sum of the steps':46s} | {sum(us for _, us in rows):7.0f}")
    print(f"{'analyse() as a worker runs it':46s} | {total:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
