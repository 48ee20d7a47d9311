"""What the driver holds per document after pass 1: the tables that grow with the corpus, measured.

    python benchmarks/driver_memory.py CORPUS... [--jobs 2]

Runs pass 1 (``pass1.read_all``, the workers reading; the signatures spilled to
disk as a batch run does, unless ``--in-memory``) in this process on the INPUTs,
then sizes what the driver keeps: each column of the document table and the
feature table (their buffers; the paths' buffer and ends, before: list slots and strings; the
sparse dicts of errors and extras), the token-frequency table (fixed size), and
the process's peak RSS. Prints bytes in total and per document, so that the
memory at N documents can be estimated as fixed + N x per document. Since the
eleventh round a batch run's columns are files (``columns``): they are counted
apart, as "in files", and ``--in-memory-tables`` keeps them in the heap as before.

    python benchmarks/driver_memory.py CORPUS... --run [--jobs 2] [--dedup-src DIR] [--engine dask]

runs the whole job instead (``python -m dedup run``, OUT a temporary directory)
and samples its main process's ``/proc/PID/status`` every 0.2 s: the peak of its
heap and other private memory (``RssAnon``), of its mapped files (``RssFile``,
pages the kernel can drop and read again) and of both (``VmHWM``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dedup import readers  # noqa: E402
from dedup.columns import Blobs, Column  # noqa: E402
from dedup.config import Config  # noqa: E402
from dedup.document import Paths  # noqa: E402
from dedup.frequency import TokenFrequency  # noqa: E402
from dedup.pass1 import read_all  # noqa: E402
from dedup.pass2 import Corpus  # noqa: E402
from dedup.signature_spill import Spilled  # noqa: E402


def _size(value: Any) -> int:
    """Bytes held by a column: an array's buffer, a list's slots and its strings, a dict's entries."""
    if isinstance(value, array):
        return value.buffer_info()[1] * value.itemsize
    if isinstance(value, bytearray):
        return len(value)
    if isinstance(value, list):
        return sys.getsizeof(value) + sum(sys.getsizeof(v) for v in value)
    if isinstance(value, (Paths, Blobs)):  # one UTF-8 buffer and the ends (since the ninth round)
        return sum(_size(v) for v in vars(value).values())
    if isinstance(value, Column):  # the entries not yet in its file (all of them in memory)
        return len(value._tail) * value._tail.itemsize
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in value.items())
    return sys.getsizeof(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--in-memory", action="store_true", help="keep the signatures in memory (cron mode; before 7d78e71)"
    )
    ap.add_argument(
        "--in-memory-tables", action="store_true", help="the columns in the heap (before 11th round)"
    )
    ap.add_argument(
        "--run", action="store_true", help="the whole job: peak heap and mapped files of its driver"
    )
    ap.add_argument("--dedup-src", type=Path, default=REPO, help="with --run: the dedup source tree to run")
    ap.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="with --run: dask runs it on a scheduler and --jobs workers started here on loopback",
    )
    args = ap.parse_args()
    if args.run and args.engine == "dask":
        from benchmarks.dask_engine import Cluster

        with tempfile.TemporaryDirectory() as tmp, Cluster(args.jobs, Path(tmp), args.dedup_src) as cluster:
            dask = ["--engine", "dask", "--scheduler", cluster.address]
            return _run(args.inputs, args.jobs, args.dedup_src, dask)
    if args.run:
        return _run(args.inputs, args.jobs, args.dedup_src)
    clock = time.perf_counter()
    frequency = TokenFrequency()
    tmp = Path(tempfile.mkdtemp())  # removed at the end: pass 2's tables map its files
    spill = None if args.in_memory else Spilled.beside(tmp, num_perm=256, width=16)
    config = Config(jobs=args.jobs)
    tables = None if args.in_memory_tables else tmp
    docs, feats, fresh = read_all(
        readers.discover(args.inputs), config, frequency, spill=spill, tables=tables
    )
    spilled = sum(f.stat().st_size for f in spill.directory.iterdir()) if spill else 0
    in_files = sum(f.stat().st_size for f in tmp.iterdir() if f.is_file())
    wall = time.perf_counter() - clock
    if spill:
        spill.close()
    n, nodes = len(docs), len(feats.contents)
    parts = {f"documents.{k.lstrip('_')}": _size(v) for k, v in vars(docs).items() if k not in ("spool",)}
    for name in ("node_of", "signals", "contents", "sizes"):
        parts[f"features.{name}"] = _size(getattr(feats, name))
    parts["features.signatures (per distinct text)"] = feats.matrix().nbytes  # none when spilled
    parts["fresh flags"] = len(fresh) if isinstance(fresh, bytearray) else 0  # a batch run: none held
    if spilled:
        on_disk = f"{spilled / 2**20:,.1f} MB, {spilled / n:,.1f} B per document"
        print(f"signatures on disk (not counted): {on_disk}")
    print(f"{n:,} documents, {nodes:,} distinct texts, pass 1 {wall:.0f} s with --jobs {args.jobs}")
    print("| what | MB | bytes per document |")
    print("|---|---:|---:|")
    for name, size in sorted(parts.items(), key=lambda kv: -kv[1]):
        if size >= 1024:
            print(f"| {name} | {size / 2**20:,.1f} | {size / n:,.1f} |")
    total = sum(parts.values())
    print(f"| **growing with the corpus** | {total / 2**20:,.1f} | {total / n:,.1f} |")
    print(f"| token frequency table (fixed) | {frequency.table.nbytes / 2**20:,.1f} | - |")
    print(f"| the columns in files (not counted above) | {in_files / 2**20:,.1f} | {in_files / n:,.1f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| driver peak RSS after pass 1 | {peak:,.0f} | - |")
    corpus = Corpus.of(config, docs, feats, frequency)
    sent = len(pickle.dumps(corpus, protocol=pickle.HIGHEST_PROTOCOL)) - frequency.table.nbytes
    print(
        f"| pass 2's tables sent to a Dask worker (no token table) | {sent / 2**20:,.1f} | {sent / n:,.1f} |"
    )
    now = _status(os.getpid())
    anon, mapped = now["RssAnon"] / 1024, now["RssFile"] / 1024
    print(f"| driver RssAnon / RssFile after pass 1 | {anon:,.0f} / {mapped:,.0f} | - |")
    shutil.rmtree(tmp)
    return 0


def _status(pid: int) -> dict[str, int]:
    """kB figures of /proc/PID/status (RssAnon, RssFile, VmHWM...)."""
    found = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                found[key] = int(value.split()[0])
    return found


def _run(inputs: list[str], jobs: int, src: Path, engine: Sequence[str] = ()) -> int:
    """The whole job in a child process (``engine``: its options for a Dask cluster); its main
    process's peak heap and mapped files."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("DEDUP_BENCH_OUT")) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "dedup",
            "run",
            *inputs,
            "--out",
            str(Path(tmp) / "out"),
            "-q",
            "-j",
            str(jobs),
            *engine,
        ]
        clock = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=src, env={**os.environ, "PYTHONPATH": str(src)})
        peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
        peak_at = 0.0
        samples: list[tuple[float, float, int]] = []  # (time, the driver's CPU seconds, its RssAnon)
        while child.poll() is None:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
                status = _status(child.pid)
                if status.get("RssAnon", 0) > peak["RssAnon"]:
                    peak_at = time.perf_counter() - clock
                peak = {k: max(v, status.get(k, 0)) for k, v in peak.items()}
                samples.append((time.perf_counter() - clock, _cpu(child.pid), status.get("RssAnon", 0)))
            time.sleep(0.2)
        wall = time.perf_counter() - clock
        summary = (
            json.loads((Path(tmp) / "out" / "summary.json").read_text()) if child.returncode == 0 else {}
        )
    documents = summary.get("counts", {}).get("documents", 0)
    print(f"rc {child.returncode}, {documents:,} documents, {wall:.1f} s, --jobs {jobs}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in summary.get("timings_s", {}).items())
    print(f"stages (s): {stages}; the heap's peak at {peak_at:.1f} s")
    print("| driver (main process) | peak MB |")
    print("|---|---:|")
    print(f"| heap and other private memory (RssAnon) | {peak['RssAnon'] / 1024:,.0f} |")
    print(f"| mapped files (RssFile: the columns, code) | {peak['RssFile'] / 1024:,.0f} |")
    print(f"| both (VmHWM) | {peak['VmHWM'] / 1024:,.0f} |")
    if samples and summary:
        _per_stage(samples, summary["timings_s"])
    return child.returncode


def _cpu(pid: int) -> float:
    """A process's CPU seconds so far (user and system), from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_stage(samples: list[tuple[float, float, int]], timings: dict[str, float]) -> None:
    """The driver's CPU and its heap's peak per stage: the stages placed back from the last sample
    (they run in this order, one after the other; what comes before them is start-up). What
    follows the write stage (the summary, the tables removed, the exit) moves every window that
    much earlier: a second or so."""
    end = samples[-1][0]
    spans = []
    order = ["read_sign", "index", "verify_cluster_score", "write"]  # summary.json sorts its keys
    for name in reversed([k for k in order if k in timings]):
        spans.append((name, end - timings[name], end))
        end -= timings[name]
    spans.append(("start-up", 0.0, end))
    print("| stage | wall s | driver CPU s | driver heap peak MB |")
    print("|---|---:|---:|---:|")
    for name, start, stop in reversed(spans):
        inside = [s for s in samples if start <= s[0] <= stop] or [
            min(samples, key=lambda s: abs(s[0] - stop))
        ]
        before = [s for s in samples if s[0] < start]
        cpu = inside[-1][1] - (before[-1][1] if before else 0.0)
        heap = max(s[2] for s in inside) / 1024
        print(f"| {name} | {stop - start:,.1f} | {cpu:,.1f} | {heap:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
