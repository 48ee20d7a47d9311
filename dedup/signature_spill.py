"""The signatures on disk between pass 1 and the index: the driver's largest table out of its memory.

A signature is 1 KB per distinct text (256 x uint32): 1 GB of a million-article
run's driver, held only so that banding and the prefilter can read it once.
Both read it a block of permutations at a time (eight bands, then every band
for the prefilter's estimate), so a batch run writes it block-major: file k
holds, for every text in node order, permutations ``[k * width, (k + 1) * width)``.
Reading a block costs one sequential read of ``width * 4`` bytes per text; the
driver holds one block (64 MB at a million) instead of the whole table.

The files are in OUT, under a temporary name (``.signatures.*.tmp``) that a
killed run leaves and the next run removes with dedup's other leftovers. A
signature source is this, an in-memory ``uint32[texts, num_perm]`` matrix
(tests, small runs; ``blocks_of`` gives it the same interface), or
``Renumbered``: a cron run's stored texts spilled in the order its state streams
them, put in node order a block at a time with the texts read in the run.

A cron run's pass 1 keeps the signatures of the texts it reads row-major in one
unnamed file (``RowSpill``): banding reads them a chunk at a time into the block
files, and the rows the run stores read theirs back one at a time at the commit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from dedup.columns import read_at

FLUSH_ROWS = 4096  # signatures buffered before they are split into the block files (4 MB)


class Blocks(Protocol):
    """Signatures read a block of permutations at a time."""

    num_perm: int
    width: int

    def __len__(self) -> int: ...

    def blocks(self) -> Iterator[np.ndarray]:
        """``uint32[texts, width]`` (the last block may be narrower), in permutation order."""
        ...


class InMemory:
    """A signature matrix seen as blocks (tests, small runs)."""

    def __init__(self, matrix: np.ndarray, width: int) -> None:
        self.matrix = matrix
        self.num_perm = matrix.shape[1] if matrix.ndim == 2 else 0
        self.width = width

    def __len__(self) -> int:
        return len(self.matrix)

    def blocks(self) -> Iterator[np.ndarray]:
        for lo in range(0, self.num_perm, self.width):
            yield np.ascontiguousarray(self.matrix[:, lo : lo + self.width])


class _Appended:
    """Signatures appended to a buffer that the spill flushes to its files every ``_flush_bytes``."""

    _buffer: bytearray
    _rows: int
    _flush_bytes: int

    def __len__(self) -> int:
        return self._rows

    def append(self, signature: bytes) -> None:
        """The next text's signature (``num_perm`` uint32 as bytes)."""
        self._buffer += signature
        self._rows += 1
        if len(self._buffer) >= self._flush_bytes:
            self._flush()

    def _flush(self) -> None:
        raise NotImplementedError


class Spilled(_Appended):
    """Signatures appended to block files in ``directory`` (see the module docstring): a batch run's
    in node order, a cron run's stored ones as its state streams them (``Renumbered``).

    Example:
        >>> import tempfile
        >>> rows = np.arange(24, dtype=np.uint32).reshape(3, 8)
        >>> with tempfile.TemporaryDirectory() as tmp, Spilled.beside(Path(tmp), num_perm=8, width=4) as s:
        ...     for row in rows:
        ...         s.append(row.tobytes())
        ...     bool((np.hstack(list(s.blocks())) == rows).all())
        True
    """

    def __init__(self, directory: Path, *, num_perm: int, width: int, flush_rows: int = FLUSH_ROWS) -> None:
        self.directory = directory
        self.num_perm = num_perm
        self.width = width
        self._spans = [(lo, min(lo + width, num_perm)) for lo in range(0, num_perm, width)]
        self._files: list[BinaryIO] = []
        try:
            for k in range(len(self._spans)):
                self._files.append(open(directory / f"block-{k:03d}", "wb"))  # noqa: SIM115  (closed by close)
        except BaseException:
            self.close()  # no file left open, no directory left behind
            raise
        self._buffer = bytearray()
        self._rows = 0
        self._flush_bytes = flush_rows * 4 * num_perm
        self._paths: list[Path] = []

    @classmethod
    def beside(cls, out: Path, *, num_perm: int, width: int) -> Spilled:
        """A new spill in a temporary directory in ``out`` (removed by ``close``)."""
        directory = Path(tempfile.mkdtemp(dir=out, prefix=".signatures.", suffix=".tmp"))
        return cls(directory, num_perm=num_perm, width=width)

    @classmethod
    def of_blocks(cls, out: Path, source: Blocks) -> Spilled:
        """``source``'s blocks, in its order, as a spill in ``out`` (what the workers band from)."""
        spill = cls.beside(out, num_perm=source.num_perm, width=source.width)
        try:
            for fh, block in zip(spill._files, source.blocks(), strict=True):
                fh.write(np.ascontiguousarray(block, dtype=np.uint32).tobytes())
            spill._rows = len(source)
        except BaseException:
            spill.close()
            raise
        return spill

    def __enter__(self) -> Spilled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def extend(self, signatures: np.ndarray) -> None:
        """The next texts' signatures, uint32[k, num_perm]."""
        self._buffer += np.ascontiguousarray(signatures, dtype=np.uint32).tobytes()
        self._rows += len(signatures)
        if len(self._buffer) >= self._flush_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        rows = np.frombuffer(self._buffer, dtype=np.uint32).reshape(-1, self.num_perm)
        for fh, (lo, hi) in zip(self._files, self._spans, strict=True):
            fh.write(np.ascontiguousarray(rows[:, lo:hi]).tobytes())
        self._buffer = bytearray()

    def blocks(self) -> Iterator[np.ndarray]:
        for path, width in self.files():
            yield np.fromfile(path, dtype=np.uint32).reshape(-1, width)

    def files(self) -> list[tuple[Path, int]]:
        """(path, permutations) of each block file, whole: what ``index_workers`` reads in other
        processes, or on other machines (OUT is shared storage). The files are closed, not only
        flushed (no signature is appended after): NFS shows a file's bytes to other machines
        once its writer has closed it."""
        if self._files:
            self._flush()
            self._paths = [Path(fh.name) for fh in self._files]
            for fh in self._files:
                fh.close()
            self._files = []
        assert not self._buffer, "signatures appended after the files were closed"
        return [(path, hi - lo) for path, (lo, hi) in zip(self._paths, self._spans, strict=True)]

    def close(self) -> None:
        """Remove the files (the signatures are not needed after the index)."""
        for fh in self._files:
            fh.close()
        self._files = []
        shutil.rmtree(self.directory, ignore_errors=True)


class Renumbered:
    """Every text's signature as blocks, built a block at a time: some rows from a spill (a cron
    run: all of them, the stored texts' streamed from its state and the ones it read from its
    ``RowSpill``), the rest from memory (``given``: tests, and rows kept in memory).

    ``spilled``'s i-th row is text ``target[i]``'s; ``given[j]`` is text ``nodes[j]``'s.
    """

    def __init__(self, spilled: Spilled, target: np.ndarray, nodes: np.ndarray, given: np.ndarray) -> None:
        assert len(spilled) == len(target), "a text for every spilled row"
        self.spilled, self.target, self.nodes, self.given = spilled, target, nodes, given
        self.num_perm, self.width = spilled.num_perm, spilled.width
        self._texts = len(target) + len(nodes)

    def __len__(self) -> int:
        return self._texts

    def blocks(self) -> Iterator[np.ndarray]:
        for block, lo in zip(self.spilled.blocks(), range(0, self.num_perm, self.width), strict=True):
            out = np.zeros((self._texts, block.shape[1]), dtype=np.uint32)
            out[self.target] = block
            out[self.nodes] = self.given[:, lo : lo + block.shape[1]]
            yield out


def blocks_of(signatures: np.ndarray | Blocks, width: int) -> Blocks:
    """``signatures`` as blocks; a matrix is cut into blocks of ``width`` permutations."""
    return InMemory(signatures, width) if isinstance(signatures, np.ndarray) else signatures


class RowSpill(_Appended):
    """Signatures a row each, in the order appended, in one unnamed file in ``directory``.

    A cron run's pass 1 puts here the signature of each text it reads (1 KB each:
    a first run at a million holds 1 GB here, not in memory). The file has no
    name from the start (O_TMPFILE) or from just after it is made (a name among
    dedup's leftovers, ``manifest.LEFTOVERS``), and goes when closed or dropped.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     spill = RowSpill(Path(tmp), num_perm=2)
        ...     for row in ([1, 2], [3, 4], [5, 6]):
        ...         spill.append(np.array(row, dtype=np.uint32).tobytes())
        ...     chunks = [(lo, rows.tolist()) for lo, rows in spill.chunks(rows=2)]
        ...     spill.close()
        >>> chunks
        [(0, [[1, 2], [3, 4]]), (2, [[5, 6]])]
    """

    def __init__(self, directory: Path, *, num_perm: int, flush_rows: int = FLUSH_ROWS) -> None:
        self.num_perm = num_perm
        self._row_bytes = 4 * num_perm
        self._file = tempfile.TemporaryFile(dir=directory, prefix=".signatures.", suffix=".tmp")  # noqa: SIM115
        self._closer: weakref.finalize[Any, Any] = weakref.finalize(self, self._file.close)
        self._buffer = bytearray()
        self._rows = 0
        self._flush_bytes = flush_rows * self._row_bytes

    def _flush(self) -> None:
        self._file.write(self._buffer)
        self._file.flush()
        self._buffer = bytearray()

    def row(self, at: int) -> bytes:
        """Row ``at`` as bytes (one read: a first run's commit asks for every row)."""
        if self._buffer:
            self._flush()
        return os.pread(self._file.fileno(), self._row_bytes, at * self._row_bytes)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """``uint32[hi - lo, num_perm]``: rows ``lo`` to ``hi``."""
        if self._buffer:
            self._flush()
        start, end = lo * self._row_bytes, min(hi, self._rows) * self._row_bytes
        data = read_at(self._file.fileno(), end - start, start)
        if len(data) != end - start:
            raise OSError(f"signature rows: {len(data)} of {end - start} bytes read")
        return np.frombuffer(data, dtype=np.uint32).reshape(-1, self.num_perm)

    def chunks(self, rows: int = 4 * FLUSH_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, the rows) a chunk at a time (16 MB by default), in order."""
        for lo in range(0, self._rows, rows):
            yield lo, self.rows(lo, min(lo + rows, self._rows))

    def close(self) -> None:
        """Free the file (the rows are stored)."""
        self._closer()

    @property
    def closed(self) -> bool:
        return not self._closer.alive
