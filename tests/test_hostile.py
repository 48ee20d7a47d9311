"""Hostile input and faults: no hang, no traceback, no lock-out (issue #11)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import read_manifest

from dedup import normalize, quality

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _dedup(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dedup", "run", *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, **kwargs)


def test_many_unclosed_comments_take_linear_time() -> None:
    text = " <!-- x" * 20_000  # 140 KB: minutes with a comment pattern that scans to the end from each "<!--"
    started = time.perf_counter()
    comparison = normalize.comparison_text(text)
    quality.intrinsic(text, text, comparison)
    assert time.perf_counter() - started < 5
    assert comparison.split() == ["<!--", "x"] * 20_000


def test_comments_are_still_removed() -> None:
    text = "Before <!-- a - b -- c\n<p>x</p> ---> after <!-- open"
    assert normalize.comparison_text(text).split() == ["before", "after", "<!--", "open"]


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_killing_the_main_process_alone_frees_the_state(tmp_path: Path) -> None:
    vocabulary = [f"w{k}" for k in range(3000)]
    scrape = tmp_path / "scrape"
    scrape.mkdir()
    for i in range(3000):  # distinct texts: a pass 1 long enough to be caught in, a short pass 2
        rng = random.Random(i)
        (scrape / f"{i:05d}.txt").write_text(" ".join(rng.choices(vocabulary, k=150)))
    out, state = tmp_path / "out", tmp_path / "state"
    command = [sys.executable, "-m", "dedup", "run", str(scrape), "--out", str(out),
               "--state", str(state), "-j2", "-q"]  # fmt: skip
    main = subprocess.Popen(command, cwd=REPO, env=ENV, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and main.poll() is None and time.monotonic() < deadline:
            workers = _children(main.pid)
            time.sleep(0.01)
        assert len(workers) >= 2, "the run ended before its workers could be seen"
        main.send_signal(signal.SIGKILL)  # the main process only
        main.wait()
        rerun = _dedup(scrape, "--out", out, "--state", state, "-j2", "-q")  # at once, no --lock-timeout
        assert rerun.returncode == 0, rerun.stderr
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers)), "workers outlived the killed run"
    finally:
        for pid in workers:  # the workers this test caused, if the fix is missing
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    reference = _dedup(scrape, "--out", tmp_path / "reference", "-j1", "-q")
    assert reference.returncode == 0, reference.stderr
    keys = ("path", "status", "cluster", "canonical", "duplicate_of", "score")
    ours, theirs = read_manifest(out), read_manifest(tmp_path / "reference")
    assert [[r[k] for k in keys] for r in ours] == [[r[k] for k in keys] for r in theirs]
