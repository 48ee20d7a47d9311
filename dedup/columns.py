"""A run's per-document columns in files in OUT, read back through ``mmap``: the driver stays flat.

A batch run keeps a row per document (path, hash, size, node, signals...): ~150
bytes, ~15 GB of the driver's heap at 100M documents, and a Dask worker was sent
the whole table with its stage. Here each column is appended in manifest order;
every ``CHUNK`` entries go to a file in the run's temporary directory and are read
back through a read-only ``mmap``, so what the driver holds is the page cache's to
drop, and a worker (forked, or on Dask with OUT on shared storage) maps the same
files instead of receiving them. Without a directory (cron mode, tests) a column
is an in-memory array with the same interface.

Only the entries not yet written can be changed: pass 1 sets a document's
features right after reserving its row, before the next chunk is written.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 1 << 16  # entries per write: 64K paths' ends are 512 KB

_DTYPES = {"B": np.uint8, "I": np.uint32, "q": np.int64, "Q": np.uint64, "f": np.float32}


@contextlib.contextmanager
def directory_in(out: Path, wanted: bool = True, prefix: str = ".tables.") -> Iterator[Path | None]:
    """A temporary directory for a run's columns in ``out``, removed after (``manifest.LEFTOVERS``
    knows its name, ``prefix*.tmp``, for a run that was killed); None when not ``wanted``."""
    if not wanted:
        yield None
        return
    # Absolute: a Dask worker elsewhere opens the columns by these paths.
    directory = Path(tempfile.mkdtemp(dir=out.resolve(), prefix=prefix, suffix=".tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Column:
    """Entries of one type code (``width`` of them a row), appended in order.

    Example:
        >>> import tempfile
        >>> col = Column("q", Path(tempfile.mkdtemp()) / "size", chunk=2)
        >>> for v in (5, 6, 7): col.append(v)
        >>> col.seal(); (len(col), col[0], col[2], col.numbers().tolist())
        (3, 5, 7, [5, 6, 7])
    """

    def __init__(self, typecode: str, path: Path | None = None, *, width: int = 1, chunk: int = 0) -> None:
        self.typecode, self.width, self.path = typecode, width, path
        self._tail = array(typecode)  # the entries not in the file yet
        self._chunk = (chunk or CHUNK) * width  # CHUNK read here: tests make it small
        self._backed = path is not None
        self._open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600) if path is not None else -1)
        self._flushed = 0  # items (not rows) in the file
        self._view: memoryview | None = None  # the file's first ``_mapped`` items
        self._mapped = 0

    @classmethod
    def named(cls, typecode: str, directory: Path | None, name: str, width: int = 1) -> Column:
        """A column in file ``name`` of ``directory``, or in memory without one."""
        return cls(typecode, directory / name if directory else None, width=width)

    def __len__(self) -> int:
        return (self._flushed + len(self._tail)) // self.width

    def append(self, value: int | float) -> None:
        if self._backed and len(self._tail) >= self._chunk:  # (a column in memory: one test, ~8 per document)
            self._write()
        self._tail.append(value)  # type: ignore[arg-type]

    def extend(self, data: bytes) -> None:
        """A row (or several) as raw bytes: a whole number of rows, in the type code's machine format."""
        if self._backed and len(self._tail) >= self._chunk:
            self._write()
        self._tail.frombytes(data)

    def _write(self) -> None:
        data = memoryview(self._tail.tobytes())
        while data:
            data = data[os.write(self._fd, data) :]
        self._flushed += len(self._tail)
        self._tail = array(self.typecode)

    def _file(self, item: int) -> memoryview:
        """The mapped file, mapped again if it has grown past ``item`` since."""
        if item >= self._mapped:
            size = self._flushed * self._tail.itemsize
            self._view = memoryview(mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)).cast(self.typecode)  # type: ignore[call-overload]
            self._mapped = self._flushed
        assert self._view is not None
        return self._view

    def __getitem__(self, i: int) -> Any:
        """Entry ``i`` (a column of width 1)."""
        if 0 <= i < self._mapped:  # the manifest's workers read sealed columns: the mapped file
            return self._view[i]  # type: ignore[index]
        n = len(self)
        if not -n <= i < n:
            raise IndexError("column index out of range")
        i %= n
        if i < self._flushed:
            return self._file(i)[i]
        return self._tail[i - self._flushed]

    def __setitem__(self, i: int, value: int | float) -> None:
        assert i >= self._flushed, "an entry already written to the file"
        self._tail[i - self._flushed] = value  # type: ignore[assignment]

    def items(self, start: int, stop: int) -> bytes:
        """Items ``start:stop`` as bytes (rows are ``width`` items: ``row`` for one)."""
        if 0 < stop <= self._mapped:
            return self._view[start:stop].tobytes()  # type: ignore[index]
        if stop <= self._flushed:
            return self._file(stop - 1)[start:stop].tobytes() if stop > start else b""
        if start >= self._flushed:
            return self._tail[start - self._flushed : stop - self._flushed].tobytes()
        return self.items(start, self._flushed) + self.items(self._flushed, stop)

    def row(self, i: int) -> bytes:
        return self.items(i * self.width, (i + 1) * self.width)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` of a byte column, as an array of ``width`` bytes each: only those copied
        where the column is all in memory (a cron run's)."""
        if not self._flushed and len(self._tail):
            return np.frombuffer(self._tail, dtype=np.uint8).reshape(-1, self.width)[rows]
        whole = np.frombuffer(self.items(0, len(self) * self.width), dtype=np.uint8)
        return whole.reshape(-1, self.width)[rows]

    def set_row(self, i: int, data: bytes) -> None:
        start = i * self.width - self._flushed
        assert start >= 0, "a row already written to the file"
        self._tail[start : start + self.width] = array(self.typecode, data)

    def set_rows(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Rows ``rows`` (none written to the file yet) set to ``values`` (one row of ``width`` each)."""
        if not len(rows):
            return
        assert int(rows.min()) * self.width >= self._flushed, "a row already written to the file"
        tail = np.frombuffer(self._tail, dtype=_DTYPES[self.typecode]).reshape(-1, self.width)
        assert values.dtype == tail.dtype, "values of another type"
        tail[rows - self._flushed // self.width] = values.reshape(len(rows), self.width)

    def seal(self) -> None:
        """Everything in the file (no more appends): readers and ``numbers`` see it all."""
        if self._backed and self._tail:
            self._write()

    def numbers(self) -> np.ndarray:
        """The whole column as a read-only numpy array (rows of ``width``), a view of the file when sealed."""
        dtype = _DTYPES[self.typecode]
        shape = (len(self), self.width) if self.width > 1 else (len(self),)
        if not self._backed or not self._flushed:
            values = np.frombuffer(self._tail, dtype=dtype) if self._tail else np.zeros(0, dtype=dtype)
            return values.reshape(shape)
        assert not self._tail, "a column read whole before it was sealed"
        assert self.path is not None
        # A plain view (``by_file`` still finds the file): np.memmap indexes in Python, 3-5x slower.
        return np.asarray(np.memmap(self.path, dtype=np.dtype(dtype), mode="r", shape=shape))

    def __getstate__(self) -> dict[str, Any]:
        """Sent to a Dask worker: the file's path (it maps the file itself), or the entries."""
        assert not (self._backed and self._tail), "a column sent before it was sealed"
        return {
            "typecode": self.typecode,
            "width": self.width,
            "path": self.path,
            "tail": None if self._backed else self._tail,
            "flushed": self._flushed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.typecode, self.width, self.path = state["typecode"], state["width"], state["path"]
        self._backed = state["tail"] is None
        self._tail = array(self.typecode) if self._backed else state["tail"]
        self._chunk, self._flushed = 0, state["flushed"]  # read only: a worker never appends
        self._open(os.open(self.path, os.O_RDONLY) if self._backed else -1)
        self._view, self._mapped = None, 0

    def _open(self, fd: int) -> None:
        self._fd = fd
        # Closed with the column, however the run ends; a map made of it keeps its own descriptor.
        if fd >= 0:
            weakref.finalize(self, os.close, fd)


class Blobs:
    """Byte strings of any length appended in order: one column of their bytes, one of their ends.

    Example:
        >>> blobs = Blobs(None, "x")
        >>> blobs.append(b"ab"); blobs.append(b""); blobs.append(b"c")
        >>> (len(blobs), blobs[0], blobs[1], blobs[-1])
        (3, b'ab', b'', b'c')
    """

    def __init__(self, directory: Path | None, name: str) -> None:
        self._bytes = Column.named("B", directory, name)
        self._ends = Column.named("Q", directory, f"{name}_ends")

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, blob: bytes) -> None:
        self._bytes.extend(blob)
        self._ends.append(len(self._bytes))

    def extend(self, blobs: list[bytes]) -> None:
        ends = np.cumsum(np.fromiter(map(len, blobs), dtype=np.uint64, count=len(blobs)), dtype=np.uint64)
        self._ends.extend((ends + np.uint64(len(self._bytes))).tobytes())
        self._bytes.extend(b"".join(blobs))

    def __getitem__(self, i: int) -> bytes:
        n = len(self._ends)
        if not -n <= i < n:
            raise IndexError("blob index out of range")
        i %= n
        return self._bytes.items(self._ends[i - 1] if i else 0, self._ends[i])

    def seal(self) -> None:
        self._bytes.seal()
        self._ends.seal()


class Sparse:
    """A value for some documents, from a small set: the documents and a code each in columns,
    each distinct value held once. Documents are set in increasing order.

    Pass 1's mojibake repairs (ftfy's steps, for pass 2 to replay) were a dict: a
    tuple of tuples of strings unpickled anew for each document, ~400 bytes of the
    driver's heap each (50,098 of them at the noisy 1M).

    Example:
        >>> plans = Sparse(None, "repairs")
        >>> plans[3] = ("a", "b"); plans[8] = ("a", "b"); plans.seal()
        >>> plans.get(8), plans.get(5), len(plans)
        (('a', 'b'), None, 2)
    """

    def __init__(self, directory: Path | None, name: str) -> None:
        self._docs = Column.named("q", directory, f"{name}_docs")
        self._codes = Column.named("I", directory, f"{name}_codes")
        self._values: list[Any] = []
        self._code: dict[Any, int] = {}
        self._found: np.ndarray | None = None  # the documents, read whole once sealed

    def __len__(self) -> int:
        return len(self._docs)

    def __setitem__(self, doc: int, value: Any) -> None:
        assert not len(self._docs) or doc > self._docs[-1], "documents out of order"
        code = self._code.setdefault(value, len(self._values))
        if code == len(self._values):
            self._values.append(value)
        self._docs.append(doc)
        self._codes.append(code)

    def get(self, doc: int) -> Any:
        """The value of ``doc``, None when it has none (after ``seal``)."""
        if self._found is None:
            self._found = self._docs.numbers()
        k = int(np.searchsorted(self._found, doc))
        if k < len(self._found) and self._found[k] == doc:
            return self._values[self._codes[k]]
        return None

    def seal(self) -> None:
        self._docs.seal()
        self._codes.seal()

    def __getstate__(self) -> dict[str, Any]:
        return {"docs": self._docs, "codes": self._codes, "values": self._values}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._docs, self._codes, self._values = state["docs"], state["codes"], state["values"]
        self._code = {}  # read only: a worker never sets
        self._found = None


def by_file(values: np.ndarray) -> Any:
    """What pickles ``values``: its file's path when it is a whole mapped file, else the array itself.

    A Dask worker then maps the file (OUT is on storage it sees) instead of receiving the array.
    """
    mapped = values if isinstance(values, np.memmap) else values.base  # or np.asarray's view of one
    if not (isinstance(mapped, np.memmap) and isinstance(mapped.base, mmap.mmap) and mapped.filename):
        return values
    if (values.dtype, values.shape, values.strides, values.ctypes.data) != (
        mapped.dtype, mapped.shape, mapped.strides, mapped.ctypes.data
    ):  # fmt: skip
        return values  # a part of the file
    return ("mapped", mapped.filename, mapped.dtype.str, mapped.shape, mapped.offset)


def from_file(state: Any) -> np.ndarray:
    """``by_file`` undone."""
    if isinstance(state, tuple) and state and state[0] == "mapped":
        _, path, dtype, shape, offset = state
        return np.asarray(np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset))
    assert isinstance(state, np.ndarray)
    return state


def zeros(path: Path | None, dtype: type[np.integer[Any]], n: int) -> np.ndarray:
    """``n`` zeros in a new file, mapped to be written; in memory without a path, or when ``n`` is 0
    (a file can't be mapped empty).

    The file's blocks are allocated first (``posix_fallocate``): a full disk is
    then an ``OSError`` here, not a SIGBUS when a write through the map finds no
    block (a file made sparse, as ``np.memmap``'s "w+" makes it, has none).
    """
    if path is None or not n:
        return np.zeros(n, dtype=dtype)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    size = n * np.dtype(dtype).itemsize
    try:
        os.posix_fallocate(fd, 0, size)
    except (AttributeError, OSError) as err:  # no posix_fallocate (macOS), or not on this file system
        if isinstance(err, OSError) and err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            os.close(fd)
            raise OSError(err.errno, err.strerror, str(path)) from err
        os.ftruncate(fd, size)  # sparse, as before: a full disk may then still be a SIGBUS
    os.close(fd)
    return np.memmap(path, dtype=dtype, mode="r+", shape=(n,))


def read_at(fd: int, size: int, offset: int = 0) -> bytes:
    """Up to ``size`` bytes of ``fd`` from ``offset`` (fewer only at its end): one ``pread`` returns
    at most ~2 GB on Linux, so a large read is pieced together."""
    parts = []
    while size > 0 and (part := os.pread(fd, min(size, 1 << 30), offset)):
        parts.append(part)
        size -= len(part)
        offset += len(part)
    return b"".join(parts)
