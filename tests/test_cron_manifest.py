"""A cron run's manifest: stored records carried forward in bulk, and the rows that must change."""

import itertools
import os
import shutil
import sqlite3
from array import array
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import read_manifest, scrape_files
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import Config, run
from dedup.records import Tally, cluster_key


def cron(inputs: Path, tmp: Path) -> dict:
    return run([inputs], tmp / "out", Config(jobs=1, state=str(tmp / "state"))).counts


def stored(tmp: Path, key: str) -> tuple[str, int, int]:
    with sqlite3.connect(tmp / "state" / "state.sqlite") as db:
        return db.execute("SELECT file, size, mtime_ns FROM documents WHERE key = ?", (key,)).fetchone()


@pytest.fixture
def scrape(write_tree) -> Path:
    return write_tree(scrape_files("day1/"))


def test_a_touched_file_keeps_its_record_and_its_row_takes_its_new_mtime(
    scrape: Path, tmp_path: Path
) -> None:
    cron(scrape, tmp_path)
    manifest = read_manifest(tmp_path / "out")
    touched = scrape / "day1" / "schools.txt"
    before = stored(tmp_path, "day1/schools.txt")
    os.utime(touched, ns=(before[2] + 10**9, before[2] + 10**9))  # the same bytes, read again
    counts = cron(scrape, tmp_path)
    assert counts["changed"] == counts["new"] == 0
    assert read_manifest(tmp_path / "out") == manifest
    # Stored as it is now: the next run takes it from the state instead of reading it again.
    assert stored(tmp_path, "day1/schools.txt") == (str(touched), before[1], touched.stat().st_mtime_ns)


def test_an_input_moved_elsewhere_keeps_its_records_and_its_rows_name_the_new_files(
    scrape: Path, tmp_path: Path
) -> None:
    cron(scrape, tmp_path)
    manifest = read_manifest(tmp_path / "out")
    moved = tmp_path / "moved"
    shutil.copytree(scrape, moved)  # same names, sizes and mtimes under another root
    for p in scrape.rglob("*"):
        if p.is_file():
            os.utime(moved / p.relative_to(scrape), ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
    counts = cron(moved, tmp_path)
    assert counts["changed"] == counts["new"] == counts["gone"] == 0
    assert read_manifest(tmp_path / "out") == manifest
    assert stored(tmp_path, "day1/schools.txt")[0] == str(moved / "day1" / "schools.txt")


@given(
    st.lists(
        st.tuples(st.sampled_from(["ok", "ok", "ok", "binary", "empty"]), st.booleans(), st.integers(0, 5)),
        max_size=60,
    ),
    st.one_of(st.integers(0, 100), st.integers(4000, 4096), st.integers(8150, 8192)),  # progress every 4,096
    st.integers(1, 4),
    st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_stored_records_counted_at_once_count_as_one_by_one(records, before, splits, sums) -> None:
    # ``Tally.add_stored`` (a cron run's carried records) against ``add`` of each: the same counts
    # in the same key order (summary.json's), the same kept documents, the same progress calls.
    # With ``sums``, parts all ok go through ``add_stored_ok``, as the carried runs counted from sums.
    def tally(calls: list, kept: list) -> Tally:
        made = Tally(1, 2, 3, lambda *a: calls.append(a), before + len(records), kept.extend)
        for i in range(before):  # documents written before these
            made.add(i, "ok", True, None)
        return made

    one_calls, one_kept, bulk_calls, bulk_kept = [], [], [], []
    one, bulk = tally(one_calls, one_kept), tally(bulk_calls, bulk_kept)
    for k, (status, canonical, cluster) in enumerate(records):
        one.add(before + k, status, canonical, f"c{cluster:012x}")
    cuts = sorted({0, len(records), *(len(records) * j // splits for j in range(splits))})
    names = sorted({s for s, _, _ in records} | {"ok"})
    for lo, hi in itertools.pairwise(cuts):
        part = records[lo:hi]
        flags = np.array([c for _, c, _ in part], dtype=bool)
        codes = np.array([names.index(s) for s, _, _ in part], dtype=np.uint8)
        clusters = np.array(
            [cluster_key(f"c{x:012x}") for s, c, x in part if s == "ok" and not c], dtype=np.uint64
        )
        docs = range(before + lo, before + hi)
        if sums and all(s == "ok" for s, _, _ in part):
            bulk.add_stored_ok(docs, [d for d, (_, c, _) in zip(docs, part, strict=True) if c], clusters)
        else:
            bulk.add_stored(docs, codes, names, flags, clusters)
    none = np.zeros(0, dtype=np.uint8)
    bulk.add_stored(range(before + len(records), before + len(records)), none, names, none.astype(bool), none)
    assert list(bulk.counts.items()) == list(one.counts.items())
    assert bulk_kept == one_kept and bulk_calls == one_calls


@pytest.mark.parametrize("name", ["schools.txt", "storm-boiler.txt"])  # a lone text; a copy in a group
def test_a_file_deleted_then_put_back_is_new_again_and_settled_as_a_full_run_settles_it(
    scrape: Path, tmp_path: Path, name: str
) -> None:
    """A gone document's row still holds the fingerprint of its group: put back with the same
    bytes, it must not count as judged (its group is settled again and the run lists it as new)."""
    cron(scrape, tmp_path)
    first = read_manifest(tmp_path / "out")
    path = scrape / "day1" / name
    aside = tmp_path / name
    shutil.move(path, aside)
    assert cron(scrape, tmp_path)["gone"] == 1
    shutil.move(aside, path)  # the same bytes and mtime
    counts = cron(scrape, tmp_path)
    assert counts["new"] == 1 and counts["gone"] == 0
    listed = [
        orjson.loads(line)
        for line in sorted((tmp_path / "out" / "runs").iterdir())[-1].read_bytes().splitlines()
    ]
    assert [(c["change"], c["path"]) for c in listed] == [("new", f"day1/{name}")]
    assert read_manifest(tmp_path / "out") == first


def test_last_manifest_spans_join_neighbouring_records_per_run_and_drop_runs_it_cannot_vouch_for(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from dedup.cron_manifest import LastManifest

    lines = [b'{"path":"%d"}\n' % k for k in range(8)]
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b"".join(lines))
    at = np.cumsum([0, *map(len, lines)])[:-1].astype(np.int64)
    length = np.array(list(map(len, lines)), dtype=np.int64)
    at[6] = -1  # not known: its run is read from the state
    previous = SimpleNamespace(manifest_at=array("q", at.tolist()), manifest_len=array("q", length.tolist()))
    last = LastManifest(path)
    try:
        # Rows carried in three runs: [0 1 3] [4 5] [6 7]; row 2 is not carried.
        rows = np.array([0, 1, 3, 4, 5, 6, 7])
        spans = last.spans(previous, rows, np.array([0, 3, 5]))
        assert spans == {
            0: [(0, at[2]), (at[3], length[3])],  # 0-1 one after the other, then 3
            3: [(at[4], length[4] + length[5])],  # 4-5, a run of its own though 3 is next to 4
        }
        length[4] -= 1  # the image says a record ends inside a line: that run is not vouched for
        previous.manifest_len = array("q", length.tolist())
        assert set(last.spans(previous, rows, np.array([0, 3, 5]))) == {0}
    finally:
        last.close()


@given(
    st.lists(st.tuples(st.integers(0, 3 << 20), st.integers(0, 3 << 19), st.binary(max_size=9)), max_size=8)
)
@settings(max_examples=25, deadline=None)
def test_last_manifest_copies_spans_between_writes_in_order_short_ones_buffered_long_ones_by_the_kernel(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[tuple[int, int, bytes]]
) -> None:
    from dedup.cron_manifest import LastManifest
    from dedup.manifest import BUFFER, atomic_file

    tmp = tmp_path_factory.mktemp("copy")
    old = np.random.default_rng(len(pieces)).integers(0, 256, 4 << 20, dtype=np.uint8).tobytes()
    (tmp / "last.jsonl").write_bytes(old)
    spans = [(start, min(size, len(old) - start)) for start, size, _ in pieces]
    assert BUFFER < 3 << 19  # both ways are taken
    last = LastManifest(tmp / "last.jsonl")
    try:
        with atomic_file(tmp / "new.jsonl") as fh:
            for (start, size), (_, _, between) in zip(spans, pieces, strict=True):
                fh.write(between)  # a record written by the run, then a run of carried ones
                last.copy([(start, size), (start // 2, size // 3)], fh)
    finally:
        last.close()
    want = b"".join(
        between + old[start : start + size] + old[start // 2 : start // 2 + size // 3]
        for (start, size), (_, _, between) in zip(spans, pieces, strict=True)
    )
    assert (tmp / "new.jsonl").read_bytes() == want


def test_a_run_given_out_spelled_otherwise_copies_the_records_the_last_run_wrote(
    scrape: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged records come from OUT's manifest when it is the one the last run wrote, whether
    OUT is named by its absolute path or relative to the working directory."""
    state = str(tmp_path / "state")
    run([scrape], tmp_path / "out", Config(jobs=1, state=state))
    first = read_manifest(tmp_path / "out")
    # The state's copy of a record edited, its length kept, behind the back of the triggers that
    # have the next run trust nothing: it shows only where the record is read from the state.
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        triggers = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            " AND sql LIKE '%AFTER UPDATE ON documents%'"
        ).fetchall()
        key, record = db.execute("SELECT key, record FROM documents WHERE key = 'day1/storm.txt'").fetchone()
        at = record.index('"reason":"') + len('"reason":"')
        for name, _ in triggers:
            db.execute(f"DROP TRIGGER {name}")
        db.execute(
            "UPDATE documents SET record = ? WHERE key = ?", (record[:at] + "#" + record[at + 1 :], key)
        )
        for _, sql in triggers:
            db.execute(sql)
    (scrape / "day1" / "later.txt").write_text(
        "The regional orchestra announced its winter programme on Monday, with three premieres by local"
        " composers, a children's matinee every Sunday and a free concert in the central library's atrium."
    )
    monkeypatch.chdir(tmp_path)
    run([scrape], Path("out"), Config(jobs=1, state=state))
    records = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert records["day1/storm.txt"] == next(r for r in first if r["path"] == "day1/storm.txt")
    assert "day1/later.txt" in records


def test_out_named_through_a_link_and_dotdot_is_the_directory_the_system_opens(
    scrape: Path, tmp_path: Path
) -> None:
    """``link/../out`` is ``out`` beside the link's target, not beside the link: a manifest there,
    edited, is not the one the last run wrote, and no record is copied from it."""
    state = str(tmp_path / "state")
    run([scrape], tmp_path / "out", Config(jobs=1, state=state))
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    shutil.copytree(tmp_path / "out", other / "out")
    text = (other / "out" / "manifest.jsonl").read_bytes()
    at = text.index(b'"reason":"') + len(b'"reason":"')
    (other / "out" / "manifest.jsonl").write_bytes(text[:at] + b"#" + text[at + 1 :])
    os.symlink(other / "sub", tmp_path / "link")
    (scrape / "day1" / "later.txt").write_text(
        "The regional orchestra announced its winter programme on Monday, with three premieres by local"
        " composers, a children's matinee every Sunday and a free concert in the central library's atrium."
    )
    run([scrape], Path(f"{tmp_path / 'link'}/../out"), Config(jobs=1, state=state))
    assert b'"reason":"#' not in (other / "out" / "manifest.jsonl").read_bytes()
    assert [r["path"] for r in read_manifest(other / "out")] == sorted(
        [r["path"] for r in read_manifest(tmp_path / "out")] + ["day1/later.txt"]
    )
