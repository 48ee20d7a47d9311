"""The least a cron run with work must spend on the history it keeps, measured piece by piece.

    python benchmarks/cron_floor.py CORPUS STATE OUT [--jobs 2]

CORPUS, STATE and OUT are a cron run's INPUT directory, ``--state`` and OUT (as
``benchmarks/incremental.py`` leaves them, e.g. ``/tmp/inc-1m/noisy-1000000``'s
``corpus``, ``state-latest`` and ``cron-out-latest``). Whatever a run does per
document, with this state layout (the rows' image beside SQLite, the band keys in
``STATE/bands/``, OUT's manifest copied record by record, the prints a no-change
rerun compares: ``rerun.py``) a run that brings new documents must at least: list
the INPUTs (to find what changed) and read the listing, load the stored rows'
columns (to compare), copy every stored record into the new manifest and make it
durable, read every band's stored keys (the new texts are looked up in each), and
list ``canonical/``'s directories for the next rerun's print. Each piece is timed
alone, one after another, in bulk as this layout does it (the listing's names and
the rows' keys are still a Python string a file; the copy is made durable with an
fsync); nothing is written but a temporary copy of the manifest. The sum, plus a
stateless run of the new documents alone, is this layout's floor for an
incremental run, taken serially: on several cores a run could overlap some pieces
with the new documents' work (speed is printed, not asserted). Not in it: pass 2
judging again the stored texts the new ones join and the groups whose limits were
crossed, which depends on the corpus.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dedup import Config, band_store, listing, row_image
from dedup.manifest import MANIFEST
from dedup.state import State


def _listing(top: Path, jobs: int) -> Callable[[], int]:
    def run() -> int:
        return (listing.find(str(top), parallel=jobs) or b"").count(b"\0")

    return run


def _parsed(top: Path) -> Callable[[], int]:
    found = listing.find(str(top), parallel=2) or b""

    def run() -> int:
        files = listing.files(found, Config().globs, str(top))
        return 0 if files is None else len(files.rels)

    return run


def _rows(state: Path) -> Callable[[], int]:
    def run() -> int:
        store = State(state, Config(state=str(state)).stamp())
        try:
            image = row_image.load(store)
            return -1 if image is None else len(image.keys)  # -1: no image, a run would scan SQLite
        finally:
            store.close()

    return run


def _manifest(path: Path, scratch: Path) -> Callable[[], int]:
    def run() -> int:
        size = path.stat().st_size
        with open(path, "rb") as source, open(scratch / "manifest.jsonl", "wb") as target:
            done = 0
            while done < size:
                done += os.copy_file_range(source.fileno(), target.fileno(), size - done, done)
            os.fsync(target.fileno())
        return done

    return run


def _bands(state: Path) -> Callable[[], int]:
    def run() -> int:
        config = Config(state=str(state))
        store = State(state, config.stamp())
        try:
            stamp = store.stamp_text() or ""
        finally:
            store.close()
        bands = band_store.Store.open(state, stamp, config.num_perm // 2)
        if bands is None:
            return -1  # no band keys: a run would stream every signature out of SQLite
        try:
            return sum(len(bands.band(b)) * 8 for b in range(bands.bands))
        finally:
            bands.close()

    return run


def _directories(top: Path) -> Callable[[], int]:
    def run() -> int:
        return (listing.directories(str(top)) or b"").count(b"\n")

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("state", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    Config().stamp()  # its imports (numba, datasketch) are not a piece of the floor
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        pieces = [
            (f"list the INPUTs (finds {args.jobs} at once)", "entries", _listing(args.corpus, args.jobs)),
            ("the listing read (files, sizes, mtimes)", "files", _parsed(args.corpus)),
            ("stored rows (the image)", "rows", _rows(args.state)),
            (
                "stored records copied, made durable",
                "bytes",
                _manifest(args.out / MANIFEST, Path(tmp)),
            ),
            ("every band's stored keys", "bytes", _bands(args.state)),
            ("canonical/'s directories (next rerun)", "entries", _directories(args.out / "canonical")),
        ]
        print(f"{'piece':40s} | {'seconds':>7s} | how much")
        print("-" * 70)
        total = 0.0
        for name, unit, measure in pieces:
            clock = time.perf_counter()
            amount = measure()
            spent = time.perf_counter() - clock
            total += spent
            print(f"{name:40s} | {spent:7.2f} | {amount:,} {unit}")
        print(f"{'sum':40s} | {total:7.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
