"""Compressed JSON Lines shards: what reading through gzip and the pass-2 spool cost, against plain shards.

    python benchmarks/containers.py [--size 100000] [--shards 10] [--jobs 2] [--cache DIR]

It takes the scale corpus in JSONL form (corpora/scale.py, cached like throughput.py's), splits it
into `--shards` files, once plain (`shard-NN.jsonl`) and once gzip-compressed (`shard-NN.jsonl.gz`,
level 6), each set in its own directory, and runs `python -m dedup run DIR --out OUT --jobs N` on
each in a fresh child (throughput.py's launcher: peak RSS of the largest process, `rss`, and the
peak PSS sum of the run's processes, `tree`). While the gzip run works, OUT is polled every 0.1 s
for the pass-2 spool (`OUT/.spool.*.tmp`, the records pass 2 reads again, copied out of the
compressed streams) and its largest size is reported, with the input's decompressed size for
scale. The two manifests must give every record the same status, cluster and verdict (paths differ
only by the shard suffix): that is checked and printed.

Then, in this process, one step at a time (end-to-end timings on a shared machine are noisy),
the container work alone is timed for both sets: reading every record (`readers.iter_documents`:
decompression, line splitting, JSON parsing, sha256), making the pass-2 spool of the records the
gzip run re-read (`readers.spooled`; for plain shards nothing is copied) and writing the canonical
containers of the records the run kept (`manifest.write_containers`).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.throughput import run_measured  # noqa: E402
from corpora.scale import corpus_path, generate_scale  # noqa: E402
from corpora.sources import DEFAULT_CACHE  # noqa: E402
from dedup import manifest, readers  # noqa: E402
from dedup.config import Config  # noqa: E402
from dedup.document import DocumentTable  # noqa: E402


def make_shards(corpus: Path, work: Path, shards: int) -> dict[str, Path]:
    """The corpus split into shards, plain and gzip; returns format -> directory."""
    lines = corpus.read_bytes().splitlines(keepends=True)
    per = -(-len(lines) // shards)
    dirs = {"jsonl": work / "plain", "jsonl.gz": work / "gzip"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for k in range(shards):
        data = b"".join(lines[k * per : (k + 1) * per])
        (dirs["jsonl"] / f"shard-{k:02d}.jsonl").write_bytes(data)
        (dirs["jsonl.gz"] / f"shard-{k:02d}.jsonl.gz").write_bytes(gzip.compress(data, 6, mtime=0))
    return dirs


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def watch_spool(out: Path, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        for path in out.glob(".spool.*.tmp"):
            with contextlib.suppress(FileNotFoundError):  # removed between listing and stat
                peak[0] = max(peak[0], path.stat().st_size)
        stop.wait(0.1)


def verdicts(out: Path) -> list[tuple[str, str | None, bool, str | None]]:
    """(path, cluster, canonical, duplicate_of) with the shard suffix dropped."""

    def plain(path: str | None) -> str | None:
        return None if path is None else path.replace(".jsonl.gz/", ".jsonl/")

    rows = []
    with open(out / "manifest.jsonl", "rb") as fh:
        for line in fh:
            r = orjson.loads(line)
            rows.append((plain(r["path"]), r["status"], r["canonical"], plain(r["duplicate_of"])))
    return rows  # type: ignore[return-value]


def time_parts(directory: Path, out: Path, spooled_share: float) -> tuple[float, float, float]:
    """Seconds to read every record, to spool ``spooled_share`` of them, and to write the kept ones."""
    config = Config(jobs=1)
    t0 = time.perf_counter()
    table = DocumentTable(readers.discover([directory]))
    for doc in readers.iter_documents(table.sources, config):
        doc.text = None
        table.append(doc)
    read = time.perf_counter() - t0
    records = manifest.read_manifest(out)
    kept = [i for i, r in enumerate(records) if r["canonical"]]
    step = max(1, round(1 / spooled_share)) if spooled_share else 0
    wanted = list(range(0, len(table), step)) if step else []
    t0 = time.perf_counter()
    with readers.spooled(table, wanted, out):
        spool = time.perf_counter() - t0
    staging = manifest.stage_canonical(out)
    try:
        t0 = time.perf_counter()
        manifest.write_containers(staging, (table[i] for i in kept))
        write = time.perf_counter() - t0
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read, spool, write


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args(argv)
    cdir = args.cache / "scale" / f"n{args.size}-jsonl-s1"
    generate_scale(args.size, cdir, fmt="jsonl", seed=1, cache_dir=args.cache, progress=True)
    (args.cache / "work").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="containers-", dir=args.cache / "work"))
    rows = []
    try:
        dirs = make_shards(corpus_path(cdir, "jsonl"), work, args.shards)
        plain_mb = _size(dirs["jsonl"]) / 1e6
        outs = {}
        for fmt, directory in dirs.items():
            out = work / f"out-{fmt}"
            outs[fmt] = out
            stop, peak = threading.Event(), [0]
            watcher = threading.Thread(target=watch_spool, args=(out, stop, peak), daemon=True)
            watcher.start()
            cmd = [sys.executable, "-m", "dedup", "run", str(directory), "--out", str(out), "--quiet"]
            measured = run_measured(
                [*cmd, "--jobs", str(args.jobs)], env={**os.environ, "PYTHONPATH": str(REPO)}
            )
            stop.set()
            watcher.join()
            if measured.exit_code != 0:
                print(f"{fmt}: exit {measured.exit_code}\n{measured.stderr_tail}", file=sys.stderr)
                return 1
            summary = orjson.loads((out / "summary.json").read_bytes())
            t = summary["timings_s"]
            rows.append(
                (
                    fmt,
                    summary["counts"]["documents"],
                    _size(directory) / 1e6,
                    measured.wall_s,
                    measured.rss_mb,
                    measured.tree_mb,
                    t["read_sign"],
                    t["verify_cluster_score"],
                    t["write"],
                    peak[0] / 1e6,
                )
            )
            leftovers = list(out.glob(".*.tmp"))
            assert not leftovers, leftovers
        same = verdicts(outs["jsonl"]) == verdicts(outs["jsonl.gz"])
        share = rows[-1][-1] / plain_mb  # the spool's size in the gzip run, over the decompressed input
        parts = {fmt: time_parts(directory, outs[fmt], share) for fmt, directory in dirs.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.size:,} articles in {args.shards} shards, --jobs {args.jobs}; decompressed {plain_mb:.0f} MB"
    )
    print(
        f"{'format':9} | {'documents':>9} | {'input MB':>8} | {'wall s':>6} | {'rss MB':>6} | {'tree MB':>7} "
        f"| {'read_sign':>9} | {'verify':>6} | {'write':>5} | {'spool MB':>8}"
    )
    print("-" * 100)
    for fmt, n, mb, wall, rss, tree, read, verify, write, spool in rows:
        print(
            f"{fmt:9} | {n:9,} | {mb:8.1f} | {wall:6.1f} | {rss or 0:6.0f} | {tree:7.0f} "
            f"| {read:9.1f} | {verify:6.1f} | {write:5.1f} | {spool:8.1f}"
        )
    print(f"same statuses, clusters and verdicts: {same}")
    print()
    print(f"container work alone, in one process ({share:.0%} of the records spooled):")
    print(f"{'format':9} | {'read all s':>10} | {'spool s':>7} | {'write kept s':>12}")
    print("-" * 48)
    for fmt, (read, spool, write) in parts.items():
        print(f"{fmt:9} | {read:10.1f} | {spool:7.1f} | {write:12.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
