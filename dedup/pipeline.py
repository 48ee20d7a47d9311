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

import os
import shutil
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
from dedup import canonical, index, manifest, normalize, quality, readers
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
    text, doc.text, doc.raw = doc.text, None, None
    if doc.status is not Status.OK or text is None:
        return doc, None, None
    repaired = normalize.repair(text)
    comparison = normalize.comparison_text(repaired)
    words = normalize.token_bytes(comparison)
    hashes = hash_token_bytes(words)
    if len(hashes) == 0:
        doc.status, doc.error = Status.EMPTY, "no words left after removing markup and boilerplate"
        return doc, None, None
    shingles = shingles_of(hash_token_bytes(normalize.skeleton_bytes(words)), config.shingle_size)
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


def run(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: Config,
    *,
    progress: Progress | None = None,
) -> RunResult:
    """Deduplicate INPUTs into OUT: manifest.jsonl, canonical/ and summary.json.

    Args:
        inputs: directories, text files or JSONL files.
        out: output directory (created; must be empty unless ``config.force``).
        config: validated options.
        progress: called as ``progress(stage, done)`` now and then (the CLI draws it).

    Raises:
        InputError: an INPUT is missing or unusable, or changed during the run.
        OutputError: OUT cannot be used or written.

    Example:
        >>> import tempfile
        >>> result = run(["corpora/sample"], tempfile.mkdtemp(), Config(jobs=1))
        >>> result.counts["documents"] == result.counts["ok"] + result.counts["skipped"]
        True
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    out_path = Path(out)
    sources = readers.discover(inputs)
    manifest.prepare_out(out_path, [s.root for s in sources], force=config.force)

    docs: list[Document] = []
    signals: list[np.ndarray | None] = []
    node_of_content: dict[int, int] = {}
    nodes: list[list[int]] = []
    signature_blocks: list[np.ndarray] = []
    sizes: list[int] = []
    frequency = TokenFrequency()
    for results, delta in _analyse_all(readers.iter_documents(sources, config, read=False), config):
        frequency.merge(delta)
        fresh = []
        for doc, feat in results:
            docs.append(doc)
            signals.append(None if feat is None else feat.signals)
            if feat is None:
                continue
            n = node_of_content.setdefault(feat.content, len(nodes))
            if n == len(nodes):
                nodes.append([doc.index])
                fresh.append(feat.signature)
                sizes.append(feat.shingles)
            else:
                nodes[n].append(doc.index)
        if fresh:
            signature_blocks.append(np.stack(fresh))
        if progress and len(docs) % 1024 < _BATCH:
            progress("read", len(docs))
    node_of_content.clear()
    signatures = (
        np.concatenate(signature_blocks)
        if signature_blocks
        else np.empty((0, config.num_perm), dtype=np.uint32)
    )
    del signature_blocks
    timings["read_sign"] = time.perf_counter() - clock

    clock = time.perf_counter()
    bands, rows = index.band_layout(threshold=config.lsh_threshold, num_perm=config.num_perm)
    proposed = index.candidate_pairs(signatures, bands=bands, rows=rows)
    pairs = index.prefilter(
        proposed, signatures, np.asarray(sizes), jaccard=config.jaccard, containment=config.containment
    )
    del signatures
    timings["index"] = time.perf_counter() - clock

    clock = time.perf_counter()
    corpus = _Corpus(config, docs, nodes, signals, frequency)
    assignments: dict[int, Assignment] = {}
    linked = np.unique(pairs) if len(pairs) else np.empty(0, dtype=np.int64)
    comps = components(linked.tolist(), pairs.tolist())
    comp_of = np.full(len(nodes), -1, dtype=np.int64)
    for c, comp in enumerate(comps):
        comp_of[comp] = c
    by_comp = np.argsort(comp_of[pairs[:, 0]], kind="stable") if len(pairs) else np.empty(0, dtype=np.int64)
    bounds = np.searchsorted(comp_of[pairs[by_comp, 0]], np.arange(len(comps) + 1)) if len(pairs) else [0]
    tasks = [(comp, pairs[by_comp[bounds[c] : bounds[c + 1]]]) for c, comp in enumerate(comps)]
    verified = 0
    for results, n_edges in _settle_all(corpus, tasks):
        assignments.update(results)
        verified += n_edges
    lone_sizes = dict(enumerate(sizes))
    for n in np.flatnonzero(comp_of < 0).tolist():
        for d, a in _rank(corpus, [n], [_LONE], _no_similarity, _NO_THRESHOLDS, lone_sizes):
            assignments[d] = a
    timings["verify_cluster_score"] = time.perf_counter() - clock

    clock = time.perf_counter()
    cluster_names = {
        cid: f"c{i:06d}" for i, cid in enumerate(sorted({a.cluster for a in assignments.values()}), start=1)
    }
    kept = [doc for doc in docs if doc.index in assignments and assignments[doc.index].canonical == doc.index]
    _write_canonical(out_path, kept, config)
    records = [_record(doc, assignments.get(doc.index), docs, cluster_names) for doc in docs]
    counts = _counts(records, len(proposed), len(pairs), verified)
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
            "rows": rows,
        },
        "config": config.as_dict(),
        "inputs": [{"path": s.root, "kind": s.kind, "label": s.label} for s in sources],
        "counts": counts,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    manifest.write_summary(out_path, summary)
    manifest.write_manifest(out_path, records)
    return RunResult(out=out_path, summary=summary, counts=counts)


def _no_similarity(a: int, b: int) -> Similarity:
    raise AssertionError("a lone node has nothing to compare with")


_NO_THRESHOLDS = Thresholds(1.0, 1.0, 1)


def _write_canonical(out: Path, kept: list[Document], config: Config) -> None:
    """Canonical copies; whole files are copied by the kernel from a few threads (I/O bound)."""
    files = [d for d in kept if d.offset < 0]
    lines = [d for d in kept if d.offset >= 0]
    staging = manifest.stage_canonical(out)
    try:
        with ThreadPoolExecutor(max(4, 2 * config.workers)) as threads:
            list(threads.map(lambda d: _copy_file(d, staging), files, chunksize=64))
        manifest.write_jsonl_lines(staging, lines)
        manifest.publish_canonical(out, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_file(doc: Document, staging: Path) -> None:
    target = staging / doc.path
    target.parent.mkdir(parents=True, exist_ok=True)
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
