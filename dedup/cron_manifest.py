"""A cron run's manifest: stored records carried forward, the rows that changed yielded for the state.

Most documents of a nightly run are as the state left them: not read, in a group
that did not change, on the same line of the same file. Their stored record is
the manifest line and their row is not written again. ``emit`` finds them all at
once with array comparisons (``as_stored``) and writes each run of them in bulk;
only the others go through a record each (~12 us a document where it was every
document: 1.2 s of a 100k state's +1,000 run).
"""

from __future__ import annotations

import dataclasses
import os
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from dedup import records
from dedup.changes import Changes
from dedup.document import DocumentTable
from dedup.manifest import BUFFER
from dedup.row_image import Placed
from dedup.rows import Kept, Matched, Rows
from dedup.state import AS_STORED, Stored

if TYPE_CHECKING:
    from dedup.pass1 import FeatureTable
    from dedup.pass2 import Verdicts
    from dedup.stored import GroupPrints

_FLUSH = 4096  # stored lines written at once


def as_stored(docs: DocumentTable, kept: Kept, previous: Rows, matched: Matched) -> np.ndarray:
    """Which documents keep their stored record as it is and whose row does not change.

    Kept (their group unchanged, so their stored verdicts and group fingerprint
    hold), on the line they were stored at, with the same file, offset, size and
    mtime as their present row says. The stored fingerprint is not compared here:
    ``Kept.keep`` is only told a document whose row was judged with its group's
    fingerprint (``stored._judged``), and a kept group's fingerprint is not set
    again, so the row's ``component`` is what ``prints`` holds for it.
    """
    rows = kept.by_document()
    if not len(rows):
        return np.zeros(0, dtype=bool)
    r = np.maximum(rows, 0)
    offset, line, size, mtime = docs.facts()

    def stored(column: array[int]) -> np.ndarray:
        return np.frombuffer(column, dtype=np.int64)[r] if len(column) else np.zeros(len(r), dtype=np.int64)

    return (
        (rows >= 0)
        & (rows == matched.rows())
        & matched.same_file()
        & (stored(previous.gone) == 0)
        & (stored(previous.line) == line)
        & (stored(previous.offset) == offset)
        & (stored(previous.size) == size)
        & (stored(previous.mtime_ns) == mtime)
    )


def emit(
    docs: DocumentTable,
    feats: FeatureTable,
    verdicts: Verdicts,
    previous: Rows,
    matched: Matched,
    fresh: Sequence[int],
    signatures: Mapping[int, bytes],
    prints: GroupPrints,
    changes: Changes,
    run_id: int,
    fh: Any,
    tally: records.Tally,
    placed: Placed,
    last: LastManifest | None,
) -> Iterator[Stored]:
    """Write every record to the manifest in order, count it, and yield the state rows that changed.

    One pass, a few thousand records in memory at a time. The stored ones are copied
    as bytes from ``last``, OUT's manifest as the last run wrote it, where the rows'
    image says they are; else read from the state as they are reached
    (``Rows.record``). ``placed`` notes where each record lands. ``signatures``: of the
    texts a document read this run holds (``feats`` has none left:
    ``stored.keep_signatures``). ``last_seen`` is written when a document is first
    stored or goes missing: a present document was last seen in the latest run.
    """
    kept = verdicts.kept
    assert isinstance(kept, Kept)
    quiet = as_stored(docs, kept, previous, matched)
    row_of = placed.rows = matched.rows()
    loud = np.flatnonzero(~quiet)
    carried = _Carried(previous, row_of[quiet], loud, last)
    start = 0
    for k, i in enumerate([*loud.tolist(), len(docs)]):
        if start < i:
            carried.write(fh, tally, range(start, i), start - k, placed)  # k loud ones before it
        start = i + 1
        if i == len(docs):
            break
        r = matched.row(i)
        stored = kept.get(i)
        if stored is not None and r is not None and previous.line[r] == docs.line(i):
            # Its group did not change: the stored line is the record, written as it is.
            line = stored.encode() + b"\n"
            fh.write(line)
            placed.add(len(line))
            canonical = previous.canonical(r)
            tally.add(i, previous.status_of(r), canonical, None if canonical else previous.cluster(r))
            text = stored  # its row changes only if the file moved or was touched
        else:
            record = verdicts.record(i)
            path = record["path"]
            if path in changes.supersedes:
                record["supersedes"] = changes.supersedes[path]
            line = orjson.dumps(record)
            fh.write(line + b"\n")
            placed.add(len(line) + 1)
            tally.add(i, record["status"], record["canonical"], record["cluster"])
            if r is None or previous.gone[r]:
                changes.new += 1
                changes.listed.append({"change": "new", **records.brief(record)})
            elif fresh[i] and (
                (previous.sha256(r) or "") != docs.sha256(i) or previous.status_of(r) != record["status"]
            ):
                changes.changed += 1
                changes.listed.append({"change": "changed", **records.brief(record)})
            text = line.decode()
        node = feats.node_of[i]
        component = prints.get(node) if node >= 0 else None
        if (
            r is not None
            and not previous.gone[r]
            and (previous.offset[r], previous.size[r], previous.mtime_ns[r])
            == (docs.offset(i), docs.size(i), docs.mtime_ns(i))
            and previous.same_file(r, docs.file(i))
            and previous.same_component(r, component)
            and (text is stored or previous.record(r) == text)
        ):
            continue
        doc = docs[i]
        yield Stored(
            key=doc.path,
            file=doc.file,
            offset=doc.offset,
            line=doc.line,
            size=doc.size,
            mtime_ns=doc.mtime_ns,
            sha256=doc.sha256 or None,
            status=str(doc.status),
            error=doc.error,
            content=None if node < 0 else feats.contents[node],
            shingles=None if node < 0 else feats.sizes[node],
            signature=None if node < 0 else signatures[node] if fresh[i] else AS_STORED,
            signals=None if node < 0 else feats.signals.row(i),
            component=component,
            record_json=text,
            first_seen=int(previous.first_seen[r]) if r is not None else run_id,
            last_seen=run_id,
            gone=None,
        )
    index = previous.index
    for key, gone_run in changes.gone.items():
        r = index[key]
        fh.write(orjson.dumps(records.gone(key, previous.sha256(r), int(previous.size[r]), gone_run)) + b"\n")
        if not previous.gone[r]:
            prev = previous.row(r)
            yield dataclasses.replace(prev, gone=gone_run, last_seen=gone_run - 1, signature=AS_STORED)
    # Every record handed to the system before the state's commit (a buffer holds up to 1 MB):
    # a full disk fails the run here, the state rolled back.
    fh.flush()


class _Carried:
    """The documents whose stored records are written as they are (``rows``), in runs between the
    others (``loud``): what each run needs, worked out for all of them at once.

    A +10,000 night at 1M carries its records in ~24,000 runs: per run, the tally's
    numpy calls and a kernel copy after the buffer's flush were ~85 us (2.0-2.4 s); a
    run of ``ok`` records is now counted from sums made here, and copied through the
    buffer (~40 us, 1.0 s).
    """

    def __init__(self, previous: Rows, rows: np.ndarray, loud: np.ndarray, last: LastManifest | None) -> None:
        self.previous, self.rows, self.last = previous, rows, last
        self.lengths = np.frombuffer(previous.manifest_len, dtype=np.int64)[rows]
        # Each run's first row (how many rows the runs before it carry): sorted, from 0.
        firsts = np.unique(np.concatenate(([0], loud - np.arange(len(loud)))))
        self.spans = None if last is None else last.spans(previous, rows, firsts[firsts < len(rows)])
        self.facts = None
        self.oks = self.chosen = self.chosen_before = np.zeros(0, dtype=np.int64)
        if last is not None:  # with the rows' image: its flags hold what the tally needs
            self.facts = self._facts(rows)
            canonical, codes, _, _ = self.facts
            ok = codes == previous.ok_code
            self.oks = np.concatenate(([0], np.cumsum(ok)))  # how many ok rows precede each row
            chosen = ok & canonical
            self.chosen = np.flatnonzero(chosen)  # the canonical rows, and how many precede each row
            self.chosen_before = np.concatenate(([0], np.cumsum(chosen)))

    def _facts(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Canonical flags, status codes, the duplicates' cluster keys, and how many duplicates
        precede each row."""
        previous = self.previous
        canonical = previous.canonical_flags(rows)
        codes = np.frombuffer(previous.status, dtype=np.uint8)[rows]
        duplicate = ~canonical & (codes == previous.ok_code)
        before = np.concatenate(([0], np.cumsum(duplicate)))
        return canonical, codes, previous.cluster_keys_of(rows[duplicate]), before

    def write(self, fh: Any, tally: records.Tally, docs: range, lo: int, placed: Placed) -> None:
        """Documents ``docs`` (rows ``lo`` on) written and counted: copied from the last manifest
        where it holds them, else read from the state a few thousand at a time."""
        hi = lo + len(docs)
        spans = None if self.spans is None else self.spans.get(lo)
        if spans is not None:
            assert self.last is not None
            self.last.copy(spans, fh)
            placed.extend(self.lengths[lo:hi])
        else:
            record = self.previous.record
            for at in range(lo, hi, _FLUSH):
                texts = [record(r).encode() for r in self.rows[at : min(at + _FLUSH, hi)].tolist()]
                fh.write(b"\n".join(texts) + b"\n")
                placed.extend(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1)
        if self.facts is None:  # no image: the flags come from the records just read, not read twice
            canonical, codes, clusters, before = self._facts(self.rows[lo:hi])
            lo, hi = 0, hi - lo
        else:
            canonical, codes, clusters, before = self.facts
            if self.oks[hi] - self.oks[lo] == hi - lo:  # all ok (most runs): counted from the sums
                kept = self.chosen[self.chosen_before[lo] : self.chosen_before[hi]] + (docs.start - lo)
                tally.add_stored_ok(docs, kept.tolist(), clusters[before[lo] : before[hi]])
                return
        names = self.previous.statuses
        tally.add_stored(docs, codes[lo:hi], names, canonical[lo:hi], clusters[before[lo] : before[hi]])


class LastManifest:
    """OUT's manifest as the last run wrote it (``Incremental`` checks that), read by byte ranges."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self.fd)

    def copy(self, spans: list[tuple[int, int]], fh: Any) -> None:
        """Append these byte ranges to ``fh``: a span shorter than its buffer through it (a kernel
        copy flushes the buffer first: two calls a run of carried records, ~1 s of the 1M +10,000
        night's ~24,000 runs), a longer one copied by the kernel where it can (715 MB at 1M went
        through this process twice)."""
        for start, size in spans:
            if size < BUFFER:
                data = os.pread(self.fd, size, start)
                if len(data) != size:
                    raise OSError(f"{self.path}: {size} bytes not copied")
                fh.write(data)
                continue
            fh.flush()
            while size:
                try:
                    done = os.copy_file_range(self.fd, fh.fileno(), size, start)
                except OSError:  # not between these files here: through this process
                    done = os.write(fh.fileno(), os.pread(self.fd, min(size, 1 << 24), start))
                if done <= 0:
                    raise OSError(f"{self.path}: {size} bytes not copied")
                start, size = start + done, size - done

    def spans(self, previous: Rows, rows: np.ndarray, firsts: np.ndarray) -> dict[int, list[tuple[int, int]]]:
        """For each run of ``rows`` (starting at ``firsts``: sorted, distinct, the first 0), the
        (offset, size) of its records in this manifest, one span per stretch of them stored one
        after another. A run is left out if one of its records is not known, or this manifest does
        not end a line where the image says a record ends (or begins)."""
        at = np.frombuffer(previous.manifest_at, dtype=np.int64)[rows]
        length = np.frombuffer(previous.manifest_len, dtype=np.int64)[rows]
        if not len(rows):
            return {}
        first = np.zeros(len(rows), dtype=bool)
        first[firsts] = True  # firsts[0] is 0
        run_of = np.cumsum(first) - 1
        breaks = np.flatnonzero(
            np.concatenate(([True], (at[1:] != at[:-1] + length[:-1]) | (run_of[1:] != run_of[:-1])))
        )
        starts, ends = (
            at[breaks],
            np.concatenate((at[breaks[1:] - 1] + length[breaks[1:] - 1], [at[-1] + length[-1]])),
        )
        size, fd = os.fstat(self.fd).st_size, self.fd
        fits = (starts >= 0) & (ends > starts) & (ends <= size)
        # A pread a byte, not a mapping: the pages a mapping touched (and their neighbours, mapped
        # with them) count in the process's RSS: +350 MB at 1M.
        for k in np.flatnonzero(fits).tolist():
            start, end = int(starts[k]), int(ends[k])
            fits[k] = os.pread(fd, 1, end - 1) == b"\n" and (not start or os.pread(fd, 1, start - 1) == b"\n")
        bad = np.zeros(len(firsts), dtype=bool)
        np.logical_or.at(bad, run_of[breaks], ~fits)
        found: dict[int, list[tuple[int, int]]] = {}
        for run, start, end in zip(run_of[breaks].tolist(), starts.tolist(), ends.tolist(), strict=True):
            if not bad[run]:
                found.setdefault(int(firsts[run]), []).append((start, end - start))
        return found
