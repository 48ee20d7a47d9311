"""Verified pairs -> clusters, without chaining.

Plain connected components over LSH pairs merge A and C whenever A~B and B~C, and
one roundup article or one shared boilerplate paragraph is enough to glue unrelated
stories together. Here a cluster grows around a centre: every member is verified
against the centre itself, and a member that shares (almost) nothing with a member
already admitted is left for another cluster, since two copies of one article always
share most of their common part.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dedup.signatures import distinct, searched
from dedup.signatures import similarity as shingle_similarity  # (``similarity`` names a callback below)

# Below this containment two documents are different articles, whatever links them.
CONFLICT_CONTAINMENT = 0.15
# Two members at least this many times the centre's size go past it (``glued``) ...
BEYOND_SIZE = 2
# ... and must share past it this part of the smaller of what the two hold there (and ``min_shared``).
BEYOND_SHARE = 0.05


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


def components(
    nodes: Iterable[int] | np.ndarray, pairs: Iterable[tuple[int, int]] | np.ndarray
) -> list[list[int]]:
    """Connected components (sorted lists, sorted by first node): the units verified together.

    A pair's nodes must be among ``nodes``.

    Example:
        >>> components([5, 0, 1, 9], [(9, 1)])
        [[0], [1, 9], [5]]
    """
    members, starts = labelled(nodes, pairs)
    flat, bounds = members.tolist(), starts.tolist()
    return [flat[a:b] for a, b in itertools.pairwise(bounds)]


def labelled(
    nodes: Iterable[int] | np.ndarray, pairs: Iterable[tuple[int, int]] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``components`` as arrays: the nodes of each component in turn, and where each starts (and the end).

    Labelled by a compiled union-find (``table_kernels.component_roots``), else by scipy (the
    noisy million's 272,000 candidate pairs took 1 s in Python); the pairs' nodes are found
    with their values sorted first (``searched``). A million nodes and 2.7 million random
    pairs: 1.8 -> 0.76 s, most of it the search in the pairs' own order.

    Example:
        >>> [a.tolist() for a in labelled([5, 0, 1, 9], [(9, 1)])]
        [[0, 1, 9, 5], [0, 1, 3, 4]]
    """
    from dedup import kernels, table_kernels

    known = distinct(_array(nodes).ravel())
    if not len(known):
        return known.astype(np.int64), np.zeros(1, dtype=np.int64)
    linked = _array(pairs).reshape(-1, 2)
    local = searched(known, linked.ravel()).reshape(-1, 2).astype(np.int64, copy=False)
    # Components in the order of their first (smallest) node; nodes ascending within each.
    if kernels.AVAILABLE:  # each node's component named by its smallest node: ranked by that name
        ranked = table_kernels.component_roots(len(known), local[:, 0].copy(), local[:, 1].copy())
    else:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        ones = np.ones(len(local), dtype=np.int8)
        graph = csr_matrix((ones, (local[:, 0], local[:, 1])), shape=(len(known), len(known)))
        _, labels = connected_components(graph, directed=False)
        _, first = np.unique(labels, return_index=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        ranked = rank[labels]
    order = np.argsort(ranked, kind="stable")
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ranked[order])) + 1, [len(known)]))
    return known[order].astype(np.int64, copy=False), starts.astype(np.int64, copy=False)


def _array(values: Iterable[Any] | np.ndarray) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else np.array(list(values), dtype=np.int64)


def glued(centre: int, a: int, b: int, past_a: np.ndarray, past_b: np.ndarray, *, min_shared: int) -> bool:
    """Whether two texts of ``a`` and ``b`` shingles, each verified against a centre of ``centre``
    shingles, are different articles glued by it; ``past_a``/``past_b``: their shingles the
    centre does not hold (sorted unique hashes).

    A short text that is a paragraph many articles quote (wire copy), or a teaser made of
    it, is contained in each of them: as the centre it gathered 342 texts of 318 articles
    into one cluster at the noisy million, which share 15-46% of the smaller one's
    shingles, all of them the centre's. Two texts at least ``BEYOND_SIZE`` times the
    centre's size go past it; copies of one article then share part of what they hold
    past it (damage spread over a copy leaves most of it), articles glued by a quote
    share nothing more. A teaser or a damaged copy of the centre's own article is not
    that large, and is not asked. The cost: a complete article whose copies each add as
    much text again of their own (reader comments a site does not repeat) is the same
    picture in shingles, and such copies are kept apart: an extra copy kept, where gluing
    loses articles (``tests/test_glued.py``).

    Example:
        >>> one, two = np.arange(100, 140), np.arange(200, 240)
        >>> glued(10, 50, 50, one, two, min_shared=8)  # 40 shingles each past a centre of 10: none shared
        True
        >>> glued(10, 50, 40, one, one[:30], min_shared=8)  # 30 shared past it
        False
        >>> glued(30, 50, 50, one, two, min_shared=8)  # not twice the centre's size: not asked
        False
    """
    if a < BEYOND_SIZE * centre or b < BEYOND_SIZE * centre:
        return False
    beyond = shingle_similarity(past_a, past_b)[2]
    return beyond < max(min_shared, BEYOND_SHARE * min(len(past_a), len(past_b)))


def cluster_component(
    nodes: Sequence[int],
    edges: Iterable[tuple[int, int]],
    similarity: Callable[[int, int], Similarity],
    glue: Callable[[int, int, int], bool] | None = None,
) -> list[list[int]]:
    """Split one component into clusters whose members each verify against the centre.

    Args:
        nodes: the component's nodes; smaller numbers win ties (manifest order).
        edges: verified pairs within the component.
        similarity: exact similarity of any two nodes (cached by the caller).
        glue: ``glue(centre, a, b)``: whether two nodes joining ``centre`` are different
            articles it glues (``glued``); None: only ``CONFLICT_CONTAINMENT`` keeps them apart.

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
            if all(
                similarity(m, x).containment >= CONFLICT_CONTAINMENT and not (glue and glue(centre, m, x))
                for x in members[1:]
            ):
                members.append(m)
        remaining.difference_update(members)
        clusters.append(members)
    return clusters
