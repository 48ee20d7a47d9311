"""Cron mode: the persistent state, incremental runs, locking and crash safety."""

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import (
    ARTICLES,
    COUNCIL,
    MUSEUM,
    NOISE,
    STORM,
    STORM_OTHER,
    by_path,
    garble,
    read_manifest,
    scrape_files,
    truncate,
)
from hypothesis import example, given
from hypothesis import strategies as st

from dedup import Config, run
from dedup.errors import StateLockedError, StateMismatchError
from dedup.locks import locked
from dedup.stored import KnownPairs

REPO = Path(__file__).resolve().parents[1]


def cron(inputs: Path, tmp: Path, **options) -> dict:
    result = run([inputs], tmp / "out", Config(jobs=1, state=str(tmp / "state"), **options))
    return result.counts


def deltas(tmp: Path, run_id: int) -> list[dict]:
    return [
        orjson.loads(x) for x in (tmp / "out" / "runs" / f"run-{run_id:06d}.jsonl").read_bytes().splitlines()
    ]


def partition(records: list[dict]) -> set[frozenset[str]]:
    clusters: dict[str, set[str]] = {}
    for r in records:
        if r["status"] == "ok":
            clusters.setdefault(r["cluster"], set()).add(r["path"])
    return {frozenset(members) for members in clusters.values()}


def verdicts(records: list[dict]) -> list[tuple]:
    keys = ("path", "status", "cluster", "canonical", "duplicate_of", "score", "reason")
    return [tuple(r.get(k) for k in keys) for r in records if r["status"] != "gone"]


@pytest.fixture
def scrape(write_tree) -> Path:
    return write_tree(scrape_files("day1/"))


def test_rerun_without_change_changes_nothing(scrape: Path, tmp_path: Path) -> None:
    first = cron(scrape, tmp_path)
    manifest = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    again = cron(scrape, tmp_path)
    assert first["new"] == 5 and again["new"] == again["changed"] == again["superseded"] == again["gone"] == 0
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == manifest
    assert deltas(tmp_path, 2) == []


def test_rerun_over_the_same_texts_takes_the_stored_pairs_and_bands_again_after_a_change(
    scrape: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dedup import index

    cron(scrape, tmp_path)
    manifest = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    banded = []
    real = index.banding
    monkeypatch.setattr(index, "banding", lambda *a, **k: banded.append(1) or real(*a, **k))
    # The same texts in the same order: banding would find the pairs stored by the last run.
    (scrape / "day1" / "storm.txt").touch()  # read again, same text
    again = cron(scrape, tmp_path)
    assert banded == [] and again["changed"] == 0 and again["lsh_pairs"] > 0
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == manifest
    # New texts: only they are banded, against the stored texts' signatures (not loaded with their rows).
    (scrape / "day1" / "museum.txt").write_text(MUSEUM)
    (scrape / "day1" / "museum-copy.txt").write_text(NOISE["boilerplate"](MUSEUM))
    (scrape / "day1" / "storm-copy.txt").write_text(NOISE["ocr"](STORM))
    cron(scrape, tmp_path)
    assert banded == []
    assert read_manifest(tmp_path / "out") == read_manifest(
        run([scrape], tmp_path / "full", Config(jobs=1)).out
    )
    # An exact copy of a stored text, first in path order: that text's node moves before
    # the others. With no bucket linked as a star the pairs are the same set: not banded.
    banded.clear()  # the full run above banded
    (scrape / "0-storm.txt").write_text(STORM)
    cron(scrape, tmp_path)
    assert banded == []
    assert verdicts(read_manifest(tmp_path / "out")) == verdicts(
        read_manifest(run([scrape], tmp_path / "full1", Config(jobs=1)).out)
    )  # storm.txt's copy is canonical now (first in order): the manifest notes the supersession
    # A text gone: taken out of the buckets the band store holds it in, nothing banded again.
    banded.clear()
    (scrape / "day1" / "schools.txt").unlink()
    cron(scrape, tmp_path)
    assert banded == []
    assert verdicts(read_manifest(tmp_path / "out")) == verdicts(
        read_manifest(run([scrape], tmp_path / "full2", Config(jobs=1)).out)
    )


def test_rerun_puts_back_a_canonical_copy_removed_from_out(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    canonical = tmp_path / "out" / "canonical"
    kept = sorted(p.relative_to(canonical) for p in canonical.rglob("*.txt"))
    (canonical / kept[0]).unlink()
    cron(scrape, tmp_path)
    assert sorted(p.relative_to(canonical) for p in canonical.rglob("*.txt")) == kept
    assert (canonical / kept[0]).read_bytes() == (scrape / kept[0]).read_bytes()


def test_new_cleaner_copy_supersedes_the_canonical(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    before = by_path(tmp_path / "out")
    old = next(p for p in ("day1/council-a.txt", "day1/council-b.txt") if before[p]["canonical"])
    (scrape / "day2").mkdir()
    (scrape / "day2" / "council-teaser.txt").write_text(truncate(COUNCIL, 0.45))
    counts = cron(scrape, tmp_path)
    after = by_path(tmp_path / "out")
    assert counts["new"] == 1 and counts["superseded"] == 1
    assert (
        after["day2/council-teaser.txt"]["canonical"]
        and after[old]["duplicate_of"] == "day2/council-teaser.txt"
    )
    assert after["day2/council-teaser.txt"]["supersedes"] == [{"path": old, "run": 2}]
    change = next(d for d in deltas(tmp_path, 2) if d["change"] == "superseded")
    assert (change["old"], change["new"]) == (old, "day2/council-teaser.txt") and "cleaner" in change[
        "reason"
    ]
    canonical = tmp_path / "out" / "canonical"
    assert (canonical / "day2/council-teaser.txt").exists() and not (canonical / old).exists()
    # The new document was matched against the whole history, not only against day2.
    assert after["day2/council-teaser.txt"]["cluster"] == after["day1/council-a.txt"]["cluster"]


def test_gone_files_are_recorded_and_their_cluster_reelected(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    (scrape / "day1" / "storm.txt").unlink()
    counts = cron(scrape, tmp_path)
    records = by_path(tmp_path / "out")
    assert counts["gone"] == 1 and counts["documents"] == 4 and counts["skipped"] == 0
    assert records["day1/storm.txt"]["status"] == "gone" and records["day1/storm.txt"]["gone_run"] == 2
    assert records["day1/storm-boiler.txt"]["canonical"]
    assert {d["change"] for d in deltas(tmp_path, 2)} == {"gone", "superseded"}
    assert not (tmp_path / "out" / "canonical" / "day1" / "storm.txt").exists()
    assert cron(scrape, tmp_path)["gone"] == 0  # reported once, remembered after
    assert by_path(tmp_path / "out")["day1/storm.txt"]["gone_run"] == 2


def test_changed_file_is_signed_again(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    (scrape / "day1" / "schools.txt").write_text(MUSEUM)
    counts = cron(scrape, tmp_path)
    assert counts["changed"] == 1 and counts["new"] == 0
    assert (
        by_path(tmp_path / "out")["day1/schools.txt"]["sha256"] != by_path(tmp_path / "out")["day1/storm.txt"]
    )


def test_incremental_equals_full_rebuild(scrape: Path, tmp_path: Path, write_tree) -> None:
    cron(scrape, tmp_path)
    (scrape / "day2").mkdir()
    (scrape / "day2" / "teaser.txt").write_text(truncate(COUNCIL, 0.5))
    (scrape / "day2" / "museum.txt").write_text(MUSEUM)
    (scrape / "day2" / "museum-ocr.txt").write_text(NOISE["ocr"](MUSEUM))
    cron(scrape, tmp_path)
    full = tmp_path / "full"
    run([scrape], full, Config(jobs=1))
    incremental = read_manifest(tmp_path / "out")
    assert verdicts(incremental) == verdicts(read_manifest(full))
    assert partition(incremental) == partition(read_manifest(full))


def test_state_round_trip_keeps_signatures(scrape: Path, tmp_path: Path) -> None:
    from dedup.document import Document, Source
    from dedup.pass1 import analyse
    from dedup.rows import signature_chunks
    from dedup.signatures import Signer
    from dedup.state import State

    cron(scrape, tmp_path)
    store = State(tmp_path / "state", Config(jobs=1).stamp())  # stamped with what signatures depend on
    try:
        docs = store.documents()
        assert set(docs) == {p for p in by_path(tmp_path / "out")}
        storm = docs["day1/storm.txt"]
        config = Config(jobs=1)
        file = str(scrape / "day1" / "storm.txt")
        doc = Document(0, "day1/storm.txt", Source("dir", str(scrape), ""), file)
        _, feat, _ = analyse(doc, config, Signer(num_perm=config.num_perm, seed=config.seed))
        stored = {
            int(key): signature.tobytes()
            for keys, signatures in signature_chunks(store)
            for key, signature in zip(keys, signatures, strict=True)
        }
        assert feat is not None and stored[feat.content] == feat.signature.tobytes()
        assert storm.last_seen == 1
        assert storm.content == feat.content and storm.signals == feat.signals.tobytes()
        assert storm.record == by_path(tmp_path / "out")["day1/storm.txt"]
        assert store.history()[0][0] == 1 and store.synced_run() == 1
    finally:
        store.close()


def test_other_parameters_are_refused_unless_rebuilt(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    with pytest.raises(StateMismatchError, match=r"num_perm 256 -> 128.*--rebuild"):
        cron(scrape, tmp_path, num_perm=128, force=True)
    assert cron(scrape, tmp_path, num_perm=128, rebuild=True)["new"] == 5


def test_second_run_waits_then_gives_up(scrape: Path, tmp_path: Path) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locked(tmp_path / "state", 0):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        with pytest.raises(StateLockedError, match="locked by pid") as refused:
            cron(scrape, tmp_path, lock_timeout=0.3)
        assert refused.value.pid == os.getpid() and refused.value.path == tmp_path / "state"  # the holder
        result = subprocess.run(
            [sys.executable, "-m", "dedup", "run", str(scrape), "--out", str(tmp_path / "out"),
             "--state", str(tmp_path / "state"), "--lock-timeout", "0.2", "-j1"],
            capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert result.returncode == 3 and result.stderr.startswith("Error: state ")
    finally:
        release.set()
        holder.join()
    assert cron(scrape, tmp_path, lock_timeout=5)["new"] == 5  # free again


@pytest.mark.parametrize("point", ["pass1", "committed", "canonical", "written"])
def test_sigkill_at_any_point_then_rerun_matches_an_uninterrupted_run(
    scrape: Path, tmp_path: Path, point: str
) -> None:
    cron(scrape, tmp_path)
    (scrape / "day2").mkdir()
    (scrape / "day2" / "teaser.txt").write_text(truncate(COUNCIL, 0.45))
    (scrape / "day1" / "storm.txt").unlink()
    command = [sys.executable, "-m", "dedup", "run", str(scrape), "--out", str(tmp_path / "out"),
               "--state", str(tmp_path / "state"), "-j1", "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The same run from a launcher that kills its own process at the checkpoint.
    launcher = [sys.executable, str(REPO / "tests" / "crash_at.py"), point,
                str(scrape), str(tmp_path / "out"), str(tmp_path / "state")]  # fmt: skip
    killed = subprocess.run(launcher, cwd=REPO, env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr
    if point in ("committed", "canonical"):  # killed while the manifest streamed to its temporary file
        assert list((tmp_path / "out").glob(".manifest.jsonl.*.tmp"))
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert not list((tmp_path / "out").glob(".*.tmp"))  # what the killed run left is cleared

    reference = tmp_path / "reference"
    reference.mkdir()
    os.rename(scrape / "day2", tmp_path / "day2-later")
    (scrape / "day1" / "storm.txt").write_text(STORM)
    first = Config(jobs=1, state=str(reference / "state"))
    run([scrape], reference / "out", first)
    os.rename(tmp_path / "day2-later", scrape / "day2")
    (scrape / "day1" / "storm.txt").unlink()
    run([scrape], reference / "out", first)
    assert verdicts(read_manifest(tmp_path / "out")) == verdicts(read_manifest(reference / "out"))
    ours = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out" / "canonical").rglob("*"))
    theirs = sorted(p.relative_to(reference / "out") for p in (reference / "out" / "canonical").rglob("*"))
    assert ours == theirs


def _jsonl(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in rows))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_jsonl_lines_that_moved_keep_their_verdicts_under_their_new_line(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    _jsonl(feed, [("c1", COUNCIL), ("c2", NOISE["html"](COUNCIL)), ("m1", MUSEUM)])
    cron(feed, tmp_path)
    before = by_path(tmp_path / "out")
    _jsonl(feed, [("s1", STORM), ("c1", COUNCIL), ("c2", NOISE["html"](COUNCIL)), ("m1", MUSEUM)])
    cron(feed, tmp_path)
    after = by_path(tmp_path / "out")
    assert [after[k]["line"] for k in ("c1", "c2", "m1")] == [2, 3, 4]
    for key in ("c1", "c2", "m1"):  # the same verdicts, nothing else changed
        assert {**after[key], "line": None} == {**before[key], "line": None}
    run([feed], tmp_path / "full", Config(jobs=1))
    assert read_manifest(tmp_path / "out") == read_manifest(tmp_path / "full")


def test_jsonl_outputs_are_rewritten_only_when_their_kept_lines_change(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    a, b = feeds / "a.jsonl", feeds / "b.jsonl"
    _jsonl(a, [("s1", STORM), ("c1", COUNCIL)])
    _jsonl(b, [("s2", NOISE["boilerplate"](STORM)), ("m1", MUSEUM)])
    config = Config(jobs=1, state=str(tmp_path / "state"))

    def cron_run() -> dict[str, bytes]:
        run([a, b], tmp_path / "out", config)
        full = tmp_path / "full"
        run([a, b], full, Config(jobs=1, force=True))
        assert _tree(tmp_path / "out" / "canonical") == _tree(full / "canonical")  # as a full rebuild
        return _tree(tmp_path / "out" / "canonical")

    first = cron_run()
    outputs = sorted(p for p in (tmp_path / "out" / "canonical").rglob("*.jsonl") if p.is_file())
    assert len(outputs) == 2
    stamps = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs]
    assert cron_run() == first
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs] == stamps  # not rewritten

    _jsonl(a, [("s1", STORM), ("c1", COUNCIL), ("m2", garble(MUSEUM, "The museum director"))])
    cron_run()
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs][1] == stamps[1]  # b untouched

    _jsonl(b, [("c2", COUNCIL)])  # b's only line now duplicates a kept line of a: nothing of b is kept
    after = cron_run()
    assert not any(name.startswith("b.jsonl") for name in after)
    _jsonl(b, [("m1", MUSEUM)])
    assert any(name.startswith("b.jsonl") for name in cron_run())
    b.write_bytes(b"")  # no document at all in b now: its output goes too
    assert not any(name.startswith("b.jsonl") for name in cron_run())


@given(
    path=st.text(),
    reason=st.text(),
    canonical=st.booleans(),
    cluster=st.none() | st.from_regex(r"c[0-9a-f]{12}", fullmatch=True),
)
@example(path='a"cluster":"cx', reason='"canonical":true,"cluster":"c', canonical=False, cluster=None)
def test_stored_canonical_flag_and_cluster_are_read_exactly(
    path: str, reason: str, canonical: bool, cluster: str | None
) -> None:
    from dedup.state import Stored

    # Paths and reasons may contain '"cluster":' or '"canonical":true' themselves.
    record = {"path": path, "cluster": cluster, "canonical": canonical, "reason": reason}
    row = Stored(
        key=path, file=path, offset=-1, line=0, size=1, mtime_ns=1, sha256=None, status="ok", error=None,
        content=None, shingles=None, signature=None, signals=None, component=None,
        record_json=orjson.dumps(record).decode(), first_seen=1, last_seen=1, gone=None,
    )  # fmt: skip
    assert row.canonical is canonical and row.cluster == cluster and row.record == record


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


_DAY1 = {
    f"d{k:02d}-{name}.txt": list(NOISE.values())[k % len(NOISE)](text)
    for k, (name, text) in enumerate([*ARTICLES.items(), *ARTICLES.items(), *ARTICLES.items()])
}
_DAY2 = {  # between day 1's names: exact copies listed before their originals, cleaner copies, an edit
    "d00-a-copy.txt": _DAY1["d05-storm.txt"],
    "d03-a-clean.txt": COUNCIL,
    "d07-a-teaser.txt": truncate(MUSEUM, 0.4),
    "d09-a-copy.txt": _DAY1["d09-storm.txt"],
    "d02-storm_other.txt": STORM_OTHER + "\n\nAdvertisement",
}


@pytest.mark.parametrize("jobs", [1, 2])
def test_cron_pass_one_numbers_texts_as_a_full_pass_one(tmp_path: Path, jobs: int) -> None:
    from dedup import cron_pass1, readers
    from dedup.frequency import TokenFrequency
    from dedup.incremental import Incremental
    from dedup.pass1 import read_all
    from dedup.pass2 import Corpus
    from dedup.rows import Matched, signature_chunks
    from dedup.signature_spill import Spilled
    from dedup.state import State
    from dedup.stored import streamed

    root = tmp_path / "in"
    _write(root, _DAY1)
    cron(root, tmp_path)
    _write(root, _DAY2)
    config = Config(jobs=jobs, state=str(tmp_path / "state"))
    store = State(tmp_path / "state", config.stamp())
    sources = readers.discover([root])
    try:
        cache = Incremental(store, config)
        cache.begin()
        # Batches of two: many in flight, so stored features wait behind documents still being read.
        docs, cron_feats, fresh = cron_pass1.read_all(
            sources, config, TokenFrequency(), cache.previous, Matched(), batch_size=2
        )
        # Stored texts come without their signatures; banding streams them in from the state.
        corpus = Corpus.of(config, docs, cron_feats, TokenFrequency())
        (tmp_path / "spill").mkdir()
        with Spilled.beside(tmp_path / "spill", num_perm=config.num_perm, width=16) as spill:
            blocks, _ = streamed(cron_feats, corpus, fresh, lambda: signature_chunks(store), spill)
            matrix = np.hstack(list(blocks.blocks()))
    finally:
        store.close()
    _, full_feats, _ = read_all(sources, config, TokenFrequency(), batch_size=2)
    assert 0 < sum(fresh) < len(fresh)
    for name in ("node_of", "contents", "sizes", "signals"):
        assert (
            getattr(cron_feats, name).numbers().tobytes() == getattr(full_feats, name).numbers().tobytes()
        ), name
    assert np.array_equal(matrix, full_feats.matrix())


def test_cron_runs_give_the_same_outputs_with_any_number_of_workers(tmp_path: Path) -> None:
    import sqlite3

    outputs = []
    for jobs in (1, 2):
        root, state, out = tmp_path / f"in{jobs}", tmp_path / f"state{jobs}", tmp_path / f"out{jobs}"
        _write(root, _DAY1)
        run([root], out, Config(jobs=jobs, state=str(state)), batch_size=2)
        _write(root, _DAY2)
        (root / "d06-storm_other.txt").unlink()
        counts = run([root], out, Config(jobs=jobs, state=str(state)), batch_size=2).counts
        db = sqlite3.connect(state / "state.sqlite")
        rows = db.execute(
            "SELECT key, line, size, sha256, status, content, signature, signals, component, record,"
            " first_seen, last_seen, gone FROM documents ORDER BY key"
        ).fetchall()
        db.close()
        files = sorted(str(p.relative_to(out)) for p in (out / "canonical").rglob("*"))
        runs = (out / "runs" / "run-000002.jsonl").read_bytes()
        outputs.append(((out / "manifest.jsonl").read_bytes(), runs, files, rows, counts))
    assert outputs[0][4]["new"] == 4 and outputs[0][4]["changed"] == 1 and outputs[0][4]["gone"] == 1
    assert outputs[0] == outputs[1]


def test_a_cron_run_whose_new_text_heads_a_star_keeps_what_banding_all_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dedup import index

    # 70 versions of one article (a line each of their own): in most bands one bucket
    # of 70, over MAX_BUCKET, linked as a star from the first in path order.
    tree = tmp_path / "in"
    tree.mkdir()
    for i in range(70):
        (tree / f"b{i:02d}.txt").write_text(f"{STORM}\nFiled by desk {i} at {i % 12} o'clock.\n")
    cron(tree, tmp_path)
    banded = []
    real = index.banding
    monkeypatch.setattr(index, "banding", lambda *a, **k: banded.append(1) or real(*a, **k))
    # A new version first in path order heads those stars (their rows move to it; which
    # old pairs go is checked on random signatures above and below).
    (tree / "a-new.txt").write_text(f"{STORM}\nFiled by the night desk.\n")
    (tree / "c-new.txt").write_text(f"{STORM}\nFiled by the day desk.\n")
    counts = cron(tree, tmp_path)
    assert banded == []  # the stored pairs were extended, not banded again
    full = run([tree], tmp_path / "full", Config(jobs=1))
    assert counts["lsh_pairs"] == full.counts["lsh_pairs"]  # the pairs banding all proposes
    assert counts["candidate_pairs"] == full.counts["candidate_pairs"]
    assert verdicts(read_manifest(tmp_path / "out")) == verdicts(read_manifest(full.out))
    # What the state keeps (pairs, stars) is what a first cron run over all of them bands.
    run([tree], tmp_path / "out2", Config(jobs=1, state=str(tmp_path / "state2")))

    def stored_pairs(state: Path) -> bytes:
        db = sqlite3.connect(state / "state.sqlite")
        blob = db.execute("SELECT value FROM blobs WHERE key = 'candidate_pairs'").fetchone()[0]
        db.close()
        return bytes(blob)

    assert stored_pairs(tmp_path / "state") == stored_pairs(tmp_path / "state2")


def test_stored_pairs_of_the_layout_before_stars_are_not_read() -> None:
    import struct
    import zlib

    from dedup import stored

    body = np.array([5, 7], dtype="<u8").tobytes() + np.array([[0, 1]], dtype="<i8").tobytes()
    old = struct.pack("<6q", 1, 128, 2, 1, 2, 1) + zlib.compress(body)  # version 1: no star rows
    assert stored.KnownPairs.loads(old) is None  # banded anew, once
    pairs = stored.KnownPairs(
        128, 2, 1, np.array([5, 7], dtype=np.uint64), np.array([[0, 1]]), np.zeros((0, 3), int)
    )
    again = stored.KnownPairs.loads(pairs.dumps())
    assert again is not None and np.array_equal(again.pairs, pairs.pairs) and again.stars.shape == (0, 3)


def banded_known(
    signatures: np.ndarray, sizes: np.ndarray, contents: np.ndarray, config: Config
) -> KnownPairs:
    """What a state stores of these texts banded (``stored.KnownPairs``): 8 bands of 2 rows, prefiltered."""
    from dedup import index

    proposed, stars = index.banding(signatures, bands=8, rows=2)
    jaccard, containment = config.jaccard, config.containment
    kept = index.prefilter(proposed, signatures, sizes, jaccard=jaccard, containment=containment)
    return KnownPairs(8, 2, len(proposed), contents, kept, stars)


def random_texts(
    rng: np.random.Generator, signatures: np.ndarray, least: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[np.ndarray], KnownPairs]]:
    """Sizes and content keys for these signatures, the texts a state held (``least`` or more of
    them, ascending), and ``banded_known`` of any of them."""
    n = len(signatures)
    sizes = rng.integers(1, 50, size=n).astype(np.int64)
    contents = rng.permutation(np.arange(1, n + 1, dtype=np.uint64) * 7919)
    old = np.sort(rng.choice(n, size=int(rng.integers(least, n + 1)), replace=False))
    config = Config(jobs=1)

    def banded_all(at: np.ndarray) -> KnownPairs:
        return banded_known(signatures[at], sizes[at], contents[at], config)

    return sizes, contents, old, banded_all


@pytest.mark.parametrize("seed", range(80))
def test_stored_pairs_extended_in_a_new_order_are_the_pairs_of_banding_all(seed: int) -> None:
    from dedup import stored

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 600))
    # Few distinct values give buckets of every size; a group sharing band 0 is often a star.
    signatures = rng.integers(0, int(rng.choice([4, 64, 1024])), size=(n, 16), dtype=np.uint32)
    signatures[rng.choice(n, size=int(rng.integers(0, n)) % 150, replace=False), :2] = 0  # a star, often
    sizes, contents, old, banded_all = random_texts(rng, signatures, 1)
    config = Config(jobs=1)
    known = stored.KnownPairs.loads(banded_all(old).dumps())  # as the state keeps them
    assert known is not None
    now = rng.permutation(n)  # every text, the stored ones in any order
    if seed % 3:  # or in their stored order, the new ones among them
        now[np.isin(now, old)] = old
    outside = np.setdiff1d(old, old[known.stars[:, 1:]])  # stored texts in no star
    if seed % 3 == 2 and len(outside):  # then one of them first, before every star
        now = np.concatenate(([outside[-1]], now[now != outside[-1]]))
    extended = known.extended(signatures[now], contents[now], sizes[now], config)
    if extended is None:  # a star's first text would change
        position = np.argsort(now)  # text -> its place in the new order
        assert np.any(position[old[known.stars[:, 2]]] < position[old[known.stars[:, 1]]])
        return
    everything = banded_all(now)
    assert np.array_equal(extended.pairs, everything.pairs)
    assert extended.proposed == everything.proposed
    assert np.array_equal(extended.stars, everything.stars)  # what the next run checks


@pytest.mark.parametrize("seed", range(40))
def test_new_texts_banded_against_the_stored_ones_add_what_banding_all_would(seed: int) -> None:
    from dedup import index, index_delta

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 500))
    # Few distinct values: buckets of every size, many over index.MAX_BUCKET (linked as stars).
    signatures = rng.integers(0, int(rng.integers(1, 12)), size=(n, 16), dtype=np.uint32)
    new = np.sort(rng.choice(n, size=int(rng.integers(1, max(2, n // 8))), replace=False))
    if seed % 2:  # the first text new: it is first in its buckets, and the stars it joins move to it
        new = np.union1d(new, [0])
    old = np.setdiff1d(np.arange(n), new)
    before, stars = index.banding(signatures[old], bands=8, rows=2)
    before, stars[:, 1:] = old[before], old[stars[:, 1:]]  # numbered among all texts
    found = index_delta.pairs_with(signatures, new, stars, bands=8, rows=2)
    everything, all_stars = index.banding(signatures, bands=8, rows=2)
    # Stars whose first text is new, or buckets grown into stars, drop old pairs no other band links.
    code = lambda pairs: pairs[:, 0] * n + pairs[:, 1]  # noqa: E731
    assert np.isin(code(found.dropped), code(before)).all()
    kept = before[~np.isin(code(before), code(found.dropped))]
    assert np.array_equal(np.unique(np.concatenate((kept, found.pairs)), axis=0), everything)
    assert len(kept) + len(found.pairs) == len(everything)  # the count banding proposes
    assert np.array_equal(found.stars, all_stars)
    added = found.pairs
    assert np.isin(added, new).any(axis=1).all()


@pytest.mark.parametrize("on_disk", [False, True])
def test_stored_signatures_streamed_for_banding_are_the_texts_own(tmp_path: Path, on_disk: bool) -> None:
    # A +N cron run bands from a spill of the stored texts' signatures and the new ones (in memory,
    # or on disk as a cron run keeps them): block by block, the same matrix a full pass 1 makes; and
    # the rows written this run get their text's signature, also when the text's first document was
    # not read (a late exact copy).
    from dedup import cron_pass1, readers
    from dedup.frequency import TokenFrequency
    from dedup.incremental import Incremental
    from dedup.pass1 import read_all
    from dedup.pass2 import Corpus
    from dedup.rows import Matched, signature_chunks
    from dedup.signature_spill import RowSpill, Spilled
    from dedup.state import State
    from dedup.stored import held_signatures, keep_signatures, streamed

    root = tmp_path / "in"
    _write(root, _DAY1)
    cron(root, tmp_path)
    _write(root, {**_DAY2, "d10-z-late-copy.txt": _DAY1["d03-museum.txt"]})
    config = Config(jobs=1, state=str(tmp_path / "state"))
    store = State(tmp_path / "state", config.stamp())
    sources = readers.discover([root])
    out = tmp_path / "spill"
    out.mkdir()
    try:
        cache = Incremental(store, config)
        cache.begin()
        given = RowSpill(out, num_perm=config.num_perm, flush_rows=3) if on_disk else None
        docs, feats, fresh = cron_pass1.read_all(
            sources, config, TokenFrequency(), cache.previous, Matched(), rows=given
        )
        corpus = Corpus.of(config, docs, feats, TokenFrequency())
        with Spilled.beside(out, num_perm=config.num_perm, width=16) as spill:
            blocks, held = streamed(feats, corpus, fresh, lambda: signature_chunks(store), spill)
            matrix = np.hstack(list(blocks.blocks()))
        kept = keep_signatures(feats, held)
        also = held_signatures(feats, corpus, fresh, lambda: signature_chunks(store))
    finally:
        store.close()
    full = read_all(sources, config, TokenFrequency())[1].matrix()
    assert np.array_equal(matrix, full)
    late = docs.paths.index("d10-z-late-copy.txt")
    node = int(corpus.node_of[late])
    assert fresh[late] and node in held  # its text's first document was stored, not read
    read_nodes = {int(corpus.node_of[i]) for i in range(len(docs)) if fresh[i] and corpus.node_of[i] >= 0}
    assert kept == {n: full[n].tobytes() for n in read_nodes}
    assert also == held  # the same stored signatures without streaming them all (a rerun over the same texts)
    assert list(out.iterdir()) == []  # the spill is gone
    kept.close()
    assert given is None or given.closed


@pytest.mark.parametrize("on_disk", [False, True])
def test_signature_rows_to_store_read_back_as_given_from_memory_or_an_unnamed_file(
    tmp_path: Path, on_disk: bool
) -> None:
    from dedup.signature_spill import RowSpill
    from dedup.stored import SignatureRows

    given = np.arange(5 * 8, dtype=np.uint32).reshape(5, 8)
    nodes = np.array([1, 4, 6, 9, 12], dtype=np.int64)
    spill = RowSpill(tmp_path, num_perm=8, flush_rows=2)
    for row in given:
        spill.append(row.tobytes())
    rows = SignatureRows(nodes, spill if on_disk else given.copy(), {7: b"held"})
    given_rows = dict(zip([1, 4, 6, 9, 12], given, strict=True))
    for node, row in given_rows.items():
        assert rows[node] == row.tobytes()
    assert rows[7] == b"held" and len(rows) == 6 and sorted(rows) == [1, 4, 6, 7, 9, 12]
    with pytest.raises(KeyError):
        rows[5]
    assert list(tmp_path.iterdir()) == []  # nothing named, nothing left
    rows.close()
    assert spill.closed if on_disk else not spill.closed
    spill.close()


def test_a_cron_run_that_fails_after_pass_one_leaves_no_file_open(tmp_path: Path) -> None:
    from dedup.errors import NoDocumentsError

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.csv").write_text("no article here")
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(NoDocumentsError) as failed:
        run([tmp_path / "in"], tmp_path / "out", Config(jobs=1, state=str(tmp_path / "state")))
    assert failed.value is not None  # the error (and its frames) still alive
    assert len(os.listdir("/proc/self/fd")) == open_before
