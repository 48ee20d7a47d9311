"""``--engine dask`` against the local engine: the same outputs, and what each costs.

    python benchmarks/dask_engine.py [--sizes 10000,100000] [--workers 1,2] [--noise clean|noisy]
                                     [--format dir|jsonl] [--cache DIR]

For each size (a scale corpus from ``corpora/scale.py``, generated or reused from
the cache ``benchmarks/throughput.py`` uses) and each worker count W:

- ``local``: ``dedup run --jobs W`` (forked worker processes);
- ``dask``: a ``dask scheduler`` and W ``dask worker`` processes (one thread each,
  no nanny) started here on loopback, and ``dedup run --engine dask --scheduler``.

Prints a table of wall time, articles/s, the driver's peak RSS (the ``dedup``
process; for ``local`` its largest process, a worker or the main one) and the
workers' peak RSS (``ru_maxrss`` asked of each Dask worker after the run), and
whether the manifest and every file under ``canonical/`` are byte-identical to
the local run with the same W, and each run's stage times (``summary.json``).
Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.throughput import DEFAULT_CACHE, run_measured  # noqa: E402
from corpora.scale import corpus_path, generate_scale  # noqa: E402


def digest(out: Path) -> str:
    """One hash over the manifest and every canonical file (names and bytes)."""
    h = hashlib.sha256((out / "manifest.jsonl").read_bytes())
    for p in sorted((out / "canonical").rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(out)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Cluster:
    """A scheduler and W single-thread workers on 127.0.0.1, stopped on exit."""

    def __init__(self, workers: int, tmp: Path) -> None:
        self.workers, self.tmp = workers, tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def __enter__(self) -> Cluster:
        from distributed import Client

        dask = str(Path(sys.executable).parent / "dask")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        sched_file = self.tmp / "scheduler.json"
        self.procs.append(
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(sched_file)],
                **quiet,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = orjson.loads(sched_file.read_bytes())["address"]
        for _ in range(self.workers):
            self.procs.append(
                subprocess.Popen(
                    [dask, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                     "--host", "127.0.0.1", "--memory-limit", "0"],
                    **quiet,
                )
            )  # fmt: skip
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(self.workers, timeout=120)
        return self

    def worker_peak_mb(self) -> float:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return max(client.run(_peak_rss_kb).values()) / 1024

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--noise", choices=("clean", "noisy"), default="clean")
    ap.add_argument("--format", choices=("dir", "jsonl"), default="dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rows, failed = [], False
    for size in [int(s) for s in args.sizes.split(",")]:
        noisy = "-noisy" if args.noise == "noisy" else ""
        cdir = args.cache / "scale" / f"n{size}-{args.format}-s{args.seed}{noisy}"
        generate_scale(size, cdir, fmt=args.format, seed=args.seed, cache_dir=args.cache, noise=args.noise)
        corpus = corpus_path(cdir, args.format)
        for workers in [int(w) for w in args.workers.split(",")]:
            tmp = Path(tempfile.mkdtemp(prefix="dask-engine-"))
            try:
                base = [sys.executable, "-m", "dedup", "run", str(corpus), "--quiet", "--jobs", str(workers)]
                local = run_measured([*base, "--out", str(tmp / "local")], env=env)
                with Cluster(workers, tmp) as cluster:
                    extra = ["--engine", "dask", "--scheduler", cluster.address]
                    dask = run_measured([*base, "--out", str(tmp / "dask"), *extra], env=env)
                    worker_mb = cluster.worker_peak_mb()
                for name, got in (("local", local), ("dask", dask)):
                    if not got.ok:
                        sys.exit(f"{name} run failed ({got.exit_code}):\n{got.stderr_tail}")
                same = digest(tmp / "local") == digest(tmp / "dask")
                failed |= not same
                verdict = "yes" if same else "NO"
                for name, got, w_mb, ok in (("local", local, None, "-"), ("dask", dask, worker_mb, verdict)):
                    stages = orjson.loads((tmp / name / "summary.json").read_bytes())["timings_s"]
                    rows.append((size, name, workers, got.wall_s, got.rss_mb, w_mb, ok, stages))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    print(f"corpus: {args.noise} {args.format}; machine: {os.cpu_count()} cores")
    print(
        "| articles | engine | workers | wall s | articles/s | driver peak MB | worker peak MB | identical "
        "| read_sign s | index s | verify s | write s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for size, engine, workers, wall, driver, worker, same, stages in rows:
        w = "-" if worker is None else f"{worker:,.0f}"
        rate = size / wall
        cells = [f"{size:,}", engine, str(workers), f"{wall:.1f}", f"{rate:,.0f}", f"{driver:,.0f}", w, same]
        cells += [f"{stages.get(k, 0):.1f}" for k in ("read_sign", "index", "verify_cluster_score", "write")]
        print("| " + " | ".join(cells) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
