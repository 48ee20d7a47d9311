"""The least a cron run with work must spend on the history it keeps, measured piece by piece.

    python benchmarks/cron_floor.py CORPUS STATE OUT

CORPUS, STATE and OUT are a cron run's INPUT directory, ``--state`` and OUT (as
``benchmarks/incremental.py`` leaves them, e.g. ``/tmp/inc-1m/noisy-1000000``'s
``corpus``, ``state-latest`` and ``cron-out-latest``). Whatever a run does per
document, with this state layout (rows in SQLite, one manifest.jsonl, the prints a
no-change rerun compares: ``rerun.py``) a run that brings new documents must at
least: list the INPUTs (to find what changed), read each stored row's size and
mtime (to compare), read every stored record into the new manifest, read every
stored signature (banding: 128 bands of 2 rows need all of them), and hash the
manifest and list ``canonical/`` for the next rerun's print. Each piece is timed
alone, in bulk, with no per-document Python beyond fetching; nothing is written
but a temporary copy of the manifest. The sum, plus a stateless run of the new
documents alone, is the floor of an incremental run (speed is printed, not asserted).
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _listing(top: Path) -> Callable[[], int]:
    def run() -> int:
        command = ["find", str(top), "-mindepth", "1", "-printf", "%y %s %T@ %i %P\\0"]
        done = subprocess.run(command, capture_output=True, check=True)
        return done.stdout.count(b"\0")

    return run


def _select(db: sqlite3.Connection, sql: str, measure: Callable[[list[tuple]], int]) -> Callable[[], int]:
    def run() -> int:
        cursor, total = db.execute(sql), 0
        while rows := cursor.fetchmany(8192):
            total += measure(rows)
        return total

    return run


def _signature_bytes(rows: list[tuple]) -> int:
    return sum(len(row[0] or b"") for row in rows)


def _manifest(db: sqlite3.Connection, scratch: Path) -> Callable[[], int]:
    def run() -> int:
        written = 0
        with open(scratch / "manifest.jsonl", "wb") as fh:
            cursor = db.execute("SELECT record FROM documents ORDER BY rowid")
            while rows := cursor.fetchmany(4096):
                written += fh.write(("\n".join(r[0] for r in rows) + "\n").encode())
        return written

    return run


def _hashed(path: Path) -> Callable[[], int]:
    def run() -> int:
        digest, size = hashlib.blake2b(digest_size=20), 0
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
                size += len(block)
        return size

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("state", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    db = sqlite3.connect(f"file:{args.state / 'state.sqlite'}?mode=ro", uri=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        pieces = [
            ("list the INPUTs (find)", "entries", _listing(args.corpus)),
            (
                "stored rows: key, size, mtime",
                "rows",
                _select(db, "SELECT key, size, mtime_ns, gone FROM documents", len),
            ),
            ("stored records into a manifest", "bytes", _manifest(db, Path(tmp))),
            (
                "stored signatures",
                "bytes",
                _select(db, "SELECT signature FROM documents", _signature_bytes),
            ),
            ("the manifest hashed (next rerun)", "bytes", _hashed(args.out / "manifest.jsonl")),
            ("list canonical/ (next rerun)", "entries", _listing(args.out / "canonical")),
        ]
        print(f"{'piece':36s} | {'seconds':>7s} | how much")
        print("-" * 70)
        total = 0.0
        for name, unit, measure in pieces:
            clock = time.perf_counter()
            amount = measure()
            spent = time.perf_counter() - clock
            total += spent
            print(f"{name:36s} | {spent:7.2f} | {amount:,} {unit}")
        print(f"{'sum':36s} | {total:7.2f} |")
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
