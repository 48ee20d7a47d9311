"""What a cron run takes from its state instead of working it out again.

- unchanged documents (``cron_pass1``): not read, their stored features used;
- the candidate pairs of the last run (``KnownPairs``): when the distinct texts
  are the same, banding would find the same pairs, and new texts add theirs;
- unchanged groups (``unchanged_groups``): they keep their stored records
  (``cron_manifest`` writes them forward).
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from dedup.config import Config
from dedup.errors import StateError

if TYPE_CHECKING:  # numba, scipy: not loaded by a rerun with nothing to do (rerun.py)
    from dedup.document import DocumentTable
    from dedup.groups import Groups
    from dedup.pass1 import FeatureTable
    from dedup.pass2 import Corpus
    from dedup.rows import Kept, Matched, Rows
    from dedup.signature_spill import Blocks, Renumbered, RowSpill, Spilled

_PAIRS_HEADER = struct.Struct("<7q")  # version, bands, rows, proposed, texts, pairs, star rows
_PAIRS_VERSION = 2  # 1 had no stars: such pairs are not read (banding finds them anew, once)


@dataclasses.dataclass(frozen=True, slots=True)
class KnownPairs:
    """The last run's candidate pairs, and the distinct texts (content keys, in node order) they link.

    Banding and the prefilter depend only on the texts' signatures and sizes
    (functions of the text, under the state's stamp) and on which text of a bucket
    over ``index.MAX_BUCKET`` comes first (it is linked as a star from it): the
    same texts give the same pairs in any order that keeps each star's first text.
    """

    bands: int
    rows: int
    proposed: int
    contents: np.ndarray  # uint64[texts]
    pairs: np.ndarray  # int64[m, 2]
    stars: np.ndarray  # int64[k, 3]: (band, first member, other member), ``index.banding``

    def hold_for(self, contents: np.ndarray, bands: int, rows: int) -> bool:
        """Whether these pairs are the ones banding would find for these texts."""
        return (bands, rows) == (self.bands, self.rows) and np.array_equal(contents, self.contents)

    def extended(
        self,
        signatures: np.ndarray | Blocks,
        contents: np.ndarray,
        sizes: np.ndarray,
        config: Config,
        *,
        before: np.ndarray | Blocks | None = None,
    ) -> KnownPairs | None:
        """The pairs of these texts, if they are the known ones, less some, plus new ones.

        Known texts gone are taken out first (``without``), given ``before``: the
        known texts' signatures, numbered as ``contents`` was; without it, None.
        Then only the new texts are banded, against all; the known pairs are renumbered.
        A new copy of a stored text, earlier in path order than its first copy,
        moves that text before others: harmless unless it moves before the first
        text of its star. None then: banding starts afresh.
        """
        from dedup import index, index_delta
        from dedup.signatures import find_sorted

        if not len(contents):
            return None
        by_content = np.argsort(contents)
        at, present = find_sorted(contents[by_content], self.contents)
        known, shrunk = self, np.empty((0, 2), dtype=np.int64)
        if not present.all():
            if before is None:
                return None
            known, shrunk = self.without(before, np.flatnonzero(~present))
        now = by_content[at[present]]  # known text -> its node in this run
        if np.any(now[known.stars[:, 2]] < now[known.stars[:, 1]]):
            return None  # a star's first text would change
        is_new = np.ones(len(contents), dtype=bool)
        is_new[now] = False
        stars = np.concatenate((known.stars[:, :1], now[known.stars[:, 1:]]), axis=1)
        added = index_delta.pairs_with(
            signatures, np.flatnonzero(is_new), stars, bands=known.bands, rows=known.rows
        )

        def prefiltered(pairs: np.ndarray) -> np.ndarray:
            return index.prefilter(
                pairs, signatures, sizes, jaccard=config.jaccard, containment=config.containment
            )

        n = len(contents)
        old = np.sort(np.concatenate((now[known.pairs].reshape(-1, 2), now[shrunk])), axis=1)
        old = np.concatenate((old[: len(known.pairs)], prefiltered(old[len(known.pairs) :])))
        old = old[~np.isin(old[:, 0] * n + old[:, 1], added.dropped[:, 0] * n + added.dropped[:, 1])]
        pairs = np.concatenate((old, prefiltered(added.pairs)))
        pairs = pairs[np.argsort(pairs[:, 0] * n + pairs[:, 1], kind="stable")]
        proposed = known.proposed - len(added.dropped) + len(added.pairs)
        return KnownPairs(known.bands, known.rows, proposed, contents.copy(), pairs, added.stars)

    def without(self, before: np.ndarray | Blocks, gone: np.ndarray) -> tuple[KnownPairs, np.ndarray]:
        """These pairs with the ``gone`` texts taken out (``index_delta.pairs_without``), the texts
        left numbered in order; and the pairs a shrunk bucket proposes now, not yet prefiltered
        (``extended`` does it, with this run's sizes)."""
        from dedup import index_delta

        removed = index_delta.pairs_without(before, gone, self.stars, bands=self.bands, rows=self.rows)
        left = np.ones(len(self.contents), dtype=bool)
        left[gone] = False
        number = np.cumsum(left) - 1
        pairs = number[self.pairs[left[self.pairs].all(axis=1)]].reshape(-1, 2)
        stars = np.concatenate((removed.stars[:, :1], number[removed.stars[:, 1:]]), axis=1)
        proposed = self.proposed - removed.lost + len(removed.pairs)
        known = KnownPairs(self.bands, self.rows, proposed, self.contents[left], pairs, stars)
        return known, number[removed.pairs].reshape(-1, 2)

    def dumps(self) -> bytes:
        sizes = (self.proposed, len(self.contents), len(self.pairs), len(self.stars))
        head = _PAIRS_HEADER.pack(_PAIRS_VERSION, self.bands, self.rows, *sizes)
        body = b"".join(
            (
                self.contents.astype("<u8").tobytes(),
                self.pairs.astype("<i8").tobytes(),
                self.stars.astype("<i8").tobytes(),
            )
        )
        return head + zlib.compress(body, 1)

    @classmethod
    def loads(cls, blob: bytes) -> KnownPairs | None:
        """The stored pairs, or None if they are of another layout (then banding finds them anew)."""
        try:
            version, bands, rows, proposed, texts, n, k = _PAIRS_HEADER.unpack_from(blob)
            body = zlib.decompress(blob[_PAIRS_HEADER.size :])
        except (struct.error, zlib.error):
            return None
        if version != _PAIRS_VERSION or len(body) != 8 * texts + 16 * n + 24 * k:
            return None
        contents = np.frombuffer(body, dtype="<u8", count=texts).astype(np.uint64)
        pairs = np.frombuffer(body, dtype="<i8", count=2 * n, offset=8 * texts).astype(np.int64).reshape(n, 2)
        stars = np.frombuffer(body, dtype="<i8", offset=8 * texts + 16 * n).astype(np.int64).reshape(k, 3)
        return cls(bands, rows, proposed, contents, pairs, stars)


def held_signatures(
    feats: FeatureTable,
    corpus: Corpus,
    fresh: Sequence[int],
    stored: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
) -> dict[int, bytes]:
    """The stored signatures of the texts whose first document was not read but another was:
    that one's row is written with its text's signature (``SignatureRows``).

    ``stored`` streams the state's signatures a few thousand at a time (content keys,
    signature rows: ``rows.signature_chunks``), if any is needed.

    Raises:
        StateError: such a text has no stored signature (the state is damaged).
    """
    held = _held(feats, corpus, fresh)
    held[feats.given()[0]] = False
    found: dict[int, bytes] = {}
    for texts, signatures in _stored_rows(feats, np.flatnonzero(held), stored):
        found.update((t, row.tobytes()) for t, row in zip(texts.tolist(), signatures, strict=True))
    return found


def streamed(
    feats: FeatureTable,
    corpus: Corpus,
    fresh: Sequence[int],
    stored: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
    spill: Spilled,
) -> tuple[Renumbered, dict[int, bytes]]:
    """Every text's signature as blocks for banding, never all in memory (1 KB per text: 1 GB at a
    million): the stored texts' streamed once from the state into ``spill``, the others from the
    table's ``RowSpill`` into it too (a chunk at a time; or from memory, as set).

    Returns the blocks and the stored signatures of the texts a document read this run
    also holds (its row stores one: ``keep_signatures``).

    Raises:
        StateError: a text not read has no stored signature (the state is damaged).
    """
    from dedup.signature_spill import Renumbered

    nodes, given = feats.given()
    held = _held(feats, corpus, fresh)
    unread = np.ones(len(feats.contents), dtype=bool)
    unread[nodes] = False
    target: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    kept: dict[int, bytes] = {}
    for texts, signatures in _stored_rows(feats, np.flatnonzero(unread), stored):
        spill.extend(signatures)
        target.append(texts)
        for k in np.flatnonzero(held[texts]).tolist():
            kept[int(texts[k])] = signatures[k].tobytes()
    if not isinstance(given, np.ndarray):  # on disk (``RowSpill``): into the spill, a chunk at a time
        for lo, signatures in given.chunks():
            spill.extend(signatures)
            target.append(nodes[lo : lo + len(signatures)])
        nodes, given = nodes[:0], np.empty((0, feats.num_perm), dtype=np.uint32)
    return Renumbered(spill, np.concatenate(target), nodes, given), kept


def held_texts(feats: FeatureTable, corpus: Corpus, fresh: Sequence[int]) -> np.ndarray:
    """The texts whose first document was not read but another was (``held_signatures``)."""
    held = _held(feats, corpus, fresh)
    held[feats.given()[0]] = False
    return np.flatnonzero(held)


def _held(feats: FeatureTable, corpus: Corpus, fresh: Sequence[int]) -> np.ndarray:
    """Per text: whether a document read this run holds it."""
    read = np.asarray(fresh, dtype=np.uint8).astype(bool)
    held = np.zeros(len(feats.contents), dtype=bool)
    held[corpus.node_of[read & (corpus.node_of >= 0)]] = True
    return held


def _stored_rows(
    feats: FeatureTable, texts: np.ndarray, stored: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(texts, their signatures) from the state, a chunk at a time, each of ``texts`` once.

    Raises:
        StateError: one of them has no stored signature (the state is damaged).
    """
    if not len(texts):
        return
    contents = feats.contents.numbers()[texts]
    by_content = np.argsort(contents)
    wanted, wanted_texts = contents[by_content], texts[by_content]  # sorted content keys, their texts
    found = np.zeros(len(wanted), dtype=bool)
    for keys, signatures in stored():  # left unfinished once all are found: closed as it is dropped
        at = np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)
        hit = np.flatnonzero((wanted[at] == keys) & ~found[at])
        hit = hit[np.unique(at[hit], return_index=True)[1]]  # a text's first row only (copies repeat it)
        found[at[hit]] = True
        yield wanted_texts[at[hit]], signatures[hit]
        if found.all():
            return
    raise StateError("the state holds no signature for a stored text: run with --rebuild")


def keep_signatures(feats: FeatureTable, held: dict[int, bytes]) -> SignatureRows:
    """The signatures of the texts a document read this run holds: the rows that store one.

    All the others are in the state already. ``held``: those of such texts first set
    from the state (``held_signatures``, ``streamed``).
    """
    return SignatureRows(*feats.given(), held)


class SignatureRows(Mapping[int, bytes]):
    """Text -> its signature, for the rows a run writes: the table's ``given`` rows (``nodes``,
    ascending; in memory, or on disk: ``RowSpill``, closed with this) or ``held`` ones.
    """

    def __init__(self, nodes: np.ndarray, given: np.ndarray | RowSpill, held: dict[int, bytes]) -> None:
        self.nodes, self.held, self.given = nodes, held, given

    def close(self) -> None:
        """Free the file, if any (the rows are stored)."""
        if not isinstance(self.given, np.ndarray):
            self.given.close()

    def __getitem__(self, node: int) -> bytes:
        if (signature := self.held.get(node)) is not None:
            return signature
        at = int(np.searchsorted(self.nodes, node))
        if at == len(self.nodes) or self.nodes[at] != node:
            raise KeyError(node)
        return self.given[at].tobytes() if isinstance(self.given, np.ndarray) else self.given.row(at)

    def __iter__(self) -> Iterator[int]:
        return iter([*self.nodes.tolist(), *self.held])

    def __len__(self) -> int:
        return len(self.nodes) + len(self.held)


class GroupPrints:
    """Node -> the fingerprint of its group (``_prints``), as the state's rows store it.

    A column of integers for the groups and lone texts of ``unchanged_groups``, then
    for the verified components of split groups (``judged_components``), formatted
    only for the rows a run writes (a string each was 2.4 s of a run at 1M).
    """

    def __init__(self, nodes: int) -> None:
        self.column = np.zeros(nodes, dtype=np.uint64)
        self.has = np.zeros(nodes, dtype=bool)
        self.kept: list[np.ndarray] = []  # the fingerprints of the groups whose verdicts were kept

    def get(self, node: int) -> str | None:
        if self.has[node]:
            return f"{int(self.column[node]):016x}"  # as xxh3_64_hexdigest spells it
        return None


_PRINTED = 1 << 16  # documents fingerprinted at once (their lines are ~170 bytes each)


def unchanged_groups(
    corpus: Corpus,
    groups: Groups,
    comp_of: np.ndarray,
    previous: Rows,
    matched: Matched,
    kept: Kept,
    stale: np.ndarray | None,
) -> tuple[GroupPrints, np.ndarray]:
    """Fingerprint every group (component, or lone text) and find the ones the state already judged.

    Fills ``kept`` (document -> its stored row) for the documents of unchanged
    groups; returns the fingerprint of each node and which of ``groups`` are
    unchanged. A group split by verified pairs is judged again by verified
    component (``judged_components``). Each group's ``_prints`` and ``_judged``, done
    for all at once: the Python work left is a line per document and a join per
    group of several. ``stale``: fingerprints (sorted) of groups whose verdicts no
    longer hold (``freq_bounds``); None: none is kept.
    """
    lone = np.flatnonzero(comp_of < 0)
    nodes = np.concatenate([groups.all_nodes(), lone])
    sizes = np.concatenate([groups.sizes(), np.ones(len(lone), dtype=np.int64)])  # nodes per group
    prints = GroupPrints(len(comp_of))
    same = _judged_all(corpus, nodes, sizes, previous, matched, kept, prints, stale)
    return prints, same[: len(groups)]


def judged_components(
    corpus: Corpus,
    comps: Sequence[Sequence[int]],
    previous: Rows,
    matched: Matched,
    kept: Kept,
    prints: GroupPrints,
    stale: np.ndarray | None,
) -> np.ndarray:
    """Which verified components of a split group (``large_groups``) the state judged so (their
    stored records are then kept), all at once as ``unchanged_groups`` (one at a time took ~1 s of
    a run at 1M). Their fingerprints (``prints``) hold each text's furniture too
    (``Corpus.furniture``: a reach that leaves out the lines its own does), so the records depend on it."""
    nodes = np.array([n for comp in comps for n in comp], dtype=np.int64)
    sizes = np.array([len(comp) for comp in comps], dtype=np.int64)
    return _judged_all(
        corpus, nodes, sizes, previous, matched, kept, prints, stale, corpus.furniture.of(nodes)
    )


def _judged_all(
    corpus: Corpus,
    nodes: np.ndarray,
    sizes: np.ndarray,
    previous: Rows,
    matched: Matched,
    kept: Kept,
    prints: GroupPrints,
    stale: np.ndarray | None,
    furniture: np.ndarray | None = None,
) -> np.ndarray:
    """Groups of ``nodes`` (``sizes`` nodes each, in turn) fingerprinted into ``prints``, with each
    text's ``furniture`` (``Corpus.furniture``) in its lines if given; returns which groups
    the state judged alike and whose verdicts still hold (not ``stale``), and keeps their
    documents' stored rows (``kept``)."""
    from dedup.row_image import HEX

    starts, order = corpus.starts, corpus.order
    held = starts[nodes + 1] - starts[nodes]  # documents per node
    first = np.cumsum(held) - held
    members = order[np.repeat(starts[nodes], held) + np.arange(int(held.sum())) - np.repeat(first, held)]
    tails = None if furniture is None else [f"\t{r}" for r in np.repeat(furniture, held).tolist()]
    per_group = np.add.reduceat(held, np.cumsum(sizes) - sizes) if len(sizes) else held
    ends = np.cumsum(per_group)  # each group's documents: members[ends[g] - per_group[g] : ends[g]]
    rows = matched.rows()[members]
    made = np.empty(len(sizes), dtype=np.uint64)
    g = 0
    while g < len(sizes):
        last = max(int(np.searchsorted(ends, ends[g] - per_group[g] + _PRINTED, side="right")), g + 1)
        lo = int(ends[g] - per_group[g])
        made[g:last] = _prints(
            corpus.docs,
            previous.keys,
            members[lo:],
            rows[lo:],
            (ends[g:last] - lo).tolist(),
            None if tails is None else tails[lo:],
        )
        g = last
    group_of = np.repeat(np.arange(len(sizes)), per_group)
    ok = rows >= 0
    if ok.any():  # (a first run's state has no rows)
        r = np.where(ok, rows, 0)
        ok &= (
            (np.frombuffer(previous.gone, dtype=np.int64)[r] == 0)
            & (np.frombuffer(previous.component_kind, dtype=np.uint8)[r] == HEX)
            & (np.frombuffer(previous.component, dtype=np.uint64)[r] == made[group_of])
        )
    # Judged alike last run: every document present and stored with this print (``Rows.judged_as``;
    # a stored print that is not 16 hex digits never equals one).
    same = np.logical_and.reduceat(ok, ends - per_group) if len(sizes) else np.zeros(0, dtype=bool)
    if stale is None:  # no limits to trust: every group is judged again
        same[:] = False
    else:
        same &= ~np.isin(made, stale)
    prints.kept.append(made[same])
    taken = same[group_of]
    kept.keep_all(members[taken], rows[taken])
    prints.column[nodes] = np.repeat(made, sizes)  # (each group's nodes, in turn)
    prints.has[nodes] = True
    return same


def _prints(
    docs: DocumentTable,
    keys: Sequence[str],
    members: np.ndarray,
    rows: np.ndarray,
    cuts: Sequence[int],
    tails: Sequence[str] | None = None,
) -> np.ndarray:
    """The fingerprints of consecutive groups of documents judged together, as integers: unchanged,
    their verdicts still hold. Group k holds ``members[cuts[k - 1] : cuts[k]]`` (from 0 for the
    first), whose stored rows are ``rows`` (-1: none). A line per document, its stored key (else
    its path) and sha256, and ``tails`` after each if given; sorted, joined, hashed (xxh3_64)."""
    digest, paths = xxhash.xxh3_64_intdigest, docs.paths
    at = members[: int(cuts[-1])]
    shas = docs.sha256_hexes(at)
    lines = [
        f"{keys[r] if r >= 0 else paths[d]}\t{sha}"
        for d, r, sha in zip(at.tolist(), rows[: len(at)].tolist(), shas, strict=True)
    ]
    if tails is not None:
        lines = [line + tail for line, tail in zip(lines, tails, strict=True)]
    made = (
        digest(lines[a].encode() if b - a == 1 else "\n".join(sorted(lines[a:b])).encode())
        for a, b in itertools.pairwise([0, *cuts])
    )
    return np.fromiter(made, dtype=np.uint64, count=len(cuts))
