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
of texts compared as last run (same text, bytes and reach: ``pair_keys``) keeps
its verdict (``PairVerdicts``, stored with the state), and a verified component
whose members and reaches are as when the state judged it keeps its records
(``known``: ``stored.judged_components``).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xxhash

from dedup import freq_bounds, parallel
from dedup.cluster import Similarity, Thresholds, labelled
from dedup.frequency import TokenFrequency
from dedup.groups import Groups, Task
from dedup.pass2 import Corpus, furniture_over, load, reaches
from dedup.signatures import distinct, find_sorted, similarity

LARGE = 1000  # texts: a group over this is split
CHUNK = 2000  # candidate pairs verified to a task
MIN_CHUNK = 250  # ... or fewer, down to this, where there are few to verify


class Verifier:
    """Which candidate pairs pass the thresholds on exact shingles (a chunk, in ``local_order``)."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus

    def __call__(self, pairs: np.ndarray) -> tuple[np.ndarray, freq_bounds.Found | None]:
        """Per pair, accepted; and (``corpus.bounded``) the limits of the lines the verdicts left in."""
        corpus = self.corpus
        thresholds = Thresholds(corpus.config.jaccard, corpus.config.containment, corpus.config.min_shared)
        bounds = freq_bounds.Collector() if corpus.bounded else None
        shingles = {}
        texts = distinct(pairs.ravel())
        for n, reach in zip(texts.tolist(), corpus.reach.of(texts).tolist(), strict=True):
            _, _, shingles[n], counts, keys = load(corpus, n, reach)
            if bounds is not None:
                bounds.lines(n, keys, counts, furniture_over(reach), None)
        accepted = [
            thresholds.accepts(Similarity(*similarity(shingles[a], shingles[b]))) for a, b in pairs.tolist()
        ]
        return np.array(accepted, dtype=bool), None if bounds is None else bounds.result()


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
    components. Sets ``corpus.reach`` for the texts of the groups split (before any worker forks).

    A cron run passes what its state knows: ``memo``, the verdicts on pairs of texts
    compared alike last run (only the others are verified; all are recorded in it for
    the next run), and ``known``, whether the state holds each verified component's
    records (such a component is not settled again). With ``into`` (a new directory) the tasks
    are saved there, mapped (``Groups.joined``), not held in memory.
    """
    large = LARGE if large is None else large
    big = np.flatnonzero(tasks.sizes() > large).tolist()
    if not big:
        return tasks
    verdicts: dict[int, np.ndarray] = {}  # per group, per pair: 1 accepted, 0 not, -1 to verify
    keys: dict[int, np.ndarray] = {}
    texts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per group: its texts in pairs, their keys
    order: dict[int, np.ndarray] = {}  # per group: the pairs to verify, in the order they are
    for k in big:
        nodes, pairs = tasks.members(k), tasks.pairs_of(k)
        corpus.reach.add(nodes, reaches(corpus, nodes, pairs))
        if memo is None:
            verdicts[k] = np.full(len(pairs), -1, dtype=np.int8)
        else:
            texts[k] = text_keys(corpus, pairs)
            keys[k] = pair_keys(pairs, texts[k])
            verdicts[k] = memo.lookup(keys[k])
            # A verdict on a text one of whose lines the corpus now counts otherwise is taken again.
            stale = texts[k][0][memo.stale(texts[k][1], corpus.frequency)]
            verdicts[k][np.isin(pairs, stale).any(axis=1)] = -1
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
    for (k, lo), (mask, found) in zip(chunks, masks, strict=True):
        verdicts[k][order[k][lo : lo + size]] = mask
        if memo is not None and found is not None:
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
    text's content key, the bytes it is read from again and its reach.

    Verification compares shingles, made from a text's first document
    (``pass2.load``: its bytes, read as its kind and name say: the same bytes are
    another text in a ``.html`` file than in a ``.txt``, and another content key)
    with the lines in more documents than its reach left out; the run's options are
    the state's. The counts that decide those lines grow as documents arrive: the
    verdicts' limits (``freq_bounds``) are kept by text key (``PairVerdicts``).
    """
    nodes, text = texts
    keyed = text[np.searchsorted(nodes, pairs)]
    low, high = keyed.min(axis=1), keyed.max(axis=1)
    return _mix(low ^ _mix(high))


def text_keys(corpus: Corpus, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The texts of ``pairs`` (sorted) and a key for each as compared (``pair_keys``)."""
    docs, order, starts, reach, contents = (
        corpus.docs,
        corpus.order,
        corpus.starts,
        corpus.reach,
        corpus.contents,
    )
    nodes = np.unique(pairs)
    text = np.array(
        [
            xxhash.xxh3_64_intdigest(f"{contents[n]}\t{docs.sha256(int(order[starts[n]]))}\t{r}".encode())
            for n, r in zip(nodes.tolist(), reach.of(nodes).tolist(), strict=True)
        ],
        dtype=np.uint64,
    )
    return nodes, text


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 products wrap): two text keys -> one pair key."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class PairVerdicts:
    """Split groups' pair verdicts by ``pair_keys``, from the state's last run; this run's, to store;
    and, by ``text_keys``, the limits of the lines the verdicts left in (``freq_bounds``).

    Stored as a blob: the counts of accepted and rejected keys, the keys, sorted (8
    bytes each: 0.6 MB for the noisy million's giant group), then the limits
    (``Bounds``). Verdicts stored without limits (an earlier version's) are not used.
    """

    _HEADER = struct.Struct("<4sQQ")
    _MAGIC = b"PV2\0"

    def __init__(
        self,
        accepted: np.ndarray | None = None,
        rejected: np.ndarray | None = None,
        bounds: freq_bounds.Bounds | None = None,
    ) -> None:
        empty = np.empty(0, dtype=np.uint64)
        self.accepted = empty if accepted is None else accepted
        self.rejected = empty if rejected is None else rejected
        self.bounds = bounds  # None: the verdicts' limits are not known (``stale``: every text)
        self.recorded: list[tuple[np.ndarray, np.ndarray]] = []
        self.texts: list[np.ndarray] = []  # this run's texts' keys, whose limits are stored
        self.limits: list[freq_bounds.Found] = []  # the limits found this run, by text key
        self.verified: list[np.ndarray] = []  # the texts (keys) whose limits were found this run
        self._crossed: np.ndarray | None = None

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Per key: 1 accepted, 0 rejected, -1 unknown.

        >>> PairVerdicts(np.array([5], np.uint64), np.array([2, 9], np.uint64)).lookup(
        ...     np.array([9, 5, 4], np.uint64)).tolist()
        [0, 1, -1]
        """
        out = np.full(len(keys), -1, dtype=np.int8)
        for value, table in ((1, self.accepted), (0, self.rejected)):
            if len(table):
                at = np.minimum(np.searchsorted(table, keys), len(table) - 1)
                out[table[at] == keys] = value
        return out

    def stale(self, texts: np.ndarray, frequency: TokenFrequency) -> np.ndarray:
        """Per text key: whether a verdict on it may no longer hold (one of its lines is counted past
        its limit; or the verdicts came without limits)."""
        if self.bounds is None:
            return np.ones(len(texts), dtype=bool)
        if self._crossed is None:
            self._crossed = self.bounds.crossed(frequency)
        return np.isin(texts, self._crossed)

    def found(
        self, texts: tuple[np.ndarray, np.ndarray], found: freq_bounds.Found, pairs: np.ndarray
    ) -> None:
        """Limits found verifying ``pairs`` (per node), for the texts ``(nodes, keys)`` of their group.
        Their texts' limits are these now (none, where every line is furniture): not carried."""
        nodes, keys, limits = found
        self.limits.append((texts[1][np.searchsorted(texts[0], nodes)], keys, limits))
        self.verified.append(texts[1][np.searchsorted(texts[0], np.unique(pairs))])

    def record(self, keys: np.ndarray, accepted: np.ndarray, texts: np.ndarray | None = None) -> None:
        """This run's verdicts on pairs (``keys``), among the texts ``texts`` (keys)."""
        self.recorded.append((keys, accepted))
        if texts is not None:
            self.texts.append(texts)

    def dumps(self) -> bytes:
        """The verdicts recorded this run (the ones looked up and not recorded are dropped), and the
        limits of their texts: found this run, else carried from the last."""
        keys = np.concatenate([k for k, _ in self.recorded] or [np.empty(0, dtype=np.uint64)])
        mask = np.concatenate([a for _, a in self.recorded] or [np.empty(0, dtype=bool)])
        accepted, rejected = distinct(keys[mask]), distinct(keys[~mask])
        limits = self.limits or [(np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int64))]
        found = freq_bounds.Bounds.found(*(np.concatenate(a) for a in zip(*limits, strict=True)))
        texts = np.concatenate(self.texts or [np.empty(0, dtype=np.uint64)])
        parts: list[tuple[freq_bounds.Bounds, np.ndarray | None]] = [(found, None)]
        if self.bounds is not None:
            verified = np.concatenate(self.verified or [np.empty(0, dtype=np.uint64)])  # found's too
            parts.append((self.bounds, self.bounds.of(np.setdiff1d(texts, verified))))
        head = self._HEADER.pack(self._MAGIC, len(accepted), len(rejected))
        bounds = freq_bounds.Bounds.dump_joined(parts)
        return b"".join((head, accepted.astype("<u8").tobytes(), rejected.astype("<u8").tobytes(), bounds))

    @classmethod
    def loads(cls, blob: bytes | None) -> PairVerdicts:
        """The stored verdicts; none (all verified again) when there are none or they are unreadable."""
        size = cls._HEADER.size
        if blob is None or len(blob) < size:
            return cls()
        magic, n, m = cls._HEADER.unpack_from(blob)
        if magic != cls._MAGIC or len(blob) < size + 8 * (n + m):
            return cls()
        keys = np.frombuffer(blob, dtype="<u8", count=n + m, offset=size).astype(np.uint64)
        bounds = freq_bounds.Bounds.loads(blob[size + 8 * (n + m) :])
        return cls() if bounds is None else cls(keys[:n], keys[n:], bounds)


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
