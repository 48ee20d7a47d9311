"""The manifest record format: one JSON object per input document (schema in README.md).

A record starts as what was read (``of``), pass 2 or a lone text's ranking adds
the verdict, and a cron run adds ``supersedes``; a document that left the inputs
gets a ``gone`` record. ``Tally`` counts the records as they are written.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xxhash

from dedup.document import DocumentTable, Status
from dedup.hooks import Progress

ALONE = "no near-duplicate found"  # how a canonical record's reason begins when it has no duplicate
MERGE_FROM = 1 << 16  # cluster keys waiting before they are merged (``ClusterKeys``)
NO_NAME = 1 << 63  # a duplicate without a cluster name (none is made): still one cluster, as it was

FIELDS = (
    "path", "status", "sha256", "size", "line", "cluster", "canonical", "duplicate_of",
    "similarity", "score", "penalties", "signals", "reason", "error", "warning",
)  # fmt: skip


def of(docs: DocumentTable, i: int) -> dict[str, Any]:
    """The manifest line of document ``i`` before any verdict (schema in README.md), from the
    table's columns: no ``Document`` made (most records are of lone texts)."""
    status, error, extra = docs.status(i), *docs.notes(i)
    return {
        "path": docs.paths[i],
        "status": str(status),
        "sha256": docs.sha256(i) or None,
        "size": docs.size(i),
        "line": docs.line(i) or None,
        "cluster": None,
        "canonical": False,
        "duplicate_of": None,
        "similarity": None,
        "score": None,
        "penalties": None,
        "signals": None,
        "reason": error,
        "error": error if status is not Status.OK else None,
        "warning": error if status is Status.OK else None,
        **(extra or {}),
    }


def gone(path: str, sha256: str | None, size: int, gone_run: int) -> dict[str, Any]:
    """The record of a document that is no longer in the inputs (cron mode)."""
    return {
        **dict.fromkeys(FIELDS),
        "path": path,
        "status": "gone",
        "sha256": sha256,
        "size": size,
        "canonical": False,
        "reason": f"not in the inputs since run {gone_run}",
        "gone_run": gone_run,
    }


def cluster_name(first_path: str) -> str:
    """Clusters are named after their first member's path (in manifest order).

    The name is stable while the first member stays first: it changes when a new
    member sorts before it, when it goes, or when it leaves the cluster. It is
    never kept for the cluster's life in cron mode: an incremental run and a full
    rebuild must give the same names.

    Example:
        >>> cluster_name("docs/a.txt") == cluster_name("docs/a.txt"), len(cluster_name("docs/a.txt"))
        (True, 13)
    """
    return "c" + xxhash.xxh3_64_hexdigest(first_path.encode())[:12]


def rounded(values: dict[str, float]) -> dict[str, float]:
    """Each value to 4 decimals (a zero as it is: ``round`` costs ~150 ns, most signals are 0)."""
    return {k: round(v, 4) if v else v for k, v in values.items()}


def brief(record: dict[str, Any]) -> dict[str, Any]:
    """What a run's change list says about a record."""
    return {k: record[k] for k in ("path", "status", "cluster", "canonical", "duplicate_of")}


class Tally:
    """Counts over the records as they are written, and which documents are kept.

    ``kept`` is told each kept document as its record is counted (the canonical
    copies of a batch run are made meanwhile: ``copies.Staged``). A part of the
    manifest made elsewhere is counted into a ``part()`` and ``absorb``-ed here.

    Clusters with duplicates are counted one of two ways, never both in one tally:
    ``add`` and ``add_stored`` (a cron run) keep each duplicate's cluster name, as an
    8-byte key; ``add_made`` (the records of a batch run) counts a cluster at its
    canonical record, whose reason says whether it has a duplicate (``ALONE``), and keeps
    nothing per cluster: 176,554 keys at the noisy 1M, ~140 MB at 100M, were the
    driver's last table that grew with the corpus.
    """

    _FIXED = ("lsh_pairs", "candidate_pairs", "verified_pairs", "clusters_with_duplicates")

    def __init__(
        self,
        proposed: int,
        candidates: int,
        verified: int,
        progress: Progress | None = None,
        total: int | None = None,
        kept: Callable[[Sequence[int]], None] | None = None,
    ) -> None:
        self._progress, self._total = progress, total  # progress("write", records, total) now and then
        self._kept = kept
        self._counts: dict[str, int] = {
            "documents": 0,
            "ok": 0,
            "skipped": 0,
            "clusters": 0,
            "clusters_with_duplicates": 0,
            "canonical": 0,
            "duplicates": 0,
            "lsh_pairs": proposed,
            "candidate_pairs": candidates,
            "verified_pairs": verified,
        }
        # A part's canonical documents, for the driver's ``kept`` (a tally with ``kept`` tells it
        # instead of keeping them: 8 bytes a kept document in the driver).
        self.canonical = array("q")
        self._with_duplicates = ClusterKeys()
        self._shared = 0  # canonical records with a duplicate (``add_made``)

    @property
    def counts(self) -> dict[str, int]:
        """The counts so far."""
        self._counts["clusters_with_duplicates"] = len(self._with_duplicates) + self._shared
        return self._counts

    @classmethod
    def part(cls) -> Tally:
        """An empty tally for a part of the manifest (``manifest_workers``), to ``absorb`` in order."""
        return cls(0, 0, 0)

    def add(self, doc: int, status: str, canonical: bool, cluster: str | None) -> None:
        """Count one record (``cluster`` matters only for a duplicate)."""
        if self._counted(doc, status, canonical):
            self._with_duplicates.add(cluster)

    def add_made(self, doc: int, record: dict[str, Any]) -> None:
        """``add`` a record made in this run: its cluster counted at its canonical record."""
        duplicate = self._counted(doc, record["status"], record["canonical"])
        if record["status"] == "ok" and not duplicate and not record["reason"].startswith(ALONE):
            self._shared += 1

    def _counted(self, doc: int, status: str, canonical: bool) -> bool:
        """Count one record; whether it is a duplicate."""
        counts = self._counts
        counts["documents"] += 1
        if self._progress and (counts["documents"] % 4096 == 0 or counts["documents"] == self._total):
            self._progress("write", counts["documents"], self._total)
        if status != "ok":
            counts["skipped"] += 1
            counts[f"skipped_{status}"] = counts.get(f"skipped_{status}", 0) + 1
            return False
        counts["ok"] += 1
        if canonical:  # one per cluster
            counts["canonical"] += 1
            counts["clusters"] += 1
            if self._kept is not None:
                self._kept((doc,))
            else:
                self.canonical.append(doc)
            return False
        counts["duplicates"] += 1
        return True

    def add_stored(
        self,
        docs: range,
        codes: np.ndarray,
        names: Sequence[str],
        canonical: np.ndarray,
        clusters: np.ndarray,
    ) -> None:
        """Count consecutive records at once, as ``add`` of each would: ``codes`` their statuses (as
        indices of ``names``), ``clusters`` one ``cluster_key`` per duplicate (a record ``ok`` and not
        canonical), in order. Arrays, not a string per record: 0.5 s of the +10,000 night at 1M."""
        if not docs:
            return
        counts = self._advance(len(docs))
        codes = np.asarray(codes, dtype=np.int64)
        ok = codes == (names.index("ok") if "ok" in names else -1)
        if not ok.all():  # each status counted as it first comes, as ``add`` adds the keys
            skipped = codes[~ok]
            counts["skipped"] += len(skipped)
            present, at = np.unique(skipped, return_index=True)
            times = np.bincount(skipped)
            for code in present[np.argsort(at)].tolist():
                key = f"skipped_{names[code]}"
                counts[key] = counts.get(key, 0) + int(times[code])
        counts["ok"] += int(ok.sum())
        self._ok_counted((np.asarray(docs)[np.flatnonzero(ok & canonical)]).tolist(), clusters)

    def add_stored_ok(self, docs: range, kept: list[int], clusters: np.ndarray) -> None:
        """``add_stored`` of records all ``ok``, told the canonical ones (``kept``, documents) and
        the duplicates' cluster keys: a cron night at 1M carries records in ~24,000 runs, and
        ``add_stored``'s numpy calls on each were ~1 s of it."""
        if docs:
            self._advance(len(docs))["ok"] += len(docs)
            self._ok_counted(kept, clusters)

    def _advance(self, n: int) -> dict[str, int]:
        """``n`` more records counted, progress told of each 4096th; the counts."""
        counts = self._counts
        first = counts["documents"]
        counts["documents"] += n
        if self._progress:
            step = (first // 4096 + 1) * 4096
            for done in range(step, counts["documents"] + 1, 4096):
                self._progress("write", done, self._total)
            if counts["documents"] == self._total and self._total % 4096:
                self._progress("write", self._total, self._total)
        return counts

    def _ok_counted(self, kept: list[int], clusters: np.ndarray) -> None:
        """The canonical records (``kept``, documents) and the duplicates' keys of ``ok`` records."""
        counts = self._counts
        counts["canonical"] += len(kept)
        counts["clusters"] += len(kept)
        counts["duplicates"] += len(clusters)
        if kept:
            if self._kept is not None:
                self._kept(kept)
            else:
                self.canonical.extend(kept)
        if len(clusters):
            self._with_duplicates.add_keys(clusters)

    def absorb(self, part: Tally) -> None:
        """Count a part's records after those counted so far (parts in manifest order)."""
        counts = self._counts
        for key, value in part._counts.items():
            if key not in self._FIXED:
                counts[key] = counts.get(key, 0) + value
        self._with_duplicates.update(part._with_duplicates)
        self._shared += part._shared
        assert not (self._shared and self._with_duplicates.held), "clusters counted both ways"
        if self._kept is not None:
            if part.canonical:
                self._kept(part.canonical)
        else:
            self.canonical.extend(part.canonical)
        if self._progress:
            self._progress("write", counts["documents"], self._total)


def cluster_key(name: str | None) -> int:
    """A cluster name's key in ``ClusterKeys``: its 48-bit hash (``cluster_name``), or ``NO_NAME``."""
    return NO_NAME if name is None else int(name[1:], 16)


class ClusterKeys:
    """The distinct clusters named: each name as its 48-bit hash (``cluster_name``), in sorted arrays.

    A set of the names cost ~110 bytes a cluster with duplicates in the driver
    (176,000 at the noisy 1M); here 8. Keys (one a duplicate's record) wait
    unsorted and are merged once they outnumber the ones merged, so each is sorted
    O(log n) times and at most twice the distinct keys wait.

    Example:
        >>> keys = ClusterKeys()
        >>> for name in ("c00000000002a", "c000000000001", "c00000000002a"): keys.add(name)
        >>> len(keys)
        2
    """

    __slots__ = ("_merged", "_waiting")

    def __init__(self) -> None:
        self._merged = np.zeros(0, dtype=np.uint64)
        self._waiting = array("Q")

    def add(self, name: str | None) -> None:
        self._waiting.append(cluster_key(name))
        self._merge_if_long()  # (a cron run adds them all here)

    def add_keys(self, keys: np.ndarray) -> None:
        """``add`` of names already made keys (``cluster_key``)."""
        self._waiting.frombytes(np.ascontiguousarray(keys, dtype=np.uint64).tobytes())
        self._merge_if_long()

    def update(self, other: ClusterKeys) -> None:
        """``other``'s keys too."""
        self._waiting.extend(other._waiting)
        if len(other._merged):
            self._waiting.frombytes(other._merged.tobytes())
        self._merge_if_long()

    def _merge_if_long(self) -> None:
        if len(self._waiting) > max(len(self._merged), MERGE_FROM):
            self._merge()

    @property
    def held(self) -> int:
        """Keys in memory, merged or waiting."""
        return len(self._merged) + len(self._waiting)

    def __len__(self) -> int:
        self._merge()
        return len(self._merged)

    def _merge(self) -> None:
        if self._waiting:
            keys = np.sort(np.concatenate((self._merged, np.frombuffer(self._waiting, dtype=np.uint64))))
            self._merged = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
            self._waiting = array("Q")
