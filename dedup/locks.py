"""Locks that keep two runs apart: on a ``--state`` directory, and on OUT.

An OS file lock (``flock``) on a file in the directory: released when the
holder's process dies, so a killed run never leaves a stale lock. The holder
writes its pid into the file for the message of the run that gives up.

``flock`` belongs to the open file, which a forked child shares: a worker
process would keep the lock after its parent is killed. So a child forked
while the lock is held closes its copy of the descriptor at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from dedup.errors import OutputError, StateError, StateLockedError

STATE_LOCK = "lock"  # in the --state directory (OUT's is manifest.OUT_LOCK)


@contextlib.contextmanager
def locked(directory: Path, timeout: float, name: str = STATE_LOCK, *, what: str = "state") -> Iterator[None]:
    """Hold a directory's lock file (an OS file lock, released if the process dies).

    Args:
        directory: the directory to lock (created if missing).
        timeout: seconds to wait for another holder.
        name: the lock file's name in ``directory``.
        what: how the error names the directory (``state``, ``OUT``).

    Raises:
        StateLockedError: another process held it for longer than ``timeout`` seconds
            (``.path`` the directory, ``.pid`` the holder's).
        StateError, OutputError: the directory or its lock file cannot be made
            (``what`` is ``OUT``: OutputError).
    """
    error = OutputError if what == "OUT" else StateError
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:  # (mkdir's word for a FIFO or a file where the directory should be)
        raise error(
            f"cannot use {what} {directory}: it is there and is not a directory", path=directory
        ) from err
    except OSError as err:
        raise error(f"cannot use {what} {directory}: {err.strerror or err}", path=directory) from err
    try:  # not through a link, nor a FIFO's wait: a lock that is not a file is named, not blamed on OUT
        fd = os.open(
            directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644
        )
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.ELOOP, "not a regular file")
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EISDIR):
            why = f"its lock file {name} is not a regular file (remove it)"
        else:
            why = f"its lock file {name}: {err.strerror or err}"
        raise error(f"cannot use {what} {directory}: {why}", path=directory) from err
    held = [fd]  # emptied on release: a later child must not close a reused descriptor number
    os.register_at_fork(after_in_child=lambda: _close_in_child(held))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                    raise StateLockedError(
                        f"{what} {directory} is locked by {holder}; "
                        f"gave up after --lock-timeout {timeout:g}s",
                        path=directory,
                        pid=_pid(holder),
                    ) from None
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        held.clear()
        os.close(fd)  # closing releases the lock


def _close_in_child(held: list[int]) -> None:
    """In a forked child: drop the inherited descriptor, so the lock dies with the parent."""
    for fd in held:
        with contextlib.suppress(OSError):
            os.close(fd)
    held.clear()


def _pid(holder: str) -> int | None:
    """The pid in a lock file's ``pid N``, if that is what it holds."""
    word = holder.removeprefix("pid ")
    return int(word) if word != holder and word.isdigit() else None
