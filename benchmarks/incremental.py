"""Cron mode: an incremental run against a full rebuild, timed and compared.

    python benchmarks/incremental.py [--base 100000] [--new 10000] [--jobs 2]
        [--noise clean|noisy] [--arrival latest,spread] [--no-full] [--cache DIR]
        [--work DIR] [--repo DIR] [--repeat N] [--gone N]

Generates (or reuses) a scale corpus of BASE + NEW news-like articles
(``corpora.scale``) and copies it into WORK (the cached corpus is never touched),
sets NEW of them aside there (renamed, so their mtimes stay), builds a
``--state`` from the BASE, brings the NEW back and times the incremental run and
then a rerun with no change; also a stateless run of the NEW alone (what the
incremental run should cost: the target is <= 2x), and a full rebuild of all
BASE + NEW without a state, checking that each incremental run gives the same
clusters and canonicals. Prints a table with each run's wall time, CPU time
(user + system, all processes) and peak RSS; exits 1 if the results differ
(speed is reported, not asserted). ``--repo`` runs the dedup of another source
tree (e.g. an unpacked ``git archive`` of main), for before/after figures.
Each timed run starts after a ``sync`` (what the run before wrote is flushed
first); ``--repeat N`` times the stateless and the incremental run N times each
(the state and OUT put back between, then taken up by an untimed run over the BASE:
a copied manifest is not the one the last run wrote) and compares their medians. What the
runs leave is moved aside, not removed, until the timed runs are done (``set_away``: ext4
without a journal makes new files slowly for minutes after many are removed), and an
invocation waits until 6 minutes have passed since the last one removed them. ``--gone N``
then takes N files out (every len/N-th in path order, moved aside and put back
after) and times the cron run that finds them gone; with the full rebuild, its
clusters and canonicals are compared with a stateless run over the files left.

Which articles arrive last (``--arrival``):

* ``latest``: the NEW generated last, i.e. new stories with their copies, as a
  nightly scrape brings them. Few of them join a cluster of the state.
* ``spread``: every (BASE + NEW) / NEW-th file in path order, i.e. arrivals spread
  evenly over all stories: the worst case, where about a third of the state's
  clusters gain a member and must be judged again.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.throughput import remove_out, run_measured, settle  # noqa: E402
from corpora.scale import corpus_path, doc_path, generate_scale, ids_in_order  # noqa: E402

Row = tuple[str, float, float, int, dict[str, Any]]  # name, wall s, CPU s, peak RSS MB, summary.json


def dedup(
    repo: Path, corpus: Path, out: Path, jobs: int, *extra: str
) -> tuple[float, float, int, dict[str, Any]]:
    """Run the CLI of ``repo`` as cron would; return wall and CPU seconds, peak RSS (MB) and summary.json.

    The peak RSS is ru_maxrss of the largest single process of the run (the main
    process or a worker), measured by throughput.py's launcher.
    """
    cmd = [sys.executable, "-m", "dedup", "run", str(corpus), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    os.sync()  # what the run before left to write back is not this run's to wait for
    got = run_measured([*cmd, "--jobs", str(jobs), *extra], env=env, cwd=repo)
    if not got.ok or got.rss_mb is None or got.cpu_s is None:
        sys.exit(f"{' '.join(got.cmd)} exited {got.exit_code}:\n{got.stderr_tail}")
    return got.wall_s, got.cpu_s, round(got.rss_mb), orjson.loads((out / "summary.json").read_bytes())


def working_copy(corpus: Path, work: Path) -> Path:
    """A copy of the cached corpus (mtimes kept) to move files around in; reused while complete."""
    copy, done = work / "corpus", work / "corpus.copied"
    if done.exists() and done.read_text() == str(corpus):
        return copy
    shutil.rmtree(copy, ignore_errors=True)
    done.unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(corpus), str(copy)], check=True)
    done.write_text(str(corpus))
    return copy


@contextlib.contextmanager
def set_aside(paths: list[Path], corpus: Path, aside: Path) -> Iterator[None]:
    """The files moved out of the corpus (renamed: mtimes kept) for the block, then put back."""
    try:
        for path in paths:
            target = aside / path.relative_to(corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
        yield
    finally:
        for path in paths:
            target = aside / path.relative_to(corpus)
            if target.exists():
                os.rename(target, path)


def verdicts(out: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (cluster, canonical, duplicate_of) for every present document."""
    result = {}
    for line in (out / "manifest.jsonl").read_bytes().splitlines():
        r = orjson.loads(line)
        if r["status"] != "gone":
            result[r["path"]] = (r["cluster"], r["canonical"], r["duplicate_of"])
    return result


def set_away(path: Path, trash: Path, tag: str) -> None:
    """Move a run's OUT or state out of the way, to be removed after the timed runs: removing
    it at once freed ~80,000 inodes a minute before the next timed run, whose new files ext4
    (no journal, as on this VM) then made slowly, skipping each recently freed inode. The
    next invocation waits until 6 minutes have passed since that removal."""
    path.rename(trash / f"{path.name}.{tag}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--arrival", default="latest,spread", help="latest, spread or both (comma-separated)")
    ap.add_argument(
        "--no-full", dest="full", action="store_false", help="skip the full rebuild (at 1M: minutes)"
    )
    ap.add_argument("--noise", choices=("clean", "noisy"), default="clean", help="the scale corpus variant")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "dedup-bench")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/dedup-incremental"),
        help="scratch: corpus copy, states, outputs",
    )
    ap.add_argument("--repo", type=Path, default=REPO, help="the dedup source tree to run")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time the stateless and the incremental run this many times (the state put back each time):"
        " their medians are compared",
    )
    ap.add_argument(
        "--gone",
        type=int,
        default=0,
        help="after the incremental runs, time a cron run that finds this many files gone",
    )
    args = ap.parse_args()
    if args.gone < 0 or args.gone > args.base:
        ap.error("--gone must be between 0 and --base")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    # Files of the corpus are moved aside while a state is built: put them back on SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    total = args.base + args.new
    suffix = "" if args.noise == "clean" else f"-{args.noise}"
    scale_dir = args.cache / "scale" / f"n{total}-dir-s{args.seed}{suffix}"  # shared with throughput.py
    t0 = time.perf_counter()
    generate_scale(
        total, scale_dir, fmt="dir", seed=args.seed, cache_dir=args.cache, progress=True, noise=args.noise
    )
    work = args.work / f"{args.noise}-{total}"
    corpus = working_copy(corpus_path(scale_dir, "dir"), work)
    ready = time.perf_counter() - t0
    trash = work / f"trash-{os.getpid()}"  # what is set away, removed after the timed runs (``set_away``)
    trash.mkdir()
    for old in work.iterdir():  # the outputs of an earlier run of this script (an interrupted one's trash)
        if old.name not in ("corpus", "corpus.copied", trash.name, ".removed-at"):
            set_away(old, trash, "earlier")
    removed_at = work / ".removed-at"
    settle(removed_at, 360)  # after an earlier invocation's removal (see ``set_away``)
    aside = work / "aside"
    repo = args.repo.resolve()

    files = sorted(p for p in corpus.rglob("*.txt"))
    arrivals = {
        "latest": [doc_path(corpus, i) for i in ids_in_order(total, args.seed)[args.base :]],
        "spread": [files[int(i * len(files) / args.new)] for i in range(args.new)],
    }
    rows: list[Row] = []
    incremental: dict[str, tuple[float, dict[str, tuple[Any, ...]]]] = {}
    alone: dict[str, float] = {}
    repeats: dict[str, list[float]] = {}
    removed: dict[str, dict[str, tuple[Any, ...]]] = {}  # arrival -> the verdicts of the run with files gone
    less: dict[str, tuple[Any, ...]] = {}  # a stateless run's over the files left
    taken_out = [files[int((i + 0.5) * len(files) / args.gone)] for i in range(args.gone)]
    for arrival in args.arrival.split(","):
        moved = arrivals[arrival]
        state = ("--state", str(work / f"state-{arrival}"))
        cron_out = work / f"cron-out-{arrival}"
        with set_aside(moved, corpus, aside):
            rows.append(
                (f"{arrival}: state from {args.base:,}", *dedup(repo, corpus, cron_out, args.jobs, *state))
            )
            # The NEW alone, without a state: what the incremental run brings in, at batch cost.
            walls = []
            for k in range(args.repeat):
                if (work / "alone").exists():
                    set_away(work / "alone", trash, f"{arrival}.{k}")
                name = f"{arrival}: stateless, the {args.new:,} alone"
                row = (name, *dedup(repo, aside, work / "alone", args.jobs))
                walls.append(row[1])
            rows.append(row)
            alone[arrival] = statistics.median(walls)
            repeats[f"{arrival}: stateless"] = walls
            set_away(work / "alone", trash, f"{arrival}.{args.repeat}")
        kept = work / "kept"
        if args.repeat > 1:  # the state and OUT as the first run left them, for each repeat
            shutil.rmtree(kept, ignore_errors=True)  # an interrupted run's
            kept.mkdir()
            for path in (Path(state[1]), cron_out):
                subprocess.run(["cp", "-a", str(path), str(kept / path.name)], check=True)
        walls = []
        for k in range(args.repeat):
            if k:
                for path in (Path(state[1]), cron_out):
                    set_away(path, trash, str(k))
                    subprocess.run(["cp", "-a", str(kept / path.name), str(path)], check=True)
                # A copied manifest has another inode and ctime: the run would not take it for the
                # one the last run wrote (``LastManifest``) and would read every stored record from
                # the state, which no real night does. An untimed run over the BASE adopts the copy.
                with set_aside(moved, corpus, aside):
                    dedup(repo, corpus, cron_out, args.jobs, *state)
            row = (f"{arrival}: incremental +{args.new:,}", *dedup(repo, corpus, cron_out, args.jobs, *state))
            walls.append(row[1])
        if kept.exists():
            set_away(kept, trash, arrival)
        rows.append(row)
        repeats[f"{arrival}: incremental"] = walls
        incremental[arrival] = (statistics.median(walls), verdicts(cron_out))
        rows.append((f"{arrival}: rerun, no change", *dedup(repo, corpus, cron_out, args.jobs, *state)))
        if args.gone:
            with set_aside(taken_out, corpus, work / "gone"):
                name = f"{arrival}: {args.gone:,} files gone"
                rows.append((name, *dedup(repo, corpus, cron_out, args.jobs, *state)))
                removed[arrival] = verdicts(cron_out)
                if args.full and len(removed) == 1:
                    rows.append(
                        (f"full rebuild less {args.gone:,}", *dedup(repo, corpus, work / "less", args.jobs))
                    )
                    less = verdicts(work / "less")
    full: dict[str, tuple[Any, ...]] | None = None
    if args.full:
        rows.append((f"full rebuild of {total:,}", *dedup(repo, corpus, work / "full-out", args.jobs)))
        full = verdicts(work / "full-out")
    remove_out(trash, removed_at)  # after the timed runs

    print(f"date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    print(f"corpus: {corpus} ({len(files)} files; ready in {ready:.1f} s); --jobs {args.jobs}; dedup: {repo}")
    print()
    print(
        f"{'run':36s} | {'documents':>9s} | {'new':>7s} | {'wall s':>7s} | {'CPU s':>7s}"
        f" | {'peak RSS MB':>11s} | stages (s)"
    )
    print("-" * 130)
    for name, wall, cpu, rss, summary in rows:
        c = summary["counts"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in summary["timings_s"].items())
        print(
            f"{name:36s} | {c['documents']:9,d} | {c.get('new', c['documents']):7,d} | {wall:7.1f}"
            f" | {cpu:7.1f} | {rss:11,d} | {stages}"
        )
    print()
    if args.repeat > 1:
        for name, walls in repeats.items():
            print(f"{name}: {', '.join(f'{w:.2f}' for w in walls)} s (median {statistics.median(walls):.2f})")
    for arrival, (wall, _) in incremental.items():
        print(
            f"{arrival}: incremental +{args.new:,} takes {wall / alone[arrival]:.1f}x the stateless run"
            f" of the {args.new:,} alone (target <= 2x)"
        )
    if full is None:
        print("full rebuild not run (--no-full): no speed-up or comparison")
        return 0
    same = True
    for arrival, got in removed.items():
        differ = [k for k in sorted(set(got) | set(less)) if got.get(k) != less.get(k)]
        same = same and not differ
        print(f"{arrival}: {args.gone:,} files gone: same clusters and canonicals as a stateless run")
        print(f"  over the files left: {'yes' if not differ else 'NO'} ({len(less):,} documents)")
        for key in differ[:10]:
            print(f"  differs: {key}: incremental {got.get(key)} vs full {less.get(key)}")
    full_wall = next(wall for name, wall, *_ in rows if name.startswith("full rebuild of"))
    for arrival, (wall, got) in incremental.items():
        differ = [k for k in sorted(set(got) | set(full)) if got.get(k) != full.get(k)]
        same = same and not differ
        verdict = "yes" if not differ else "NO"
        print(f"{arrival}: incremental +{args.new:,} is {full_wall / wall:.1f}x faster than the full rebuild")
        print(f"  (target >= 10x); same clusters and canonicals: {verdict} ({len(full):,} documents)")
        for key in differ[:10]:
            print(f"  differs: {key}: incremental {got.get(key)} vs full {full.get(key)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
