"""A cron night, in process: how many groups pass 2 judges, and the seconds, for any source tree.

    PYTHONPATH=SRC python benchmarks/cron_night.py SCALE_DIR --base N --work DIR [--step build|night|both]

SCALE_DIR is a scale corpus (``corpora/scale.py``, as ``throughput.py`` caches it,
e.g. ``~/.cache/dedup-bench/scale/n101000-dir-s1-noisy``). WORK gets a hard-linked
copy of its files (the cache is never touched: files are only renamed in the copy).
``build`` runs cron mode over the first BASE documents in generation order (the rest
set aside) into WORK/state and WORK/out; ``night`` runs it again over all of them,
as a nightly scrape bringing new stories would. Each prints the number of groups
pass 2 judged (its tasks, from the progress callback: the groups that are new,
changed, or whose stored limits say they must be judged again) and its
seconds without the interpreter's start. ``incremental.py`` is the benchmark with
the targets; this is for seeing what a change does to one night, on any commit
(run it from outside this checkout so that PYTHONPATH's ``dedup`` is imported).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # corpora; dedup comes from PYTHONPATH first

from corpora.scale import doc_path, ids_in_order
from dedup import Config, run


def night(corpus: Path, work: Path) -> tuple[int, float]:
    """One cron run over ``corpus``: (groups judged, seconds)."""
    totals = {"verify": 0}

    def progress(stage: str, done: int, total: int) -> None:
        totals[stage] = total

    clock = time.perf_counter()
    run([corpus], work / "out", Config(jobs=2, state=str(work / "state")), progress=progress)
    return totals["verify"], time.perf_counter() - clock


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scale", type=Path)
    ap.add_argument("--base", type=int, required=True, help="documents in the state before the night")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--step", choices=("build", "night", "both"), default="both")
    args = ap.parse_args()
    import dedup

    print(f"dedup from {Path(dedup.__file__).parent}", flush=True)
    corpus = args.work / "corpus"
    if not corpus.exists():
        args.work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(args.scale / "corpus"), str(corpus)], check=True)
    params = json.loads((args.scale / "scale.json").read_text())["params"]
    total, seed = int(params["n"]), int(params["seed"])
    if args.step in ("build", "both"):
        aside = args.work / "aside"
        aside.mkdir(exist_ok=True)
        later = [doc_path(corpus, i) for i in ids_in_order(total, seed)[args.base :]]
        for path in later:
            os.rename(path, aside / path.name)
        try:
            judged, seconds = night(corpus, args.work)
        finally:
            for path in later:
                os.rename(aside / path.name, path)
        print(f"state from {args.base:,}: judged {judged:,} groups in {seconds:.1f} s", flush=True)
    if args.step in ("night", "both"):
        judged, seconds = night(corpus, args.work)
        print(f"night +{total - args.base:,}: judged {judged:,} groups in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
