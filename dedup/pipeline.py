"""The one place that knows the order of the stages.

Pass 1 streams every document through reading, normalising, signing and the
intrinsic quality signals, in worker processes that receive paths, and keeps a
row per document (signals) and per distinct text (signature). Documents with the
same normalised text share one node. The index proposes candidate pairs of
nodes; pass 2 takes each connected group of candidates, reads its documents a
second time, verifies pairs on exact shingle sets, clusters without chaining and
ranks each cluster's members. Documents with no candidate never leave pass 1.
Finally the outputs are written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import datasketch
import numpy as np
import xxhash

from dedup import __version__ as dedup_version
from dedup import canonical, index, manifest, normalize, quality, readers, state
from dedup.cluster import Similarity, Thresholds, cluster_component, components
from dedup.config import Config
from dedup.document import Document, Features, Status
from dedup.errors import InputChangedError
from dedup.signatures import (
    Signer,
    TokenFrequency,
    document_shingles,
    hash_token_bytes,
    scheme_stamp,
    shingles_of,
    similarity,
    token_hashes,
)

Progress = Callable[[str, int], None]
_BATCH = 128
_LONE = {"completeness": 1.0, "outvoted": 0.0, "repetition": 0.0}  # relative signals of a lone text
_SPACE = np.array([32], dtype=np.uint8)


@dataclass(slots=True)
class Assignment:
    """Where one ``ok`` document went and why."""

    cluster: int  # provisional: the smallest manifest index in the cluster
    canonical: int  # manifest index of the cluster's canonical
    similarity: Similarity | None
    score: float
    penalties: dict[str, float]
    signals: dict[str, float]
    reason: str


@dataclass(slots=True)
class RunResult:
    """What ``run`` did: the counts printed by the CLI and stored in summary.json."""

    out: Path
    summary: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- pass 1 ----

_worker: tuple[Config, Signer, TokenFrequency] | None = None


def _init_worker(config: Config) -> None:
    global _worker
    _worker = (config, Signer(num_perm=config.num_perm, seed=config.seed), TokenFrequency())


def analyse(
    doc: Document, config: Config, signer: Signer
) -> tuple[Document, Features | None, np.ndarray | None]:
    """Read (if not yet read), normalise, sign and measure one document; drop its text.

    Returns the document, its features (``None`` when skipped) and its distinct
    token hashes, for the corpus token frequencies.
    """
    readers.read_file(doc, config)
    text, doc.text = doc.text, None
    if doc.status is not Status.OK or text is None:
        return doc, None, None
    repaired = normalize.repair(text)
    comparison = normalize.comparison_text(repaired)
    words = normalize.token_bytes(comparison)
    # Plain and OCR-folded tokens in one pass: folding keeps token boundaries, so the halves line up.
    both = hash_token_bytes(
        np.concatenate((np.frombuffer(words, np.uint8), _SPACE, normalize.skeleton_bytes(words)))
    )
    if len(both) == 0:
        doc.status, doc.error = Status.EMPTY, "no words left after removing markup and boilerplate"
        return doc, None, None
    hashes, folded = both[: len(both) // 2], both[len(both) // 2 :]
    shingles = shingles_of(folded, config.shingle_size)
    measured = quality.intrinsic(text, repaired, comparison)
    return (
        doc,
        Features(
            content=xxhash.xxh3_64_intdigest(hashes.tobytes()),
            shingles=len(shingles),
            signature=signer.sign(shingles),
            signals=np.array([measured[name] for name in quality.INTRINSIC], dtype=np.float32),
        ),
        hashes,
    )


_Batch = tuple[list[tuple[Document, Features | None]], list[tuple[np.ndarray, np.ndarray]]]


def _analyse_batch(batch: list[Document]) -> _Batch:
    assert _worker is not None
    config, signer, frequency = _worker
    results, vocabularies = [], []
    for doc in batch:
        doc, features, hashes = analyse(doc, config, signer)
        results.append((doc, features))
        if hashes is not None:
            vocabularies.append(hashes)
    return results, frequency.delta(vocabularies)


def _batches(docs: Iterable[Document]) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _pool(config: Config, **kwargs: Any) -> ProcessPoolExecutor:
    ctx = get_context("fork") if os.name == "posix" else get_context("spawn")
    return ProcessPoolExecutor(config.workers, mp_context=ctx, **kwargs)


def _ordered(
    pool: Executor | None, fn: Callable[[Any], Any], tasks: Iterable[Any], window: int
) -> Iterator[Any]:
    """fn over tasks, results in task order, at most ``window`` tasks in flight (memory stays flat)."""
    if pool is None:
        yield from map(fn, tasks)
        return
    pending: list[Future[Any]] = []
    for task in tasks:
        pending.append(pool.submit(fn, task))
        if len(pending) >= window:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()


def _analyse_all(docs: Iterable[Document], config: Config) -> Iterator[_Batch]:
    """Pass 1, batch by batch, in order."""
    if config.workers == 1:
        _init_worker(config)
        yield from _ordered(None, _analyse_batch, _batches(docs), 1)
        return
    with _pool(config, initializer=_init_worker, initargs=(config,)) as pool:
        yield from _ordered(pool, _analyse_batch, _batches(docs), 4 * config.workers)


# ---------------------------------------------------------------- pass 2 ----


@dataclass(slots=True)
class _Corpus:
    """What pass 2 reads: shared with its worker processes by fork, not sent."""

    config: Config
    docs: list[Document]
    nodes: list[list[int]]  # node -> manifest indices of the documents with that text
    signals: list[np.ndarray | None]  # manifest index -> intrinsic signals
    frequency: TokenFrequency


_corpus: _Corpus | None = None


def _member_signals(corpus: _Corpus, doc: int, relative: dict[str, float]) -> dict[str, float]:
    row = corpus.signals[doc]
    assert row is not None
    return {**dict(zip(quality.INTRINSIC, row.tolist(), strict=True)), **relative}


def _rank(
    corpus: _Corpus,
    members: Sequence[int],
    relatives: Sequence[dict[str, float]],
    sim: Callable[[int, int], Similarity],
    thresholds: Thresholds,
    sizes: dict[int, int],
) -> list[tuple[int, Assignment]]:
    """Rank the documents of one cluster (a list of node ids) and say where each went."""
    node_of: dict[int, int] = {}
    candidates = []
    for n, relative in zip(members, relatives, strict=True):
        for d in corpus.nodes[n]:
            node_of[d] = n
            candidates.append(canonical.Member(d, corpus.docs[d].path, _member_signals(corpus, d, relative)))
    ranked = canonical.rank(candidates)
    best = ranked[0]
    best_doc = best.member.index
    cluster_id = min(node_of)
    out = []
    for scored in ranked:
        d = scored.member.index
        if d == best_doc:
            similar, reason = None, canonical.canonical_reason(ranked)
        else:
            if node_of[d] == node_of[best_doc]:
                similar, match = Similarity(1.0, 1.0, sizes[node_of[d]]), "same text after normalisation"
            else:
                similar = sim(node_of[d], node_of[best_doc])
                match = thresholds.explain(similar)
            reason = canonical.duplicate_reason(scored, best, match)
        out.append(
            (
                d,
                Assignment(
                    cluster_id,
                    best_doc,
                    similar,
                    scored.score,
                    scored.penalties,
                    scored.member.signals,
                    reason,
                ),
            )
        )
    return out


def _settle(task: tuple[list[int], np.ndarray]) -> tuple[list[tuple[int, Assignment]], int]:
    """Pass 2 for one component: read again, verify, cluster, rank. Returns assignments and verified pairs."""
    assert _corpus is not None
    corpus = _corpus
    nodes, pairs = task
    config = corpus.config
    toks: dict[int, list[str]] = {}
    shingles: dict[int, np.ndarray] = {}
    for n in nodes:
        text = readers.reload_text(corpus.docs[corpus.nodes[n][0]], config)
        toks[n] = normalize.tokens(normalize.repair(text))
        shingles[n] = document_shingles(toks[n], config.shingle_size)
    cache: dict[tuple[int, int], Similarity] = {}

    def sim(a: int, b: int) -> Similarity:
        key = (a, b) if a < b else (b, a)
        if key not in cache:
            cache[key] = Similarity(*similarity(shingles[a], shingles[b]))
        return cache[key]

    thresholds = Thresholds(config.jaccard, config.containment, config.min_shared)
    edges = [(int(a), int(b)) for a, b in pairs if thresholds.accepts(sim(int(a), int(b)))]
    sizes = {n: len(shingles[n]) for n in nodes}

    def frequency(words: Sequence[str]) -> list[int]:
        return [int(c) for c in corpus.frequency.get(token_hashes(words))]

    out: list[tuple[int, Assignment]] = []
    for members in cluster_component(nodes, edges, sim):
        if len(members) == 1:
            relatives = [_LONE]
        else:
            relatives = quality.relative(
                [toks[n] for n in members], [shingles[n] for n in members], frequency
            )
        out.extend(_rank(corpus, members, relatives, sim, thresholds, sizes))
    return out, len(edges)


def _settle_all(corpus: _Corpus, tasks: list[tuple[list[int], np.ndarray]]) -> Iterator[Any]:
    """Pass 2 over all components; worker processes inherit the corpus tables by fork."""
    global _corpus
    _corpus = corpus
    try:
        if corpus.config.workers == 1 or len(tasks) < 8 or os.name != "posix":
            yield from map(_settle, tasks)
            return
        with _pool(corpus.config) as pool:
            yield from _ordered(pool, _settle, tasks, 8 * corpus.config.workers)
    finally:
        _corpus = None


# ------------------------------------------------------------------ run -----

_FRESH = object()  # marker: the document must go through pass 1


def run(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: Config,
    *,
    progress: Progress | None = None,
) -> RunResult:
    """Deduplicate INPUTs into OUT: manifest.jsonl, canonical/ and summary.json.

    With ``config.state`` the run is incremental: unchanged documents are not
    signed again, groups of documents that did not change keep their verdicts,
    and OUT (then also holding ``runs/``, one change list per run) is brought up
    to date in place.

    Args:
        inputs: directories, text files or JSONL files.
        out: output directory (created; must be empty unless ``config.force``, or,
            with a state, hold this state's previous outputs).
        config: validated options.
        progress: called as ``progress(stage, done)`` now and then (the CLI draws it).

    Raises:
        InputError: an INPUT is missing or unusable, or changed during the run.
        OutputError: OUT cannot be used or written.
        StateError: the state is locked, was built with other parameters, or is unusable.

    Example:
        >>> import tempfile
        >>> result = run(["corpora/sample"], tempfile.mkdtemp(), Config(jobs=1))
        >>> result.counts["documents"] == result.counts["ok"] + result.counts["skipped"]
        True
    """
    out_path = Path(out)
    sources = readers.discover(inputs)
    roots = [s.root for s in sources]
    if config.state is None:
        manifest.prepare_out(out_path, roots, force=config.force)
        with state.locked(out_path, config.lock_timeout, manifest.OUT_LOCK):  # overlapping runs into one OUT
            return _run(sources, out_path, config, None, progress)
    directory = Path(config.state)
    manifest.check_apart(directory, roots, "--state")
    with state.locked(directory, config.lock_timeout):
        store = state.State(directory, _stamp(config), rebuild=config.rebuild)
        try:
            ours = store.last_run() > 0 or config.rebuild  # OUT holds this state's last outputs
            manifest.prepare_out(out_path, roots, force=config.force, ours_ok=ours)
            return _run(sources, out_path, config, store, progress)
        finally:
            store.close()


def _stamp(config: Config) -> dict[str, Any]:
    """What a state's stored signatures and verdicts depend on."""
    options = config.as_dict()
    for free in ("globs", "id_field", "text_field", "max_bytes"):
        options.pop(free)
    return {
        **scheme_stamp(num_perm=config.num_perm, seed=config.seed, shingle_size=config.shingle_size),
        "normalization": normalize.NORMALIZATION_VERSION,
        "scoring": quality.SCORING_VERSION,
        "options": options,
    }


def _checkpoint(name: str) -> None:
    """Fault injection for the crash-safety tests: DEDUP_CRASH_AT=name kills the run here."""
    if os.environ.get("DEDUP_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _reuse(doc: Document, prev: state.Stored | None) -> Any:
    """The stored features of an unchanged document (``None`` if it was skipped), else _FRESH."""
    if prev is None or prev.gone is not None:
        return _FRESH
    if doc.offset < 0:
        try:
            info = os.stat(doc.file)
        except OSError:
            return _FRESH
        if prev.offset >= 0 or (prev.size, prev.mtime_ns) != (info.st_size, info.st_mtime_ns):
            return _FRESH
        doc.size, doc.mtime_ns, doc.sha256 = prev.size, prev.mtime_ns, prev.sha256 or ""
        doc.status, doc.error = Status(prev.status), prev.error
    elif doc.status is not Status.OK or prev.sha256 != doc.sha256 or prev.status != Status.OK:
        return _FRESH
    doc.text = None
    if prev.status != Status.OK or prev.signature is None or prev.signals is None:
        return None
    assert prev.content is not None and prev.shingles is not None
    return Features(
        content=prev.content, shingles=prev.shingles, signature=prev.signature, signals=prev.signals
    )


def _run(
    sources: Sequence[Any], out: Path, config: Config, store: state.State | None, progress: Progress | None
) -> RunResult:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    started = state.now()
    previous = store.documents() if store else {}
    run_id = store.last_run() + 1 if store else 1
    frequency = TokenFrequency()
    if store and (table := store.blob("token_frequency")) is not None:
        frequency.table = np.frombuffer(table, dtype=np.uint32).reshape(frequency.table.shape).copy()

    docs: list[Document] = []
    feats: list[Features | None] = []
    fresh: set[int] = set()

    def to_analyse() -> Iterator[Document]:
        for doc in readers.iter_documents(sources, config, read=False):
            docs.append(doc)
            got = _reuse(doc, previous.get(doc.path))
            feats.append(None if got is _FRESH else got)
            if got is _FRESH:
                fresh.add(doc.index)
                yield doc

    for results, delta in _analyse_all(to_analyse(), config):
        frequency.merge(delta)
        for doc, feat in results:
            docs[doc.index], feats[doc.index] = doc, feat
        _checkpoint("pass1")
        if progress:
            progress("read", len(docs))
    node_of_content: dict[int, int] = {}
    nodes: list[list[int]] = []
    rows: list[np.ndarray] = []
    sizes: list[int] = []
    signals: list[np.ndarray | None] = [None if f is None else f.signals for f in feats]
    for i, feat in enumerate(feats):
        if feat is None:
            continue
        n = node_of_content.setdefault(feat.content, len(nodes))
        if n == len(nodes):
            nodes.append([i])
            rows.append(feat.signature)
            sizes.append(feat.shingles)
        else:
            nodes[n].append(i)
    del node_of_content
    signatures = np.stack(rows) if rows else np.empty((0, config.num_perm), dtype=np.uint32)
    del rows
    for n, members in enumerate(nodes):  # one copy of each signature: rows of the node matrix
        for d in members:
            feat = feats[d]
            assert feat is not None
            feat.signature = signatures[n]
    timings["read_sign"] = time.perf_counter() - clock

    clock = time.perf_counter()
    bands, rows_per_band = index.band_layout(threshold=config.lsh_threshold, num_perm=config.num_perm)
    proposed = index.candidate_pairs(signatures, bands=bands, rows=rows_per_band)
    pairs = index.prefilter(
        proposed, signatures, np.asarray(sizes), jaccard=config.jaccard, containment=config.containment
    )
    timings["index"] = time.perf_counter() - clock

    clock = time.perf_counter()
    corpus = _Corpus(config, docs, nodes, signals, frequency)
    linked = np.unique(pairs) if len(pairs) else np.empty(0, dtype=np.int64)
    comps = components(linked.tolist(), pairs.tolist())
    comp_of = np.full(len(nodes), -1, dtype=np.int64)
    for c, comp in enumerate(comps):
        comp_of[comp] = c
    by_comp = np.argsort(comp_of[pairs[:, 0]], kind="stable") if len(pairs) else np.empty(0, dtype=np.int64)
    bounds = np.searchsorted(comp_of[pairs[by_comp, 0]], np.arange(len(comps) + 1)) if len(pairs) else [0]
    groups = [*comps, *([n] for n in np.flatnonzero(comp_of < 0).tolist())]
    fingerprints = [_fingerprint(docs, nodes, g) for g in groups]
    kept_records: dict[int, dict[str, Any]] = {}
    tasks = []
    lone: list[int] = []
    for g, (group, print_) in enumerate(zip(groups, fingerprints, strict=True)):
        members = [d for n in group for d in nodes[n]]
        stored = [previous.get(docs[d].path) for d in members]
        if all(p is not None and p.gone is None and p.component == print_ for p in stored):
            kept_records.update((d, p.record) for d, p in zip(members, stored, strict=True) if p is not None)
        elif g < len(comps):
            tasks.append((comps[g], pairs[by_comp[bounds[g] : bounds[g + 1]]]))
        else:
            lone.append(group[0])
    assignments: dict[int, Assignment] = {}
    verified = 0
    for results, n_edges in _settle_all(corpus, tasks):
        assignments.update(results)
        verified += n_edges
    lone_sizes = dict(enumerate(sizes))
    for n in lone:
        assignments.update(_rank(corpus, [n], [_LONE], _no_similarity, _NO_THRESHOLDS, lone_sizes))
    component_of_doc = {d: fingerprints[g] for g, group in enumerate(groups) for n in group for d in nodes[n]}
    timings["verify_cluster_score"] = time.perf_counter() - clock

    clock = time.perf_counter()
    records = _records(docs, assignments, kept_records)
    changes = _changes(docs, records, previous, fresh, run_id)
    records.extend(changes.gone_records)
    if store:
        store.commit_run(
            run=run_id,
            started=started,
            inputs=[s.root for s in sources],
            counts=changes.counts,
            documents=_stored(docs, feats, records, component_of_doc, previous, run_id, changes),
            supersessions=changes.supersessions,
            blobs={"token_frequency": frequency.table.tobytes()},
        )
    _checkpoint("committed")
    kept = [docs[i] for i, r in enumerate(records[: len(docs)]) if r["canonical"]]
    if store and run_id > 1 and store.synced_run() == run_id - 1 and (out / manifest.CANONICAL).is_dir():
        before = {p: s for p, s in previous.items() if s.gone is None and s.record.get("canonical")}
        _sync_canonical(out, kept, before, fresh, config)
    else:
        _write_canonical(out, kept, config)
    counts = {**_counts(records, len(proposed), len(pairs), verified), **changes.counts}
    timings["write"] = time.perf_counter() - clock
    summary = {
        "dedup": dedup_version,
        "datasketch": datasketch.__version__,
        "minhash": scheme_stamp(num_perm=config.num_perm, seed=config.seed, shingle_size=config.shingle_size),
        "normalization_version": normalize.NORMALIZATION_VERSION,
        "lsh": {
            "threshold": config.lsh_threshold,
            "weights": list(index.LSH_WEIGHTS),
            "bands": bands,
            "rows": rows_per_band,
        },
        "config": config.as_dict(),
        "inputs": [{"path": s.root, "kind": s.kind, "label": s.label} for s in sources],
        "run": run_id if store else None,
        "counts": counts,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    if store:
        manifest.write_delta(out, run_id, changes.delta)
    manifest.write_summary(out, summary)
    manifest.write_manifest(out, records)
    _checkpoint("written")
    if store:
        store.mark_synced(run_id)
    return RunResult(out=out, summary=summary, counts=counts)


def _fingerprint(docs: Sequence[Document], nodes: Sequence[list[int]], group: Sequence[int]) -> str:
    """Identity of a group of documents judged together: unchanged => its verdicts still hold."""
    lines = sorted(f"{docs[d].path}\t{docs[d].sha256}" for n in group for d in nodes[n])
    return xxhash.xxh3_64_hexdigest("\n".join(lines).encode())


def _records(
    docs: Sequence[Document], assignments: dict[int, Assignment], kept: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Manifest records in input order; clusters named after their first member (stable across runs)."""
    first: dict[int, int] = {}
    for d, a in assignments.items():
        first[a.cluster] = min(first.get(a.cluster, d), d)
    names = {cid: "c" + xxhash.xxh3_64_hexdigest(docs[d].path.encode())[:12] for cid, d in first.items()}
    records = []
    for doc in docs:
        if doc.index in kept:
            record = dict(kept[doc.index])
            record["line"] = doc.line or None  # lines above it may have been added or removed
            records.append(record)
        else:  # popped: an assignment is freed as soon as its record exists
            records.append(_record(doc, assignments.pop(doc.index, None), docs, names))
    return records


@dataclass(slots=True)
class _Changes:
    counts: dict[str, int]
    delta: list[dict[str, Any]]
    supersessions: list[tuple[str, str, str, str]]
    gone_records: list[dict[str, Any]]
    gone: dict[str, int]  # key -> run it went missing in


def _changes(
    docs: Sequence[Document],
    records: list[dict[str, Any]],
    previous: dict[str, state.Stored],
    fresh: set[int],
    run_id: int,
) -> _Changes:
    """What this run changed against the state: new, changed, superseded and gone documents."""
    present = {doc.path for doc in docs}
    by_path = {r["path"]: r for r in records}
    delta: list[dict[str, Any]] = []
    supersessions: list[tuple[str, str, str, str]] = []
    new = changed = 0
    for doc, record in zip(docs, records, strict=True):
        prev = previous.get(doc.path)
        if prev is None or prev.gone is not None:
            new += 1
            delta.append({"change": "new", **_brief(record)})
        elif doc.index in fresh and prev.sha256 != doc.sha256:
            changed += 1
            delta.append({"change": "changed", **_brief(record)})
        if (
            prev is not None
            and prev.gone is None
            and prev.record.get("canonical")
            and not record["canonical"]
        ):
            successor = record["duplicate_of"]
            if successor is not None:
                why = f"{successor} is cleaner: {by_path[successor]['reason']}"
                supersessions.append((record["cluster"], doc.path, successor, why))
    # Where the members of each previous cluster are kept now: for canonicals that went missing.
    heirs: dict[Any, dict[str, Any]] = {}
    for record in records:
        prev = previous.get(record["path"])
        if record["canonical"] and prev is not None and prev.gone is None:
            heirs.setdefault(prev.record.get("cluster"), record)
    gone: dict[str, int] = {}
    gone_records = []
    for key in sorted(previous.keys() - present):
        prev = previous[key]
        gone[key] = prev.gone if prev.gone is not None else run_id
        if prev.gone is None:
            delta.append({"change": "gone", "path": key, "cluster": prev.record.get("cluster")})
            heir = heirs.get(prev.record.get("cluster")) if prev.record.get("canonical") else None
            if heir is not None:
                supersessions.append((heir["cluster"], key, heir["path"], "the previous canonical is gone"))
        gone_records.append(
            {
                **({k: None for k in records[0]} if records else {}),
                "path": key,
                "status": "gone",
                "sha256": prev.sha256,
                "size": prev.size,
                "canonical": False,
                "reason": f"not in the inputs since run {gone[key]}",
                "gone_run": gone[key],
            }
        )
    for cluster, old, successor, why in supersessions:
        delta.append(
            {"change": "superseded", "cluster": cluster, "old": old, "new": successor, "reason": why}
        )
        by_path[successor].setdefault("supersedes", []).append({"path": old, "run": run_id})
    n_gone = sum(1 for key in gone if previous[key].gone is None)
    counts = {"new": new, "changed": changed, "superseded": len(supersessions), "gone": n_gone}
    return _Changes(counts, delta, supersessions, gone_records, gone)


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("path", "status", "cluster", "canonical", "duplicate_of")}


def _stored(
    docs: Sequence[Document],
    feats: Sequence[Features | None],
    records: Sequence[dict[str, Any]],
    component_of_doc: dict[int, str],
    previous: dict[str, state.Stored],
    run_id: int,
    changes: _Changes,
) -> Iterator[state.Stored]:
    """The state rows this run changed: new or changed documents, new verdicts, newly gone ones.

    ``last_seen`` is written when a document is first stored or goes missing: a
    present document was last seen in the latest run.
    """
    for doc, feat, record in zip(docs, feats, records, strict=False):
        prev = previous.get(doc.path)
        if (
            prev is not None
            and prev.gone is None
            and prev.record == record
            and prev.component == component_of_doc.get(doc.index)
            and (prev.file, prev.offset, prev.size, prev.mtime_ns)
            == (doc.file, doc.offset, doc.size, doc.mtime_ns)
        ):
            continue
        yield state.Stored(
            key=doc.path,
            file=doc.file,
            offset=doc.offset,
            line=doc.line,
            size=doc.size,
            mtime_ns=doc.mtime_ns,
            sha256=doc.sha256 or None,
            status=str(doc.status),
            error=doc.error,
            content=None if feat is None else feat.content,
            shingles=None if feat is None else feat.shingles,
            signature=None if feat is None else feat.signature,
            signals=None if feat is None else feat.signals,
            component=component_of_doc.get(doc.index),
            record=record,
            first_seen=prev.first_seen if prev else run_id,
            last_seen=run_id,
            gone=None,
        )
    for key, gone_run in changes.gone.items():
        if previous[key].gone is None:
            yield dataclasses.replace(previous[key], gone=gone_run, last_seen=gone_run - 1)


def _sync_canonical(
    out: Path, kept: list[Document], before: dict[str, state.Stored], fresh: set[int], config: Config
) -> None:
    """Bring OUT/canonical up to date in place: copy what is new or changed, remove what is no longer kept."""
    root = out / manifest.CANONICAL
    files = [d for d in kept if d.offset < 0]
    wanted = {d.path for d in files}
    for path, prev in before.items():
        if prev.offset < 0 and path not in wanted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / path)
    todo = [d for d in files if d.path not in before or d.index in fresh or not (root / d.path).exists()]
    _copy_files(todo, root, config, atomic=True)
    _checkpoint("canonical")
    lines = [d for d in kept if d.offset >= 0]
    if lines or any(p.offset >= 0 for p in before.values()):
        staging = manifest.stage_canonical(out)
        try:
            manifest.write_jsonl_lines(staging, lines)
            for made in sorted(p for p in staging.rglob("*") if p.is_file()):
                target = root / made.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(made, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _no_similarity(a: int, b: int) -> Similarity:
    raise AssertionError("a lone node has nothing to compare with")


_NO_THRESHOLDS = Thresholds(1.0, 1.0, 1)


def _write_canonical(out: Path, kept: list[Document], config: Config) -> None:
    """Canonical copies; whole files are copied by the kernel from a few threads (I/O bound)."""
    files = [d for d in kept if d.offset < 0]
    lines = [d for d in kept if d.offset >= 0]
    staging = manifest.stage_canonical(out)
    try:
        _copy_files(files, staging, config)
        manifest.write_jsonl_lines(staging, lines)
        manifest.publish_canonical(out, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_files(files: Sequence[Document], root: Path, config: Config, *, atomic: bool = False) -> None:
    """Byte-identical copies at their manifest paths, by the kernel, from a few threads (I/O bound).

    Directories are made once up front: ``mkdir(exist_ok=True)`` per file costs an
    exception per file.
    """
    base = str(root)
    for parent in sorted({os.path.dirname(d.path) for d in files}):
        os.makedirs(os.path.join(base, parent), exist_ok=True)
    with ThreadPoolExecutor(max(2, config.workers)) as threads:
        list(threads.map(lambda d: _copy_file(d, os.path.join(base, d.path), atomic), files, chunksize=256))


def _copy_file(doc: Document, target: str, atomic: bool) -> None:
    if atomic:  # in place: a reader sees the old copy or the new one
        partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.partial")
        shutil.copyfile(doc.file, partial)
        os.replace(partial, target)
    else:
        shutil.copyfile(doc.file, target)
    info = os.stat(doc.file)
    if (info.st_size, info.st_mtime_ns) != (doc.size, doc.mtime_ns):
        raise InputChangedError(f"{doc.file}: changed while dedup was running; run again when it is stable")


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


def _record(
    doc: Document, a: Assignment | None, docs: Sequence[Document], names: dict[int, str]
) -> dict[str, Any]:
    """The manifest line of one input document (schema in README.md)."""
    record: dict[str, Any] = {
        "path": doc.path,
        "status": str(doc.status),
        "sha256": doc.sha256 or None,
        "size": doc.size,
        "line": doc.line or None,
        "cluster": None,
        "canonical": False,
        "duplicate_of": None,
        "similarity": None,
        "score": None,
        "penalties": None,
        "signals": None,
        "reason": doc.error,
        "error": doc.error if doc.status is not Status.OK else None,
        "warning": doc.error if doc.status is Status.OK else None,
    }
    if a is not None:
        record.update(
            cluster=names[a.cluster],
            canonical=a.canonical == doc.index,
            duplicate_of=None if a.canonical == doc.index else docs[a.canonical].path,
            similarity=a.similarity.as_dict() if a.similarity else None,
            score=a.score,
            penalties=_rounded(a.penalties),
            signals=_rounded(a.signals),
            reason=a.reason,
        )
    return record


def _counts(
    records: Sequence[dict[str, Any]], proposed: int, candidates: int, verified: int
) -> dict[str, int]:
    """Counts over the present documents (gone ones are counted by ``_changes``)."""
    records = [r for r in records if r["status"] != "gone"]
    ok = [r for r in records if r["status"] == "ok"]
    sizes: dict[str, int] = {}
    for r in ok:
        sizes[r["cluster"]] = sizes.get(r["cluster"], 0) + 1
    counts = {
        "documents": len(records),
        "ok": len(ok),
        "skipped": len(records) - len(ok),
        "clusters": len(sizes),
        "clusters_with_duplicates": sum(1 for s in sizes.values() if s > 1),
        "canonical": sum(1 for r in ok if r["canonical"]),
        "duplicates": sum(1 for r in ok if not r["canonical"]),
        "lsh_pairs": proposed,
        "candidate_pairs": candidates,
        "verified_pairs": verified,
    }
    for r in records:
        if r["status"] != "ok":
            counts[f"skipped_{r['status']}"] = counts.get(f"skipped_{r['status']}", 0) + 1
    return counts
