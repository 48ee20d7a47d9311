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
from typing import overload

import numpy as np

from dedup.cluster import labelled

Task = tuple[list[int], np.ndarray]  # a group's nodes (ascending), and its candidate pairs


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
    def joined(cls, parts: Sequence[Groups]) -> Groups:
        """The groups of ``parts``, one after the other."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.all_nodes() for p in parts]),
            _starts(np.concatenate([p.sizes() for p in parts])),
            np.concatenate([p.pairs[p.pair_starts[0] : p.pair_starts[-1]] for p in parts]),
            _starts(np.concatenate([np.diff(p.pair_starts) for p in parts])),
        )

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
        return self.members(k).tolist(), self.pairs[self.pair_starts[k] : self.pair_starts[k + 1]]

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

    def node_lists(self) -> Iterator[list[int]]:
        """Each group's nodes, in order."""
        return (self.members(k).tolist() for k in range(len(self)))

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
