"""What a cron run changed against the state: new, changed, superseded and gone documents.

Supersessions (a cleaner copy replaced a cluster's canonical, or the canonical
went missing) and gone documents need the whole picture, and are found before
the records are written; new and changed documents are listed as the records
stream past. ``Changes.delta`` is the run's change list, ``runs/run-NNNNNN.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dedup.rows import Kept

if TYPE_CHECKING:
    from dedup.document import DocumentTable
    from dedup.pass2 import Verdicts
    from dedup.rows import Matched, Rows


@dataclass(slots=True)
class Changes:
    """What this run changed against the state, found before the records are written.

    New and changed documents are listed as the records stream past
    (``new_or_changed``); supersessions and gone documents need the whole picture
    and are worked out first.
    """

    supersessions: list[tuple[str, str, str, str]]
    supersedes: dict[str, list[dict[str, Any]]]  # successor path -> what it replaced
    gone: dict[str, int]  # key -> run it went missing in
    gone_entries: list[dict[str, Any]]
    listed: list[dict[str, Any]] = field(default_factory=list)  # new and changed, in manifest order
    new: int = 0
    changed: int = 0

    def counts(self) -> dict[str, int]:
        gone = len(self.gone_entries)  # newly gone: the ones listed
        return {"new": self.new, "changed": self.changed, "superseded": len(self.supersessions), "gone": gone}

    def delta(self) -> list[dict[str, Any]]:
        superseded = [
            {"change": "superseded", "cluster": cluster, "old": old, "new": new, "reason": why}
            for cluster, old, new, why in self.supersessions
        ]
        return [*self.listed, *self.gone_entries, *superseded]


def find_changes(
    docs: DocumentTable, verdicts: Verdicts, previous: Rows, matched: Matched, run_id: int
) -> Changes:
    """Supersessions and gone documents (a cron run; nothing without a previous run).

    ``matched``: each document's stored row. Only documents whose group changed are
    looked at one by one (a kept group's verdicts did not change).
    """
    supersessions: list[tuple[str, str, str, str]] = []
    if not len(previous):
        return Changes(supersessions, {}, {}, [])
    successors: dict[int, str] = {}  # demoted canonical -> the path that replaced it
    kept = verdicts.kept  # a group that did not change: neither did its verdicts
    assert isinstance(kept, Kept)
    index = previous.index
    row_of = matched.rows()
    judged = np.flatnonzero(kept.by_document() < 0)
    judged_rows = row_of[judged].tolist()
    for i, r in zip(judged.tolist(), judged_rows, strict=True):
        if r >= 0 and not previous.gone[r] and previous.canonical(r) and not verdicts.alone(i):
            record = verdicts.record(i, again=True)  # written to the manifest later
            if not record["canonical"] and record["duplicate_of"] is not None:
                successors[i] = record["duplicate_of"]
    present = np.zeros(len(previous), dtype=bool)
    present[row_of[row_of >= 0]] = True
    gone: dict[str, int] = {}
    gone_entries: list[dict[str, Any]] = []
    orphaned: dict[Any, str] = {}  # previous cluster -> its canonical, now gone
    for key in sorted(previous.keys[r] for r in np.flatnonzero(~present).tolist()):
        r = index[key]
        gone[key] = int(previous.gone[r]) or run_id
        if not previous.gone[r]:
            gone_entries.append({"change": "gone", "path": key, "cluster": previous.cluster(r)})
            if previous.canonical(r):
                orphaned.setdefault(previous.cluster(r), key)
    # The records of the successors, and of the first canonical of each orphaned cluster.
    wanted = set(successors.values())
    records: dict[str, dict[str, Any]] = {}
    heirs: dict[Any, dict[str, Any]] = {}
    # Neither is in a group that did not change (a gone member changes its group).
    for i, r in zip(judged.tolist(), judged_rows, strict=True) if wanted or orphaned else ():
        path = docs.paths[i]
        if path in wanted:
            records[path] = verdicts.record(i)
        if orphaned and r >= 0 and not previous.gone[r]:
            cluster = previous.cluster(r)
            if cluster in orphaned and cluster not in heirs:
                record = verdicts.record(i)
                if record["canonical"]:
                    heirs[cluster] = record
    for i, successor in successors.items():
        why = f"{successor} is cleaner: {records[successor]['reason']}"
        supersessions.append((verdicts.record(i)["cluster"], docs.paths[i], successor, why))
    for key in gone:
        r = index[key]
        if not previous.gone[r] and previous.canonical(r):
            heir = heirs.get(previous.cluster(r))
            if heir is not None:
                supersessions.append((heir["cluster"], key, heir["path"], "the previous canonical is gone"))
    supersedes: dict[str, list[dict[str, Any]]] = {}
    for _, old, successor, _ in supersessions:
        supersedes.setdefault(successor, []).append({"path": old, "run": run_id})
    return Changes(supersessions, supersedes, gone, gone_entries)
