"""Report benchmark: how long `dedup report` takes, how big the page is, and whether Chromium opens it.

    python benchmarks/report.py [--sizes 10000,100000] [--texts 1000] [--jobs 2] [--cache DIR] [--no-chromium]
                                [--replicate N]

For each size it builds (or reuses from the cache) the scale corpus of benchmarks/throughput.py
(corpora/scale.py: news-like articles, ~4 KB each, 20% near-duplicates), runs `dedup run` on it
once, then times `dedup report OUT --texts N` in a child process (peak RSS from a launcher's
RUSAGE_CHILDREN). The page's bytes are split into the cluster list, which grows with the run, and
the embedded texts, which `--texts` bounds, so that the size at 1M can be extrapolated from the
list's bytes per cluster. Then headless Chromium loads the page twice and the DOM is checked: the
first page of the cluster list (50 rows), and one cluster opened from the URL (#cluster=ID) with
its side-by-side view. With --replicate N, the run's manifest is also repeated N times under new
paths and cluster names (a run N times as large, as far as the cluster list goes; no texts are
read for it), to measure the list's time, memory and size where no corpus that large is at hand.
The exit code is 1 when a run fails or a check does not hold.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpora.scale import corpus_path, generate_scale  # noqa: E402
from corpora.sources import DEFAULT_CACHE  # noqa: E402

_LAUNCHER = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a command, measured by a launcher process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    rss_kb, rc = done.stdout.split()
    if rc != "0":
        raise RuntimeError(f"{cmd}: exit {rc}")
    return wall, int(rss_kb) / 1024


def chromium_dom(browser: str, url: str, work: Path) -> tuple[float, str]:
    profile = tempfile.mkdtemp(dir=work)
    start = time.perf_counter()
    done = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    shutil.rmtree(profile, ignore_errors=True)
    return time.perf_counter() - start, done.stdout


def measure(label: str, out: Path, texts: int, browser: str | None, work: Path) -> dict[str, Any]:
    """Time ``dedup report OUT`` and, with a browser, check the page it wrote."""
    report_s, rss = timed([sys.executable, "-m", "dedup", "report", str(out), "-q", "--texts", str(texts)])
    page = (out / "report.html").read_bytes()
    start = page.index(b'id="data">') + len(b'id="data">')
    data = orjson.loads(page[start : page.index(b"</script>", start)])
    row: dict[str, Any] = {
        "size": label,
        "clusters": len(data["clusters"]),
        "detailed": len(data["details"]),
        "report_s": report_s,
        "rss": rss,
        "page_mb": len(page) / 1e6,
        "list_b": len(orjson.dumps(data["clusters"])) / max(len(data["clusters"]), 1),
        "texts_mb": len(orjson.dumps(data["details"])) / 1e6,
        "load_s": None,
        "open_s": None,
        "dom": "-",
    }
    if browser:
        uri = (out / "report.html").as_uri()
        row["load_s"], dom = chromium_dom(browser, uri, work)
        drawn = len(re.findall(r'<tr class="cluster"', dom))
        target = next(iter(data["details"]), data["clusters"][0][0] if data["clusters"] else None)
        row["open_s"], opened = chromium_dom(browser, f"{uri}#cluster={target}", work)
        pairs = opened.count('class="side-by-side"')
        shown = pairs >= 1 if data["details"] else f'class="detail" data-cluster="{target}"' in opened
        row["ok"] = drawn == min(50, len(data["clusters"])) and shown
        row["dom"] = f"{drawn} rows, {pairs} pairs" if row["ok"] else "FAILED"
    return row


def replicate(out: Path, big: Path, times: int) -> None:
    """A run ``times`` as large, for the cluster list only: the manifest repeated, renamed."""
    big.mkdir()
    summary = orjson.loads((out / "summary.json").read_bytes())
    summary["counts"] = {k: v * times for k, v in summary["counts"].items()}
    (big / "summary.json").write_bytes(orjson.dumps(summary))
    lines = (out / "manifest.jsonl").read_bytes().splitlines()
    with open(big / "manifest.jsonl", "wb") as fh:
        for k in range(times):
            prefix = f"r{k}/".encode()
            for line in lines:
                line = line.replace(b'"path":"', b'"path":"' + prefix)
                line = line.replace(b'"duplicate_of":"', b'"duplicate_of":"' + prefix)
                fh.write(re.sub(rb'"cluster":"c', b'"cluster":"c%d-' % k, line) + b"\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000", help="comma-separated corpus sizes")
    ap.add_argument("--texts", type=int, default=1000, help="dedup report --texts")
    ap.add_argument("--jobs", type=int, default=2, help="dedup run --jobs")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloads, corpora (CACHE/scale)")
    ap.add_argument("--no-chromium", action="store_true", help="do not open the page in Chromium")
    ap.add_argument(
        "--replicate",
        type=int,
        default=0,
        help="also measure the cluster list of a run N times larger (each manifest repeated N times)",
    )
    args = ap.parse_args()
    browser = None if args.no_chromium else shutil.which("chromium")
    (args.cache / "work").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="report-", dir=args.cache / "work"))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            cdir = args.cache / "scale" / f"n{size}-dir-s1"
            generate_scale(size, cdir, fmt="dir", seed=1, cache_dir=args.cache, progress=True)
            out = work / f"out-{size}"
            corpus = str(corpus_path(cdir, "dir"))
            run_s, _ = timed(
                [
                    sys.executable,
                    "-m",
                    "dedup",
                    "run",
                    corpus,
                    "--out",
                    str(out),
                    "-q",
                    "--jobs",
                    str(args.jobs),
                ]
            )
            rows.append({**measure(f"{size:,}", out, args.texts, browser, work), "run_s": run_s})
            if args.replicate > 1:
                big = work / f"out-{size}x{args.replicate}"
                replicate(out, big, args.replicate)
                label = f"{size * args.replicate:,} (manifest x{args.replicate})"
                rows.append({**measure(label, big, 0, browser, work), "run_s": None})
                shutil.rmtree(big)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        "| size | dedup run s | clusters w/ dups | with texts | report s | peak RSS MB | page MB "
        "| list B/cluster | texts MB | Chromium load s | open cluster s | DOM |"
    )
    for r in rows:
        run_s = f"{r['run_s']:.1f}" if r["run_s"] is not None else "-"
        load = f"{r['load_s']:.1f}" if r["load_s"] is not None else "-"
        opened = f"{r['open_s']:.1f}" if r["open_s"] is not None else "-"
        print(
            f"| {r['size']} | {run_s} | {r['clusters']:,} | {r['detailed']:,} "
            f"| {r['report_s']:.1f} | {r['rss']:.0f} | {r['page_mb']:.1f} "
            f"| {r['list_b']:.0f} | {r['texts_mb']:.1f} | {load} | {opened} | {r['dom']} |"
        )
    return 0 if all(r.get("ok", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
