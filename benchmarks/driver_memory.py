"""What the driver holds per document after pass 1: the tables that grow with the corpus, measured.

    python benchmarks/driver_memory.py CORPUS... [--jobs 2]

Runs pass 1 (``pass1.read_all``, the workers reading; the signatures spilled to
disk as a batch run does, unless ``--in-memory``) in this process on the INPUTs,
then sizes what the driver keeps: each column of the document table and the
feature table (their buffers; the paths' buffer and ends, before: list slots and strings; the
sparse dicts of errors and extras), the token-frequency table (fixed size), and
the process's peak RSS. Prints bytes in total and per document, so that the
memory at N documents can be estimated as fixed + N x per document.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dedup import readers  # noqa: E402
from dedup.config import Config  # noqa: E402
from dedup.document import Paths  # noqa: E402
from dedup.frequency import TokenFrequency  # noqa: E402
from dedup.pass1 import read_all  # noqa: E402
from dedup.signature_spill import Spilled  # noqa: E402


def _size(value: Any) -> int:
    """Bytes held by a column: an array's buffer, a list's slots and its strings, a dict's entries."""
    if isinstance(value, array):
        return value.buffer_info()[1] * value.itemsize
    if isinstance(value, bytearray):
        return len(value)
    if isinstance(value, list):
        return sys.getsizeof(value) + sum(sys.getsizeof(v) for v in value)
    if isinstance(value, Paths):  # one UTF-8 buffer and the ends (since the ninth round)
        return sum(_size(v) for v in vars(value).values())
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
    args = ap.parse_args()
    clock = time.perf_counter()
    frequency = TokenFrequency()
    with tempfile.TemporaryDirectory() as tmp:
        spill = None if args.in_memory else Spilled.beside(Path(tmp), num_perm=256, width=16)
        config = Config(jobs=args.jobs)
        docs, feats, fresh = read_all(readers.discover(args.inputs), config, frequency, spill=spill)
        spilled = sum(f.stat().st_size for f in spill.directory.iterdir()) if spill else 0
        wall = time.perf_counter() - clock
        if spill:
            spill.close()
    n, nodes = len(docs), len(feats.contents)
    parts = {f"documents.{k.lstrip('_')}": _size(v) for k, v in vars(docs).items() if k not in ("spool",)}
    for name in ("node_of", "signals", "contents", "sizes"):
        parts[f"features.{name}"] = _size(getattr(feats, name))
    parts["features.signatures (per distinct text)"] = feats.matrix().nbytes  # none when spilled
    parts["fresh flags"] = len(fresh)
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| driver peak RSS after pass 1 | {peak:,.0f} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
