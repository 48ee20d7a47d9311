"""One-word votes: an outvoted decision between two single words, kept whole and taken again.

Most decisions pass 2's alignment takes on the corpus counts are between one
word and one word (``colour`` against ``color``). A limit per word (``freq_bounds``)
must assume the other word's count stays where it was, so two common words that
grow together cross their limits night after night without the vote turning,
and their group is judged again each time (most limits crossed at the noisy 1M
+10,000 were on such words).
Kept as the pair of words and the outcome, such a vote is taken again on the
night's counts, with the alignment's own arithmetic: a group is judged again only
when a vote would now go the other way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dedup.alignment import MARGIN
from dedup.frequency import TokenFrequency

_ENTRY = np.dtype([("first", "<u8"), ("second", "<u8"), ("outcome", "u1")])  # 17 bytes a vote
FOUND = np.dtype([("node", "<i8"), ("first", "<u8"), ("second", "<u8"), ("outcome", "u1")])  # per node


def outcomes(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The decision on two words' counts as the alignment takes it: 1 the first word is blamed (rarer by
    the margin, in ``log1p``), 2 the second, 0 neither.

    Example:
        >>> outcomes(np.array([1, 40, 5]), np.array([40, 1, 6])).tolist()
        [1, 2, 0]
    """
    a = np.log1p(np.asarray(first).astype(np.float64))
    b = np.log1p(np.asarray(second).astype(np.float64))
    return np.where(a + MARGIN < b, 1, np.where(b + MARGIN < a, 2, 0)).astype(np.uint8)


def found(nodes: np.ndarray, first: np.ndarray, second: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """Votes as one pass-2 task finds them (``FOUND``), per node."""
    out = np.empty(len(nodes), dtype=FOUND)
    out["node"], out["first"], out["second"], out["outcome"] = nodes, first, second, outcome
    return out


class Votes:
    """Per owner (a group fingerprint), its one-word votes: its verdicts hold while each vote, taken
    on the sketch's counts, goes the way it went. As runs, like ``freq_bounds.Bounds``."""

    def __init__(self, owners: np.ndarray, sizes: np.ndarray, entries: np.ndarray) -> None:
        self.owners = np.asarray(owners, dtype=np.uint64)
        self.sizes = np.asarray(sizes, dtype=np.uint32)
        self.entries = entries  # ``_ENTRY``, owner by owner

    @classmethod
    def found(cls, owners: np.ndarray, votes: np.ndarray) -> Votes:
        """From ``FOUND`` votes and each one's owner, in any order: each vote of an owner once."""
        owners = np.asarray(owners, dtype=np.uint64)
        order = np.lexsort((votes["outcome"], votes["second"], votes["first"], owners))
        owners, votes = owners[order], votes[order]
        first = np.ones(len(owners), dtype=bool)
        first[1:] = (
            (owners[1:] != owners[:-1])
            | (votes["first"][1:] != votes["first"][:-1])
            | (votes["second"][1:] != votes["second"][:-1])
            | (votes["outcome"][1:] != votes["outcome"][:-1])
        )
        owners, votes = owners[first], votes[first]
        entries = np.empty(len(votes), dtype=_ENTRY)
        for name in ("first", "second", "outcome"):
            entries[name] = votes[name]
        runs, sizes = np.unique(owners, return_counts=True)
        return cls(runs, sizes, entries)

    @classmethod
    def joined(cls, parts: Sequence[Votes]) -> Votes:
        """All ``parts``' votes as one table (an owner in several parts: its votes together)."""
        owners = np.concatenate([np.repeat(p.owners, p.sizes.astype(np.int64)) for p in parts])
        entries = np.concatenate([p.entries for p in parts])
        nodes = np.zeros(len(entries), np.int64)
        return cls.found(owners, found(nodes, entries["first"], entries["second"], entries["outcome"]))

    def __len__(self) -> int:
        return len(self.entries)

    def turned(self, frequency: TokenFrequency) -> np.ndarray:
        """The owners (sorted) one of whose votes goes another way on the sketch's counts now."""
        if not len(self):
            return np.zeros(0, dtype=np.uint64)
        counts = frequency.get(np.concatenate((self.entries["first"], self.entries["second"])))
        now = outcomes(counts[: len(self)], counts[len(self) :])
        other = now != self.entries["outcome"]
        ends = np.cumsum(self.sizes, dtype=np.int64)
        runs = np.flatnonzero(self.sizes)
        flagged = np.logical_or.reduceat(other, (ends - self.sizes)[runs])
        return np.sort(self.owners[runs[flagged]])

    def of(self, owners: np.ndarray) -> np.ndarray:
        """Which runs are these owners' (the groups a run kept)."""
        return np.isin(self.owners, owners)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, bytes]]) -> Votes | None:
        """From the state's table: per group its fingerprint (signed) and its votes; None if a row is
        not a whole number of votes."""
        datas = [data for _, data in rows]
        if any(not isinstance(data, bytes) or len(data) % _ENTRY.itemsize for data in datas):
            return None  # (a row edited by hand to text, or cut short)
        owners = np.array([owner for owner, _ in rows], dtype=np.int64).view(np.uint64)
        sizes = np.array([len(data) // _ENTRY.itemsize for data in datas], dtype=np.uint32)
        return cls(owners, sizes, np.frombuffer(b"".join(datas), dtype=_ENTRY))

    def rows(self) -> list[tuple[int, bytes]]:
        """The state table's rows (``from_rows``): a row per group, rewritten only when it is settled."""
        data = self.entries.astype(_ENTRY, copy=False).tobytes()
        ends = np.cumsum(self.sizes, dtype=np.int64) * _ENTRY.itemsize
        starts = ends - self.sizes.astype(np.int64) * _ENTRY.itemsize
        owners = self.owners.view(np.int64).tolist()
        return [(o, data[a:b]) for o, a, b in zip(owners, starts.tolist(), ends.tolist(), strict=True)]
