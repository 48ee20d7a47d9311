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

In a cron run, every arrival joins the giant group of a noisy corpus (38,419 texts
at 1M), so it changes every night. What did not change is not done again: a pair
of texts compared as last run (same text and bytes: ``pair_keys``, and lines left
out alike: ``PairVerdicts.outside``) keeps its verdict (``PairVerdicts``, stored with
the state), and a verified component whose members and furniture are as when the
state judged it keeps its records (``known``: ``stored.judged_components``).

A text's reach grows with every arrival among its candidates, but its lines change
only when the reach passes the count of a line it left out: the verdicts keep the
reaches they hold for (a window per text), not the reach they were taken at. Keyed
by the reach itself, 34,767 of the 36,733 pairs the noisy million's +10,000 night
verified again had no new text in them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xxhash

from dedup import freq_bounds, parallel
from dedup.cluster import Similarity, Thresholds, labelled
from dedup.groups import Groups, Task
from dedup.pair_verdicts import PairVerdicts
from dedup.pass2 import Corpus, furniture_over, furniture_overs, load, reaches
from dedup.signatures import distinct, find_sorted, similarity

LARGE = 1000  # texts: a group over this is split
CHUNK = 2000  # candidate pairs verified to a task
MIN_CHUNK = 250  # ... or fewer, down to this, where there are few to verify


Verified = tuple[np.ndarray, "freq_bounds.Found | None", np.ndarray, np.ndarray]


class Verifier:
    """Which candidate pairs pass the thresholds on exact shingles (a chunk, in ``local_order``)."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus

    def __call__(self, pairs: np.ndarray) -> Verified:
        """Per pair, accepted; (``corpus.bounded``) the limits of the lines the verdicts left in; and
        the texts read, each with the lowest count among the lines it left out (``left_out``)."""
        corpus = self.corpus
        thresholds = Thresholds(corpus.config.jaccard, corpus.config.containment, corpus.config.min_shared)
        bounds = freq_bounds.Collector() if corpus.bounded else None
        shingles = {}
        texts = distinct(pairs.ravel())
        lowest = np.empty(len(texts), dtype=np.int64)
        for k, (n, reach) in enumerate(zip(texts.tolist(), corpus.reach.of(texts).tolist(), strict=True)):
            _, _, shingles[n], counts, keys = load(corpus, n, reach)
            lowest[k] = left_out(counts, furniture_over(reach))
            if bounds is not None:
                bounds.lines(n, keys, counts, furniture_over(reach), None)
        accepted = [
            thresholds.accepts(Similarity(*similarity(shingles[a], shingles[b]))) for a, b in pairs.tolist()
        ]
        return np.array(accepted, dtype=bool), None if bounds is None else bounds.result(), texts, lowest


def left_out(counts: np.ndarray, over: int) -> int:
    """The lowest count among a text's short lines counted over ``over`` (furniture, left out); the
    text's lines are the same for any reach from ``over`` up to it (``FOREVER``: none left out).

    Example:
        >>> left_out(np.array([3, 40, 12]), 10), left_out(np.array([3]), 10) == FOREVER
        (12, True)
    """
    out = np.asarray(counts, dtype=np.int64)
    out = out[out > over]
    return int(out.min()) if len(out) else FOREVER


FOREVER = np.iinfo(np.int64).max


def split(
    corpus: Corpus,
    tasks: Groups,
    engine: parallel.Engine,
    *,
    large: int | None = None,
    memo: PairVerdicts | None = None,
    known: Callable[[list[list[int]]], Sequence[bool]] | None = None,
    into: Path | None = None,
) -> Groups:
    """``tasks`` with each group over ``large`` (``LARGE``) texts replaced by tasks of its verified
    components. Sets ``corpus.reach`` and ``corpus.furniture`` for the texts of the groups split
    (before any worker forks).

    A text's furniture is the reach that stands for its lines as compared: any reach in its
    window (``PairVerdicts.furniture``) leaves out the same lines, and the lowest is the one
    its verdicts hold down to. A verified component's fingerprint holds it, and pass 2 settles
    the text at it (its lines, and the limits they hold under), so the component's records
    hold for the whole window.

    A cron run passes what its state knows: ``memo``, the verdicts on pairs of texts
    compared alike last run (only the others are verified; all are recorded in it for
    the next run), and ``known``, whether the state holds each verified component's
    records, given its texts' furniture (such a component is not settled again). With
    ``into`` (a new directory) the tasks are saved there, mapped (``Groups.joined``), not held
    in memory.
    """
    large = LARGE if large is None else large
    big = np.flatnonzero(tasks.sizes() > large).tolist()
    if not big:
        return tasks
    verdicts: dict[int, np.ndarray] = {}  # per group, per pair: 1 accepted, 0 not, -1 to verify
    keys: dict[int, np.ndarray] = {}
    texts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per group: its texts in pairs, their keys
    overs: dict[int, np.ndarray] = {}  # per group: ``furniture_over`` of each of those texts' reach
    order: dict[int, np.ndarray] = {}  # per group: the pairs to verify, in the order they are
    for k in big:
        nodes, pairs = tasks.members(k), tasks.pairs_of(k)
        corpus.reach.add(nodes, reaches(corpus, nodes, pairs))
        texts[k] = (np.unique(pairs), np.empty(0, np.uint64)) if memo is None else text_keys(corpus, pairs)
        assert len(texts[k][0]) == len(nodes), "a text of a group in none of its pairs"  # (connected)
        overs[k] = furniture_overs(corpus.reach.of(texts[k][0]))
        if memo is None:
            verdicts[k] = np.full(len(pairs), -1, dtype=np.int8)
        else:
            keys[k] = pair_keys(pairs, texts[k])
            verdicts[k] = memo.lookup(keys[k])
            # A verdict on a text one of whose lines the corpus now counts otherwise, or whose reach
            # now leaves out other lines, is taken again.
            again = memo.stale(texts[k][1], corpus.frequency) | memo.outside(texts[k][1], overs[k])
            verdicts[k][np.isin(pairs, texts[k][0][again]).any(axis=1)] = -1
        todo = np.flatnonzero(verdicts[k] < 0)
        order[k] = todo[local_order(pairs[todo])]
    # A few pairs (a cron run's, most verdicts kept) still make a task per worker or two.
    size = max(MIN_CHUNK, min(CHUNK, -(-sum(map(len, order.values())) // 4)))
    chunks = [(k, lo) for k in big for lo in range(0, len(order[k]), size)]
    # A generator, not a list: the engine runs a short list in this process, and a chunk takes
    # ~0.5 s here (the noisy 100k's giant group is two of them, each for a worker).
    masks = engine.ordered(
        Verifier(corpus), (tasks[k][1][order[k][lo : lo + size]] for k, lo in chunks), window_per_worker=4
    )
    for (k, lo), (mask, found, read, lowest) in zip(chunks, masks, strict=True):
        verdicts[k][order[k][lo : lo + size]] = mask
        if memo is not None:
            memo.record_windows(texts[k], read, overs[k][np.searchsorted(texts[k][0], read)], lowest)
            if found is not None:
                memo.found(texts[k], found, tasks[k][1][order[k][lo : lo + size]])
    out: list[Groups] = []
    for before, k in zip([-1, *big], big, strict=False):  # each group split, and the one before it
        out.append(tasks.between(before + 1, k))  # views: ``joined`` copies them once
        nodes, pairs = tasks.members(k), tasks.pairs_of(k)
        keep = verdicts[k] == 1
        if memo is not None:
            memo.record(keys[k], keep, texts[k][1])
        verified = pairs[keep]
        members, starts = labelled(nodes, verified)
        furniture = overs[k] if memo is None else memo.furniture(texts[k][1], overs[k])
        corpus.furniture.add(texts[k][0], furniture)
        if known is not None:
            comps = [members[a:b].tolist() for a, b in itertools.pairwise(starts.tolist())]
            held = np.fromiter(known(comps), dtype=bool, count=len(comps))
            members = members[np.repeat(~held, np.diff(starts))]
            starts = np.concatenate([[0], np.cumsum(np.diff(starts)[~held])])
        out.append(Groups.of(pack(members, starts, verified, large)))
    out.append(tasks.between(big[-1] + 1, len(tasks)))
    return Groups.joined(out, into)


def pair_keys(pairs: np.ndarray, texts: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A key per pair for the texts as compared (``texts``: ``text_keys`` of the pairs): each
    text's content key and the bytes it is read from again.

    Verification compares shingles, made from a text's first document
    (``pass2.load``: its bytes, read as its kind and name say: the same bytes are
    another text in a ``.html`` file than in a ``.txt``, and another content key)
    with the lines in more documents than its reach left out. Which lines those are
    is checked apart (``PairVerdicts.outside``: the reach moves with every arrival,
    the lines seldom); the run's options are the state's. The counts that decide
    those lines grow as documents arrive: the verdicts' limits (``freq_bounds``) are
    kept by text key (``PairVerdicts``).
    """
    nodes, text = texts
    keyed = text[np.searchsorted(nodes, pairs)]
    low, high = keyed.min(axis=1), keyed.max(axis=1)
    return _mix(low ^ _mix(high))


def text_keys(corpus: Corpus, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The texts of ``pairs`` (sorted) and a key for each as compared (``pair_keys``)."""
    docs, order, starts, contents = corpus.docs, corpus.order, corpus.starts, corpus.contents
    nodes = np.unique(pairs)
    text = [
        xxhash.xxh3_64_intdigest(f"{contents[n]}\t{docs.sha256(int(order[starts[n]]))}".encode())
        for n in nodes.tolist()
    ]
    return nodes, np.array(text, dtype=np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 products wrap): two text keys -> one pair key."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def local_order(pairs: np.ndarray) -> np.ndarray:
    """An order of ``pairs`` in which neighbouring pairs share texts: a chunk then loads fewer.

    Texts are numbered by reverse Cuthill-McKee (neighbours get near numbers) and the
    pairs sorted by their lower number. On the noisy million's giant group (38,419 texts,
    79,352 pairs) chunks of 2,000 load 52,875 texts instead of 86,617 in node order.

    Example (the chain 1-2-9-0, walked along):
        >>> local_order(np.array([[0, 9], [1, 2], [2, 9]])).tolist()
        [1, 2, 0]
    """
    from scipy.sparse import csr_matrix  # only a giant group needs it
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    if not len(pairs):
        return np.empty(0, dtype=np.int64)

    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    ones = np.ones(len(local), dtype=np.int8)
    graph = csr_matrix((ones, (local[:, 0], local[:, 1])), shape=(len(nodes), len(nodes)))
    rank = np.empty(len(nodes), dtype=np.int64)
    rank[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(len(nodes))
    ranked = rank[local]
    return np.lexsort((ranked.max(axis=1), ranked.min(axis=1)))


def pack(members: np.ndarray, starts: np.ndarray, verified: np.ndarray, large: int) -> list[Task]:
    """Whole verified components (``cluster.labelled``'s arrays), in order, gathered into tasks of
    about ``large`` texts (the pairs of ``verified`` in none of them are left out). Arrays, not a
    dict per text: a giant group grows with a noisy corpus.

    Example (components [3, 8], [5] and [6, 7], three texts to a task):
        >>> verified = np.array([[3, 8], [6, 7], [1, 2]])
        >>> [(n, p.tolist()) for n, p in pack(np.array([3, 8, 5, 6, 7]), np.array([0, 2, 3, 5]), verified, 3)]
        [([3, 5, 8], [[3, 8]]), ([6, 7], [[6, 7]])]
    """
    sizes = np.diff(starts)
    comp = np.repeat(np.arange(len(sizes)), sizes)  # of each member
    sorter = np.argsort(members, kind="stable")
    at, found = find_sorted(members, verified[:, 0], sorter)
    of_pair = np.where(found, comp[sorter[at]] if len(members) else -1, -1)  # pairs of no component: -1
    tasks: list[Task] = []
    first = 0
    for_size = sizes.tolist()
    while first < len(for_size):
        last, size = first, 0
        while last < len(for_size) and (size == 0 or size + for_size[last] <= large):
            size += for_size[last]
            last += 1
        nodes = np.sort(members[starts[first] : starts[last]]).tolist()
        tasks.append((nodes, verified[(of_pair >= first) & (of_pair < last)]))
        first = last
    return tasks
