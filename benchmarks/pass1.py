"""Where pass 1 spends its time, per document: the profile behind the throughput plan.

    python benchmarks/pass1.py [--size 10000] [--docs 3000] [--noise clean|noisy] [--cache DIR]

Takes DOCS documents of the scale corpus of SIZE articles (``corpora/scale.py``,
generated or reused from the cache), reads them once to warm the page cache, then
times each step of ``dedup.pass1.analyse`` in one process, one step at a time
over all documents, and prints microseconds per document: by the numpy/regex
reference (``compiled=False``) and by the compiled numba kernels. The steps are the
ones ``analyse`` runs, called the same way; their sum is close to, but not exactly,
``analyse`` itself (printed last), which is what one worker does per document.
``fingerprint()`` is skeleton, token hashes, shingles and signature in one call.
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
from dedup import kernels, normalize, quality, readers  # noqa: E402
from dedup.config import Config  # noqa: E402
from dedup.document import Status  # noqa: E402
from dedup.pass1 import analyse  # noqa: E402
from dedup.signatures import Signer, fingerprint, hash_token_bytes, shingles_of  # noqa: E402


def numba_version() -> str:
    import numba

    return str(numba.__version__)


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
    ap.add_argument("--noise", choices=("clean", "noisy"), default="clean", help="scale corpus kind")
    args = ap.parse_args()

    noisy = "-noisy" if args.noise == "noisy" else ""
    scale_dir = args.cache / "scale" / f"n{args.size}-dir-s1{noisy}"
    generate_scale(args.size, scale_dir, fmt="dir", seed=1, cache_dir=args.cache, noise=args.noise)
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
    signer = Signer(num_perm=config.num_perm, seed=config.seed)
    n = range(len(docs))
    k = config.shingle_size

    def reread(doc: Any) -> None:
        doc.status, doc.text = Status.OK, None
        readers.read_file(doc, config)

    def steps(compiled: bool) -> list[tuple[str, Callable[[Any], Any], Sequence[Any]]]:
        hashed = [hash_token_bytes(b, compiled=compiled) for b in both]
        shingles = [shingles_of(h[len(h) // 2 :], k, compiled=compiled) for h in hashed]
        return [
            ("OCR skeleton", lambda w: normalize.skeleton_bytes(w, compiled=compiled), words),
            ("token hashes (plain + skeleton)", lambda b: hash_token_bytes(b, compiled=compiled), both),
            ("5-gram shingles", lambda h: shingles_of(h[len(h) // 2 :], k, compiled=compiled), hashed),
            (
                f"MinHash signature ({config.num_perm} perms)",
                lambda sh: signer.sign(sh, compiled=compiled),
                shingles,
            ),
            (
                "cleanliness signals",
                lambda i: quality.intrinsic(raws[i], repaired[i], comparison[i], compiled=compiled),
                n,
            ),
        ]

    shared = [
        ("read file, sha256, decode", per_doc(reread, docs)),
        ("repair (ftfy where marked)", per_doc(normalize.repair, raws)),
        ("comparison text (markup, boilerplate, case)", per_doc(normalize.comparison_text, repaired)),
        ("token bytes", per_doc(normalize.token_bytes, comparison)),
    ]
    reference = [(name, per_doc(fn, items)) for name, fn, items in steps(False)]
    compiled = [(name, per_doc(fn, items)) for name, fn, items in steps(True)] if kernels.AVAILABLE else []
    fused = per_doc(lambda w: fingerprint(w, k, signer), words) if kernels.AVAILABLE else float("nan")
    total = per_doc(lambda doc: analyse(doc, config, signer), docs)
    print(
        f"pass 1, per document, one process, {len(docs):,} warm-cache documents "
        f"of the {args.size:,} {args.noise} corpus"
    )
    print(f"compiled kernels: {'numba ' + numba_version() if kernels.AVAILABLE else 'not available'}")
    print()
    print(f"{'step':46s} | {'numpy us':>8s} | {'numba us':>8s}")
    print("-" * 68)
    for name, us in shared:
        print(f"{name:46s} | {us:8.0f} | {us:8.0f}")
    for (name, ref), (_, fast) in zip(
        reference, compiled or [(n, float("nan")) for n, _ in reference], strict=True
    ):
        print(f"{name:46s} | {ref:8.0f} | {fast:8.0f}")
    print("-" * 68)
    base = sum(us for _, us in shared)
    sum_ref = base + sum(us for _, us in reference)
    sum_fast = base + sum(us for _, us in compiled) if compiled else float("nan")
    print(f"{'sum of the steps':46s} | {sum_ref:8.0f} | {sum_fast:8.0f}")
    matching_ref = sum(us for _, us in reference[:4])
    matching = sum(us for _, us in compiled[:4]) if compiled else float("nan")
    print(f"{'skeleton..signature, four calls':46s} | {matching_ref:8.0f} | {matching:8.0f}")
    print(f"{'skeleton..signature, one fingerprint() call':46s} | {'':8s} | {fused:8.0f}")
    print(f"{'analyse() as a worker runs it (default path)':46s} | {'':8s} | {total:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
