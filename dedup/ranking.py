"""A cluster's documents ranked, cleanest first, and the manifest record of each.

Pass 2 ranks the clusters it verifies; the records stage ranks a text no candidate
reached (its exact copies among themselves, ``alone``), most of them a text of one
document (``only``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dedup import canonical, quality, records
from dedup.cluster import Similarity, Thresholds

if TYPE_CHECKING:
    from dedup.pass2 import Corpus

# The relative signals of a text compared with no other.
LONE = {"completeness": 1.0, "outvoted": 0.0, "repetition": 0.0, "template": 0.0}


def member_signals(corpus: Corpus, doc: int, relative: dict[str, float]) -> dict[str, float]:
    """A document's intrinsic signals (pass 1's) with its text's relative ones."""
    return {**dict(zip(quality.INTRINSIC, corpus.signals[doc].tolist(), strict=True)), **relative}


def rank(
    corpus: Corpus,
    members: Sequence[int],
    relatives: Sequence[dict[str, float]],
    sim: Callable[[int, int], Similarity],
    thresholds: Thresholds,
    sizes: Callable[[int], int],
) -> list[tuple[int, dict[str, Any]]]:
    """Rank the documents of one cluster (a list of node ids); the manifest record of each."""
    node_of: dict[int, int] = {}
    candidates = []
    for n, relative in zip(members, relatives, strict=True):
        for d in corpus.members(n):
            node_of[d] = n
            candidates.append(canonical.Member(d, corpus.docs.paths[d], member_signals(corpus, d, relative)))
    ranked = canonical.rank(candidates)
    best = ranked[0]
    best_doc = best.member.index
    verdict = {
        "cluster": records.cluster_name(corpus.docs.paths[min(node_of)]),
        "canonical": False,
        "duplicate_of": best.member.path,
    }
    out = []
    for scored in ranked:
        d = scored.member.index
        if d == best_doc:
            similar, reason = None, canonical.canonical_reason(ranked)
        else:
            if node_of[d] == node_of[best_doc]:
                similar, match = Similarity(1.0, 1.0, sizes(node_of[d])), "same text after normalisation"
            else:
                similar = sim(node_of[d], node_of[best_doc])
                match = thresholds.explain(similar)
            reason = canonical.duplicate_reason(scored, best, match)
        record = records.of(corpus.docs, d)
        record.update(
            verdict,
            similarity=similar.as_dict() if similar else None,
            score=scored.score,
            penalties=records.rounded(scored.penalties),
            signals=records.rounded(scored.member.signals),
            reason=reason,
        )
        if d == best_doc:
            record.update(canonical=True, duplicate_of=None)
        out.append((d, record))
    return out


def alone(corpus: Corpus, node: int, lone: Lone) -> list[tuple[int, dict[str, Any]]]:
    """The records of a text with no candidate: its exact copies ranked among themselves."""
    if corpus.starts[node + 1] - corpus.starts[node] == 1:  # one document: nothing to rank
        return [lone(int(corpus.members(node)[0]))]
    sizes = corpus.sizes
    return rank(corpus, [node], [LONE], _no_similarity, _NO_THRESHOLDS, lambda n: int(sizes[n]))


# A lone record's score, penalties, signals and reason.
Fields = tuple[float, dict[str, float], dict[str, float], str]


def only(corpus: Corpus, doc: int, fields: Fields | None = None) -> tuple[int, dict[str, Any]]:
    """``rank``'s record of a document whose text no other document holds and that has no
    candidate, without ranking a cluster of one: the same fields, in the same order. Most of
    a run's records are these (79% of the clean 10k's): 21.5 -> 15.5 us each.

    ``fields``: its verdict's (``lone_fields``), when already made for a document with the
    same signals.
    """
    score, penalties, signals, reason = fields or lone_fields(corpus, doc)
    record = records.of(corpus.docs, doc)
    record.update(
        cluster=records.cluster_name(record["path"]),
        canonical=True,
        duplicate_of=None,
        similarity=None,
        score=score,
        penalties=dict(penalties),
        signals=dict(signals),
        reason=reason,
    )
    return doc, record


def lone_fields(corpus: Corpus, doc: int) -> Fields:
    """A lone document's score, penalties, signals and reason: from its signals alone."""
    signals = member_signals(corpus, doc, LONE)
    score, penalties = quality.score(signals)
    scored = canonical.Scored(canonical.Member(doc, "", signals), score, penalties)  # alone: no path told
    return score, records.rounded(penalties), records.rounded(signals), canonical.canonical_reason([scored])


class Lone:
    """``only`` for the many lone documents of a records stage: their verdicts' fields depend
    on their signals alone, so they are made once per distinct row of signals and copied
    (59,000 of the noisy 100k's 62,000 lone texts share one: no damage found). At most
    ``keep`` rows' fields are held.
    """

    def __init__(self, corpus: Corpus, keep: int = 4096) -> None:
        self.corpus, self.keep = corpus, keep
        self._fields: dict[bytes, Fields] = {}

    def __call__(self, doc: int) -> tuple[int, dict[str, Any]]:
        row = self.corpus.signals[doc].tobytes()
        fields = self._fields.get(row)
        if fields is None:
            if len(self._fields) >= self.keep:
                self._fields.clear()
            fields = self._fields[row] = lone_fields(self.corpus, doc)
        return only(self.corpus, doc, fields)


def _no_similarity(a: int, b: int) -> Similarity:
    raise AssertionError("a lone node has nothing to compare with")


_NO_THRESHOLDS = Thresholds(1.0, 1.0, 1)
