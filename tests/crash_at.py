"""Test-only launcher: a cron run that kills its own process (SIGKILL) at one checkpoint.

    python tests/crash_at.py POINT INPUT OUT STATE

The library calls ``checkpoint(name)`` at each point a crash must be survivable;
this one kills the process there, as a power cut or the OOM killer would.
"""

import os
import signal
import sys

from dedup import Config, run


def main() -> None:
    point, inputs, out, state = sys.argv[1:]

    def checkpoint(name: str) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    run([inputs], out, Config(jobs=1, state=state), checkpoint=checkpoint)
    sys.exit(f"checkpoint {point} was never reached")


if __name__ == "__main__":
    main()
