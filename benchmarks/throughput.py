"""Throughput benchmark: `dedup run` on 10k..1M generated news articles, next to a plain datasketch baseline.

    python benchmarks/throughput.py [--sizes 10000,100000,1000000] [--format dir|jsonl] [--jobs 1,2]
                                    [--noise clean|noisy] [--cache DIR] [--baseline-max 100000]
                                    [--timeout S] [--json FILE] [--page-cache warm|cold|as-is] [--settle S]

For each size it builds the scale corpus, or reuses it from the cache (corpora/scale.py: news-like
Markov text, about 4 KB an article, about 20% near-duplicates; `--noise noisy` for heavily damaged
copies and unrelated articles that share whole sentences). It then runs
`python -m dedup run CORPUS --out OUT --force --quiet --jobs N` in a fresh child process for each N
and measures:

* wall time, articles/s and MB/s (input bytes);
* peak RSS in two ways. `rss` is ru_maxrss of the run, reported by a tiny launcher process
  (RUSAGE_CHILDREN): the largest single process in its tree, the main process or one worker.
  `tree` is the largest sum of PSS over the run's processes, sampled from /proc every 0.2 s (less often when
  sampling is slow: the sampler keeps to ~5% of a core)
  (PSS, not RSS: forked workers share the parent's pages, and an RSS sum would count them twice);
* the stage seconds in OUT/summary.json `timings_s`;
* recall against the generator's truth: the share of copies that were put in their original's
  cluster. A fast run that finds nothing would otherwise look good;
* `lost`: the other failure mode, the generator's articles none of whose copies was kept
  (unrelated articles merged: on the noisy corpus they share whole sentences and paragraphs);
* `other cpu`: CPU seconds used on the machine during the run by processes outside the child.
  When this is large, someone else was busy and the timings are noisy.

Before each timed run (dedup's and the baseline's) every file of the corpus is read once, so that
both read it from the page cache (`--page-cache warm`, the default): this machine's page cache lets
a corpus go between runs, and the run that came first then paid the disk for both (pass 1 in one
process over 6,000 noisy documents: 417 us a document read cold, 363 of them CPU, against ~280 us
warm). `--page-cache as-is` times whatever the cache holds; `--page-cache cold` empties it before
each timed run (`/proc/sys/vm/drop_caches`: root only), so that both read the corpus from the disk.

A timed dedup run also waits until `--settle` seconds (default 360) have passed since this
benchmark last removed an OUT (the time is kept in CACHE/work/.removed-at). On ext4 without a
journal, as on this VM, creating a file skips inodes freed in the last 1-6 minutes
(`recently_deleted`), one by one: after the removal of the last run's 80,000 copies the next run's
copies cost ~2-3x the CPU (30,000 copies: 3.6 s on a settled file system, 11-17 s in the minutes
after a removal), and the write stage then times the benchmark's own clean-up. Removals by other
tools are not seen: leave the machine alone for a few minutes before timing.

The baseline runs in its own child process on the same corpus, for sizes up to --baseline-max. It
reads the files, builds one datasketch `MinHash(num_perm=128)` per document with `update_batch`
over its lower-case word 5-grams (UTF-8), and queries and then inserts it in
`MinHashLSH(threshold=0.8, num_perm=128)`. The ratio printed is dedup's articles/s over the
baseline's. The exit code is 0, because this is a report. It is 1 only if a run failed, crashed or
timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpora.scale import corpus_path, generate_scale, load_truth  # noqa: E402
from corpora.sources import DEFAULT_CACHE  # noqa: E402

TARGET_RATE = 8000.0  # articles/s at 100k
TARGET_RSS_MB = 2048.0  # at 1M
STAGES = ("read_sign", "index", "verify_cluster_score", "write")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------ measuring a child


def _busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / CLK_TCK


def _pss_kb(pid: int) -> int | None:
    """Proportional set size of pid: shared pages split among their sharers, so sums over forked
    workers do not count the parent's copy-on-write pages once per worker, as RSS sums do."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _tree_rss_kb(root: int) -> int:
    """Sum of PSS (KB; RSS where PSS is unreadable) of root's descendants (not root: the launcher)."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        pid = int(name)
        parent[pid] = int(rest[1])
        rss[pid] = int(rest[21]) * PAGE_KB
    total = 0
    for pid, kb in rss.items():
        p = parent.get(pid, 0)
        while p > 1:
            if p == root:
                pss = _pss_kb(pid)
                total += kb if pss is None else pss
                break
            p = parent.get(p, 0)
    return total


@dataclass
class Measured:
    """One child process: how long, how much memory, how it ended."""

    cmd: list[str]
    wall_s: float
    exit_code: int | None
    rss_mb: float | None  # ru_maxrss of the measured command: its largest single process
    tree_mb: float  # largest sampled sum over the measured command's process tree
    cpu_s: float | None  # user + system CPU of the child and its waited-for descendants
    other_cpu_s: float | None  # busy CPU of the machine outside the child during the run
    timed_out: bool = False
    killed_for_rss: bool = False
    stdout: str = ""
    stderr_tail: str = ""
    rss_trace: list[tuple[float, float]] = field(default_factory=list)  # (s, tree MB) every ~10 s

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.killed_for_rss


LAUNCHER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "wall": wall, "maxrss_kb": r.ru_maxrss, "cpu": r.ru_utime + r.ru_stime}, f)
"""
"""Runs the command as its own child and reports that child's rusage. A child forked straight from
this benchmark would inherit the benchmark's own RSS high-water mark (ru_maxrss survives exec), and
the benchmark holds the Markov model after generating a corpus. The small launcher holds nothing."""


def run_measured(
    cmd: list[str],
    *,
    timeout: float | None = None,
    rss_limit_mb: float | None = None,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run cmd under the launcher in a new process group; measure rusage, sampled tree RSS, wall time."""
    stem = Path(f"/tmp/throughput-{os.getpid()}-{time.monotonic_ns()}")
    err_path, out_path, usage_path = (stem.with_suffix(s) for s in (".err", ".out", ".json"))
    busy0 = _busy_cpu_s()
    t0 = time.perf_counter()
    with err_path.open("wb") as err, out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(usage_path), *cmd],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    peak = [0]
    trace: list[tuple[float, float]] = []
    stop = threading.Event()
    flags = {"timeout": False, "rss": False}

    def sample() -> None:
        last_trace = -1e9
        while not stop.is_set():
            began = time.process_time()
            kb = _tree_rss_kb(proc.pid)
            cost = time.process_time() - began
            peak[0] = max(peak[0], kb)
            now = time.perf_counter() - t0
            if now - last_trace >= 10:
                trace.append((round(now, 1), round(kb / 1024, 1)))
                last_trace = now
            kill = False
            if timeout is not None and now > timeout:
                flags["timeout"] = kill = True
            if rss_limit_mb is not None and kb / 1024 > rss_limit_mb:
                flags["rss"] = kill = True
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                return
            # Reading PSS walks each process's page tables: at a million documents that took half a
            # core of this 2-core machine at 0.2 s intervals. Keep the sampler under ~5% of a core.
            stop.wait(max(0.2, 20 * cost))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.wait()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if flags["timeout"] or flags["rss"]:  # workers of a killed run are in our process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    busy = _busy_cpu_s() - busy0
    try:
        usage = json.loads(usage_path.read_text())
    except (OSError, ValueError):
        usage = {"rc": None, "wall": wall, "maxrss_kb": None, "cpu": None}  # launcher killed
    stderr = err_path.read_text(errors="replace")
    stdout = out_path.read_text(errors="replace")
    for p in (err_path, out_path, usage_path):
        p.unlink(missing_ok=True)
    return Measured(
        cmd=cmd,
        wall_s=usage["wall"],
        exit_code=usage["rc"],
        rss_mb=None if usage["maxrss_kb"] is None else usage["maxrss_kb"] / 1024,
        tree_mb=peak[0] / 1024,
        cpu_s=usage["cpu"],
        other_cpu_s=None if usage["cpu"] is None else max(0.0, busy - usage["cpu"]),
        timed_out=flags["timeout"],
        killed_for_rss=flags["rss"],
        stdout=stdout,
        stderr_tail="\n".join(stderr.strip().splitlines()[-15:]),
        rss_trace=trace,
    )


# ------------------------------------------------------------------ baseline


def _iter_corpus(corpus: Path, limit: int) -> Any:
    """(id, text) of the first `limit` documents, in dedup's reading order (sorted paths / file order)."""
    n = 0
    if corpus.is_dir():
        for root, dirs, files in os.walk(corpus):
            dirs.sort()
            for name in sorted(files):
                if n >= limit:
                    return
                if name.endswith(".txt"):
                    with open(os.path.join(root, name), "rb") as f:
                        yield name[:-4], f.read().decode("utf-8", "replace")
                    n += 1
    else:
        with corpus.open("rb") as f:
            for line in f:
                if n >= limit:
                    return
                rec = orjson.loads(line)
                yield rec["id"], rec["text"]
                n += 1


def baseline(corpus: Path, limit: int) -> dict[str, Any]:
    """Plain datasketch: MinHash(128) per document over word 5-grams, LSH(0.8) query then insert."""
    from datasketch import MinHash, MinHashLSH

    word = re.compile(r"\w+")
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    docs = nbytes = with_hit = 0
    for key, text in _iter_corpus(corpus, limit):
        nbytes += len(text.encode("utf-8"))
        w = word.findall(text.lower())
        grams = {" ".join(w[i : i + 5]).encode("utf-8") for i in range(max(1, len(w) - 4))}
        m = MinHash(num_perm=128)
        m.update_batch(list(grams))
        if lsh.query(m):
            with_hit += 1
        lsh.insert(key, m)
        docs += 1
    return {"docs": docs, "bytes": nbytes, "seconds": time.perf_counter() - t0, "with_match": with_hit}


# ---------------------------------------------------------------- dedup runs


def against_truth(out: Path, corpus_dir: Path) -> tuple[float, int] | None:
    """Both failure modes against the generator's truth: the share of its copies that dedup put
    in the cluster of their original (recall), and how many of its articles had no copy kept
    (lost: merged into another article's cluster)."""
    truth = load_truth(corpus_dir)
    if not truth:
        return None
    original = {c["id"]: c["of"] for c in truth}
    cluster: dict[str, str] = {}
    articles: set[str] = set()
    kept: set[str] = set()
    with (out / "manifest.jsonl").open("rb") as f:
        for line in f:
            rec = orjson.loads(line)
            key = str(rec.get("id") or Path(str(rec.get("path", ""))).stem)
            if rec.get("cluster") is not None:
                cluster[key] = rec["cluster"]
            if rec.get("status") == "ok":
                articles.add(original.get(key, key))
                if rec.get("canonical"):
                    kept.add(original.get(key, key))
    hit = sum(1 for c in truth if c["id"] in cluster and cluster[c["id"]] == cluster.get(c["of"]))
    return hit / len(truth), len(articles - kept)


@dataclass
class Row:
    """One line of the table."""

    size: int
    jobs: str
    docs: int
    mb: float
    m: Measured
    stages: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    recall: float | None = None
    lost: int | None = None  # the generator's articles with no copy kept
    rate_s: float | None = None  # seconds the rate is computed from (wall, or the baseline's own timer)

    @property
    def rate(self) -> float | None:
        """Articles per second; None for a run that did not finish."""
        return self.docs / (self.rate_s or self.m.wall_s) if self.m.ok else None

    @property
    def mb_s(self) -> float | None:
        return self.mb / (self.rate_s or self.m.wall_s) if self.m.ok else None


def _revision(src: Path) -> str:
    """git revision of src (and whether dedup/ has local changes), or the first line of src/REVISION."""
    if (src / "REVISION").is_file():
        return (src / "REVISION").read_text().strip().splitlines()[0]
    try:
        rev = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--", "dedup"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return rev + (" + uncommitted changes in dedup/" if dirty else "")


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: Sequence[Row]) -> str:
    head = (
        "| size | jobs | articles/s | MB/s | peak RSS MB (rss / tree) | read_sign s | index s | verify s "
        "| write s | wall s | recall | lost | other cpu s | status |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        st = r.stages
        if r.m.ok:
            status = "ok"
        elif r.m.timed_out or r.m.killed_for_rss:
            status = "timeout" if r.m.timed_out else "rss-limit"
        else:
            status = f"exit {r.m.exit_code}"
        cells = [
            f"{r.size:,}",
            r.jobs,
            _fmt(r.rate, ",.0f"),
            _fmt(r.mb_s, ".1f"),
            f"{_fmt(r.m.rss_mb, ',.0f')} / {r.m.tree_mb:,.0f}",
            *(_fmt(st.get(k)) for k in STAGES),
            f"{r.m.wall_s:.1f}",
            _fmt(r.recall, ".3f"),
            "-" if r.lost is None else f"{r.lost:,}",
            _fmt(r.m.other_cpu_s),
            status,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def page_cache(corpus: Path, how: str) -> None:
    """Before a timed run: read every file under ``corpus`` (or the file) once, into the page cache
    (``warm``); or empty the page cache (``cold``: written pages flushed first); or nothing."""
    if how == "warm":
        files = [corpus] if corpus.is_file() else (p for p in sorted(corpus.rglob("*")) if p.is_file())
        for path in files:
            with open(path, "rb", buffering=0) as fh:
                while fh.read(1 << 20):
                    pass
    elif how == "cold":
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def remove_out(tree: Path, stamp: Path) -> None:
    """Remove a run's outputs, and note when in ``stamp`` (``settle`` waits after it)."""
    shutil.rmtree(tree, ignore_errors=True)
    stamp.write_text(f"{time.time()}\n")


def settle(stamp: Path, seconds: float) -> float:
    """Wait until ``seconds`` have passed since ``remove_out`` last noted a removal in ``stamp``;
    the seconds waited (ext4 without a journal makes new files slowly for minutes after)."""
    try:
        removed = float(stamp.read_text())
    except (OSError, ValueError):
        return 0.0
    wait = removed + seconds - time.time()
    if wait <= 0:
        return 0.0
    print(f"  waiting {wait:.0f} s after the last removal of a run's outputs", file=sys.stderr, flush=True)
    time.sleep(wait)
    return wait


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated corpus sizes")
    ap.add_argument("--format", choices=("dir", "jsonl"), default="dir")
    ap.add_argument("--jobs", default="2", help="comma-separated --jobs values for dedup (e.g. 1,2)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloads, corpora (CACHE/scale)")
    ap.add_argument(
        "--work", type=Path, default=None, help="dedup output dir (default CACHE/work/throughput)"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline-max", type=int, default=100_000, help="largest size the baseline runs on")
    ap.add_argument("--timeout", type=float, default=None, help="kill a run after this many seconds")
    ap.add_argument(
        "--rss-limit-mb", type=float, default=16_000, help="kill a run whose tree RSS exceeds this"
    )
    ap.add_argument(
        "--dedup-src",
        type=Path,
        default=REPO,
        help="source tree to run dedup from (cwd and PYTHONPATH of the run); default this checkout",
    )
    ap.add_argument("--keep-out", action="store_true", help="keep dedup's output (default: delete it)")
    ap.add_argument(
        "--noise",
        choices=("clean", "noisy"),
        default="clean",
        help="clean: light damage on copies; noisy: heavy damage and unrelated articles sharing sentences",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write all measurements to this file")
    ap.add_argument(
        "--page-cache",
        choices=("warm", "cold", "as-is"),
        default="warm",
        help="warm: read the corpus before each timed run, so both runs read it from memory;"
        " cold: empty the page cache before each (root only), so both read it from the disk",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=360.0,
        help="seconds a timed dedup run waits after the benchmark removed an OUT (0: no wait)",
    )
    ap.add_argument("--baseline-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.baseline_only is not None:  # child mode: run the baseline, print JSON
        print(json.dumps(baseline(args.baseline_only, args.baseline_max)))
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    jobs = [int(j) for j in args.jobs.split(",") if j.strip()]
    # a fresh work dir per invocation: two benchmarks running at once must not delete each other's OUT
    (args.cache / "work").mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="throughput-", dir=args.cache / "work"))
    rows: list[Row] = []
    removed_at, waited = args.cache / "work" / ".removed-at", 0.0
    gen_notes: list[str] = []
    failed = False
    py = sys.executable
    src = args.dedup_src.resolve()
    dedup_env = {**os.environ, "PYTHONPATH": str(src)}
    for size in sizes:
        noisy = "-noisy" if args.noise == "noisy" else ""
        cdir = args.cache / "scale" / f"n{size}-{args.format}-s{args.seed}{noisy}"
        t0 = time.perf_counter()
        info = generate_scale(
            size, cdir, fmt=args.format, seed=args.seed, cache_dir=args.cache, progress=True, noise=args.noise
        )
        gen_s = time.perf_counter() - t0
        corpus = corpus_path(cdir, args.format)
        mb = info["bytes"] / 1e6
        gen_notes.append(
            f"{size:,}: {info['documents']:,} docs, {info['copies']:,} copies "
            f"({info['exact_copies']:,} exact), "
            f"{mb:,.0f} MB, mean {info['bytes'] / info['documents'] / 1024:.2f} KiB; "
            + (
                f"generated in {info['elapsed_s']:.0f} s"
                if gen_s > 5
                else f"cached (built in {info['elapsed_s']:.0f} s)"
            )
        )
        for j in jobs:
            out = work / f"out-n{size}-{args.format}-j{j}"
            cmd = [
                py,
                "-m",
                "dedup",
                "run",
                str(corpus),
                "--out",
                str(out),
                "--force",
                "--quiet",
                "--jobs",
                str(j),
            ]
            waited += settle(removed_at, args.settle)
            page_cache(corpus, args.page_cache)
            print(f"[{size:,} jobs={j}] running dedup ...", file=sys.stderr, flush=True)
            m = run_measured(
                cmd, timeout=args.timeout, rss_limit_mb=args.rss_limit_mb, cwd=src, env=dedup_env
            )
            row = Row(size, str(j), info["documents"], mb, m)
            if m.ok:
                summary = json.loads((out / "summary.json").read_text())
                row.stages = summary.get("timings_s", {})
                row.counts = summary.get("counts", {})
                if (scored := against_truth(out, cdir)) is not None:
                    row.recall, row.lost = scored
            else:
                failed = True
                print(f"  FAILED: {m.stderr_tail}", file=sys.stderr)
            print("  " + table([row]).splitlines()[-1], file=sys.stderr, flush=True)
            rows.append(row)
            if not args.keep_out and out.exists():
                remove_out(out, removed_at)
        if size <= args.baseline_max:
            page_cache(corpus, args.page_cache)
            print(f"[{size:,} baseline] running datasketch baseline ...", file=sys.stderr, flush=True)
            cmd = [
                py,
                str(Path(__file__).resolve()),
                "--baseline-only",
                str(corpus),
                "--baseline-max",
                str(size),
            ]
            m = run_measured(cmd, timeout=args.timeout, rss_limit_mb=args.rss_limit_mb)
            if m.ok:
                res = json.loads(m.stdout.strip().splitlines()[-1])
                row = Row(size, "baseline", res["docs"], res["bytes"] / 1e6, m, rate_s=res["seconds"])
                row.counts = {"with_match": res["with_match"]}
            else:
                failed = True
                row = Row(size, "baseline", info["documents"], mb, m)
                print(f"  FAILED: {m.stderr_tail}", file=sys.stderr)
            print("  " + table([row]).splitlines()[-1], file=sys.stderr, flush=True)
            rows.append(row)

    try:
        ds_version = metadata.version("datasketch")
    except metadata.PackageNotFoundError:
        ds_version = "?"
    print(f"# dedup throughput, {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}; datasketch {ds_version}"
    )
    print(f"dedup from {src} ({_revision(src)})")
    print(f"corpora ({args.format}, {args.noise}): " + "; ".join(gen_notes))
    print(
        "page cache: "
        + {
            "warm": "warm (every corpus file read before each timed run)",
            "cold": "cold (emptied before each timed run)",
            "as-is": "as found",
        }[args.page_cache]
    )
    print(f"file system: {waited:.0f} s waited in all after removals of OUTs (--settle {args.settle:.0f})")
    print()
    print(table(rows))
    print()
    print(
        "rss = ru_maxrss of the run (largest single process); tree = peak sampled sum of PSS over the "
        "run's processes; other cpu = CPU used by the rest of the machine meanwhile (noise). "
        "baseline articles/s use its own timer (reading + MinHash + LSH; no startup)."
    )
    for size in sizes:
        base = next((r for r in rows if r.size == size and r.jobs == "baseline" and r.m.ok), None)
        for r in rows:
            if r.size == size and r.jobs != "baseline" and r.m.ok and base is not None:
                ratio = (r.rate or 0.0) / (base.rate or 1.0)
                print(f"ratio dedup/baseline at {size:,}, jobs={r.jobs}: {ratio:.2f}x")
    by_jobs: dict[int, dict[int, float]] = {}
    for r in rows:
        if r.jobs != "baseline" and r.m.ok:
            by_jobs.setdefault(r.size, {})[int(r.jobs)] = r.rate or 0.0
    for size, rates in by_jobs.items():
        if len(rates) > 1:
            lo = min(rates)
            print(
                f"speed-up at {size:,}: "
                + ", ".join(f"jobs={j} {rates[j] / rates[lo]:.2f}x" for j in sorted(rates))
                + f" (relative to jobs={lo})"
            )
    r100 = [r for r in rows if r.size == 100_000 and r.jobs != "baseline" and r.m.ok]
    r1m = [r for r in rows if r.size == 1_000_000 and r.jobs != "baseline"]
    if r100:
        best = max(r100, key=lambda r: r.rate or 0.0)
        rate = best.rate or 0.0
        verdict = "MET" if rate >= TARGET_RATE else "NOT MET"
        got = f"{rate:,.0f}/s, jobs={best.jobs}"
        print(f"target >= {TARGET_RATE:,.0f} articles/s at 100k: {verdict} ({got})")
    else:
        print("target >= 8,000 articles/s at 100k: not measured")
    if r1m:
        ok = [r for r in r1m if r.m.ok]
        if ok:
            worst = max(r.m.tree_mb for r in ok)
            verdict = "MET" if worst <= TARGET_RSS_MB else "NOT MET"
            print(f"target peak RSS <= {TARGET_RSS_MB:,.0f} MB at 1M (tree): {verdict} ({worst:,.0f} MB)")
        else:
            r = r1m[0]
            print(
                f"target peak RSS <= {TARGET_RSS_MB:,.0f} MB at 1M: NOT MET, run did not finish "
                f"(tree peak {r.m.tree_mb:,.0f} MB after {r.m.wall_s:.0f} s; trace {r.m.rss_trace[-6:]})"
            )
    else:
        print("target peak RSS <= 2,048 MB at 1M: not measured")
    if args.work is None and not args.keep_out:
        shutil.rmtree(work, ignore_errors=True)  # (its OUTs already removed, each after its run)
    if args.json:
        args.json.write_text(
            json.dumps(
                [{**asdict(r), "rate": r.rate, "mb_s": r.mb_s} for r in rows],
                indent=2,
                default=str,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
