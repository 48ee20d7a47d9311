"""The corpus token frequencies: how many documents hold each token (a count-min sketch).

Filled in pass 1 (worker processes send per-batch deltas), read in pass 2 to
tell a slip from the word it replaced, and stored by cron runs.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import xxhash

from dedup.signatures import _POSITION_MULTIPLIERS, distinct, token_hashes  # noqa: F401  (doctest)

Counts = tuple[np.ndarray, np.ndarray]
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # how a zstd frame begins (a zlib stream begins 0x78)


def counts(documents: Sequence[np.ndarray]) -> Counts:
    """A batch's distinct token hashes and how many of its documents hold each.

    What a worker sends for ``TokenFrequency.merge``: it needs no table (the
    sketch's cells are found where the counts are added), and one sort of the
    batch costs a fifth of sorting each of the sketch's rows (~20 against ~115 us
    per document). The reference of ``BatchCounter`` (which gives the same counts, in
    another order).

    Example:
        >>> hashes, times = counts([token_hashes(["the", "cat", "the"]), token_hashes(["the"])])
        >>> sorted(times.tolist())
        [1, 2]
    """
    if not documents:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([distinct(h) for h in documents]), return_counts=True)


class BatchCounter:
    """``counts`` by the compiled kernel (``table_kernels.batch_counts``), its table kept from batch
    to batch: each pass-1 worker holds one.

    The hashes come out in the order first seen, not sorted: ``TokenFrequency.merge``
    adds them in any order. The table grows (doubling) until a batch's distinct
    values fill at most half of it, and is kept up to ``KEEP`` slots (16 bytes each):
    a new table's pages, touched at random, cost more than the counting.

    Example:
        >>> hashes, times = BatchCounter()([token_hashes(["the", "cat", "the"]), token_hashes(["the"])])
        >>> sorted(times.tolist())
        [1, 2]
    """

    KEEP = 1 << 20

    def __init__(self, slots: int = 1 << 15) -> None:
        if slots < 1 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two, not {slots}")
        self.slots = slots
        self._table: np.ndarray | None = None  # all its slots free

    def __getstate__(self) -> dict[str, object]:  # sent to a Dask worker: without the table
        return {"slots": self.slots, "_table": None}

    def __call__(self, documents: Sequence[np.ndarray]) -> Counts:
        from dedup import kernels, table_kernels

        if not kernels.AVAILABLE or not documents:
            return counts(documents)
        values = np.concatenate(documents).astype(np.uint64, copy=False)
        starts = np.zeros(len(documents) + 1, dtype=np.int64)
        np.cumsum([len(d) for d in documents], out=starts[1:])
        while True:
            table, self._table = self._table, None  # given back only when the kernel left it free
            if table is None:
                table = np.full((self.slots, 2), np.iinfo(np.uint64).max, dtype=np.uint64)
            hashes, times, done = table_kernels.batch_counts(values, starts, table)
            if done:
                if self.slots <= self.KEEP:
                    self._table = table
                else:
                    self.slots = self.KEEP
                return hashes, times
            self.slots *= 2


def combined(parts: Sequence[Counts]) -> Counts:
    """Several batches' ``counts`` as one (a worker that reads a whole shard sends one).

    Example:
        >>> one, two = counts([token_hashes(["a", "b"])]), counts([token_hashes(["b"])])
        >>> hashes, times = combined([one, two])
        >>> sorted(times.tolist())
        [1, 2]
    """
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return counts([])
    hashes, where = np.unique(np.concatenate([h for h, _ in parts]), return_inverse=True)
    times = np.zeros(len(hashes), dtype=np.int64)
    np.add.at(times, where, np.concatenate([t for _, t in parts]))
    return hashes, times


class TokenFrequency:
    """Approximate document frequency of every token in the corpus (a count-min sketch).

    Tells a slip (``scrvices``: one document) from the word it replaced
    (``services``: many), which two disagreeing copies cannot settle alone. Fixed
    size (``depth * width`` uint32 counters, 32 MB by default) whatever the corpus.

    Example:
        >>> freq = TokenFrequency(width=1 << 10)
        >>> freq.add(token_hashes(["the", "cat"])); freq.add(token_hashes(["the", "dog"]))
        >>> freq.get(token_hashes(["the", "cat", "cow"])).tolist()
        [2, 1, 0]
    """

    def __init__(self, *, width: int = 1 << 21, depth: int = 4) -> None:
        self._shift = np.uint64(64 - (width.bit_length() - 1))
        self._mult = _POSITION_MULTIPLIERS[:depth, None]
        self._rows = np.arange(depth)[:, None]
        self.table = np.zeros((depth, width), dtype=np.uint32)

    def _cells(self, hashes: np.ndarray) -> np.ndarray:
        return ((hashes[None, :] * self._mult) >> self._shift).astype(np.intp)

    def add(self, hashes: np.ndarray) -> None:
        """Count one document's tokens (each distinct token once)."""
        self.merge(counts([hashes]))

    def merge(self, delta: Counts) -> None:
        """Add a batch's ``counts`` (integer sums: the order batches arrive in does not matter)."""
        # Compiled on first use: a rerun with nothing to do never merges.
        from dedup import kernels, table_kernels

        hashes, times = delta
        if not len(hashes):
            return
        times = times.astype(np.uint32)
        if kernels.AVAILABLE:
            keys = np.ascontiguousarray(hashes, dtype=np.uint64)
            table_kernels.count_min_add(self.table, keys, times, self._mult[:, 0], self._shift)
            return
        cells = self._cells(hashes)
        for row in range(len(self.table)):
            # add.at, not +=: two tokens of a batch may share a cell.
            np.add.at(self.table[row], cells[row], times)

    def get(self, hashes: np.ndarray) -> np.ndarray:
        """Each token's estimated count (uint32): never low, high only where tokens share every cell."""
        from dedup import kernels, table_kernels

        if kernels.AVAILABLE and len(hashes):  # pass 2 asks for every text it loads: 1.4-3x faster
            keys = np.ascontiguousarray(hashes, dtype=np.uint64)
            return table_kernels.count_min_get(self.table, keys, self._mult[:, 0], self._shift)
        return self.table[self._rows, self._cells(hashes)].min(axis=0)

    def dumps(self) -> bytes:
        """The counters for the state, compressed: mostly zeros at 100k documents (32 MB -> ~3 MB).

        zstd, not zlib: at 100k and 1M documents it compresses this table 2.7x and
        decompresses it 3x faster at the same size (~60 against 170 ms, 35 against
        105 ms), paid by every cron run. The frame carries a checksum: a damaged table
        is refused, not read as counts.
        """
        import zstandard

        return zstandard.ZstdCompressor(level=1, write_checksum=True).compress(self.table.tobytes())

    def loads(self, data: bytes) -> None:
        """Counters from ``dumps``, or as earlier states hold them (zlib, or not compressed).

        Raises:
            ValueError: the data is damaged, or holds a table of another size.
        """
        if len(data) == self.table.nbytes:
            raw = data
        elif data.startswith(_ZSTD_MAGIC):
            import zstandard

            try:  # the frame's size is checked first: a damaged one must not allocate gigabytes
                if zstandard.frame_content_size(data) != self.table.nbytes:
                    raise ValueError("the stored table is not of this sketch's size")
                # Into the table itself: bytes then copied were ~30-80 ms of every cron run (32 MB).
                table = np.empty_like(self.table)
                view, got = table.data.cast("B"), 0
                with zstandard.ZstdDecompressor().stream_reader(data) as reader:
                    while got < len(view) and (n := reader.readinto(view[got:])):
                        got += n
                checksum = zstandard.get_frame_parameters(data).has_checksum
            except zstandard.ZstdError as err:
                raise ValueError(f"damaged zstd data: {err}") from err
            if got != len(view):
                raise ValueError("damaged zstd data: the table is cut short")
            # The reader stops once the table is full, before the frame's checksum (the low half of
            # the content's XXH64, its last 4 bytes): checked here, so that a frame cut there is refused.
            if checksum and int.from_bytes(data[-4:], "little") != xxhash.xxh64_intdigest(view) & 0xFFFFFFFF:
                raise ValueError("damaged zstd data: the table does not match its checksum")
            self.table = table
            return
        else:
            try:
                raw = zlib.decompress(data)
            except zlib.error as err:
                raise ValueError(f"damaged zlib data: {err}") from err
        self.table = np.frombuffer(raw, dtype=np.uint32).reshape(self.table.shape).copy()
