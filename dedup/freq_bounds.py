"""When a kept verdict must be judged again: the corpus counts it rests on, and how far they may grow.

Pass 2 decides three things on the corpus frequencies (``frequency.TokenFrequency``,
words and short lines in one sketch): which short lines are a site's furniture
(held by more documents than a text's reach: left out of its shingles), which are
template lines (a ranking signal), and which copy's words the corpus outvotes (a
replaced word against a commoner one). A cron run keeps the verdicts of a group
whose members did not change, but the counts grow with every arrival (they never
fall: a gone document's counts stay in the sketch), so a verdict taken last week
can differ from the one a full rebuild takes tonight: another canonical.

A verdict holds while every count it was decided on stays at or under a limit
worked out when it was made: a kept line stays kept while its count is at most
the text's reach; a word outvoted stays outvoted while the rarest word of its
stretch stays rarer, by the margin, than the other copy's. ``Bounds`` are those
limits, per group fingerprint (the owner); a cron run judges again every group
one of whose keys the sketch now counts over its limit. The limits are worked out
with the same float arithmetic as the decisions (``np.log1p``), so a group is
judged again exactly when a decision could have changed, or more often (a limit
on the rarest word of a stretch, where another word ties with it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from types import EllipsisType

import numpy as np

from dedup.alignment import MARGIN
from dedup.frequency import TokenFrequency
from dedup.signatures import find_sorted, token_hashes

_ENTRY = np.dtype([("key", "<u8"), ("limit", "<u4")])  # a key and its limit, 12 bytes
NEITHER, FIRST, SECOND = 0, 1, 2  # an outvoted decision: neither side blamed, the first, the second
_FOREVER = np.iinfo(np.int64).max


def most_under(threshold: np.ndarray, margin: float, *, strict: bool) -> np.ndarray:
    """The largest count c (int64) a decision against ``threshold`` (the other side's log1p) still
    holds at, evaluated as the decisions are: ``strict``, ``log1p(c) + margin < threshold`` (this
    side blamed); else ``not threshold + margin < log1p(c)`` (the other side not blamed). -1 where
    no count qualifies.

    Example:
        >>> most_under(np.log1p(np.array([10.0])), 0.3, strict=True).tolist()  # log1p(7) + 0.3 < log1p(10)
        [7]
    """
    threshold = np.asarray(threshold, dtype=np.float64)

    def holds(c: np.ndarray, at: np.ndarray | EllipsisType = ...) -> np.ndarray:
        """Whether decisions ``at`` (all: ``...``) hold at counts ``c`` (-1: no count, taken as holding:
        the loops stop there)."""
        logs = np.log1p(np.maximum(c, 0).astype(np.float64))
        return (c < 0) | (logs + margin < threshold[at] if strict else ~(threshold[at] + margin < logs))

    guess = np.floor(np.expm1(np.clip(threshold + (-margin if strict else margin), 0.0, 60.0)))
    c = np.clip(guess, 0, 2**62).astype(np.int64)
    # Float rounding: a step or two either way, taken only where needed (``holds`` falls as c
    # grows). Nine passes over every decision were most of the limits' 8% of pass 2 at the noisy 1M.
    down = np.flatnonzero(~holds(c))
    for _ in range(4):
        c[down] -= 1
        down = down[~holds(c[down], down)]
    up = np.flatnonzero(holds(c + 1))
    for _ in range(4):
        c[up] += 1
        up = up[holds(c[up] + 1, up)]
    return np.where(holds(c), c, -1)


def outvoted_limits(
    first: np.ndarray, second: np.ndarray, outcome: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per decision on two stretches, whose rarest words are counted ``first`` and ``second``: the
    count each rarest word may grow to with the ``outcome`` unchanged (``_FOREVER``: any).

    The decision blames the first stretch when ``log1p(first) + margin < log1p(second)``, the
    second in the mirror case, else neither. Counts only grow: a blamed side stays blamed while
    its rarest word stays under the other side's (which may only grow); neither stays while
    each stays within the margin of the other's.

    Example:
        >>> a, b = outvoted_limits(np.array([1, 5]), np.array([40, 6]), np.array([FIRST, NEITHER]), 0.3)
        >>> a.tolist()[0], b.tolist()[0] == _FOREVER, a.tolist()[1], b.tolist()[1]
        (29, True, 8, 7)
    """
    first, second = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    log_first, log_second = np.log1p(first.astype(np.float64)), np.log1p(second.astype(np.float64))
    limit_first = np.full(len(first), _FOREVER, dtype=np.int64)
    limit_second = np.full(len(first), _FOREVER, dtype=np.int64)
    for side, other, limit, blamed in (
        (first, log_second, limit_first, FIRST),
        (second, log_first, limit_second, SECOND),
    ):
        mine = outcome == blamed
        limit[mine] = most_under(other[mine], margin, strict=True)
        level = outcome == NEITHER
        limit[level] = most_under(other[level], margin, strict=False)
        # A decision its own counts do not give (never, if the arithmetic is the decisions'):
        # judged again every run rather than trusted.
        limit[(mine | level) & (limit < side)] = -1
    return limit_first, limit_second


def line_limits(
    counts: np.ndarray, furniture_over: int | np.ndarray, template_from: int | np.ndarray | None
) -> np.ndarray:
    """Per short line of a text (its corpus ``counts``): the count it may grow to with the text's
    verdicts unchanged. A line kept (at most ``furniture_over``) becomes furniture above it; a line
    under ``template_from`` (the cluster's template threshold; None: a text ranked alone, no
    template signal) becomes a template line there. Lines over both never come back. Both may
    be arrays, one value per line (a negative ``template_from``: no template signal).

    Example:
        >>> line_limits(np.array([1, 9, 30]), furniture_over=10, template_from=8).tolist()[:2]
        [7, 10]
    """
    counts = np.asarray(counts, dtype=np.int64)
    limit = np.where(counts <= furniture_over, furniture_over, _FOREVER)
    if template_from is not None:
        limit = np.where(counts < template_from, np.minimum(limit, template_from - 1), limit)
    return limit


Found = tuple[np.ndarray, np.ndarray, np.ndarray]  # per limit: its node (int64), key (uint64), limit (int64)


class Collector:
    """The limits one pass-2 task's verdicts rest on, per node: the driver knows each node's owner
    (its group's fingerprint, or its text's key) and makes them ``Bounds.found``.

    The counts are gathered as given and their limits worked out once, in ``result``: per
    cluster and per text, ``outvoted_limits`` and ``line_limits`` were ~20 numpy calls on a few
    values each, 14% of pass 2's CPU in a cron run of small groups (the limits are elementwise:
    the same either way).
    """

    def __init__(self) -> None:
        self._lines: list[tuple[int, np.ndarray, np.ndarray, int, int]] = []
        self._outvoted: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def lines(
        self, node: int, keys: np.ndarray, counts: np.ndarray, furniture_over: int, template_from: int | None
    ) -> None:
        """A text's short lines (``line_limits``)."""
        if len(keys):
            keys, counts = keys.astype(np.uint64, copy=False), counts.astype(np.int64, copy=False)
            self._lines.append(
                (node, keys, counts, furniture_over, -1 if template_from is None else template_from)
            )

    def outvoted(self, nodes: np.ndarray, keys: np.ndarray, counts: np.ndarray, outcome: np.ndarray) -> None:
        """Outvoted decisions: per decision its member's node, the two rarest words' keys and counts
        (``[k, 2]`` each), and the outcome (``outvoted_limits``)."""
        if len(nodes):
            self._outvoted.append((nodes, keys.astype(np.uint64, copy=False), counts, outcome))

    def outvoted_ids(
        self, members: Sequence[int], decisions: np.ndarray, vocabulary: np.ndarray, counts: np.ndarray
    ) -> None:
        """``align_kernels.outvoted``'s decisions on a cluster's ``members`` (nodes), words as ids of
        ``vocabulary`` (token hashes) counted ``counts``."""
        taken = decisions[:, 1:3]
        self.outvoted(np.asarray(members)[decisions[:, 0]], vocabulary[taken], counts[taken], decisions[:, 3])

    def outvoted_words(
        self,
        members: Sequence[int],
        decided: Sequence[tuple[int, str, str, int]],
        frequency: Callable[[Sequence[str]], Sequence[int]],
    ) -> None:
        """``alignment.outvoted_words``' decisions (the reference's), words as strings."""
        if decided:
            at, a, b = [d[0] for d in decided], [d[1] for d in decided], [d[2] for d in decided]
            keys = np.array([token_hashes(a), token_hashes(b)]).T
            counts = np.array([frequency(a), frequency(b)], dtype=np.int64).T
            self.outvoted(np.asarray(members)[at], keys, counts, np.array([d[3] for d in decided]))

    def result(self) -> Found:
        """Every limit gathered (the lines' and the outvoted decisions'), per node, but those no
        count can cross (``_FOREVER``)."""
        parts: list[Found] = []
        if self._lines:
            sizes = np.array([len(keys) for _, keys, _, _, _ in self._lines], dtype=np.int64)
            nodes, overs, froms = (
                np.repeat(np.array([part[i] for part in self._lines], dtype=np.int64), sizes)
                for i in (0, 3, 4)
            )
            counts = np.concatenate([part[2] for part in self._lines])
            limits = line_limits(counts, overs, froms)  # (-1: ranked alone; no count is under it)
            keys = np.concatenate([part[1] for part in self._lines])
            parts.append((nodes, keys, limits))
        if self._outvoted:
            nodes, keys, counts, outcome = (np.concatenate(a) for a in zip(*self._outvoted, strict=True))
            first, second = outvoted_limits(counts[:, 0], counts[:, 1], outcome, MARGIN)
            both = np.concatenate((nodes, nodes)).astype(np.int64)
            parts.append(
                (
                    both,
                    np.concatenate((keys[:, 0], keys[:, 1])),  # uint64 (``outvoted``)
                    np.concatenate((first, second)),
                )
            )
        if not parts:
            return (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
        nodes, keys, limits = (np.concatenate(a) for a in zip(*parts, strict=True))
        finite = limits < _FOREVER
        return nodes[finite], keys[finite], limits[finite]


class Bounds:
    """Per owner (a group fingerprint), the (key, limit) pairs its verdicts rest on: they hold while
    the sketch counts each key at most its limit. Limits that can never be crossed are not kept.

    As runs: the owners (distinct), how many pairs each has, then the pairs owner by owner
    (12 bytes each: ~12 a document on the noisy corpora, 15 MB at 100k), so that a run
    finds the owners crossed, keeps the kept groups' and adds the groups it settled
    without sorting them all.
    """

    _HEADER = struct.Struct("<4sQQ")
    _MAGIC = b"FB1\0"

    def __init__(self, owners: np.ndarray, sizes: np.ndarray, keys: np.ndarray, limits: np.ndarray) -> None:
        self.owners = np.asarray(owners, dtype=np.uint64)
        self.sizes = np.asarray(sizes, dtype=np.uint32)
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.limits = np.asarray(limits, dtype=np.uint32)

    @classmethod
    def found(cls, owners: np.ndarray, keys: np.ndarray, limits: np.ndarray) -> Bounds:
        """From (owner, key, limit) triples in any order: each (owner, key) once, with its lowest limit."""
        limits = np.asarray(limits, dtype=np.int64)
        finite = limits < _FOREVER
        owners, keys = np.asarray(owners, dtype=np.uint64)[finite], np.asarray(keys, dtype=np.uint64)[finite]
        limits = np.clip(limits[finite], -1, 2**32 - 2)  # a count never reaches 2**32 - 1 (uint32 cells)
        order = np.lexsort((limits, keys, owners))
        owners, keys, limits = owners[order], keys[order], limits[order]
        first = np.ones(len(owners), dtype=bool)
        first[1:] = (owners[1:] != owners[:-1]) | (keys[1:] != keys[:-1])
        owners, keys, limits = owners[first], keys[first], limits[first]
        runs, sizes = np.unique(owners, return_counts=True)
        # -1 (a decision its own counts do not give) is stored as 0: every key of a group is in one
        # of its texts, so the sketch counts it over 0 and the group is judged again every run.
        return cls(runs, sizes, keys, np.maximum(limits, 0))

    @classmethod
    def empty(cls) -> Bounds:
        return cls.found(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64))

    @classmethod
    def joined(cls, parts: Sequence[Bounds]) -> Bounds:
        """The runs of all ``parts`` (their owners apart: a group is settled once, or kept)."""
        return cls.loads(cls.dump_joined([(p, None) for p in parts])) or cls.empty()

    @classmethod
    def dump_joined(cls, parts: Sequence[tuple[Bounds, np.ndarray | None]]) -> bytearray:
        """``dumps`` of the runs of all ``parts`` (each part's runs where its mask is set, all without
        one), written into the blob in place: at 1M a copy of the limits is ~150 MB."""
        picked = [(p, np.ones(len(p.owners), dtype=bool) if m is None else m) for p, m in parts]
        owners = np.concatenate([p.owners[m] for p, m in picked] or [np.zeros(0, np.uint64)])
        if len(np.unique(owners)) < len(owners):  # not apart after all: merged
            taken = [(p, np.repeat(m, p.sizes.astype(np.int64))) for p, m in picked]
            merged = cls.found(
                np.concatenate([np.repeat(p.owners, p.sizes.astype(np.int64))[e] for p, e in taken]),
                np.concatenate([p.keys[e] for p, e in taken]),
                np.concatenate([p.limits[e].astype(np.int64) for p, e in taken]),
            )
            return bytearray(merged.dumps())
        sizes = np.concatenate([p.sizes[m] for p, m in picked] or [np.zeros(0, np.uint32)])
        n = int(sizes.sum(dtype=np.int64))
        runs, head = len(owners), cls._HEADER.size
        blob = bytearray(head + 12 * runs + 12 * n)
        blob[:head] = cls._HEADER.pack(cls._MAGIC, runs, n)
        np.frombuffer(blob, np.uint64, runs, head)[:] = owners
        np.frombuffer(blob, np.uint32, runs, head + 8 * runs)[:] = sizes
        keys = np.frombuffer(blob, np.uint64, n, head + 12 * runs)
        limits = np.frombuffer(blob, np.uint32, n, head + 12 * runs + 8 * n)
        at = 0
        for p, m in picked:
            pairs = np.repeat(m, p.sizes.astype(np.int64))
            k = int(np.count_nonzero(pairs))
            np.compress(pairs, p.keys, out=keys[at : at + k])
            np.compress(pairs, p.limits, out=limits[at : at + k])
            at += k
        return blob

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, bytes]]) -> Bounds | None:
        """From the state's table (``rows``): per group its fingerprint (signed) and its pairs; None
        if a row is not a whole number of pairs."""
        datas = [data for _, data in rows]
        if any(not isinstance(data, bytes) or len(data) % _ENTRY.itemsize for data in datas):
            return None  # (a row edited by hand to text, or cut short)
        owners = np.array([owner for owner, _ in rows], dtype=np.int64).view(np.uint64)
        sizes = np.array([len(data) // _ENTRY.itemsize for data in datas], dtype=np.uint32)
        entries = np.frombuffer(b"".join(datas), dtype=_ENTRY)
        return cls(
            owners, sizes, np.ascontiguousarray(entries["key"]), np.ascontiguousarray(entries["limit"])
        )

    def rows(self) -> list[tuple[int, bytes]]:
        """The state table's rows (``from_rows``): a row per group, rewritten only when it is settled."""
        entries = np.empty(len(self), dtype=_ENTRY)
        entries["key"], entries["limit"] = self.keys, self.limits
        data = entries.tobytes()
        ends = np.cumsum(self.sizes, dtype=np.int64) * _ENTRY.itemsize
        starts = ends - self.sizes.astype(np.int64) * _ENTRY.itemsize
        owners = self.owners.view(np.int64).tolist()
        return [(o, data[a:b]) for o, a, b in zip(owners, starts.tolist(), ends.tolist(), strict=True)]

    def crossed(self, frequency: TokenFrequency) -> np.ndarray:
        """The owners (sorted) one of whose keys the sketch now counts over its limit."""
        if not len(self):
            return np.zeros(0, dtype=np.uint64)
        over = frequency.get(self.keys) > self.limits
        ends = np.cumsum(self.sizes, dtype=np.int64)
        runs = np.flatnonzero(self.sizes)
        flagged = np.logical_or.reduceat(over, (ends - self.sizes)[runs])
        return np.sort(self.owners[runs[flagged]])

    def of(self, owners: np.ndarray) -> np.ndarray:
        """Which runs are these owners' (the groups a run kept: their limits carried on).

        A sort of ``owners`` and a search, not ``np.isin``, which makes them distinct with a hash
        table in numpy 2.3+ (``signatures.distinct``): 0.30 against 0.01 s at the noisy 1M
        (172,805 runs, 783,479 owners kept)."""
        return find_sorted(np.sort(np.asarray(owners, dtype=np.uint64)), self.owners)[1]

    def dumps(self) -> bytes:
        head = self._HEADER.pack(self._MAGIC, len(self.owners), len(self))
        return b"".join(
            (head, self.owners.tobytes(), self.sizes.tobytes(), self.keys.tobytes(), self.limits.tobytes())
        )

    @classmethod
    def loads(cls, data: bytes | bytearray | None) -> Bounds | None:
        """The stored bounds; None when there are none or they are unreadable (every group is then
        judged again: ``Incremental.judge``)."""
        size = cls._HEADER.size
        if data is None or len(data) < size:
            return None
        magic, runs, n = cls._HEADER.unpack_from(data)
        if magic != cls._MAGIC or len(data) != size + 12 * runs + 12 * n:
            return None
        at = [size, size + 8 * runs, size + 12 * runs, size + 12 * runs + 8 * n]
        types = (np.uint64, np.uint32, np.uint64, np.uint32)
        counts = (runs, runs, n, n)
        arrays = [
            np.frombuffer(data, dtype=t, count=c, offset=o) for t, c, o in zip(types, counts, at, strict=True)
        ]
        bounds = cls(*arrays)
        return bounds if int(bounds.sizes.sum(dtype=np.int64)) == n else None


class Ledger:
    """A cron run's limits: the state's (which of its groups must be judged again), this run's
    pass 2's, and the state table's rows to change at the commit."""

    def __init__(self, stored: Bounds | None) -> None:
        self.stored = stored  # None: not kept by the state (an earlier version's): none is trusted
        self._raw: list[Found] = []  # this run's, not yet sorted ...
        self._held = 0  # (pairs in ``_raw``)
        self._parts: list[Bounds] = []  # ... and sorted by group

    def stale(self, frequency: TokenFrequency) -> np.ndarray | None:
        """The fingerprints (sorted) of the groups one of whose limits the sketch now counts past;
        None: every group."""
        return None if self.stored is None else self.stored.crossed(frequency)

    def add(self, found: Found, owners: np.ndarray) -> None:
        """One pass-2 task's limits, per node; ``owners``: each node's group fingerprint. Kept raw a
        million at a time (24 bytes a pair), then sorted by group (12): a sort per task cost
        thousands of calls at 1M, and all of them raw ~300 MB on the first run."""
        self._raw.append(found)
        self._held += len(found[1])  # (summed over ``_raw`` at each call: quadratic in the tasks)
        if self._held >= 1 << 20:
            self._sort(owners)

    def _sort(self, owners: np.ndarray) -> None:
        if self._raw:
            nodes, keys, limits = (np.concatenate(a) for a in zip(*self._raw, strict=True))
            self._parts.append(Bounds.found(owners[nodes], keys, limits))
            self._raw, self._held = [], 0

    def rows(
        self, kept: Sequence[np.ndarray], owners: np.ndarray
    ) -> tuple[list[int] | None, list[tuple[int, bytes]]]:
        """The table's changes: the groups not ``kept`` go (signed fingerprints; None: every row,
        none was trusted), the groups settled this run are written; the kept groups' rows stay."""
        self._sort(owners)
        gone: list[int] | None = None
        if self.stored is not None:
            held = self.stored.of(np.concatenate([*kept, np.zeros(0, np.uint64)]))
            gone = self.stored.owners[~held].view(np.int64).tolist()
        return gone, [row for part in self._parts for row in part.rows()]
