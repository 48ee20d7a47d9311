"""The candidate pairs grouped by connected component: pass 2's tasks, as four arrays.

Pass 2 settles one group of candidate texts at a time. The groups were a list of
``(nodes, pairs)`` tuples, a Python list of ints and a numpy array each: ~250
bytes of the driver's heap a group, alive through pass 2 and the write stage (the
noisy million has ~200,000 groups). ``Groups`` keeps every group's nodes in one
array and its pairs in another, with where each group starts; a task's tuple is
made when the task is sent, and dropped with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from dedup import columns
from dedup.cluster import labelled

Task = tuple[list[int], np.ndarray]  # a group's nodes (ascending), and its candidate pairs


@dataclass(frozen=True, slots=True)
class Grouped:
    """The index stage's result: pass 2's groups, and the counts the summary reports."""

    proposed: int  # pairs banding proposed
    candidates: int  # pairs the prefilter kept
    groups: Groups
    comp_of: np.ndarray | None  # each text's group (-1: no candidate); None when grouped on a worker


class Groups(Sequence[Task]):
    """Groups of nodes, each with its pairs, in order: of their first node from ``group_pairs``, and
    a split group's pieces in its place after ``large_groups.split``.

    Example:
        >>> groups = Groups.of([([1, 4], np.array([[1, 4]])), ([2, 3, 5], np.array([[2, 3], [3, 5]]))])
        >>> len(groups), groups[1][0], groups[1][1].tolist(), groups.sizes().tolist()
        (2, [2, 3, 5], [[2, 3], [3, 5]], [2, 3])
        >>> [nodes for nodes, _ in groups.take(np.array([1]))]
        [[2, 3, 5]]
    """

    __slots__ = ("node_starts", "nodes", "pair_starts", "pairs")

    def __init__(
        self, nodes: np.ndarray, node_starts: np.ndarray, pairs: np.ndarray, pair_starts: np.ndarray
    ) -> None:
        assert len(node_starts) == len(pair_starts) >= 1, "a start for each group, and the end"
        self.nodes, self.node_starts = (
            nodes,
            node_starts,
        )  # group k's nodes: nodes[node_starts[k]:node_starts[k + 1]]
        self.pairs, self.pair_starts = pairs.reshape(-1, 2), pair_starts

    @classmethod
    def of(cls, tasks: Iterable[Task]) -> Groups:
        """The groups of ``tasks`` (nodes, pairs), in their order."""
        listed = list(tasks)
        nodes = [np.asarray(n, dtype=np.int64) for n, _ in listed]
        pairs = [np.asarray(p, dtype=np.int64).reshape(-1, 2) for _, p in listed]
        return cls(
            np.concatenate(nodes) if nodes else np.zeros(0, dtype=np.int64),
            _starts([len(n) for n in nodes]),
            np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64),
            _starts([len(p) for p in pairs]),
        )

    @classmethod
    def joined(cls, parts: Sequence[Groups], into: Path | None = None) -> Groups:
        """The groups of ``parts``, one after the other: in files of ``into``, a new directory
        (mapped: the driver's heap holds none of them), else in memory."""
        if into is None and len(parts) == 1:
            return parts[0]
        if into is not None:
            into.mkdir()
        nodes, nodes_before = _cat(into, "nodes", [p.all_nodes() for p in parts])
        flat = [p.pairs[p.pair_starts[0] : p.pair_starts[-1]].ravel() for p in parts]
        pairs, entries_before = _cat(into, "pairs", flat)
        groups = sum(len(p) for p in parts)
        node_starts = _zeros(into, "node-starts", groups + 1)
        pair_starts = _zeros(into, "pair-starts", groups + 1)
        at = 0
        for part, before_nodes, before_entries in zip(parts, nodes_before, entries_before, strict=True):
            k = len(part)
            node_starts[at : at + k + 1] = part.node_starts - part.node_starts[0] + before_nodes
            pair_starts[at : at + k + 1] = part.pair_starts - part.pair_starts[0] + before_entries // 2
            at += k
        return cls(nodes, node_starts, pairs, pair_starts)

    @classmethod
    def mapped(cls, into: Path, nodes: int, pairs: int, groups: int) -> Groups:
        """The groups ``saved`` in ``into`` (with these counts), mapped read-only.

        Raises:
            OSError: a file does not hold what was saved.
        """
        sizes = {"nodes": nodes, "pairs": 2 * pairs, "node-starts": groups + 1, "pair-starts": groups + 1}
        arrays = {}
        for name, n in sizes.items():
            if n and (size := (into / name).stat().st_size) != 8 * n:
                raise OSError(f"{into / name}: {size} bytes where {8 * n} were written")
            arrays[name] = np.memmap(into / name, np.int64, "r", shape=(n,)) if n else np.zeros(0, np.int64)
        return cls(arrays["nodes"], arrays["node-starts"], arrays["pairs"], arrays["pair-starts"])

    def saved(self, into: Path) -> Groups:
        """These groups in files of ``into``, a new directory, mapped (``joined``)."""
        return Groups.joined([self], into)

    def __len__(self) -> int:
        return len(self.node_starts) - 1

    @overload
    def __getitem__(self, k: int) -> Task: ...

    @overload
    def __getitem__(self, k: slice) -> Sequence[Task]: ...

    def __getitem__(self, k: int | slice) -> Task | Sequence[Task]:
        if isinstance(k, slice):
            return self.take(np.arange(len(self))[k])
        if not -len(self) <= k < len(self):
            raise IndexError("group index out of range")
        k %= len(self)
        return self.members(k).tolist(), self.pairs_of(k)

    def __iter__(self) -> Iterator[Task]:
        return (self[k] for k in range(len(self)))

    def between(self, start: int, stop: int) -> Groups:
        """Groups ``start:stop`` as views of these arrays (no copy: the starts index the same arrays)."""
        start = min(max(0, start), len(self))
        stop = min(max(start, stop), len(self))
        node_starts, pair_starts = self.node_starts[start : stop + 1], self.pair_starts[start : stop + 1]
        return Groups(self.nodes, node_starts, self.pairs, pair_starts)

    def all_nodes(self) -> np.ndarray:
        """Every group's nodes, one group after the other (a view)."""
        return self.nodes[self.node_starts[0] : self.node_starts[-1]]

    def members(self, k: int) -> np.ndarray:
        """Group ``k``'s nodes (a view)."""
        return self.nodes[self.node_starts[k] : self.node_starts[k + 1]]

    def pairs_of(self, k: int) -> np.ndarray:
        """Group ``k``'s candidate pairs (a view)."""
        return self.pairs[self.pair_starts[k] : self.pair_starts[k + 1]]

    def node_lists(self) -> Iterator[list[int]]:
        """Each group's nodes, in order."""
        return (self.members(k).tolist() for k in range(len(self)))

    def texts(self) -> int:
        """Nodes in all groups."""
        return int(self.node_starts[-1] - self.node_starts[0])

    def sizes(self) -> np.ndarray:
        """Nodes per group."""
        return np.diff(self.node_starts)

    def take(self, keep: np.ndarray) -> Groups:
        """The groups numbered in ``keep`` (ascending), in that order."""
        keep = np.asarray(keep, dtype=np.int64)
        return Groups(
            self.nodes[_ranges(self.node_starts, keep)],
            _starts(self.sizes()[keep]),
            self.pairs[_ranges(self.pair_starts, keep)],
            _starts(np.diff(self.pair_starts)[keep]),
        )


def group_pairs(pairs: np.ndarray, nodes: int) -> tuple[Groups, np.ndarray]:
    """Group the candidate pairs by connected component: the groups (in order of their first node,
    nodes ascending, pairs in their order) and the group of each of the ``nodes`` (-1: no candidate)."""
    members, node_starts = labelled(pairs.ravel(), pairs)  # the nodes of the pairs, made distinct there
    comp_of = np.full(nodes, -1, dtype=np.int64)
    comp_of[members] = np.repeat(np.arange(len(node_starts) - 1), np.diff(node_starts))
    by_comp = np.argsort(comp_of[pairs[:, 0]], kind="stable") if len(pairs) else np.empty(0, dtype=np.int64)
    pair_starts = np.searchsorted(comp_of[pairs[by_comp, 0]], np.arange(len(node_starts)))
    return Groups(members, node_starts, pairs[by_comp], pair_starts), comp_of


def _zeros(into: Path | None, name: str, n: int) -> np.ndarray:
    """``n`` int64 zeros: file ``name`` of directory ``into``, mapped, else in memory."""
    return columns.zeros(None if into is None else into / name, np.int64, n)


def _cat(into: Path | None, name: str, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """``arrays`` one after the other (``_zeros``), and how many entries come before each."""
    before = [0, *np.cumsum([len(a) for a in arrays]).tolist()]
    whole = _zeros(into, name, before[-1])
    for a, lo in zip(arrays, before, strict=False):
        whole[lo : lo + len(a)] = a
    return whole, before[:-1]


def _starts(sizes: Sequence[int] | np.ndarray) -> np.ndarray:
    """Where each of groups of ``sizes`` starts, and the end."""
    starts = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return starts


def _ranges(starts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The indices of ranges ``starts[k]:starts[k + 1]`` for each k in ``keep``, concatenated."""
    lengths = starts[keep + 1] - starts[keep]
    offsets = np.repeat(starts[keep] - _starts(lengths)[:-1], lengths)
    return offsets + np.arange(int(lengths.sum()))
