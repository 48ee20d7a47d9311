"""The files a cron run with work reads whole, asked of the kernel as it starts.

A nightly run over a large state often finds it out of the page cache: at 1M the
rows' image (200 MB), the band keys (1 GB) and OUT's manifest (700 MB) are then read
from the disk at the moments the run needs them, one after the other. Asked for as
soon as the run knows it has work (``posix_fadvise(WILLNEED)``, from a thread: the
kernel reads them while find lists the INPUTs and pass 1 runs), banding no longer
waits for the band keys: the 1M night with the state's pages dropped took 41.8-47.5 s
before, 39.7-43.5 s after (docs/cron-at-scale.md, "Twentieth round"). The database is
not asked for: a commit touches a few of its pages, and asking for all 2.4 GB slowed
the listing as much as it sped the commit. A hint only: a file that cannot be opened,
or is not a regular file, is passed over, and nothing waits for the thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dedup import band_store, manifest, row_image

if TYPE_CHECKING:
    from dedup.state import State


CHUNK = 1 << 17  # the kernel reads at most its readahead window a call (128 KB by default; 8 MB here)


def cron_files(state: Path, image: Path | None, out: Path | None) -> list[str]:
    """What a cron run with work reads whole, in the order it reads them: the rows' image the
    database names (``row_image``), the band keys' segments (``band_store``), OUT's manifest."""
    last = [] if out is None else [str(out / manifest.MANIFEST)]
    return [*([] if image is None else [str(image)]), *band_store.files(state), *last]


def cron_run(store: State, out: Path | None, *, image: bool = True) -> threading.Thread:
    """Start asking for what a cron run with work over ``store`` reads whole (``cron_files``);
    without the rows' image where the run has read it already."""
    return start(cron_files(store.path.parent, row_image.named_path(store) if image else None, out))


def start(paths: Sequence[str]) -> threading.Thread:
    """Ask for ``paths`` in this order, from a daemon thread (returned: tests wait for it)."""
    thread = threading.Thread(target=ask, args=(list(paths),), name="dedup-readahead", daemon=True)
    thread.start()
    return thread


def ask(paths: Sequence[str], budget: int | None = None) -> int:
    """``posix_fadvise(WILLNEED)`` each regular file of ``paths``, a ``CHUNK`` a call (one call for a
    whole file reads its first 8 MB and no more), until ``budget`` bytes (half the memory by
    default: what does not fit would push out what was read first); returns how many files
    were asked for.

    Opened without following a link and without blocking (a FIFO put in the state's
    place is not waited on), and checked on the open descriptor.
    """
    if budget is None:
        budget = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    asked = 0
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    for path in paths:
        with contextlib.suppress(OSError, ValueError):  # ValueError: a NUL in a name
            fd = os.open(path, flags)
            try:
                info = os.fstat(fd)
                if stat.S_ISREG(info.st_mode) and budget > 0:
                    size = min(info.st_size, budget)
                    for offset in range(0, size, CHUNK):
                        os.posix_fadvise(fd, offset, CHUNK, os.POSIX_FADV_WILLNEED)
                    budget -= size
                    asked += 1
            finally:
                os.close(fd)
    return asked
