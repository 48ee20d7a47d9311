"""The one place that knows the order of the stages.

Pass 1 streams every document through reading, normalising, signing and the
intrinsic quality signals, in worker processes, and keeps only small ``Features``.
Documents with the same normalised text share one node. The LSH index proposes
candidate pairs between nodes; pass 2 re-reads only the documents in candidate
components, verifies pairs on exact shingle sets, clusters without chaining and
picks each cluster's cleanest member. Finally the outputs are written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
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
from dedup.signatures import (
    Signer,
    TokenFrequency,
    document_shingles,
    scheme_stamp,
    similarity,
    token_hashes,
)

Progress = Callable[[str, int], None]
_BATCH = 128


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

_worker: tuple[Config, Signer] | None = None


def _init_worker(config: Config) -> None:
    global _worker
    _worker = (config, Signer(num_perm=config.num_perm, seed=config.seed))


def analyse(doc: Document, config: Config, signer: Signer) -> tuple[Document, Features | None]:
    """Read (if not yet read), normalise, sign and measure one document; drop its text."""
    readers.read_file(doc, config)
    text, doc.text, doc.raw = doc.text, None, None
    if doc.status is not Status.OK or text is None:
        return doc, None
    repaired = normalize.repair(text)
    toks = normalize.tokens(repaired)
    if not toks:
        doc.status, doc.error = Status.EMPTY, "no words left after removing markup and boilerplate"
        return doc, None
    return doc, Features(
        content=xxhash.xxh3_128_digest("\x00".join(toks).encode()),
        n_tokens=len(toks),
        signature=signer.sign(document_shingles(toks, config.shingle_size)),
        signals=quality.intrinsic(text, repaired, toks),
        vocabulary=np.unique(token_hashes(toks)),
    )


def _analyse_batch(batch: list[Document]) -> list[tuple[Document, Features | None]]:
    assert _worker is not None
    config, signer = _worker
    return [analyse(doc, config, signer) for doc in batch]


def _batches(docs: Iterable[Document]) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _analyse_all(docs: Iterable[Document], config: Config) -> Iterator[tuple[Document, Features | None]]:
    """Pass 1 in order, with at most a few batches in flight per worker (memory stays flat)."""
    if config.workers == 1:
        _init_worker(config)
        for batch in _batches(docs):
            yield from _analyse_batch(batch)
        return
    ctx = get_context("fork") if os.name == "posix" else get_context("spawn")
    with ProcessPoolExecutor(
        config.workers, mp_context=ctx, initializer=_init_worker, initargs=(config,)
    ) as pool:
        pending: list[Future[list[tuple[Document, Features | None]]]] = []
        for batch in _batches(docs):
            pending.append(pool.submit(_analyse_batch, batch))
            if len(pending) >= 4 * config.workers:
                yield from pending.pop(0).result()
        for fut in pending:
            yield from fut.result()


# ---------------------------------------------------------------- pass 2 ----


@dataclass(slots=True)
class _Node:
    """Documents with identical normalised text: signed, indexed and verified once."""

    docs: list[int]
    tokens: list[str] | None = None
    shingles: np.ndarray | None = None


def _load(node: _Node, docs: Sequence[Document], config: Config) -> None:
    if node.tokens is None:
        text = readers.reload_text(docs[node.docs[0]], config)
        node.tokens = normalize.tokens(normalize.repair(text))
        node.shingles = document_shingles(node.tokens, config.shingle_size)


def _finish_cluster(
    members: Sequence[int],
    nodes: Sequence[_Node],
    docs: Sequence[Document],
    features: dict[int, Features],
    sim: Callable[[int, int], Similarity],
    thresholds: Thresholds,
    frequency: TokenFrequency,
    assignments: dict[int, Assignment],
) -> None:
    """Score the members of one cluster (a list of node ids) and record each document's fate."""
    if len(members) > 1:
        rel = quality.relative(
            [nodes[n].tokens or [] for n in members],
            [nodes[n].shingles for n in members if nodes[n].shingles is not None],
            lambda words: frequency.get(token_hashes(words)).tolist(),
        )
    else:
        rel = [{"completeness": 1.0, "outvoted": 0.0}]
    node_of: dict[int, int] = {}
    candidates = []
    for n, relative in zip(members, rel, strict=True):
        for d in nodes[n].docs:
            node_of[d] = n
            candidates.append(canonical.Member(d, docs[d].path, {**features[d].signals, **relative}))
    ranked = canonical.rank(candidates)

    best = ranked[0]
    best_doc = best.member.index
    cluster_id = min(node_of)
    for scored in ranked:
        d = scored.member.index
        if d == best_doc:
            similar, reason = None, canonical.canonical_reason(ranked)
        else:
            if node_of[d] == node_of[best_doc]:
                shared = len(nodes[node_of[d]].shingles if nodes[node_of[d]].shingles is not None else ())
                similar, match = Similarity(1.0, 1.0, shared), "same text after normalisation"
            else:
                similar = sim(node_of[d], node_of[best_doc])
                match = thresholds.explain(similar)
            reason = canonical.duplicate_reason(scored, best, match)
        assignments[d] = Assignment(
            cluster=cluster_id,
            canonical=best_doc,
            similarity=similar,
            score=scored.score,
            penalties=scored.penalties,
            signals=scored.member.signals,
            reason=reason,
        )


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
    features: dict[int, Features] = {}
    node_of_content: dict[bytes, int] = {}
    nodes: list[_Node] = []
    frequency = TokenFrequency()
    for doc, feat in _analyse_all(readers.iter_documents(sources, config, read=False), config):
        docs.append(doc)
        if feat is not None:
            features[doc.index] = feat
            assert feat.vocabulary is not None
            frequency.add(feat.vocabulary)
            feat.vocabulary = None
            n = node_of_content.setdefault(feat.content, len(nodes))
            if n == len(nodes):
                nodes.append(_Node([doc.index]))
            else:
                nodes[n].docs.append(doc.index)
        if progress and len(docs) % 1000 == 0:
            progress("read", len(docs))
    node_of_content.clear()
    timings["read_sign"] = time.perf_counter() - clock

    clock = time.perf_counter()
    signer = Signer(num_perm=config.num_perm, seed=config.seed)
    pairs, (bands, rows) = index.candidate_pairs(
        [features[node.docs[0]].signature for node in nodes], signer, threshold=config.lsh_threshold
    )
    timings["index"] = time.perf_counter() - clock

    clock = time.perf_counter()
    thresholds = Thresholds(config.jaccard, config.containment, config.min_shared)
    cache: dict[tuple[int, int], Similarity] = {}

    def sim(a: int, b: int) -> Similarity:
        key = (a, b) if a < b else (b, a)
        if key not in cache:
            sa, sb = nodes[a].shingles, nodes[b].shingles
            assert sa is not None and sb is not None
            cache[key] = Similarity(*similarity(sa, sb))
        return cache[key]

    assignments: dict[int, Assignment] = {}
    linked = sorted({n for pair in pairs for n in pair})
    comp_of: dict[int, int] = {}
    comps = components(linked, pairs)
    for c, comp in enumerate(comps):
        comp_of.update(dict.fromkeys(comp, c))
    comp_pairs: list[list[tuple[int, int]]] = [[] for _ in comps]
    for a, b in pairs:
        comp_pairs[comp_of[a]].append((a, b))
    verified = 0
    for comp, cpairs in zip(comps, comp_pairs, strict=True):
        for n in comp:
            _load(nodes[n], docs, config)
        edges = [(a, b) for a, b in cpairs if thresholds.accepts(sim(a, b))]
        verified += len(edges)
        for members in cluster_component(comp, edges, sim):
            _finish_cluster(members, nodes, docs, features, sim, thresholds, frequency, assignments)
        for n in comp:
            nodes[n].tokens = nodes[n].shingles = None
        cache.clear()
    for n in range(len(nodes)):
        if n not in comp_of:
            _finish_cluster([n], nodes, docs, features, sim, thresholds, frequency, assignments)
    timings["verify_cluster_score"] = time.perf_counter() - clock

    clock = time.perf_counter()
    cluster_names = {
        cid: f"c{i:06d}" for i, cid in enumerate(sorted({a.cluster for a in assignments.values()}), start=1)
    }
    records = [_record(doc, assignments.get(doc.index), docs, cluster_names) for doc in docs]
    kept = [doc for doc in docs if doc.index in assignments and assignments[doc.index].canonical == doc.index]
    manifest.write_canonical(out_path, kept)
    counts = _counts(records, len(pairs), verified)
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


def _counts(records: Sequence[dict[str, Any]], candidates: int, verified: int) -> dict[str, int]:
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
        "candidate_pairs": candidates,
        "verified_pairs": verified,
    }
    for r in records:
        if r["status"] != "ok":
            counts[f"skipped_{r['status']}"] = counts.get(f"skipped_{r['status']}", 0) + 1
    return counts
