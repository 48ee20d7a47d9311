"""The index stage in the driver against on the workers (``dedup.index_workers``): time and peak memory.

    python benchmarks/index_workers.py [--texts 20000,100000,1000000] [--workers 2] [--seed 1]

For each size it writes planted signatures (families of near-duplicates: each member keeps 40-95%
of its head's permutations, ~60% of texts in a family, one family over ``index.MAX_BUCKET``: a
star) to a block spill, as pass 1 leaves them, then in a fresh child process per mode finds the
candidate pairs: `driver` with ``index.candidates`` (what a run did before, and does under
``LOCAL_FROM`` texts), `workers` with ``index_workers.banded_by`` on forked processes. It prints the
stage's wall time, the driver's peak RSS during the stage (VmHWM, reset after the spill is
written), the workers' largest, and whether both modes give the same pairs and stars.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dedup import index, index_workers  # noqa: E402
from dedup.parallel import Processes  # noqa: E402
from dedup.signature_spill import Spilled  # noqa: E402

NUM_PERM = 256
CHUNK = 50_000


def write_planted(out: Path, texts: int, seed: int) -> tuple[Spilled, np.ndarray]:
    _, rows = index.band_layout(threshold=0.15, num_perm=NUM_PERM)
    spill = Spilled.beside(out, num_perm=NUM_PERM, width=index.band_width(rows))
    rng = np.random.default_rng(seed)
    heads = rng.integers(0, 2**32 - 1, size=(max(1, texts // 8), NUM_PERM), dtype=np.uint32)
    for lo in range(0, texts, CHUNK):
        k = min(CHUNK, texts - lo)
        sigs = rng.integers(0, 2**32 - 1, size=(k, NUM_PERM), dtype=np.uint32)
        member = rng.random(k) < 0.6
        keep = rng.random((k, NUM_PERM)) < rng.uniform(0.4, 0.95, size=(k, 1))
        family = heads[rng.integers(0, len(heads), size=k)]
        sigs = np.where(member[:, None] & keep, family, sigs)
        if lo == 0:
            sigs[: index.MAX_BUCKET + 20, :4] = sigs[0, :4]  # a star
        spill.extend(sigs)
    sizes = rng.integers(50, 2000, size=texts).astype(np.int64)
    return spill, sizes


def child(texts: int, seed: int, mode: str, workers: int) -> dict[str, object]:
    bands, rows = index.band_layout(threshold=0.15, num_perm=NUM_PERM)
    with tempfile.TemporaryDirectory(dir=REPO.parent) as tmp:
        spill, sizes = write_planted(Path(tmp), texts, seed)
        spill.files()
        Path("/proc/self/clear_refs").write_text("5")  # the peak from here on (VmHWM)
        clock = time.perf_counter()
        if mode == "driver":
            found = index.candidates(spill, sizes, bands=bands, rows=rows, jaccard=0.5, containment=0.8)
        else:
            found = index_workers.banded_by(
                Processes(workers), spill, sizes, bands=bands, rows=rows, jaccard=0.5, containment=0.8
            )
        wall = time.perf_counter() - clock
        status = Path("/proc/self/status").read_text().splitlines()
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
        spill.close()
    digest = hashlib.sha256(found[1].tobytes() + found[2].tobytes()).hexdigest()[:16]
    return {
        "wall_s": round(wall, 2),
        "driver_mb": hwm // 1024,
        "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
        "proposed": found[0],
        "kept": len(found[1]),
        "stars": len(found[2]),
        "digest": digest,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", default="20000,100000,1000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.seed, args.child[1], args.workers)))
        return
    print("| texts | mode | wall s | driver peak MB | worker peak MB | proposed | kept | stars | same |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for texts in map(int, args.texts.split(",")):
        got = {}
        for mode in ("driver", "workers"):
            cmd = [sys.executable, __file__, "--child", str(texts), mode]
            cmd += ["--seed", str(args.seed), "--workers", str(args.workers)]
            got[mode] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        same = "yes" if got["driver"]["digest"] == got["workers"]["digest"] else "NO"
        for mode, r in got.items():
            wmb = r["workers_mb"] if mode == "workers" else "-"
            print(
                f"| {texts:,} | {mode} | {r['wall_s']} | {r['driver_mb']:,} | {wmb} | {r['proposed']:,} "
                f"| {r['kept']:,} | {r['stars']:,} | {same} |"
            )


if __name__ == "__main__":
    main()
