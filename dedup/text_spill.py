"""Pass 1's comparison texts on disk, for pass 2 to compare without making them again.

Pass 2 compares each grouped text as pass 1 made it. It used to read the text's
document again and redo pass 1's work on it: read the bytes (a compressed
container's record from a spool), decode them, extract an HTML page, repair its
mojibake and make the comparison text: ~65 of ~130 us a noisy plain text, an
HTML page's extraction many times that. Now each pass-1 worker process appends
the comparison texts it makes to a file of its own (``Writer``), and a
document's features say where its text is (``Features.text_at``). The driver keeps,
per distinct text, where its first document's is (``Texts``), and pass 2 reads
it with one ``pread``: the files are never mapped, so they cost the workers no
memory.

The files are in a temporary directory in OUT (``.texts.*.tmp``), removed once
pass 2 is done (before the copies are made), and after a killed run by the next
one (``manifest.LEFTOVERS``). They take about as much room as the corpus's texts
(a plain text's comparison text is about its size, an HTML page's a fraction of
it); the run writes other files beside them (signatures, tables, records), so the
workers stop writing texts when their file system would keep less than half the
room it had at their first write, or less than ``RESERVE``. They are a cache,
not a source: a text that could not be written (too little room, a Dask worker
that cannot write OUT) or read back is made from its document as before, with
the same result, and a cron run's stored texts, not read in the run, always are.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import struct
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dedup import columns
from dedup.columns import Column

RESERVE = 1 << 30  # bytes the texts always leave free on their file system (``Writer``)
CHUNK = 1 << 20  # bytes a worker writes at once: a batch's texts are not held encoded all at once
OPEN_MAX = 64  # files a process keeps open to read texts from (a Dask worker may see many)

Where = tuple[str, int, int]  # a text's file (its name in the directory), offset and length in bytes

_ROW = struct.Struct("=qqq")  # a ``Texts`` row: file number, offset, length (native int64, as the column)
_ERRORS = "surrogatepass"  # any str, lone surrogates too, and back the same


class Writer:
    """Where a pass-1 worker appends the comparison texts it makes: a file of its own per process.

    Built in the parent with the directory; a forked worker, or a Dask worker
    it is sent to, opens its file at its first write.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # a Dask worker's threads share it
        self._pid = -1
        self._fd = -1
        self._name = ""
        self._end = 0
        self._floor = RESERVE  # the free bytes the texts leave on their file system
        self._failed = False

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"])  # type: ignore[misc]

    def put(self, texts: Sequence[str]) -> list[Where | None]:
        """``texts`` appended, ``CHUNK`` bytes a write; where each is (all None when they could not
        all be written: the file is not written to again)."""
        if self.directory is None or not texts:
            return [None] * len(texts)
        with self._lock:
            if self._pid != os.getpid():
                self._open()
            if self._failed:
                return [None] * len(texts)
            wheres: list[Where | None] = []
            buffer, end = bytearray(), self._end
            try:
                for text in texts:
                    data = text.encode("utf-8", _ERRORS)
                    wheres.append((self._name, end, len(data)))
                    end += len(data)
                    if len(buffer) + len(data) > CHUNK:
                        self._write(buffer)
                        buffer.clear()
                    if len(data) > CHUNK:
                        self._write(data)
                    else:
                        buffer += data
                self._write(buffer)
            except OSError:
                self._failed = True  # nothing after a short write is trusted: pass 2 reads those again
                return [None] * len(texts)
            self._end = end
        return wheres

    def _write(self, data: bytes | bytearray) -> None:
        if not data:  # (a text over CHUNK written on its own leaves the buffer empty)
            return
        room = os.statvfs(self._fd)
        if room.f_bavail * room.f_frsize < len(data) + self._floor:
            raise OSError(errno.ENOSPC, "leaving the room to the run's other files")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _open(self) -> None:
        self._pid, self._end, self._failed = os.getpid(), 0, False
        assert self.directory is not None
        self._name = f"{self._pid}-{secrets.token_hex(4)}"
        try:
            room = os.statvfs(self.directory)
            self._floor = max(RESERVE, room.f_bavail * room.f_frsize // 2)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            self._fd = os.open(self.directory / self._name, flags, 0o600)
        except OSError:
            self._failed = True
            return
        weakref.finalize(self, _close, self._fd, self._pid)


class Texts:
    """Per distinct text (node), where its first document's comparison text is; pass 2's reader of them.

    Appended by the driver as pass 1 makes nodes, sealed, then read (a forked
    worker inherits it, a Dask worker is sent the columns' paths). Only the nodes
    with a text written have a row (a cron run's stored texts have none). A file
    is opened at its first read in a process and stays open there (up to
    ``OPEN_MAX`` files at once).

    Example:
        >>> import tempfile
        >>> spill = Path(tempfile.mkdtemp())
        >>> texts = Texts(spill, None)
        >>> for where in Writer(spill).put(["first text", "zweiter Text"]) + [None]:
        ...     texts.add(where)
        >>> texts.seal()
        >>> texts.get(1), texts.get(2), texts.held(np.array([0, 2])).tolist()
        ('zweiter Text', None, [True, False])
    """

    def __init__(self, directory: Path | None, tables: Path | None) -> None:
        self.directory = directory
        self._nodes = Column.named("q", tables, "text_nodes")  # ascending
        self._at = Column.named("q", tables, "texts", 3)  # each one's file number, offset, length
        self._count = 0  # nodes added
        self._files: list[str] = []
        self._code: dict[str, int] = {}
        self._found: tuple[np.ndarray, np.ndarray] | None = None
        self._fds: dict[int, int] = {}
        self._closing: dict[int, weakref.finalize] = {}
        self._pid = os.getpid()

    def add(self, where: Where | None) -> None:
        """The next node's text (None: none written; pass 2 reads its document again)."""
        node, self._count = self._count, self._count + 1
        if where is None:
            return
        name, offset, length = where
        code = self._code.setdefault(name, len(self._files))
        if code == len(self._files):
            self._files.append(name)
        self._nodes.append(node)
        self._at.extend(_ROW.pack(code, offset, length))  # (the driver, once a new text: 0.06 us, not 0.4)

    def add_none(self, n: int) -> None:
        """``n`` nodes without a text written (a cron run's stored texts)."""
        self._count += n

    def seal(self) -> None:
        self._nodes.seal()
        self._at.seal()

    def held(self, nodes: np.ndarray) -> np.ndarray:
        """Which of ``nodes`` have their text here (bool)."""
        have, _ = self._table()
        nodes = np.asarray(nodes, dtype=np.int64)
        k = np.minimum(np.searchsorted(have, nodes), max(len(have) - 1, 0))
        return have[k] == nodes if len(have) else np.zeros(len(nodes), dtype=bool)

    def verify(self) -> None:
        """Keep only the texts whose files are there and hold them, before pass 2 plans on them.

        A text that cannot be read is made from its document, and a compressed
        container's record is then read from the container's start unless the spool
        holds it (``readers.spooled``, made for the texts not held): for every record
        of a large shard that was a read of the shard each.
        """
        have, at = self._table()
        if not len(have):
            return
        sizes = np.full(len(self._files), -1, dtype=np.int64)
        for code, name in enumerate(self._files):
            with contextlib.suppress(OSError):
                assert self.directory is not None
                sizes[code] = os.stat(self.directory / name).st_size
        whole = at[:, 1] + at[:, 2] <= sizes[at[:, 0]]
        if not whole.all():
            self._found = have[whole], at[whole]

    def get(self, node: int) -> str | None:
        """Node ``node``'s comparison text as pass 1 made it; None when it is not here or cannot be read."""
        have, at = self._table()
        k = int(np.searchsorted(have, node))
        if k == len(have) or have[k] != node or self.directory is None:
            return None
        code, offset, length = at[k].tolist()
        try:
            data = os.pread(self._fd(code), length, offset)
            if len(data) != length:
                return None
            return data.decode("utf-8", _ERRORS)
        except (OSError, UnicodeDecodeError):
            return None

    def discard(self) -> None:
        """Pass 2 is done: this process's descriptors closed and the files removed, so that the
        pages of them not yet on the disk are dropped, not written (the kernel writes a page ~30 s
        after it changed; a Dask worker's descriptors close when its copy of the corpus goes)."""
        for closing in self._closing.values():
            closing()
        self._fds, self._closing = {}, {}
        if self.directory is not None:
            with contextlib.suppress(OSError), os.scandir(self.directory) as entries:
                for entry in entries:
                    os.unlink(entry.path)

    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        if self._found is None:
            self._found = self._nodes.numbers(), self._at.numbers()
        return self._found

    def _fd(self, code: int) -> int:
        if self._pid != os.getpid():  # a forked worker: its own descriptors
            self._fds, self._closing, self._pid = {}, {}, os.getpid()
        fd = self._fds.get(code)
        if fd is None:
            assert self.directory is not None
            if len(self._fds) >= OPEN_MAX:
                for closing in self._closing.values():
                    closing()
                self._fds, self._closing = {}, {}
            fd = self._fds[code] = os.open(self.directory / self._files[code], os.O_RDONLY | os.O_CLOEXEC)
            self._closing[code] = weakref.finalize(self, _close, fd, self._pid)
        return fd

    def __getstate__(self) -> dict[str, Any]:
        """Sent to a Dask worker: the sealed columns as their files' paths (``columns.by_file``)."""
        nodes, at = self._table()
        return {
            "directory": self.directory,
            "files": self._files,
            "at": [columns.by_file(nodes), columns.by_file(at)],
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.directory, self._files = state["directory"], state["files"]
        nodes, at = (columns.from_file(a) for a in state["at"])
        self._found = nodes, at
        self._code, self._fds, self._closing, self._pid = {}, {}, {}, os.getpid()


def _close(fd: int, pid: int) -> None:
    if os.getpid() == pid:
        os.close(fd)
