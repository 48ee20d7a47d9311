"""Verified pairs -> clusters, without chaining.

Plain connected components over LSH pairs merge A and C whenever A~B and B~C, and
one roundup article or one shared boilerplate paragraph is enough to glue unrelated
stories together. Here a cluster grows around a centre: every member is verified
against the centre itself, and a member that shares (almost) nothing with a member
already admitted is left for another cluster, since two copies of one article always
share most of their common part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# Below this containment two documents are different articles, whatever links them.
CONFLICT_CONTAINMENT = 0.15


@dataclass(frozen=True, slots=True)
class Similarity:
    """Exact overlap of two shingle sets."""

    jaccard: float
    containment: float
    shared: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "jaccard": round(self.jaccard, 4),
            "containment": round(self.containment, 4),
            "shared": self.shared,
        }


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a pair counts as one article (see ``Config.jaccard``/``containment``/``min_shared``)."""

    jaccard: float
    containment: float
    min_shared: int

    def accepts(self, sim: Similarity) -> bool:
        """Near-duplicates: similar overall, or one mostly inside the other.

        Example:
            >>> Thresholds(0.5, 0.5, 8).accepts(Similarity(0.30, 0.72, 150))
            True
        """
        return sim.jaccard >= self.jaccard or (
            sim.containment >= self.containment and sim.shared >= self.min_shared
        )

    def explain(self, sim: Similarity) -> str:
        if sim.jaccard >= self.jaccard:
            return f"jaccard {sim.jaccard:.2f} >= {self.jaccard}"
        if sim.containment >= self.containment and sim.shared >= self.min_shared:
            return f"containment {sim.containment:.2f} >= {self.containment} ({sim.shared} shared shingles)"
        return (
            f"jaccard {sim.jaccard:.2f} < {self.jaccard} and containment {sim.containment:.2f} "
            f"({sim.shared} shared shingles) below {self.containment} (min {self.min_shared} shared)"
        )


def components(nodes: Iterable[int], pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (sorted lists, sorted by first node): the units verified together."""
    parent = {n: n for n in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for n in sorted(parent):
        groups.setdefault(find(n), []).append(n)
    return sorted(groups.values())


def cluster_component(
    nodes: Sequence[int],
    edges: Iterable[tuple[int, int]],
    similarity: Callable[[int, int], Similarity],
) -> list[list[int]]:
    """Split one component into clusters whose members each verify against the centre.

    Args:
        nodes: the component's nodes; smaller numbers win ties (manifest order).
        edges: verified pairs within the component.
        similarity: exact similarity of any two nodes (cached by the caller).

    Returns:
        Clusters, each a list starting with its centre, in the order they were formed.

    Example:
        >>> sims = {(0, 1): Similarity(0.9, 0.9, 90), (1, 2): Similarity(0.6, 0.9, 60),
        ...         (0, 2): Similarity(0.0, 0.01, 1)}
        >>> cluster_component([0, 1, 2], [(0, 1), (1, 2)], lambda a, b: sims[min(a, b), max(a, b)])
        [[1, 0], [2]]
    """
    neighbours: dict[int, set[int]] = {n: set() for n in nodes}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    remaining = set(nodes)
    clusters = []
    while remaining:
        centre = min(
            remaining,
            key=lambda n: (
                -len(neighbours[n] & remaining),
                -sum(similarity(n, m).jaccard for m in neighbours[n] & remaining),
                n,
            ),
        )
        members = [centre]
        joining = sorted(
            neighbours[centre] & remaining, key=lambda m: (-similarity(centre, m).containment, m)
        )
        for m in joining:
            if all(similarity(m, x).containment >= CONFLICT_CONTAINMENT for x in members[1:]):
                members.append(m)
        remaining.difference_update(members)
        clusters.append(members)
    return clusters
