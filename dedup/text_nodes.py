"""Distinct texts as nodes: pass 1 numbers them by content key (``NodeKeys``), pass 2 takes the
documents node by node (``grouped``), both without a Python object per text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dedup.columns import zeros


class NodeKeys:
    """Content key -> node, numbered in order of first appearance: pass 1's lookup of distinct texts.

    A dict of them cost ~120 bytes a text in the driver's heap (12 GB at 100M
    texts); with a directory it is an open-addressing table in two mapped files
    (16 bytes a slot, at most half full; ``table_kernels.assign_nodes``), grown by
    moving it into a table twice the size. Without a directory (cron mode) the
    table is in memory: a cron run assigns every stored text at once, and the
    dict took ~1 s of a run at 1M. Without compiled kernels (or ``compiled=False``:
    the tests' reference) it is the dict.

    Example:
        >>> keys = NodeKeys(None)
        >>> keys.assign(np.array([7, 9, 7], dtype=np.uint64)).tolist(), len(keys)
        ([0, 1, 0], 2)
    """

    def __init__(self, directory: Path | None, slots: int = 1 << 10, *, compiled: bool | None = None) -> None:
        from dedup import kernels

        assert slots > 0 and slots & (slots - 1) == 0, "a power of two: the kernel masks the hash"
        self._compiled = kernels.AVAILABLE if compiled is None else compiled and kernels.AVAILABLE
        self._directory = directory
        self._dict: dict[int, int] = {}
        self._count = 0
        self._generation = 0
        self._closed = False
        self._slots = self._nodes = np.zeros(0, dtype=np.uint64)
        if self._compiled:
            self._slots, self._nodes = self._table(slots)

    def _table(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self._directory is None:
            return np.zeros(size, dtype=np.uint64), np.zeros(size, dtype=np.int64)
        self._generation += 1
        name = self._directory / f"node_keys.{self._generation}"
        slots = zeros(Path(f"{name}.slots"), np.uint64, size)
        nodes = zeros(Path(f"{name}.nodes"), np.int64, size)
        return slots, nodes

    def __len__(self) -> int:
        return self._count if self._compiled else len(self._dict)

    def assign(self, keys: np.ndarray) -> np.ndarray:
        """The nodes of ``keys`` (uint64), in order: a key not seen before gets the next node."""
        assert not self._closed, "keys looked up after close"
        if not self._compiled:
            found = self._dict
            return np.array([found.setdefault(k, len(found)) for k in keys.tolist()], dtype=np.int64)
        from dedup import table_kernels

        if 2 * (self._count + len(keys)) > len(self._slots):
            size = len(self._slots)
            while 2 * (self._count + len(keys)) > size:
                size *= 2
            slots, nodes = self._table(size)
            table_kernels.move_nodes(self._slots, self._nodes, slots, nodes)
            self._drop()
            self._slots, self._nodes = slots, nodes
        out = np.empty(len(keys), dtype=np.int64)
        self._count = table_kernels.assign_nodes(self._slots, self._nodes, keys, self._count, out)
        return out

    def node(self, key: int) -> int:
        """The node of one key (``assign`` of one)."""
        assert not self._closed, "keys looked up after close"
        if not self._compiled:
            return self._dict.setdefault(key, len(self._dict))
        return int(self.assign(np.array([key], dtype=np.uint64))[0])

    def _drop(self) -> None:
        """The table's files removed (its maps go with the arrays)."""
        for table in (self._slots, self._nodes):
            if isinstance(table, np.memmap) and table.filename:
                Path(table.filename).unlink(missing_ok=True)

    def close(self) -> None:
        """No more lookups: the table and its files go."""
        self._drop()
        self._dict = {}
        self._slots = self._nodes = np.zeros(0, dtype=np.uint64)
        self._closed = True


def grouped(node_of: np.ndarray, nodes: int, directory: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(documents in node order, node -> its first place there): ``np.argsort`` in memory, or a
    counting sort (``table_kernels.group_by_node``) into files in ``directory``, with no temporary
    the size of the corpus."""
    from dedup import kernels, table_kernels

    if directory is None or not kernels.AVAILABLE:
        by_node = np.argsort(node_of, kind="stable")[int(np.count_nonzero(node_of < 0)) :]
        return by_node, np.searchsorted(node_of[by_node], np.arange(nodes + 1))
    step = 1 << 20
    placed = sum(int(np.count_nonzero(node_of[k : k + step] >= 0)) for k in range(0, len(node_of), step))
    starts = zeros(directory / "starts", np.int64, nodes + 1)
    order = zeros(directory / "order", np.int64, placed)
    table_kernels.group_by_node(node_of, starts, order)
    for written in (starts, order):
        if isinstance(written, np.memmap):  # in the file for workers on other machines
            written.flush()
    return order, starts
