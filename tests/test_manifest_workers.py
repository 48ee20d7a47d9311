"""The manifest made in parts by the workers is the manifest one process makes; copies made while
the records are written are the copies made after them; a copy that fails publishes nothing."""

import gzip
import itertools
import os
import shutil
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import columns, copies, manifest, manifest_workers, parallel, records
from dedup.config import Config
from dedup.errors import InputChangedError
from dedup.pipeline import run

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def corpus(tmp_path: Path) -> list[str]:
    """The sample, one of its directories also as a gzip JSON Lines shard (kept container records),
    and an empty file (a skipped record): each kind of record and copy."""
    docs = sorted(p for p in (SAMPLE / "docs").rglob("*.txt"))
    shard = tmp_path / "in" / "shard.jsonl.gz"
    shard.parent.mkdir()
    with gzip.open(shard, "wb") as fh:
        for p in docs[:40]:
            fh.write(orjson.dumps({"id": p.name, "text": p.read_text()}) + b"\n")
    (tmp_path / "in" / "empty").mkdir()
    (tmp_path / "in" / "empty" / "blank.txt").write_text("")
    return [str(SAMPLE), str(shard), str(tmp_path / "in" / "empty")]


@pytest.mark.parametrize("part", [1, 7, 64])
def test_parts_made_by_workers_are_the_manifest_one_process_makes(
    corpus: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: int
) -> None:
    copied_by = tmp_path / "copied_by"  # the process that made each copy, a line each
    copy_document = manifest.copy_document

    def copy_noted(doc: object, target: str, **kwargs: object) -> None:
        copy_document(doc, target, **kwargs)  # type: ignore[arg-type]
        with open(copied_by, "a") as fh:
            fh.write(f"{os.getpid()}\n")

    monkeypatch.setattr(manifest, "copy_document", copy_noted)
    one = run(corpus, tmp_path / "one", Config(jobs=2))  # below LOCAL_FROM: made in the driver
    assert set(copied_by.read_text().split()) == {str(os.getpid())}  # copied by its threads
    copied_by.unlink()
    sent = []
    worth_sending = parallel.worth_sending

    def spy(engine: parallel.Engine | None, items: int, local_from: int) -> bool:
        sent.append((engine, items, local_from))
        return worth_sending(engine, items, local_from)

    monkeypatch.setattr(parallel, "worth_sending", spy)
    monkeypatch.setattr(manifest_workers, "LOCAL_FROM", 2)
    monkeypatch.setattr(manifest_workers, "PART", part)
    two = run(corpus, tmp_path / "two", Config(jobs=2))
    assert (parallel.Processes(2), one.counts["documents"], 2) in sent  # the parts went to the workers
    # Each kept whole file copied once, by the worker that made its record.
    copiers = copied_by.read_text().split()
    files = [p for p in (tmp_path / "two" / "canonical").rglob("*") if p.is_file() and ".jsonl" not in p.name]
    assert len(copiers) == len(files) > 40 and str(os.getpid()) not in copiers
    assert _outputs(tmp_path / "one").keys() == _outputs(tmp_path / "two").keys()
    for name, data in _outputs(tmp_path / "one").items():
        if name != "summary.json":  # its timings differ
            assert _outputs(tmp_path / "two")[name] == data, name
    # The counts in the same order, skipped ones included.
    assert list(one.counts.items()) == list(two.counts.items())
    assert one.counts["skipped_empty"] == 1 and one.counts["duplicates"] > 40
    # Clusters with duplicates, counted at their canonical records: the clusters the duplicates name.
    lines = [orjson.loads(line) for line in (tmp_path / "two/manifest.jsonl").read_bytes().splitlines()]
    named = {r["cluster"] for r in lines if r["status"] == "ok" and not r["canonical"]}
    assert two.counts["clusters_with_duplicates"] == len(named) > 10


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["ok", "ok", "ok", "empty", "binary"]), st.booleans(), st.integers(0, 5)),
        max_size=40,
    ),
    st.lists(st.integers(0, 40), max_size=5),
)
def test_a_tally_of_parts_is_the_tally_of_their_records(
    rows: list[tuple[str, bool, int]], cuts: list[int]
) -> None:
    whole_kept: list[int] = []
    parts_kept: list[int] = []
    whole = records.Tally(3, 2, 1, kept=whole_kept.extend)
    for i, (status, canonical, cluster) in enumerate(rows):
        whole.add(i, status, canonical, f"c{cluster}")
    together = records.Tally(3, 2, 1, kept=parts_kept.extend)
    bounds = [0, *sorted(c for c in cuts if c <= len(rows)), len(rows)]
    for start, stop in itertools.pairwise(bounds):
        part = records.Tally.part()
        for i in range(start, stop):
            status, canonical, cluster = rows[i]
            part.add(i, status, canonical, f"c{cluster}")
        together.absorb(part)
    assert list(together.counts.items()) == list(whole.counts.items())
    duplicated = {cluster for status, kept, cluster in rows if status == "ok" and not kept}
    assert whole.counts["clusters_with_duplicates"] == len(duplicated)
    assert (
        parts_kept == whole_kept == [i for i, (status, kept, _) in enumerate(rows) if status == "ok" and kept]
    )
    assert not whole.canonical and not together.canonical  # told, not kept: the driver holds none
    # Counted at the canonical records instead (a batch run's ``add_made``), parts or not: the same.
    made = records.Tally(3, 2, 1, kept=[].extend)
    for start, stop in itertools.pairwise(bounds):
        part = records.Tally.part()
        for i in range(start, stop):
            status, kept, cluster = rows[i]
            alone = kept and status == "ok" and cluster not in duplicated
            reason = f"{records.ALONE} (score 1.00)" if alone else "cleanest of 2: ..."
            record = {"status": status, "canonical": kept, "cluster": f"c{cluster}", "reason": reason}
            part.add_made(i, record)
        made.absorb(part)
    heads = [c for status, kept, c in rows if status == "ok" and kept]  # a manifest has one a cluster
    assert made.counts["clusters_with_duplicates"] == sum(c in duplicated for c in heads)
    assert {k: v for k, v in made.counts.items() if k != "clusters_with_duplicates"} == {
        k: v for k, v in whole.counts.items() if k != "clusters_with_duplicates"
    }


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**48 - 1) | st.integers(0, 9), max_size=12), max_size=12))
def test_clusters_named_in_parts_are_counted_once(parts: list[list[int]]) -> None:
    names = [[f"c{key:012x}" for key in part] for part in parts]
    for merge_from in (2, records.MERGE_FROM):  # merged as they come, and at the end
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(records, "MERGE_FROM", merge_from)
            whole = records.ClusterKeys()
            for part in names:
                keys = records.ClusterKeys()
                for name in part:
                    keys.add(name)
                assert len(keys) == len(set(part))  # merged: ``update`` takes them from there
                whole.update(keys)
            assert len(whole) == len({name for part in names for name in part})


def test_clusters_named_one_record_at_a_time_are_merged_as_they_come(monkeypatch: pytest.MonkeyPatch) -> None:
    # A cron run tells the driver's tally every record: 10,000 duplicates of three clusters.
    monkeypatch.setattr(records, "MERGE_FROM", 16)
    keys = records.ClusterKeys()
    for k in range(10_000):
        keys.add(f"c{k % 3:012x}")
        assert keys.held <= 2 * 3 + 16 + 1
    keys.add(None)
    assert len(keys) == 4


def test_copies_waited_for_beyond_a_bound_and_kept_records_in_a_file_change_nothing(
    corpus: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = run(corpus, tmp_path / "one", Config(jobs=2))
    monkeypatch.setattr(manifest_workers, "LOCAL_FROM", 2)
    monkeypatch.setattr(manifest_workers, "PART", 4)
    monkeypatch.setattr(copies, "WAITING", 2)
    monkeypatch.setattr(columns, "CHUNK", 3)  # the kept container records go to their file in pieces
    monkeypatch.setattr(copies, "CHUNK", 2)  # and are read back two at a time
    behind = []
    add = copies.Staged.add

    def counted(self: copies.Staged, kept: list[int]) -> None:
        add(self, kept)
        counted.files += sum(self.docs.offset(i) < 0 for i in kept)  # type: ignore[attr-defined]
        made = sum(1 for p in self.staging.rglob("*") if p.is_file())
        behind.append(counted.files - made)  # type: ignore[attr-defined]

    counted.files = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(copies.Staged, "add", counted)
    two = run(corpus, tmp_path / "two", Config(jobs=1))  # the driver's threads copy (forked workers would)
    assert 0 <= max(behind) <= 2 and len(behind) > 10  # never more than WAITING files behind the records
    assert _outputs(tmp_path / "one").keys() == _outputs(tmp_path / "two").keys()
    for name, data in _outputs(tmp_path / "one").items():
        if name != "summary.json":
            assert _outputs(tmp_path / "two")[name] == data, name
    assert one.counts == two.counts and one.counts["canonical"] > 40
    left = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert left == sorted([".lock", "canonical", "manifest.jsonl", "summary.json"])  # nothing left aside


@pytest.mark.parametrize("jobs", [1, 2])  # copied by the driver's threads, or by the forked workers
def test_a_copy_that_fails_while_records_are_written_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE / "docs", corpus)
    monkeypatch.setattr(manifest_workers, "LOCAL_FROM", 2)
    monkeypatch.setattr(manifest_workers, "PART", 16)
    recorder = manifest_workers.Recorder.__call__

    def edit_then_record(self: manifest_workers.Recorder, span: tuple[int, int]) -> object:
        if span[0] == 16:  # the inputs change after pass 1 read them, the first part's copies under way
            for path in corpus.rglob("*.txt"):
                path.write_text(path.read_text() + " (updated)")
        return recorder(self, span)

    monkeypatch.setattr(manifest_workers.Recorder, "__call__", edit_then_record)
    with pytest.raises(InputChangedError, match="changed while dedup was running"):
        run([corpus], tmp_path / "out", Config(jobs=jobs))
    assert sorted(os.listdir(tmp_path / "out")) == [".lock"]  # no manifest, no canonical/, no staging


@pytest.mark.parametrize("copies_here", [20, 10**9])
def test_a_lone_text_with_many_copies_across_parts_is_ranked_once_in_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copies_here: int
) -> None:
    """With 20 the text's 30 copies are ranked in the driver; else once a part (each part
    forgets the copies it ranked for later ones): the same records either way."""
    import random

    from dedup import pass2

    words = random.Random(7).choices(
        ["harbour", "levy", "quorum", "ferry", "ledger", "spire", "tariff"], k=400
    )
    text = " ".join(words).capitalize() + "."
    copies = tmp_path / "copies"
    copies.mkdir()
    for k in range(30):  # one text, no near-duplicate: its 30 documents span several parts of 7
        (copies / f"copy-{k:02d}.txt").write_text(text)
    inputs = [str(SAMPLE), str(copies)]
    run(inputs, tmp_path / "one", Config(jobs=1))
    ranked: list[int] = []
    settle_copies = pass2.Verdicts.settle_copies

    def spy(self: pass2.Verdicts, node: int) -> None:
        ranked.append(node)
        settle_copies(self, node)

    monkeypatch.setattr(pass2.Verdicts, "settle_copies", spy)
    monkeypatch.setattr(manifest_workers, "LOCAL_FROM", 2)
    monkeypatch.setattr(manifest_workers, "PART", 7)
    monkeypatch.setattr(manifest_workers, "COPIES_HERE", copies_here)  # 20: the 30 copies, not the sample's
    run(inputs, tmp_path / "two", Config(jobs=2))
    assert len(ranked) == (1 if copies_here == 20 else 0)  # that text once, in the driver
    one, two = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert {k: v for k, v in one.items() if k != "summary.json"} == {
        k: v for k, v in two.items() if k != "summary.json"
    }
    kept = [orjson.loads(line) for line in one["manifest.jsonl"].splitlines() if b"copy-" in line]
    assert sum(r["canonical"] for r in kept) == 1 and len(kept) == 30


def test_a_lone_document_gets_the_record_ranking_would_give_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text of one document with no candidate skips ranking a cluster of one (``ranking.only``):
    its record, field for field and in order, is the one ``ranking.rank`` makes of it."""
    from dedup import pass2, ranking
    from dedup.cluster import Thresholds

    seen: list[pass2.Verdicts] = []
    record = pass2.Verdicts.record

    def spy(self: pass2.Verdicts, doc: int, *, again: bool = False) -> dict:
        seen.append(self)
        return record(self, doc, again=again)

    monkeypatch.setattr(pass2.Verdicts, "record", spy)
    run([str(SAMPLE)], tmp_path / "out", Config(jobs=1))
    corpus = seen[-1].corpus
    # Lone makes a verdict once per distinct row of signals: rows repeat, and keep=3 clears it often.
    lones = [ranking.Lone(corpus), ranking.Lone(corpus, keep=3)]
    checked = 0
    for node in [*range(len(corpus.sizes)), *range(len(corpus.sizes))]:
        members = corpus.members(node)
        if len(members) != 1:
            continue
        doc = int(members[0])
        ranked = ranking.rank(corpus, [node], [ranking.LONE], None, Thresholds(1.0, 1.0, 1), lambda n: 0)  # type: ignore[arg-type]
        for mine in (ranking.only(corpus, doc), *(lone(doc) for lone in lones)):
            assert orjson.dumps(mine[1]) == orjson.dumps(dict(ranked)[doc]) and mine[0] == doc
        checked += 1
    rows = {corpus.signals[int(corpus.members(n)[0])].tobytes() for n in range(len(corpus.sizes))}
    assert checked > 200 and 3 < len(rows) < checked / 4  # rows repeat, and there are more than keep
