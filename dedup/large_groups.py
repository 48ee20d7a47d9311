"""Pass 2's giant groups: their pairs verified first, a chunk at a time, then settled by verified component.

A pass-2 task is a connected group of candidate pairs. Where unrelated articles
share sentences (wire copy, quotes), those groups percolate: 2,453 texts in one
group of the noisy 100k, a large part of a noisy million in one. Settled whole,
such a group is one task: every text loaded at once in one worker, its centres
chosen by a scan quadratic in the group (at 1M: minutes, and 1.2 GB in a
worker). Here a group over ``LARGE`` texts has its pairs verified on the
workers, ``CHUNK`` pairs to a task; its texts are then settled in tasks of
whole *verified* components, packed up to ``LARGE`` texts.

Clusters only ever join texts linked by verified pairs, and a centre is chosen
among a text's verified neighbours, so the clusters and records are those of the
whole group. Each text keeps its reach over all the group's candidate pairs
(``Corpus.reach``): it decides which of its lines count as a site's furniture.
"""

from __future__ import annotations

import numpy as np

from dedup import parallel
from dedup.cluster import Similarity, Thresholds, components
from dedup.pass2 import Corpus, Task, load, reach_of
from dedup.signatures import similarity

LARGE = 1000  # texts: a group over this is split
CHUNK = 2000  # candidate pairs verified to a task


class Verifier:
    """Which candidate pairs pass the thresholds on exact shingles (a chunk, in ``local_order``)."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus

    def __call__(self, pairs: np.ndarray) -> np.ndarray:
        config = self.corpus.config
        thresholds = Thresholds(config.jaccard, config.containment, config.min_shared)
        shingles = {n: load(self.corpus, n, self.corpus.reach[n])[2] for n in np.unique(pairs).tolist()}
        accepted = [
            thresholds.accepts(Similarity(*similarity(shingles[a], shingles[b]))) for a, b in pairs.tolist()
        ]
        return np.array(accepted, dtype=bool)


def split(
    corpus: Corpus, tasks: list[Task], engine: parallel.Engine, *, large: int | None = None
) -> list[Task]:
    """``tasks`` with each group over ``large`` (``LARGE``) texts replaced by tasks of its verified
    components. Sets ``corpus.reach`` for the texts of the groups split (before any worker forks).
    """
    large = LARGE if large is None else large
    big = [k for k, (nodes, _) in enumerate(tasks) if len(nodes) > large]
    if not big:
        return tasks
    order: dict[int, np.ndarray] = {}  # per group: its pairs in the order they are verified
    for k in big:
        nodes, pairs = tasks[k]
        corpus.reach.update(reach_of(corpus, nodes, pairs))
        order[k] = local_order(pairs)
    chunks = [(k, lo) for k in big for lo in range(0, len(tasks[k][1]), CHUNK)]
    # A generator, not a list: the engine runs a short list in this process, and a chunk takes
    # ~0.5 s here (the noisy 100k's giant group is two of them, each for a worker).
    masks = engine.ordered(
        Verifier(corpus), (tasks[k][1][order[k][lo : lo + CHUNK]] for k, lo in chunks), window_per_worker=4
    )
    accepted: dict[int, list[np.ndarray]] = {k: [] for k in big}
    for (k, _), mask in zip(chunks, masks, strict=True):
        accepted[k].append(mask)
    out: list[Task] = []
    for k, (nodes, pairs) in enumerate(tasks):
        if k not in accepted:
            out.append((nodes, pairs))
            continue
        keep = np.zeros(len(pairs), dtype=bool)
        if accepted[k]:
            keep[order[k]] = np.concatenate(accepted[k])
        verified = pairs[keep]
        out.extend(pack(components(nodes, verified.tolist()), verified, large))
    return out


def local_order(pairs: np.ndarray) -> np.ndarray:
    """An order of ``pairs`` in which neighbouring pairs share texts: a chunk then loads fewer.

    Texts are numbered by reverse Cuthill-McKee (neighbours get near numbers) and the
    pairs sorted by their lower number. On the noisy million's giant group (38,419 texts,
    79,352 pairs) chunks of 2,000 load 52,875 texts instead of 86,617 in node order.

    Example (the chain 1-2-9-0, walked along):
        >>> local_order(np.array([[0, 9], [1, 2], [2, 9]])).tolist()
        [1, 2, 0]
    """
    from scipy.sparse import csr_matrix  # with datasketch; only a giant group needs it here
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    ones = np.ones(len(local), dtype=np.int8)
    graph = csr_matrix((ones, (local[:, 0], local[:, 1])), shape=(len(nodes), len(nodes)))
    rank = np.empty(len(nodes), dtype=np.int64)
    rank[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(len(nodes))
    ranked = rank[local]
    return np.lexsort((ranked.max(axis=1), ranked.min(axis=1)))


def pack(comps: list[list[int]], verified: np.ndarray, large: int) -> list[Task]:
    """Whole verified components, in order, gathered into tasks of about ``large`` texts."""
    where = {n: c for c, comp in enumerate(comps) for n in comp}
    of_pair = np.array([where[a] for a in verified[:, 0].tolist()], dtype=np.int64)
    tasks: list[Task] = []
    first = 0
    while first < len(comps):
        last, size = first, 0
        while last < len(comps) and (size == 0 or size + len(comps[last]) <= large):
            size += len(comps[last])
            last += 1
        nodes = sorted(n for comp in comps[first:last] for n in comp)
        tasks.append((nodes, verified[(of_pair >= first) & (of_pair < last)]))
        first = last
    return tasks
