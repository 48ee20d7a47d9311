"""OUT/report.html: one self-contained page to browse a finished run.

The page is the template ``report.html`` (inline CSS and JS, no network) with the
run's data embedded as JSON; the script draws fifty clusters at a time and a
cluster's texts only when it is opened, so a run of a million documents stays
browsable. Every cluster with duplicates is listed with its members' scores,
similarities and penalties (read from the manifest, streamed twice: once to size
the clusters, once to collect them). Texts, with the spans that differ between
the kept copy and each duplicate and the evidence behind each penalty, are
embedded for at most ``texts`` clusters: half the largest, half the weakest.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

from dedup import __version__, evidence, parallel
from dedup.config import MAX_JOBS
from dedup.errors import OutputError
from dedup.explain import examine, why_kept
from dedup.finished import FinishedRun
from dedup.hooks import Progress
from dedup.manifest import atomic_file

REPORT = "report.html"
MAX_CHARS = 20_000  # longer texts are cut for display (and their differences marked up to there)
MAX_SKIPPED = 20_000
MAX_CHANGES = 5_000
_BINS = 20
_NOT_DUPLICATE = b'"duplicate_of":null'


@dataclass(frozen=True, slots=True)
class Written:
    """What ``write_report`` wrote."""

    path: Path
    clusters: int  # clusters with duplicates, all listed
    detailed: int  # of which embedded with their texts
    size: int  # bytes


def write_report(
    out: str | Path, *, texts: int = 1000, jobs: int = 0, progress: Progress | None = None
) -> Written:
    """Write ``OUT/report.html`` for the finished run in ``out``.

    Args:
        out: OUT directory of a finished run.
        texts: how many clusters to embed with their texts (the largest and the weakest).
        jobs: processes reading those clusters again (0: one per core); the page is the same for any.
        progress: called as ``progress("report", done, total)`` per cluster read again.

    Raises:
        OutputError: OUT holds no finished run, or the report cannot be written.

    Example:
        >>> import tempfile
        >>> from dedup import Config, run
        >>> out = run(["corpora/sample"], tempfile.mkdtemp(), Config(jobs=1)).out
        >>> written = write_report(out, texts=2)
        >>> written.clusters, written.detailed, written.path.name
        (37, 2, 'report.html')
    """
    finished = FinishedRun(out)
    try:
        data = collect(finished, texts=texts, jobs=jobs, progress=progress)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # an OUT edited by hand, or damaged
        raise OutputError(f"{finished.out}: a record or summary.json unlike dedup's: {err!r}") from err
    page = render(data)
    path = finished.out / REPORT
    with atomic_file(path) as fh:
        fh.write(page)
    return Written(path=path, clusters=len(data["clusters"]), detailed=len(data["details"]), size=len(page))


def render(data: dict[str, Any]) -> bytes:
    """The page: the template with ``data`` as JSON (every ``<`` escaped, so no text can end the script)."""
    template = files("dedup").joinpath(REPORT).read_bytes()
    return template.replace(b"__DATA__", orjson.dumps(data).replace(b"<", b"\\u003c"), 1)


def _weakest(record: dict[str, Any]) -> float:
    """How strongly a duplicate was matched: the larger of its Jaccard and containment."""
    sim = record["similarity"] or {}
    return max(sim.get("jaccard", 1.0), sim.get("containment", 1.0))


def _histogram(values: Iterable[float], low: float, high: float) -> tuple[list[float], list[int]]:
    edges = [round(low + (high - low) * k / _BINS, 3) for k in range(_BINS + 1)]
    counts = [0] * _BINS
    for v in values:  # (held to the range first: a hand-edited 1e308 overflowed the int)
        counts[min(int((min(max(v, low), high) - low) / (high - low) * _BINS), _BINS - 1)] += 1
    return edges, counts


def collect(
    finished: FinishedRun, *, texts: int, jobs: int = 1, progress: Progress | None = None
) -> dict[str, Any]:
    """The data the page shows (see ``report.html`` for the layout of its lists)."""
    # First pass: only the duplicates' lines are parsed, to size the clusters and find their weakest match.
    size: Counter[str] = Counter()
    weakest: dict[str, float] = {}
    for line in finished.lines():
        if _NOT_DUPLICATE not in line:
            record = finished.parsed(line)
            if (cluster := record["cluster"]) is not None and record["duplicate_of"] is not None:
                size[cluster] += 1
                weakest[cluster] = min(weakest.get(cluster, 1.0), _weakest(record))
    by_size = sorted(size, key=lambda c: (-size[c], weakest[c], c))
    by_weakness = sorted(size, key=lambda c: (weakest[c], -size[c], c))
    chosen = set(by_size[: (texts + 1) // 2])
    for c in by_weakness:
        if len(chosen) >= min(texts, len(size)):
            break
        chosen.add(c)

    # Second pass: every line, for the counts and histograms; members of clusters with duplicates.
    statuses: Counter[str] = Counter()
    scores: list[float] = []
    jaccard: list[float] = []
    containment: list[float] = []
    skipped: list[list[str]] = []
    members: dict[str, list[list[Any]]] = {c: [] for c in size}
    records: dict[str, list[dict[str, Any]]] = {c: [] for c in chosen}
    for record in finished.records():
        statuses[record["status"]] += 1
        if record["status"] not in ("ok", "gone"):
            if len(skipped) < MAX_SKIPPED:
                skipped.append([record["path"], record["status"], record["error"] or record["reason"] or ""])
            continue
        if record["score"] is not None:
            scores.append(record["score"])
        if (sim := record["similarity"]) is not None:
            jaccard.append(sim["jaccard"])
            containment.append(sim["containment"])
        cluster = record["cluster"]
        if cluster in members:
            members[cluster].append(_member_row(record))
            if cluster in records:
                records[cluster].append(record)

    details = {}
    rank = {c: k for k, c in enumerate(by_size)}
    order = sorted(chosen, key=rank.__getitem__)
    work = [(finished, records.pop(c)) for c in order]
    for done, (cluster, detail) in enumerate(zip(order, _details(work, jobs), strict=True), start=1):
        details[cluster] = detail
        if progress:
            progress("report", done, len(chosen))
    clusters = [
        [c, size[c] + 1, weakest[c], next((m[1] for m in members[c] if m[2]), None), c in details, members[c]]
        for c in by_size
    ]
    counts = finished.summary["counts"]
    summary = finished.summary
    return {
        "out": str(finished.out),
        "version": summary.get("dedup", __version__),
        "options": ", ".join(f"{k} {v}" for k, v in summary["config"].items() if k not in ("force", "state")),
        "counts": [
            ["documents", counts.get("documents", sum(statuses.values()))],
            ["kept", counts.get("clusters", 0)],
            ["duplicates", counts.get("duplicates", 0)],
            ["clusters with duplicates", len(size)],
            ["skipped", counts.get("skipped", 0)],
        ],
        "histograms": [
            {"title": "Jaccard of duplicates to their kept copy", **_hist(jaccard, 0.0, 1.0)},
            {"title": "containment of duplicates in their kept copy", **_hist(containment, 0.0, 1.0)},
            {"title": "cleanliness scores (below -1 counted at -1)", **_hist(scores, -1.0, 1.0)},
        ],
        "signals": [[name, evidence.PLAIN[name]] for name in evidence.PLAIN],
        "plain": evidence.PLAIN,
        "clusters": clusters,
        "details": details,
        "detailed": len(details),
        "skipped": skipped,
        "changes": _changes(finished),
    }


def _hist(values: list[float], low: float, high: float) -> dict[str, Any]:
    edges, counts = _histogram(values, low, high)
    return {"edges": edges, "counts": counts}


def _member_row(record: dict[str, Any]) -> list[Any]:
    """[path, score, canonical, jaccard, containment, shared, {signal: penalty}] (penalties >= 0.005)."""
    sim = record["similarity"] or {}
    penalties = {k: round(v, 3) for k, v in (record["penalties"] or {}).items() if v >= 0.005}
    return [
        record["path"],
        record["score"],
        record["canonical"],
        sim.get("jaccard"),
        sim.get("containment"),
        sim.get("shared"),
        penalties,
    ]


def _details(work: list[tuple[FinishedRun, list[dict[str, Any]]]], jobs: int) -> Iterator[dict[str, Any]]:
    """The clusters' details in order, from the run's kind of worker processes (they die with this one)."""
    # No more processes than calls to give them, nor than a run may fork (``--jobs 10**20`` forked for ever).
    workers = min(jobs or os.cpu_count() or 1, -(-len(work) // 8) or 1, MAX_JOBS)
    yield from parallel.ordered(_detail, work, workers=workers, window_per_worker=4, per_call=8)


def _detail(task: tuple[FinishedRun, list[dict[str, Any]]]) -> dict[str, Any]:
    """One cluster's texts, differing spans against the kept copy, and penalties with evidence."""
    finished, records = task
    examined = examine(finished, records)
    kept = next(i for i, m in enumerate(examined) if m["canonical"])
    texts: dict[str, int] = {}  # each distinct text once: exact copies are common
    text_of = [
        None if m["text"] is None else texts.setdefault(m["text"][:MAX_CHARS], len(texts)) for m in examined
    ]
    shown = list(texts)
    base = text_of[kept]
    spans: list[Any] = []
    for i, k in enumerate(text_of):
        if i == kept or k is None or base is None:
            spans.append(None)
        else:
            spans.append(evidence.differing_spans(shown[base], shown[k]) if k != base else ([], []))
    return {
        "texts": shown,
        "text_of": text_of,
        "spans": spans,
        "from": [m["text_from"] for m in examined],
        "penalties": [m["evidence"] for m in examined],
        "reasons": [m["reason"] for m in examined],
        "why": why_kept(examined),
    }


def _changes(finished: FinishedRun) -> dict[str, Any] | None:
    """The last cron run's changes: counts, and the first ``MAX_CHANGES`` listed."""
    run = finished.summary.get("run")
    if run is None:
        return None
    changes = finished.last_changes()
    counts = {k: finished.summary["counts"].get(k, 0) for k in ("new", "changed", "superseded", "gone")}
    rows = []
    for change in changes[:MAX_CHANGES]:
        kind = change["change"]
        if kind == "superseded":
            rows.append(
                [kind, str(change.get("new")), f"replaces {change.get('old')}: {change.get('reason')}"]
            )
        elif kind == "gone":
            rows.append(
                [kind, str(change.get("path")), f"no longer in the inputs (cluster {change.get('cluster')})"]
            )
        else:
            role = "kept" if change.get("canonical") else f"duplicate of {change.get('duplicate_of')}"
            rows.append([kind, str(change.get("path")), f"{change.get('status')}, {role}"])
    return {"run": run, "counts": counts, "rows": rows, "listed": len(rows), "total": len(changes)}
