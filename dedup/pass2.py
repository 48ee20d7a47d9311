"""Pass 2: one component of candidate pairs -> verified clusters, ranked; all -> the records.

The index links nodes (distinct normalised texts) whose signatures may be
similar; each connected group of links is a task. Its documents are read a
second time, pairs are verified on exact shingle sets, the group is clustered
without chaining and each cluster's members are ranked (``ranking``). A text with no
candidate is ranked alone, when its record is written (``Verdicts``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import orjson

from dedup import (
    alignment,
    columns,
    freq_bounds,
    kernels,
    normalize,
    parallel,
    quality,
    ranking,
    readers,
    records,
    text_nodes,
    text_spill,
)
from dedup.cluster import BEYOND_SIZE, Similarity, Thresholds, cluster_component, glued
from dedup.comparison import compared_from, hashed_from, relative_of_ids
from dedup.config import Config
from dedup.document import DocumentTable
from dedup.frequency import TokenFrequency
from dedup.groups import Groups, Task
from dedup.pass1 import FeatureTable
from dedup.record_spill import SpilledRecords
from dedup.signatures import find_sorted, similarity, token_hashes, vocabulary_ids

# A component's records (document, serialised), its verified pairs, and its verdicts' bounds.
Settled = tuple[list[tuple[int, bytes]], int, "freq_bounds.Found | None"]

PER_CALL = 64  # groups to one call where a call costs much (a Dask task): most groups take a millisecond
# ... and at most about this many texts: a giant group's pieces (``large_groups``) went 64 to a
# call, the noisy 1M's 38,000 texts' records (~36 MB) in the driver at once.
TEXTS_PER_CALL = 1000
MIN_TEXTS_PER_CALL = 32  # ... and calls of fewer cost more to send than they save


@dataclass(slots=True)
class Corpus:
    """What pass 2 and the records read: a forked worker inherits it, a Dask worker is sent it once,
    the tables in files as their paths (``columns.by_file``)."""

    config: Config
    docs: DocumentTable
    node_of: np.ndarray  # document -> node, -1 when skipped
    order: np.ndarray  # documents sorted by node: node n's are order[starts[n]:starts[n + 1]]
    starts: np.ndarray
    sizes: np.ndarray  # node -> shingle count
    contents: np.ndarray  # node -> content key (hash of its normalised text)
    signals: np.ndarray  # document -> intrinsic signals (quality.INTRINSIC order)
    frequency: TokenFrequency
    repairs: columns.Sparse  # document -> the mojibake repair pass 1 found (``normalize.RepairPlan``)
    texts: text_spill.Texts  # node -> its comparison text as pass 1 made it, when written
    # node -> its reach over all its candidate pairs, for the texts of a group split by
    # verified pairs (``large_groups``): each task then sees only some of those pairs.
    reach: Reach = field(default_factory=lambda: Reach())
    # node -> the reach its lines are compared at and limited for, for the same texts (a
    # ``furniture_over`` value, kept as a Reach): one that leaves out the same lines
    # (``large_groups.split``), the lowest a cron run's state vouches for.
    furniture: Reach = field(default_factory=lambda: Reach())
    bounded: bool = False  # a cron run: pass 2 also says what counts its verdicts rest on (``freq_bounds``)

    def members(self, node: int) -> list[int]:
        """The documents (manifest indices) whose normalised text is this node's."""
        return self.order[self.starts[node] : self.starts[node + 1]].tolist()

    @classmethod
    def of(
        cls, config: Config, docs: DocumentTable, feats: FeatureTable, frequency: TokenFrequency
    ) -> Corpus:
        """The tables pass 2 reads, as numpy views of pass 1's (documents grouped by node)."""
        node_of = feats.node_of.numbers()
        order, starts = map(np.asarray, text_nodes.grouped(node_of, len(feats.contents), feats.directory))
        return cls(
            config=config,
            docs=docs,
            node_of=node_of,
            order=order,
            starts=starts,
            sizes=feats.sizes.numbers(),
            contents=feats.contents.numbers(),
            # Rows of quality.INTRINSIC as they are: a reshaped view would be sent to Dask whole.
            signals=feats.signals.numbers(),
            frequency=frequency,
            repairs=feats.repairs,
            texts=feats.texts,
        )

    def __getstate__(self) -> dict[str, Any]:
        """Sent to a Dask worker: the tables in files go as their paths (``columns.by_file``)."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: columns.by_file(v) if k in _MAPPED else v for k, v in state.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, columns.from_file(v) if k in _MAPPED else v)


_MAPPED = ("node_of", "order", "starts", "sizes", "contents", "signals")


class Settler:
    """The pass-2 stage, holding the run's tables (forked workers inherit them, nothing is sent)."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus

    def __call__(self, task: Task) -> Settled:
        return settle(self.corpus, task)


class Reach:
    """node -> reach, for the texts of the groups split (``large_groups``), as two sorted arrays.

    A dict took ~100 bytes a text, and a noisy corpus's giant group grows with the corpus
    (38,419 texts at 1M): it was most of what the driver's heap gained in the split.

    Example:
        >>> reach = Reach()
        >>> reach.add(np.array([9, 2]), np.array([5, 7]))
        >>> reach.add(np.array([2, 4]), np.array([1, 3]))  # a text's first reach stays
        >>> reach[2], 4 in reach, 3 in reach, reach.known([3, 9, 4])
        (7, True, False, {9: 5, 4: 3})
    """

    def __init__(self) -> None:
        self.nodes = np.empty(0, dtype=np.int64)
        self.values = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node: int) -> bool:
        return bool(find_sorted(self.nodes, np.array([node], dtype=np.int64))[1][0])

    def __getitem__(self, node: int) -> int:
        at, hit = find_sorted(self.nodes, np.array([node], dtype=np.int64))
        if not hit[0]:
            raise KeyError(node)
        return int(self.values[at[0]])

    def of(self, nodes: np.ndarray) -> np.ndarray:
        """The reach of each of ``nodes`` (all must be known)."""
        at, hit = find_sorted(self.nodes, np.asarray(nodes, dtype=np.int64))
        if not hit.all():
            raise KeyError(int(np.asarray(nodes)[~hit][0]))
        return self.values[at]

    def known(self, nodes: Sequence[int]) -> dict[int, int]:
        """Those of ``nodes`` known here, with their reach."""
        if not len(self.nodes):
            return {}
        wanted = np.asarray(nodes, dtype=np.int64)
        at, hit = find_sorted(self.nodes, wanted)
        return dict(zip(wanted[hit].tolist(), self.values[at[hit]].tolist(), strict=True))

    def add(self, nodes: np.ndarray, values: np.ndarray) -> None:
        """Known from now on; a node already known keeps its reach."""
        new = ~np.isin(nodes, self.nodes)
        merged = np.concatenate([self.nodes, np.asarray(nodes, dtype=np.int64)[new]])
        order = np.argsort(merged, kind="stable")
        self.values = np.concatenate([self.values, np.asarray(values, dtype=np.int64)[new]])[order]
        self.nodes = merged[order]


def reach_of(corpus: Corpus, nodes: Sequence[int], pairs: np.ndarray) -> dict[int, int]:
    """Each text's documents plus its candidates': the most one article's copies can be here
    (``reaches``; a text of a split group is settled at its ``Corpus.furniture``, which leaves out
    the lines its reach over the whole group does)."""
    reach = dict(zip(nodes, reaches(corpus, np.asarray(nodes, dtype=np.int64), pairs).tolist(), strict=True))
    reach.update(corpus.furniture.known(nodes))
    return reach


def reaches(corpus: Corpus, nodes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Each of ``nodes`` (ascending) with its documents plus its candidates', as an array: a giant
    group's takes no dict (``Reach.add`` then keeps the reach of a text it already holds)."""
    counts = (corpus.starts[nodes + 1] - corpus.starts[nodes]).astype(np.int64)
    local = np.searchsorted(nodes, pairs)
    reach = counts.copy()
    np.add.at(reach, local[:, 0], counts[local[:, 1]])
    np.add.at(reach, local[:, 1], counts[local[:, 0]])
    return reach


def load(
    corpus: Corpus, node: int, reach: int
) -> tuple[Any, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """A text again: (its first tokens, which are spaced words, its shingles, its lines' counts
    and keys).

    Its comparison text as pass 1 wrote it (``text_spill``), else made again from
    its first document, read again. The tokens are hashes with the compiled kernels
    (``hashed_from``), words without (``compared_from``; spaced is then None). A line in
    more documents than ``reach`` is furniture and left out (``compared``).
    """
    config = corpus.config
    comparison = corpus.texts.get(node)
    if comparison is None:
        first = corpus.members(node)[0]
        text = readers.reload_text(corpus.docs[first], config)
        comparison = normalize.comparison_text(normalize.repair(text, corpus.repairs.get(first)))
    over = furniture_over(reach)
    if kernels.AVAILABLE:
        return hashed_from(comparison, config.shingle_size, corpus.frequency, over)
    words, shingles, lines, keys = compared_from(comparison, config.shingle_size, corpus.frequency, over)
    # All that scoring looks at: a long text's words freed.
    return words[: alignment.ALIGN_MAX_TOKENS], None, shingles, lines, keys


def furniture_over(reach: int) -> int:
    """The count over which a line of a text with this reach is furniture (``compared``)."""
    return max(quality.TEMPLATE_MIN_DOCUMENTS, reach)


def furniture_overs(reach: np.ndarray) -> np.ndarray:
    """``furniture_over`` of each reach (int64)."""
    return np.maximum(np.asarray(reach, dtype=np.int64), quality.TEMPLATE_MIN_DOCUMENTS)


def settle(corpus: Corpus, task: Task) -> Settled:
    """Pass 2 for one component: read again, verify, cluster, rank.

    Returns the manifest record (serialised: small to send back) of each of its
    documents, the number of verified pairs, and (``corpus.bounded``: a cron run)
    the counts its verdicts rest on (``freq_bounds``), per node. With the compiled
    kernels, words are compared as ids of their hashes (``hashed_from``,
    ``relative_of_ids``); without, as strings (``compared_from``, ``quality.relative``):
    the reference, same records.
    """
    nodes, pairs = task
    config = corpus.config
    compiled = kernels.AVAILABLE
    toks: dict[int, Any] = {}  # words (reference) or token hashes, first ALIGN_MAX_TOKENS
    spaced: dict[int, np.ndarray | None] = {}
    shingles: dict[int, np.ndarray] = {}
    lines: dict[int, np.ndarray] = {}  # corpus document frequency of each short line
    keys: dict[int, np.ndarray] = {}  # and their keys
    reach = reach_of(corpus, nodes, pairs)
    for n in nodes:
        toks[n], spaced[n], shingles[n], lines[n], keys[n] = load(corpus, n, reach[n])
    bounds = freq_bounds.Collector() if corpus.bounded else None
    cache: dict[tuple[int, int], Similarity] = {}

    def sim(a: int, b: int) -> Similarity:
        key = (a, b) if a < b else (b, a)
        if key not in cache:
            cache[key] = Similarity(*similarity(shingles[a], shingles[b]))
        return cache[key]

    thresholds = Thresholds(config.jaccard, config.containment, config.min_shared)
    edges = [(int(a), int(b)) for a, b in pairs if thresholds.accepts(sim(int(a), int(b)))]

    # The corpus frequency of every word of the group, looked up in one call: alignment asks
    # for a few words at a time, ~160 times per group on the noisy corpus.
    if compiled:
        vocabulary, places = vocabulary_ids(np.concatenate([toks[n] for n in nodes]))
        cuts = np.cumsum([len(toks[n]) for n in nodes])[:-1]
        ids = dict(zip(nodes, np.split(places, cuts), strict=True))
        counts = corpus.frequency.get(vocabulary).astype(np.int64)
    else:
        words = list(dict.fromkeys(w for n in nodes for w in toks[n]))
        known = dict(zip(words, corpus.frequency.get(token_hashes(words)).tolist(), strict=True))

    def frequency(words: Sequence[str]) -> list[int]:
        return [known[w] for w in words]

    past: dict[tuple[int, int], np.ndarray] = {}  # a text's shingles a centre does not hold

    def glue(c: int, a: int, b: int) -> bool:
        large = BEYOND_SIZE * len(shingles[c])
        if len(shingles[a]) < large or len(shingles[b]) < large:
            return False  # as ``glued`` says, without making the sets past the centre
        for n in (a, b):
            if (c, n) not in past:
                past[c, n] = np.setdiff1d(shingles[n], shingles[c], assume_unique=True)
        sizes = len(shingles[c]), len(shingles[a]), len(shingles[b])
        return glued(*sizes, past[c, a], past[c, b], min_shared=config.min_shared)

    out: list[tuple[int, bytes]] = []
    for members in cluster_component(nodes, edges, sim, glue):
        template_from = None
        if len(members) == 1:
            relatives = [ranking.LONE]
        else:
            copies = sum(len(corpus.members(n)) for n in members)
            template_from = quality.template_from(copies)
            template = [quality.template_lines(lines[n], copies) for n in members]
            member_shingles = [shingles[n] for n in members]
            if compiled:
                relatives, decisions = relative_of_ids(
                    [ids[n] for n in members], member_shingles, counts, template, [spaced[n] for n in members]
                )
                if bounds is not None:
                    bounds.outvoted_ids(members, decisions, vocabulary, counts)
            else:
                decided: list[tuple[int, Any, Any, int]] = []
                relatives = quality.relative(
                    [toks[n] for n in members], member_shingles, frequency, template, decided
                )
                if bounds is not None:
                    bounds.outvoted_words(members, decided, frequency)
        if bounds is not None:
            for n in members:
                bounds.lines(n, keys[n], lines[n], furniture_over(reach[n]), template_from)
        ranked = ranking.rank(corpus, members, relatives, sim, thresholds, lambda n: len(shingles[n]))
        out.extend((d, orjson.dumps(record)) for d, record in ranked)
    return out, len(edges), None if bounds is None else bounds.result()


def settle_all(corpus: Corpus, tasks: Groups, engine: parallel.Engine | None = None) -> Iterator[Settled]:
    """Pass 2 over all components, in task order (forked workers inherit the corpus tables)."""
    engine = engine or parallel.Processes(corpus.config.workers)
    # A few thousand texts (a cron run's groups) went in three calls, two of them to one worker
    # from the start: calls of a quarter of each worker's share keep both busy to the end.
    share = tasks.texts() // (4 * max(1, corpus.config.workers))
    limit = min(TEXTS_PER_CALL, max(MIN_TEXTS_PER_CALL, share))
    yield from engine.ordered(
        Settler(corpus), tasks, window_per_worker=8, per_call=PER_CALL, weight=(_texts, limit)
    )


def _texts(task: Task) -> int:
    return len(task[0])


class Verdicts:
    """The manifest record of any document, made when asked.

    Components were settled in pass 2 (records kept serialised); groups a cron
    run left unchanged keep their stored records; a lone text (no candidate) is
    ranked here, when its record is needed, so that a million of them never sit
    in memory at once.
    """

    def __init__(self, corpus: Corpus, settled: SpilledRecords, kept: Mapping[int, str]) -> None:
        self.corpus, self.settled, self.kept = corpus, settled, kept
        self._pending: dict[int, dict[str, Any]] = {}  # other copies of a lone text, ranked with it
        self._lone = ranking.Lone(corpus)

    def alone(self, doc: int) -> bool:
        """A text of its own, with no candidate and no copy: its record can only say canonical."""
        node = int(self.corpus.node_of[doc])
        starts = self.corpus.starts
        return doc not in self.settled and node >= 0 and starts[node + 1] - starts[node] == 1

    def record(self, doc: int, *, again: bool = False) -> dict[str, Any]:
        """The record of ``doc``; ``again``: it will be asked for again (keep it, serialised)."""
        if (made := self.settled.get(doc)) is not None:
            return orjson.loads(made)
        if (stored := self.kept.get(doc)) is not None:
            record: dict[str, Any] = orjson.loads(stored)
            record["line"] = self.corpus.docs.line(doc) or None  # lines above it may have changed
            return record
        node = int(self.corpus.node_of[doc])
        if node < 0:
            return records.of(self.corpus.docs, doc)
        if doc in self._pending:
            return self._pending.pop(doc)
        ranked = dict(self._alone(node))
        record = ranked.pop(doc)
        self._pending.update(ranked)
        if again:
            self.settled[doc] = orjson.dumps(record)
        return record

    def forget(self) -> None:
        """Drop the records of copies ranked with an earlier document, not yet asked for."""
        self._pending.clear()

    def settle_copies(self, node: int) -> None:
        """Rank a lone text's exact copies once, here, and keep their records with pass 2's.

        Parts of the manifest made apart (``manifest_workers``) then read them: each
        would otherwise rank the text again and hold its other copies' records till
        the stage ends (300k copies of one page: ~1 GB in every worker).
        """
        for doc, record in self._alone(node):
            self.settled[doc] = orjson.dumps(record)

    def _alone(self, node: int) -> list[tuple[int, dict[str, Any]]]:
        """The records of a text with no candidate: its exact copies ranked among themselves."""
        return ranking.alone(self.corpus, node, self._lone)
