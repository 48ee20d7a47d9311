"""Pass 2's settled records on disk until the manifest is written: the driver's growth in pass 2.

A grouped text's record (serialised JSON, with its reason, penalties and
signals) is ~0.7-1 KB; held in a dict until the write stage, they made the
summed memory of a 1M noisy run climb from 0.76 to 1.73 GB through pass 2.
Here each record is appended to a file in OUT as it arrives and the driver
keeps 12 bytes for it (offset and length); the write stage reads it back with
one ``pread`` (from the page cache: the file was just written).

The file is in OUT, under a temporary name (``.records.*.tmp``) that a killed
run leaves and the next run removes with dedup's other leftovers. The workers
that write the manifest's parts (``manifest_workers``) read it too: a forked
one through the file it inherits, a Dask worker by its path (OUT is shared).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dedup import columns

FLUSH_BYTES = 1 << 20  # records buffered before a write


class SpilledRecords:
    """Document -> its serialised record, in a file; the part of a dict pass 2 and the writer use."""

    def __init__(self, path: Path, documents: int, tables: Path | None = None) -> None:
        self.path = path
        self._fh: BinaryIO = open(path, "w+b")  # noqa: SIM115  (closed by close)
        # Offset + 1 (0: no record), and length.
        self._at = columns.zeros(tables / "record_at" if tables else None, np.int64, documents)
        self._length = columns.zeros(tables / "record_length" if tables else None, np.int32, documents)
        self._written = 0
        self._buffer = bytearray()

    @classmethod
    def beside(cls, out: Path, documents: int, tables: Path | None = None) -> SpilledRecords:
        """A new, empty file of records in ``out`` (removed by ``close``), its columns in ``tables``."""
        fd, name = tempfile.mkstemp(dir=out, prefix=".records.", suffix=".tmp")
        os.close(fd)
        try:
            return cls(Path(name), documents, tables)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def __enter__(self) -> SpilledRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __setitem__(self, doc: int, record: bytes) -> None:
        self._at[doc] = self._written + len(self._buffer) + 1
        self._length[doc] = len(record)
        self._buffer += record
        if len(self._buffer) >= FLUSH_BYTES:
            self._flush()

    def update(self, records: Iterable[tuple[int, bytes]]) -> None:
        for doc, record in records:
            self[doc] = record

    def __contains__(self, doc: object) -> bool:
        return isinstance(doc, (int, np.integer)) and bool(self._at[doc])

    def get(self, doc: int) -> bytes | None:
        at = int(self._at[doc]) - 1
        if at < 0:
            return None
        if at >= self._written:
            self._flush()
        return os.pread(self._fh.fileno(), int(self._length[doc]), at)

    def __len__(self) -> int:
        return int(np.count_nonzero(self._at))

    def _flush(self) -> None:
        self._fh.write(self._buffer)
        self._fh.flush()
        self._written += len(self._buffer)
        self._buffer = bytearray()

    def flush(self) -> None:
        """Every record on disk, before other processes read them (a forked one would write the
        buffer again through the file it shares)."""
        if self._buffer:
            self._flush()
        for offsets in (self._at, self._length):
            if isinstance(offsets, np.memmap):  # on a shared file system, other machines read the file
                offsets.flush()

    def __getstate__(self) -> dict[str, Any]:
        """Sent to a Dask worker: the path and the offsets; it opens the file to read."""
        assert not self._buffer, "records sent before they were flushed"
        at, length = columns.by_file(self._at), columns.by_file(self._length)
        return {"path": self.path, "at": at, "length": length, "written": self._written}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._at, self._length = columns.from_file(state["at"]), columns.from_file(state["length"])
        self._written, self._buffer = state["written"], bytearray()
        self._fh = open(self.path, "rb")  # noqa: SIM115  (read only; a worker never closes it: no unlink)

    def close(self) -> None:
        """Remove the file (the records are in the manifest by now, or the run failed)."""
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
