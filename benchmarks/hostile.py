"""Hostile documents: what one of them costs a run, in time and peak memory.

    python benchmarks/hostile.py [--mb 3 15] [--jobs 2] [--code DIR]

Writes a .txt and an .html file of 0.3 MB of unclosed ``<!--``, and for each
size a pair of one-line near-duplicate files of random words (the second has one
word in 500 changed), runs ``dedup run`` on each as a user would (a fresh process), and prints the wall
time and the peak RSS of the run (its largest process, workers included).
``--code DIR`` runs the dedup package found in DIR instead (e.g. an export of an
older commit, to compare before and after in the same session).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_line_pair(root: Path, megabytes: float) -> Path:
    """Two near-duplicate one-line files of ``megabytes`` each, in ``root/pair-N``."""
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(20000)]
    words = rng.choices(vocabulary, k=int(megabytes * 1_000_000 / 6.5))
    folder = root / f"pair-{megabytes:g}"
    folder.mkdir()
    (folder / "a.txt").write_text(" ".join(words))
    (folder / "b.txt").write_text(" ".join("x" + w if k % 500 == 0 else w for k, w in enumerate(words)))
    return folder


def comments(root: Path, megabytes: float) -> Path:
    """A text file and an HTML file of nothing but unclosed comments."""
    folder = root / f"comments-{megabytes:g}"
    folder.mkdir()
    body = " <!-- x" * int(megabytes * 1_000_000 / 7)
    (folder / "c.txt").write_text(body)
    (folder / "c.html").write_text(body)
    return folder


def run(folder: Path, out: Path, jobs: int, code: Path | None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB and exit code of one ``dedup run``."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    command = [sys.executable, "-c", _CHILD, str(folder), str(out), str(jobs)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=code or REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")
    return wall, peak, done.returncode


# In a fresh interpreter: run the CLI in a child and report the largest process's peak RSS.
_CHILD = """
import resource, subprocess, sys
folder, out, jobs = sys.argv[1:]
command = [sys.executable, "-m", "dedup", "run", folder, "--out", out, "--force", "-q", "-j", jobs]
rc = subprocess.run(command).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if rc == 0 else "nan")
sys.exit(rc)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, nargs="+", default=[3.0, 15.0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--code", type=Path, default=None)
    args = parser.parse_args()
    assert resource  # the child measures; imported here so the script fails early where it cannot
    print(f"{'input':<28} | {'MB':>5} | {'wall s':>7} | {'peak RSS MB':>11} | exit")
    with tempfile.TemporaryDirectory(prefix="dedup-hostile-") as tmp:
        root = Path(tmp)
        cases = [("unclosed <!-- (.txt, .html)", comments(root, 0.3))]
        cases += [("two one-line near-dups", one_line_pair(root, megabytes)) for megabytes in args.mb]
        for label, folder in cases:
            size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            wall, peak, rc = run(folder, root / "out", args.jobs, args.code)
            print(f"{label:<28} | {size:5.1f} | {wall:7.1f} | {peak:11.0f} | {rc}", flush=True)


if __name__ == "__main__":
    main()
