"""A longer fuzzing run of the readers and the normaliser than CI's (``tests/test_fuzz.py``).

    python benchmarks/fuzz.py [--examples 3000] [--seconds 2]

Runs the test's property (``check``: read arbitrary bytes as a ``.txt`` and an
``.html`` file, normalise, tokenise, measure) on EXAMPLES random inputs of the
test's strategy, not derandomised, and prints how many ran, how many failed,
and the slowest document. Exits 1 on a failure or a document over SECONDS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_fuzz import check, documents  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    slowest: list[tuple[float, int, str]] = [(0.0, 0, "")]
    ran = [0]

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=documents, suffix=st.sampled_from([".txt", ".html"]))
    def fuzz(data: bytes, suffix: str) -> None:
        seconds = check(data, suffix)
        ran[0] += 1
        slowest[0] = max(slowest[0], (seconds, len(data), suffix))
        assert seconds < args.seconds, f"{len(data)} bytes as {suffix}: {seconds:.1f}s"

    started = time.perf_counter()
    failed = 0
    try:
        fuzz()
    except Exception as err:  # hypothesis re-raises the shrunk failure
        failed = 1
        print(f"FAILED: {err!r}"[:2000])
    seconds, size, suffix = slowest[0]
    wall = time.perf_counter() - started
    print("examples | failed | slowest s | its bytes |    as | wall s")
    print(f"{ran[0]:>8} | {failed:>6} | {seconds:9.3f} | {size:>9} | {suffix:>5} | {wall:6.1f}")
    sys.exit(failed)


if __name__ == "__main__":
    main()
