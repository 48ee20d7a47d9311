"""``--engine dask`` against the local engine, before and after a change: the same outputs, and their cost.

    python benchmarks/dask_engine.py [--sizes 10000,100000] [--workers 1,2] [--noise clean|noisy]
                                     [--format dir|jsonl|gz-shards] [--shards 4] [--base REV]
                                     [--engines local,dask] [--cache DIR]

For each size (a scale corpus from ``corpora/scale.py``, generated or reused from
the cache ``benchmarks/throughput.py`` uses; ``gz-shards``: its JSONL form cut
into ``--shards`` gzip files, made under /tmp) and each worker count W:

- ``local``: ``dedup run --jobs W`` (forked worker processes);
- ``dask``: a ``dask scheduler`` and W ``dask worker`` processes (one thread each,
  no nanny) started here on loopback, and ``dedup run --engine dask --scheduler``.

With ``--base REV`` each run is made twice, with the code of REV (``git archive``)
and with this checkout, alternating, so that both see the same machine load.
Prints a table of wall time, the driver's CPU time and peak RSS (the ``dedup``
process alone: ``getrusage(RUSAGE_SELF)`` at its exit), the workers' CPU time
(forked: the driver's children; Dask: each worker's own rusage after the run),
the workers' peak RSS, whether the manifest and every file under ``canonical/``
are byte-identical to this checkout's local run with the same W (or, with
``--against OUT``, to an earlier run's OUT: one size, the local runs left out), and
each run's stage times (``summary.json``). Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import gzip
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


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# Runs ``python -m dedup ...`` in this process and writes its own rusage (the driver's) and its
# children's (forked workers) to the file named first.
PROBE = """
import json, resource, runpy, sys
usage, sys.argv = sys.argv[1], ["dedup", *sys.argv[2:]]
try:
    runpy.run_module("dedup", run_name="__main__")
finally:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(usage, "w") as fh:
        json.dump({"cpu": me.ru_utime + me.ru_stime, "mb": me.ru_maxrss / 1024,
                   "children_cpu": kids.ru_utime + kids.ru_stime}, fh)
"""


def checkout(rev: str, tmp: Path) -> Path:
    """The source tree of a git revision, extracted under ``tmp``."""
    tree = tmp / f"src-{rev}"
    tree.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def gz_shards(corpus: Path, shards: int) -> Path:
    """The JSONL corpus cut into gzip shards (level 6, made once under /tmp)."""
    where = Path(tempfile.gettempdir()) / "dedup-bench-shards" / f"{corpus.parent.name}-{shards}"
    if not (where / "done").exists():
        where.mkdir(parents=True, exist_ok=True)
        lines = corpus.read_bytes().splitlines(keepends=True)
        per = -(-len(lines) // shards)
        for k in range(shards):
            data = b"".join(lines[k * per : (k + 1) * per])
            (where / f"shard-{k:02d}.jsonl.gz").write_bytes(gzip.compress(data, 6, mtime=0))
        (where / "done").touch()
    return where


class Cluster:
    """A scheduler and W single-thread workers on 127.0.0.1, stopped on exit."""

    def __init__(self, workers: int, tmp: Path, tree: Path = REPO) -> None:
        self.workers, self.tmp, self.tree = workers, tmp, tree
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def __enter__(self) -> Cluster:
        from distributed import Client

        dask = str(Path(sys.executable).parent / "dask")
        env = {**os.environ, "PYTHONPATH": str(self.tree)}
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

    def worker_usage(self) -> tuple[float, float]:
        """(CPU seconds summed, largest peak RSS in MB) over the workers, since they started."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            cpu = sum(client.run(_cpu_s).values())
            return cpu, max(client.run(_peak_rss_kb).values()) / 1024

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait()


def measure(tree: Path, cmd: list[str], workers: int, engine: str, tmp: Path) -> dict[str, Any]:
    """One ``dedup run`` with the code in ``tree``: its wall time, CPU and memory, driver and workers."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    usage = tmp / "usage.json"
    probe = [sys.executable, "-c", PROBE, str(usage), *cmd]
    if engine == "local":
        got = run_measured(probe, env=env, cwd=tree)
        worker_cpu, worker_mb = None, None
    else:
        with Cluster(workers, tmp) as cluster:
            got = run_measured(
                [*probe, "--engine", "dask", "--scheduler", cluster.address], env=env, cwd=tree
            )
            worker_cpu, worker_mb = cluster.worker_usage()
    if not got.ok:
        sys.exit(f"{engine} run failed ({got.exit_code}):\n{got.stderr_tail}")
    driver = orjson.loads(usage.read_bytes())
    if engine == "local":
        worker_cpu = driver["children_cpu"]
    return {
        "wall": got.wall_s,
        "cpu": driver["cpu"],
        "mb": driver["mb"],
        "w_cpu": worker_cpu,
        "w_mb": worker_mb,
    }


def row(size: int, engine: str, side: str, workers: int, got: dict[str, Any], same: str) -> str:
    """One line of the table."""
    w_mb = "-" if got["w_mb"] is None else f"{got['w_mb']:,.0f}"
    cells = [f"{size:,}", engine, side, str(workers), f"{got['wall']:.1f}", f"{got['cpu']:.1f}"]
    cells += [f"{got['w_cpu']:.1f}", f"{got['mb']:,.0f}", w_mb, same]
    stages = got["stages"]
    cells += [f"{stages.get(k, 0):.1f}" for k in ("read_sign", "index", "verify_cluster_score", "write")]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--noise", choices=("clean", "noisy"), default="clean")
    ap.add_argument("--format", choices=("dir", "jsonl", "gz-shards"), default="dir")
    ap.add_argument("--shards", type=int, default=4, help="gzip shards for --format gz-shards")
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--base", help="a git revision to measure as well, alternating with this checkout")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--against", type=Path, help="an earlier run's OUT to compare with (one size)")
    args = ap.parse_args()
    against = digest(args.against) if args.against else ""
    failed = False
    print(f"corpus: {args.noise} {args.format}; machine: {os.cpu_count()} cores")
    print(
        "| articles | engine | code | workers | wall s | driver CPU s | worker CPU s | driver peak MB "
        "| worker peak MB | identical | read_sign s | index s | verify s | write s |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|", flush=True)
    keep = Path(tempfile.mkdtemp(prefix="dask-engine-src-"))
    sides = [("head", REPO)] + ([(args.base, checkout(args.base, keep))] if args.base else [])
    fmt = "jsonl" if args.format == "gz-shards" else args.format
    for _, tree in sides:  # a fresh tree compiles its numba kernels on its first run: not measured
        warm = ["run", str(REPO / "corpora" / "sample"), "--quiet", "--jobs", "1", "--out", str(keep / "w")]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-m", "dedup", *warm], env=env, check=True)
        shutil.rmtree(keep / "w")
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            noisy = "-noisy" if args.noise == "noisy" else ""
            cdir = args.cache / "scale" / f"n{size}-{fmt}-s{args.seed}{noisy}"
            generate_scale(size, cdir, fmt=fmt, seed=args.seed, cache_dir=args.cache, noise=args.noise)
            corpus = corpus_path(cdir, fmt)
            if args.format == "gz-shards":
                corpus = gz_shards(corpus, args.shards)
            for workers in [int(w) for w in args.workers.split(",")]:
                reference = against
                for engine in args.engines.split(","):
                    for side, tree in sides if engine == "local" else sides[::-1]:  # alternate
                        tmp = Path(tempfile.mkdtemp(prefix="dask-engine-"))
                        try:
                            out = tmp / "out"
                            cmd = ["run", str(corpus), "--quiet", "--jobs", str(workers)]
                            got = measure(tree, [*cmd, "--out", str(out)], workers, engine, tmp)
                            found = digest(out)
                            reference = reference or found
                            same = found == reference
                            failed |= not same
                            got["stages"] = orjson.loads((out / "summary.json").read_bytes())["timings_s"]
                            print(row(size, engine, side, workers, got, "yes" if same else "NO"), flush=True)
                        finally:
                            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
