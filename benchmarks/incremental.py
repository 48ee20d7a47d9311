"""Cron mode: an incremental run against a full rebuild, timed and compared.

    python benchmarks/incremental.py [--base 100000] [--new 10000] [--jobs 2] [--cache DIR]

Generates (or reuses) a scale corpus of BASE + NEW news-like articles
(``corpora.scale``), sets NEW of them aside (renamed, so their mtimes stay), builds
a ``--state`` from the BASE, brings the NEW back and times the incremental run;
then times a full rebuild of all BASE + NEW without a state, and checks that both
give the same clusters and canonicals. Prints a table; exits 1 if the results
differ (speed is reported, not asserted: the target is >= 10x).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpora.scale import corpus_path, generate_scale  # noqa: E402


def dedup(corpus: Path, out: Path, jobs: int, *extra: str) -> tuple[float, dict[str, Any]]:
    """Run the CLI as cron would; return wall seconds and summary.json."""
    cmd = [
        sys.executable,
        "-m",
        "dedup",
        "run",
        str(corpus),
        "--out",
        str(out),
        "--quiet",
        "--jobs",
        str(jobs),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, *extra], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd + list(extra))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return wall, orjson.loads((out / "summary.json").read_bytes())


def verdicts(out: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (cluster, canonical, duplicate_of) for every present document."""
    result = {}
    for line in (out / "manifest.jsonl").read_bytes().splitlines():
        r = orjson.loads(line)
        if r["status"] != "gone":
            result[r["path"]] = (r["cluster"], r["canonical"], r["duplicate_of"])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "dedup-bench")
    args = ap.parse_args()

    total = args.base + args.new
    scale_dir = args.cache / "throughput" / f"scale-{total}-dir-s{args.seed}"
    t0 = time.perf_counter()
    generate_scale(total, scale_dir, fmt="dir", seed=args.seed, cache_dir=args.cache, progress=True)
    corpus = corpus_path(scale_dir, "dir")
    ready = time.perf_counter() - t0
    work = args.cache / "work" / f"incremental-{args.base}-{args.new}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    aside = work / "aside"

    files = sorted(p for p in corpus.rglob("*.txt"))
    step = len(files) / args.new
    moved = [files[int(i * step)] for i in range(args.new)]  # spread over the corpus, deterministic
    try:
        for path in moved:
            target = aside / path.relative_to(corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
        base_wall, base_summary = dedup(corpus, work / "cron-out", args.jobs, "--state", str(work / "state"))
    finally:
        for path in moved:
            target = aside / path.relative_to(corpus)
            if target.exists():
                os.rename(target, path)
    inc_wall, inc_summary = dedup(corpus, work / "cron-out", args.jobs, "--state", str(work / "state"))
    full_wall, full_summary = dedup(corpus, work / "full-out", args.jobs)

    incremental, full = verdicts(work / "cron-out"), verdicts(work / "full-out")
    same = incremental == full
    differ = [p for p in sorted(set(incremental) | set(full)) if incremental.get(p) != full.get(p)]

    print(f"date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    print(f"corpus: {corpus} ({len(files)} files; ready in {ready:.1f} s); --jobs {args.jobs}")
    print()
    print(f"{'run':34s} | {'documents':>9s} | {'new':>6s} | {'wall s':>7s} | stages (s)")
    print("-" * 100)
    for name, wall, summary in (
        (f"build state from {args.base:,}", base_wall, base_summary),
        (f"incremental: +{args.new:,} new", inc_wall, inc_summary),
        (f"full rebuild of {total:,}", full_wall, full_summary),
    ):
        c = summary["counts"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in summary["timings_s"].items())
        print(f"{name:34s} | {c['documents']:9,d} | {c.get('new', 0):6,d} | {wall:7.1f} | {stages}")
    print()
    print(
        f"speed-up of the incremental run over the full rebuild: {full_wall / inc_wall:.1f}x (target >= 10x)"
    )
    print(f"same clusters and canonicals as the full rebuild: {'yes' if same else 'NO'} "
          f"({len(full):,} documents compared)")  # fmt: skip
    for path in differ[:10]:
        print(f"  differs: {path}: incremental {incremental.get(path)} vs full {full.get(path)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
