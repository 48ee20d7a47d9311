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
import gc
import os
import shutil
import signal
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import datasketch
import numpy as np
import orjson
import xxhash

from dedup import __version__ as dedup_version
from dedup import canonical, index, manifest, normalize, quality, readers, state
from dedup.cluster import Similarity, Thresholds, cluster_component, components
from dedup.config import Config
from dedup.document import Document, DocumentTable, Features, Status
from dedup.errors import StateError
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

Progress = Callable[[str, int, int | None], None]  # stage, done, total (None: unknown)
_BATCH = 128
_LONE = {"completeness": 1.0, "outvoted": 0.0, "repetition": 0.0}  # relative signals of a lone text
_SPACE = np.array([32], dtype=np.uint8)


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


@contextlib.contextmanager
def _pool(config: Config, **kwargs: Any) -> Iterator[ProcessPoolExecutor]:
    """Worker processes, forked with the run's tables.

    The garbage collector is frozen while they live: a worker's collection would
    otherwise walk every object it inherited (a cron run's stored rows), writing
    to their pages and so copying them all (measured: +3 s of system time for
    two workers at 110k).
    """
    ctx = get_context("fork") if os.name == "posix" else get_context("spawn")
    gc.freeze()
    try:
        with ProcessPoolExecutor(config.workers, mp_context=ctx, **kwargs) as pool:
            yield pool
    finally:
        gc.unfreeze()


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


class _Features:
    """What pass 1 keeps, column by column, in manifest order.

    Per document: its node (distinct normalised text; -1 when skipped) and its
    intrinsic signals. Per node: its content key, shingle count and signature.
    Flat arrays, not an object per document: at a million documents the
    difference is gigabytes.

    Features must be set in manifest order: node numbers (first appearance)
    break ties in clustering, and must not depend on timing or ``--jobs``.
    """

    def __init__(self, num_perm: int) -> None:
        self.num_perm = num_perm
        self.node_of = array("q")
        self.signals = bytearray()
        self.contents = array("Q")
        self.sizes = array("q")
        self.signatures = array("I")
        self._node: dict[int, int] = {}
        self._width = 4 * len(quality.INTRINSIC)
        self._zeros = bytes(self._width)

    def reserve(self) -> None:
        """Make room for the next document (skipped until ``set``)."""
        self.node_of.append(-1)
        self.signals += self._zeros

    def set(self, doc: int, content: int, shingles: int, signature: bytes, signals: bytes) -> None:
        """A document's features (in manifest order): its signature is kept once per distinct text."""
        assert len(signals) == self._width, "signals of another layout"
        n = self._node.setdefault(content, len(self.contents))
        if n == len(self.contents):
            self.contents.append(content)
            self.sizes.append(shingles)
            self.signatures.frombytes(signature)
        self.node_of[doc] = n
        self.signals[doc * self._width : (doc + 1) * self._width] = signals

    def done(self) -> None:
        """No more documents: the content lookup is not needed any more."""
        self._node = {}

    def matrix(self) -> np.ndarray:
        """uint32[nodes, num_perm]: a view of the signatures, not a copy."""
        return np.frombuffer(self.signatures, dtype=np.uint32).reshape(-1, self.num_perm)

    def drop_signatures(self) -> None:
        self.signatures = array("I")

    def feature(self, doc: int) -> Features | None:
        n = self.node_of[doc]
        if n < 0:
            return None
        width = len(quality.INTRINSIC)
        return Features(
            content=self.contents[n],
            shingles=self.sizes[n],
            signature=self.matrix()[n],
            signals=np.frombuffer(self.signals, dtype=np.float32)[doc * width : (doc + 1) * width],
        )


# ---------------------------------------------------------------- pass 2 ----


@dataclass(slots=True)
class _Corpus:
    """What pass 2 and the records read: shared with worker processes by fork, not sent."""

    config: Config
    docs: DocumentTable
    node_of: np.ndarray  # document -> node, -1 when skipped
    order: np.ndarray  # documents sorted by node: node n's are order[starts[n]:starts[n + 1]]
    starts: np.ndarray
    sizes: np.ndarray  # node -> shingle count
    signals: np.ndarray  # document -> intrinsic signals (quality.INTRINSIC order)
    frequency: TokenFrequency

    def members(self, node: int) -> list[int]:
        """The documents (manifest indices) whose normalised text is this node's."""
        return self.order[self.starts[node] : self.starts[node + 1]].tolist()


_corpus: _Corpus | None = None


def _member_signals(corpus: _Corpus, doc: int, relative: dict[str, float]) -> dict[str, float]:
    return {**dict(zip(quality.INTRINSIC, corpus.signals[doc].tolist(), strict=True)), **relative}


def _rank(
    corpus: _Corpus,
    members: Sequence[int],
    relatives: Sequence[dict[str, float]],
    sim: Callable[[int, int], Similarity],
    thresholds: Thresholds,
    sizes: Callable[[int], int],
) -> list[tuple[int, dict[str, Any]]]:
    """Rank the documents of one cluster (a list of node ids); the manifest record of each."""
    node_of: dict[int, int] = {}
    candidates = []
    for n, relative in zip(members, relatives, strict=True):
        for d in corpus.members(n):
            node_of[d] = n
            candidates.append(canonical.Member(d, corpus.docs.paths[d], _member_signals(corpus, d, relative)))
    ranked = canonical.rank(candidates)
    best = ranked[0]
    best_doc = best.member.index
    verdict = {
        "cluster": _cluster_name(corpus.docs.paths[min(node_of)]),
        "canonical": False,
        "duplicate_of": best.member.path,
    }
    out = []
    for scored in ranked:
        d = scored.member.index
        if d == best_doc:
            similar, reason = None, canonical.canonical_reason(ranked)
        else:
            if node_of[d] == node_of[best_doc]:
                similar, match = Similarity(1.0, 1.0, sizes(node_of[d])), "same text after normalisation"
            else:
                similar = sim(node_of[d], node_of[best_doc])
                match = thresholds.explain(similar)
            reason = canonical.duplicate_reason(scored, best, match)
        record = _record(corpus.docs[d])
        record.update(
            verdict,
            similarity=similar.as_dict() if similar else None,
            score=scored.score,
            penalties=_rounded(scored.penalties),
            signals=_rounded(scored.member.signals),
            reason=reason,
        )
        if d == best_doc:
            record.update(canonical=True, duplicate_of=None)
        out.append((d, record))
    return out


def _cluster_name(first_path: str) -> str:
    """Clusters are named after their first member's path: stable across runs."""
    return "c" + xxhash.xxh3_64_hexdigest(first_path.encode())[:12]


def _settle(task: tuple[list[int], np.ndarray]) -> tuple[list[tuple[int, bytes]], int]:
    """Pass 2 for one component: read again, verify, cluster, rank.

    Returns the manifest record (serialised: small to send back) of each of its
    documents, and the number of verified pairs.
    """
    assert _corpus is not None
    corpus = _corpus
    nodes, pairs = task
    config = corpus.config
    toks: dict[int, list[str]] = {}
    shingles: dict[int, np.ndarray] = {}
    for n in nodes:
        text = readers.reload_text(corpus.docs[corpus.members(n)[0]], config)
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

    def frequency(words: Sequence[str]) -> list[int]:
        return [int(c) for c in corpus.frequency.get(token_hashes(words))]

    out: list[tuple[int, bytes]] = []
    for members in cluster_component(nodes, edges, sim):
        if len(members) == 1:
            relatives = [_LONE]
        else:
            relatives = quality.relative(
                [toks[n] for n in members], [shingles[n] for n in members], frequency
            )
        ranked = _rank(corpus, members, relatives, sim, thresholds, lambda n: len(shingles[n]))
        out.extend((d, orjson.dumps(record)) for d, record in ranked)
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


def _no_similarity(a: int, b: int) -> Similarity:
    raise AssertionError("a lone node has nothing to compare with")


_NO_THRESHOLDS = Thresholds(1.0, 1.0, 1)


class _Verdicts:
    """The manifest record of any document, made when asked.

    Components were settled in pass 2 (records kept serialised); groups a cron
    run left unchanged keep their stored records; a lone text (no candidate) is
    ranked here, when its record is needed, so that a million of them never sit
    in memory at once.
    """

    def __init__(self, corpus: _Corpus, settled: dict[int, bytes], kept: dict[int, str]) -> None:
        self.corpus, self.settled, self.kept = corpus, settled, kept
        self._pending: dict[int, dict[str, Any]] = {}  # other copies of a lone text, ranked with it

    def alone(self, doc: int) -> bool:
        """A text of its own, with no candidate and no copy: its record can only say canonical."""
        node = int(self.corpus.node_of[doc])
        starts = self.corpus.starts
        return doc not in self.settled and node >= 0 and starts[node + 1] - starts[node] == 1

    def record(self, doc: int, *, again: bool = False) -> dict[str, Any]:
        """The record of ``doc``; ``again``: it will be asked for again (keep it, serialised)."""
        if (made := self.settled.get(doc)) is not None:
            return orjson.loads(made)
        if (stored := self.kept.get(doc)) is not None:
            record: dict[str, Any] = orjson.loads(stored)
            record["line"] = self.corpus.docs.line(doc) or None  # lines above it may have changed
            return record
        node = int(self.corpus.node_of[doc])
        if node < 0:
            return _record(self.corpus.docs[doc])
        if doc in self._pending:
            return self._pending.pop(doc)
        sizes = self.corpus.sizes
        ranked = dict(
            _rank(self.corpus, [node], [_LONE], _no_similarity, _NO_THRESHOLDS, lambda n: int(sizes[n]))
        )
        record = ranked.pop(doc)
        self._pending.update(ranked)
        if again:
            self.settled[doc] = orjson.dumps(record)
        return record


# ------------------------------------------------------------------ run -----

_STATUS = {str(s): s for s in Status}


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
        progress: called as ``progress(stage, done, total)`` now and then (the CLI draws it);
            stages ``read`` (total unknown), ``verify`` (groups), ``write`` (documents), ``copy``.

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


def _unchanged(doc: Document, prev: state.Stored | None) -> bool:
    """Whether a document is as the state stored it; if so, take its stored facts.

    A whole file is unchanged when its size and mtime are (it is then not read
    at all); a JSONL line, read anyway, when its sha256 is.
    """
    if prev is None or prev.gone is not None:
        return False
    if doc.offset < 0:
        if prev.offset >= 0:
            return False
        try:
            info = os.stat(doc.file)
        except OSError:
            return False
        if (prev.size, prev.mtime_ns) != (info.st_size, info.st_mtime_ns):
            return False
        doc.size, doc.mtime_ns, doc.sha256 = prev.size, prev.mtime_ns, prev.sha256 or ""
        doc.status, doc.error = _STATUS[prev.status], prev.error
    elif doc.status is not Status.OK or prev.sha256 != doc.sha256 or prev.status != Status.OK:
        return False
    doc.text = None
    return True


def _pass1(
    sources: Sequence[Any],
    config: Config,
    previous: dict[str, state.Stored],
    frequency: TokenFrequency,
    progress: Progress | None,
) -> tuple[DocumentTable, _Features, bytearray]:
    """Read, normalise and sign every document (or take its stored features), in manifest order.

    Returns the documents, their features, and a flag per document: read in this run.
    """
    table = DocumentTable(list(sources))
    feats = _Features(config.num_perm)
    fresh = bytearray()
    # Stored features wait behind documents still in the workers, to be set in manifest order.
    waiting: deque[tuple[int, state.Stored]] = deque()
    in_flight = 0

    def take(doc: int, prev: state.Stored) -> None:
        if prev.status == Status.OK and prev.signature and prev.signals:
            assert prev.content is not None and prev.shingles is not None
            feats.set(doc, prev.content, prev.shingles, prev.signature, prev.signals)
            prev.signature = None  # moved to the run's features: held once, not twice

    def take_waiting(before: int) -> None:
        while waiting and waiting[0][0] < before:
            take(*waiting.popleft())

    def to_analyse() -> Iterator[Document]:
        nonlocal in_flight
        for doc in readers.iter_documents(sources, config, read=False):
            prev = previous.get(doc.path)
            unchanged = _unchanged(doc, prev)
            table.append(doc)
            feats.reserve()
            fresh.append(not unchanged)
            if not unchanged:
                in_flight += 1
                yield doc
            elif prev is not None:
                if in_flight:
                    waiting.append((doc.index, prev))
                else:
                    take(doc.index, prev)

    for results, delta in _analyse_all(to_analyse(), config):
        frequency.merge(delta)
        for doc, feat in results:
            take_waiting(doc.index)
            table.update(doc)
            if feat is not None:
                signature, signals = feat.signature.tobytes(), feat.signals.tobytes()
                feats.set(doc.index, feat.content, feat.shingles, signature, signals)
            in_flight -= 1
        if not in_flight:
            take_waiting(len(table))
        _checkpoint("pass1")
        if progress:
            progress("read", len(table), None)
    take_waiting(len(table))
    feats.done()
    return table, feats, fresh


def _run(
    sources: Sequence[Any], out: Path, config: Config, store: state.State | None, progress: Progress | None
) -> RunResult:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    started = state.now()
    manifest.remove_leftovers(out)
    previous = store.documents() if store else {}
    run_id = store.last_run() + 1 if store else 1
    frequency = TokenFrequency()
    if store and (table := store.blob("token_frequency")) is not None:
        try:
            frequency.loads(table)
        except (ValueError, zlib.error) as err:
            raise StateError(
                f"state {config.state}: stored token frequencies are unreadable ({err}); run with --rebuild"
            ) from err

    docs, feats, fresh = _pass1(sources, config, previous, frequency, progress)
    node_of = np.frombuffer(feats.node_of, dtype=np.int64)
    order = np.argsort(node_of, kind="stable")[int(np.count_nonzero(node_of < 0)) :]
    sizes = np.frombuffer(feats.sizes, dtype=np.int64)
    corpus = _Corpus(
        config=config,
        docs=docs,
        node_of=node_of,
        order=order,
        starts=np.searchsorted(node_of[order], np.arange(len(sizes) + 1)),
        sizes=sizes,
        signals=np.frombuffer(feats.signals, dtype=np.float32).reshape(len(docs), len(quality.INTRINSIC)),
        frequency=frequency,
    )
    timings["read_sign"] = time.perf_counter() - clock

    clock = time.perf_counter()
    signatures = feats.matrix()
    bands, rows_per_band = index.band_layout(threshold=config.lsh_threshold, num_perm=config.num_perm)
    proposed = index.candidate_pairs(signatures, bands=bands, rows=rows_per_band)
    pairs = index.prefilter(
        proposed, signatures, sizes, jaccard=config.jaccard, containment=config.containment
    )
    n_proposed = len(proposed)
    del signatures, proposed
    if store is None:  # signatures are only kept to be stored: 1 KB per text, the largest table
        feats.drop_signatures()
    timings["index"] = time.perf_counter() - clock

    clock = time.perf_counter()
    linked = np.unique(pairs) if len(pairs) else np.empty(0, dtype=np.int64)
    comps = components(linked.tolist(), pairs.tolist())
    comp_of = np.full(len(sizes), -1, dtype=np.int64)
    for c, comp in enumerate(comps):
        comp_of[comp] = c
    by_comp = np.argsort(comp_of[pairs[:, 0]], kind="stable") if len(pairs) else np.empty(0, dtype=np.int64)
    bounds = np.searchsorted(comp_of[pairs[by_comp, 0]], np.arange(len(comps) + 1)) if len(pairs) else [0]
    tasks = [(comp, pairs[by_comp[bounds[c] : bounds[c + 1]]]) for c, comp in enumerate(comps)]
    kept: dict[int, str] = {}  # document -> its stored record (JSON), when its group did not change
    prints: dict[int, str] | None = None  # node -> fingerprint of its group (cron)
    if store:
        prints, unchanged = _unchanged_groups(corpus, comps, comp_of, previous, kept)
        tasks = [t for c, t in enumerate(tasks) if c not in unchanged]
    settled: dict[int, bytes] = {}
    verified = 0
    for done, (results, n_edges) in enumerate(_settle_all(corpus, tasks), start=1):
        settled.update(results)
        verified += n_edges
        if progress:
            progress("verify", done, len(tasks))
    verdicts = _Verdicts(corpus, settled, kept)
    changes = _changes(docs, verdicts, previous, run_id)
    timings["verify_cluster_score"] = time.perf_counter() - clock

    clock = time.perf_counter()
    tally = _Tally(n_proposed, len(pairs), verified)
    # The manifest is streamed into a temporary file, renamed into place last.
    with manifest.atomic_file(out / manifest.MANIFEST) as manifest_fh:
        rows = _emit(
            docs, feats, verdicts, previous, fresh, prints, changes, run_id, manifest_fh, tally, progress
        )
        if store:
            store.commit_run(
                run=run_id,
                started=started,
                inputs=[s.root for s in sources],
                counts=lambda: {**tally.counts, **changes.counts()},
                documents=rows,
                supersessions=changes.supersessions,
                blobs={"token_frequency": frequency.dumps()},
            )
        else:
            deque(rows, maxlen=0)  # no state: the rows are only made for the side effects
        _checkpoint("committed")
        kept_docs = tally.canonical.tolist()
        if progress:
            progress("copy", 0, len(kept_docs))
        if store and run_id > 1 and store.synced_run() == run_id - 1 and (out / manifest.CANONICAL).is_dir():
            before = {p: s for p, s in previous.items() if s.gone is None and s.canonical}
            _sync_canonical(out, docs, kept_docs, before, fresh, config)
        else:
            _write_canonical(out, docs, kept_docs, config)
        if progress:
            progress("copy", len(kept_docs), len(kept_docs))
        counts = {**tally.counts, **changes.counts()}
        timings["write"] = time.perf_counter() - clock
        summary = {
            "dedup": dedup_version,
            "datasketch": datasketch.__version__,
            "minhash": scheme_stamp(
                num_perm=config.num_perm, seed=config.seed, shingle_size=config.shingle_size
            ),
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
            manifest.write_delta(out, run_id, changes.delta())
        manifest.write_summary(out, summary)
    _checkpoint("written")
    if store:
        store.mark_synced(run_id)
    return RunResult(out=out, summary=summary, counts=counts)


def _fingerprint(corpus: _Corpus, group: Sequence[int]) -> str:
    """Identity of a group of documents judged together: unchanged => its verdicts still hold."""
    docs = corpus.docs
    lines = sorted(f"{docs.paths[d]}\t{docs.sha256(d)}" for n in group for d in corpus.members(n))
    return xxhash.xxh3_64_hexdigest("\n".join(lines).encode())


def _unchanged_groups(
    corpus: _Corpus,
    comps: list[list[int]],
    comp_of: np.ndarray,
    previous: dict[str, state.Stored],
    kept: dict[int, str],
) -> tuple[dict[int, str], set[int]]:
    """Fingerprint every group (component, or lone text) and find the ones the state already judged.

    Fills ``kept`` (document -> stored record) for the documents of unchanged
    groups; returns the fingerprint of each node and the unchanged components.
    A lone text with one document, the common case, is fingerprinted inline.
    """
    docs = corpus.docs
    prints: dict[int, str] = {}

    def judged(group: Sequence[int]) -> bool:
        print_ = _fingerprint(corpus, group)
        prints.update((n, print_) for n in group)
        members = [d for n in group for d in corpus.members(n)]
        stored = [previous.get(docs.paths[d]) for d in members]
        if not all(p is not None and p.gone is None and p.component == print_ for p in stored):
            return False
        kept.update((d, p.record_json) for d, p in zip(members, stored, strict=True) if p is not None)
        return True

    unchanged = {c for c, group in enumerate(comps) if judged(group)}
    lone = np.flatnonzero(comp_of < 0)
    single = (corpus.starts[lone + 1] - corpus.starts[lone]) == 1
    for n, d in zip(lone[single].tolist(), corpus.order[corpus.starts[lone[single]]].tolist(), strict=True):
        path = docs.paths[d]
        print_ = prints[n] = xxhash.xxh3_64_hexdigest(f"{path}\t{docs.sha256(d)}".encode())
        p = previous.get(path)
        if p is not None and p.gone is None and p.component == print_:
            kept[d] = p.record_json
    for n in lone[~single].tolist():
        judged([n])
    return prints, unchanged


@dataclass(slots=True)
class _Changes:
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


def _changes(
    docs: DocumentTable, verdicts: _Verdicts, previous: dict[str, state.Stored], run_id: int
) -> _Changes:
    """Supersessions and gone documents (a cron run; nothing without a previous run)."""
    supersessions: list[tuple[str, str, str, str]] = []
    if not previous:
        return _Changes(supersessions, {}, {}, [])
    successors: dict[int, str] = {}  # demoted canonical -> the path that replaced it
    kept = verdicts.kept  # a group that did not change: neither did its verdicts
    for i, path in enumerate(docs.paths):
        if i in kept:
            continue
        prev = previous.get(path)
        if prev is not None and prev.gone is None and prev.canonical and not verdicts.alone(i):
            record = verdicts.record(i, again=True)  # written to the manifest later
            if not record["canonical"] and record["duplicate_of"] is not None:
                successors[i] = record["duplicate_of"]
    present = set(docs.paths)
    gone: dict[str, int] = {}
    gone_entries: list[dict[str, Any]] = []
    orphaned: dict[Any, str] = {}  # previous cluster -> its canonical, now gone
    for key in sorted(previous.keys() - present):
        prev = previous[key]
        gone[key] = prev.gone if prev.gone is not None else run_id
        if prev.gone is None:
            gone_entries.append({"change": "gone", "path": key, "cluster": prev.cluster})
            if prev.canonical:
                orphaned.setdefault(prev.cluster, key)
    del present
    # The records of the successors, and of the first canonical of each orphaned cluster.
    wanted = set(successors.values())
    records: dict[str, dict[str, Any]] = {}
    heirs: dict[Any, dict[str, Any]] = {}
    # Cluster names need no JSON escaping: a row of an orphaned cluster is found without parsing.
    marks = tuple(orjson.dumps({"cluster": c}).decode()[1:-1] for c in orphaned)
    # Neither is in a group that did not change (a gone member changes its group).
    for i in range(len(docs)) if wanted or marks else ():
        if i in kept:
            continue
        path = docs.paths[i]
        prev = previous.get(path)
        if path in wanted:
            records[path] = verdicts.record(i)
        if marks and prev is not None and prev.gone is None and any(m in prev.record_json for m in marks):
            cluster = prev.cluster
            if cluster in orphaned and cluster not in heirs:
                record = verdicts.record(i)
                if record["canonical"]:
                    heirs[cluster] = record
    for i, successor in successors.items():
        why = f"{successor} is cleaner: {records[successor]['reason']}"
        supersessions.append((verdicts.record(i)["cluster"], docs.paths[i], successor, why))
    for key in gone:
        prev = previous[key]
        if prev.gone is None and prev.canonical:
            heir = heirs.get(prev.cluster)
            if heir is not None:
                supersessions.append((heir["cluster"], key, heir["path"], "the previous canonical is gone"))
    supersedes: dict[str, list[dict[str, Any]]] = {}
    for _, old, successor, _ in supersessions:
        supersedes.setdefault(successor, []).append({"path": old, "run": run_id})
    return _Changes(supersessions, supersedes, gone, gone_entries)


class _Tally:
    """Counts over the records as they are written, and which documents are kept."""

    def __init__(self, proposed: int, candidates: int, verified: int) -> None:
        self.counts: dict[str, int] = {
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
        self.canonical = array("q")  # manifest indices of the canonical documents
        self._with_duplicates: set[str] = set()

    def add(self, doc: int, status: str, canonical: bool, cluster: str | None) -> None:
        """Count one record (``cluster`` matters only for a duplicate)."""
        counts = self.counts
        counts["documents"] += 1
        if status != "ok":
            counts["skipped"] += 1
            counts[f"skipped_{status}"] = counts.get(f"skipped_{status}", 0) + 1
            return
        counts["ok"] += 1
        if canonical:  # one per cluster
            counts["canonical"] += 1
            counts["clusters"] += 1
            self.canonical.append(doc)
        else:
            counts["duplicates"] += 1
            self._with_duplicates.add(cluster)  # type: ignore[arg-type]
            counts["clusters_with_duplicates"] = len(self._with_duplicates)


def _emit(
    docs: DocumentTable,
    feats: _Features,
    verdicts: _Verdicts,
    previous: dict[str, state.Stored],
    fresh: bytearray,
    prints: dict[int, str] | None,
    changes: _Changes,
    run_id: int,
    fh: Any,
    tally: _Tally,
    progress: Progress | None = None,
) -> Iterator[state.Stored]:
    """Write every record to the manifest in order, count it, and yield the state rows that changed.

    One pass, one record in memory at a time. ``prints`` is ``None`` without a
    state (nothing to yield). ``last_seen`` is written when a document is first
    stored or goes missing: a present document was last seen in the latest run.
    """
    for i in range(len(docs)):
        if progress and (i % 4096 == 0 or i == len(docs) - 1):
            progress("write", i + 1, len(docs))
        stored = verdicts.kept.get(i)
        prev = previous.get(docs.paths[i])
        if stored is not None and prev is not None and prev.line == docs.line(i):
            # Its group did not change: the stored line is the record, written as it is.
            fh.write(stored.encode() + b"\n")
            canonical = prev.canonical
            tally.add(i, prev.status, canonical, None if canonical else prev.cluster)
            text = stored  # its row changes only if the file moved or was touched
        else:
            record = verdicts.record(i)
            path = record["path"]
            if path in changes.supersedes:
                record["supersedes"] = changes.supersedes[path]
            line = orjson.dumps(record)
            fh.write(line + b"\n")
            tally.add(i, record["status"], record["canonical"], record["cluster"])
            if prev is None or prev.gone is not None:
                changes.new += 1
                if prints is not None:
                    changes.listed.append({"change": "new", **_brief(record)})
            elif fresh[i] and prev.sha256 != docs.sha256(i):
                changes.changed += 1
                changes.listed.append({"change": "changed", **_brief(record)})
            if prints is None:
                continue
            text = line.decode()
        assert prints is not None
        node = feats.node_of[i]
        component = prints.get(node) if node >= 0 else None
        if (
            prev is not None
            and prev.gone is None
            and prev.record_json == text
            and prev.component == component
            and (prev.file, prev.offset, prev.size, prev.mtime_ns)
            == (docs.file(i), docs.offset(i), docs.size(i), docs.mtime_ns(i))
        ):
            continue
        doc = docs[i]
        feat = feats.feature(i)
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
            signature=None if feat is None else feat.signature.tobytes(),
            signals=None if feat is None else feat.signals.tobytes(),
            component=component,
            record_json=text,
            first_seen=prev.first_seen if prev else run_id,
            last_seen=run_id,
            gone=None,
        )
    fields = dict.fromkeys(_RECORD_FIELDS)
    for key, gone_run in changes.gone.items():
        prev = previous[key]
        record = {
            **fields,
            "path": key,
            "status": "gone",
            "sha256": prev.sha256,
            "size": prev.size,
            "canonical": False,
            "reason": f"not in the inputs since run {gone_run}",
            "gone_run": gone_run,
        }
        fh.write(orjson.dumps(record) + b"\n")
        if prev.gone is None and prints is not None:
            yield dataclasses.replace(prev, gone=gone_run, last_seen=gone_run - 1)


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("path", "status", "cluster", "canonical", "duplicate_of")}


def _sync_canonical(
    out: Path,
    docs: DocumentTable,
    kept: list[int],
    before: dict[str, state.Stored],
    fresh: bytearray,
    config: Config,
) -> None:
    """Bring OUT/canonical up to date in place: copy what is new or changed, remove what is no longer kept."""
    root = out / manifest.CANONICAL
    files = [i for i in kept if docs.offset(i) < 0]
    wanted = {docs.paths[i] for i in files}
    for path, prev in before.items():
        if prev.offset < 0 and path not in wanted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / path)
    base = str(root)
    todo = [  # new, changed, or removed from OUT by someone: copied
        i
        for i in files
        if docs.paths[i] not in before or fresh[i] or not os.path.exists(os.path.join(base, docs.paths[i]))
    ]
    _copy_files(docs, todo, root, config, atomic=True)
    _checkpoint("canonical")
    # JSONL outputs: rewrite the ones whose kept lines changed, remove the ones left with none.
    now: dict[str, list[tuple[int, str, str]]] = {}
    for i in kept:
        if docs.offset(i) >= 0:
            now.setdefault(docs.file(i), []).append((docs.offset(i), docs.paths[i], docs.sha256(i)))
    then: dict[str, list[tuple[int, str, str]]] = {}
    for path, prev in before.items():
        if prev.offset >= 0:
            then.setdefault(prev.file, []).append((prev.offset, path, prev.sha256 or ""))
    outputs = {src.root: manifest.jsonl_output(src) for src in docs.sources if src.kind == "jsonl"}
    redo = {
        f for f, lines in now.items() if sorted(then.get(f, [])) != lines or not (root / outputs[f]).exists()
    }
    for file in then.keys() - now.keys():
        if file in outputs:  # an input still read, with no line kept any more
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / outputs[file])
    if redo:
        staging = manifest.stage_canonical(out)
        try:
            manifest.write_jsonl_lines(
                staging,
                (docs[i] for i in kept if docs.file(i) in redo and docs.offset(i) >= 0),
            )
            for made in sorted(p for p in staging.rglob("*") if p.is_file()):
                target = root / made.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(made, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _write_canonical(out: Path, docs: DocumentTable, kept: list[int], config: Config) -> None:
    """Canonical copies, staged and swapped in whole."""
    staging = manifest.stage_canonical(out)
    try:
        _copy_files(docs, [i for i in kept if docs.offset(i) < 0], staging, config)
        manifest.write_jsonl_lines(staging, (docs[i] for i in kept if docs.offset(i) >= 0))
        manifest.publish_canonical(out, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_files(
    docs: DocumentTable, files: Sequence[int], root: Path, config: Config, *, atomic: bool = False
) -> None:
    """Byte-identical copies at their manifest paths, by the kernel, from a few threads (I/O bound).

    Each thread copies one contiguous share of the list: no future per file.
    Directories are made once up front: ``mkdir(exist_ok=True)`` per file costs an
    exception per file.
    """
    base = str(root)
    for parent in sorted({os.path.dirname(docs.paths[i]) for i in files}):
        os.makedirs(os.path.join(base, parent), exist_ok=True)

    def copy_share(share: Sequence[int]) -> None:
        for i in share:
            doc = docs[i]
            manifest.copy_document(doc, os.path.join(base, doc.path), atomic=atomic)

    threads = max(2, config.workers)
    step = -(-len(files) // threads) or 1
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(copy_share, [files[k : k + step] for k in range(0, len(files), step)]))


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


_RECORD_FIELDS = (
    "path", "status", "sha256", "size", "line", "cluster", "canonical", "duplicate_of",
    "similarity", "score", "penalties", "signals", "reason", "error", "warning",
)  # fmt: skip


def _record(doc: Document) -> dict[str, Any]:
    """The manifest line of one input document before any verdict (schema in README.md)."""
    return {
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
        **(doc.extra or {}),
    }
