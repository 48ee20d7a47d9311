"""The state's rows as columns beside the database (dedup/row_image.py): the same rows as SQLite
holds, used only while the database names them."""

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import STORM, read_manifest, scrape_files

from dedup import Config, rerun, run
from dedup.records import cluster_key
from dedup.rows import Rows
from dedup.state import State


def cron(inputs: Path, tmp: Path) -> dict:
    return run([inputs], tmp / "out", Config(jobs=1, state=str(tmp / "state"))).counts


def image_store(tmp: Path) -> State:
    return State(tmp / "state", Config(jobs=1, state=str(tmp / "state")).stamp())


def rows_both_ways(state: Path) -> tuple[Rows, Rows]:
    """The rows as the image holds them, and as scanned from SQLite (the name forgotten, then put back)."""
    store = State(state, Config(jobs=1, state=str(state)).stamp())
    image = Rows(store)
    store.db.execute("BEGIN")
    store.db.execute("DELETE FROM columns")
    scanned = Rows(store)
    store.db.execute("ROLLBACK")
    return image, scanned  # left open: their records are read from it


_COLUMNS = (
    "rowid", "offset", "line", "size", "mtime_ns", "first_seen", "gone", "shingles", "file_hash", "content",
    "component", "component_kind", "has_content", "has_signals",
)  # fmt: skip


def facts(rows: Rows) -> dict:
    """Everything ``Rows`` tells of each row, as values (status codes may be numbered otherwise)."""
    n = len(rows)
    return {
        "keys": rows.keys,
        "index": rows.index,
        **{name: list(getattr(rows, name)) for name in _COLUMNS},
        "status": [rows.status_of(r) for r in range(n)],
        "sha": [rows.sha256(r) for r in range(n)],
        "signals": [rows.signal_bytes(r) for r in range(n)],
        "containers": rows.containers,
        "errors": rows.errors,
    }


def documents(state: Path) -> list[tuple]:
    with sqlite3.connect(state / "state.sqlite") as db:
        return db.execute("SELECT * FROM documents ORDER BY rowid").fetchall()


def assert_placed(rows: Rows, out: Path) -> None:
    """Each present row says where OUT's manifest holds its stored record (what the next run copies)."""
    manifest = (out / "manifest.jsonl").read_bytes()
    for r in range(len(rows)):
        at, length = rows.manifest_at[r], rows.manifest_len[r]
        if rows.gone[r]:
            assert at == -1  # its line is a gone record, not the stored one
            continue
        assert manifest[at : at + length] == rows.record(r).encode() + b"\n"
        record = orjson.loads(rows.record(r))
        assert rows.canonical(r) == record["canonical"]
        if not record["canonical"]:
            assert rows.cluster_keys_of(np.array([r])).tolist() == [cluster_key(record["cluster"])]


@pytest.fixture
def scrape(write_tree) -> Path:
    return write_tree(scrape_files("day1/"))


def test_after_each_run_the_image_holds_the_rows_sqlite_holds(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    day2 = scrape / "day2"
    day2.mkdir()
    (day2 / "late.txt").write_text("A late article about the harbour bridge and its long repairs.\n" * 3)
    lines = [{"id": k, "text": f"Record {k} of a shard, about the county fair."} for k in range(3)]
    (day2 / "shard.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    (day2 / "blob.txt").write_bytes(bytes(range(256)) * 8)  # binary: a row with an error
    with contextlib.suppress(OSError):  # a file system that refuses it
        (day2 / os.fsdecode(b"caf\xe9.txt")).write_text("A name that is not UTF-8, about the river.\n")
    moved = tmp_path / "moved"
    steps = [
        lambda: None,
        lambda: (scrape / "day1" / "storm.txt").unlink(),  # gone
        lambda: (scrape / "day1" / "schools.txt").write_text("Rewritten: an article about the budget.\n"),
        lambda: (day2 / "shard.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines[::-1])),
        lambda: shutil.copytree(scrape, moved),  # every file under another root
    ]
    for k, step in enumerate(steps):
        step()
        cron(moved if moved.exists() else scrape, tmp_path)
        image, scanned = rows_both_ways(tmp_path / "state")
        assert image.from_image and not scanned.from_image, k
        assert facts(image) == facts(scanned), k
        assert_placed(image, tmp_path / "out")
        # What the next run checks before it copies from OUT's manifest: it is the one this run left.
        assert image_store(tmp_path).prints()["manifest"] == rerun.file_print(
            tmp_path / "out" / "manifest.jsonl"
        )
    assert image.containers and image.errors and any(image.gone)  # the cases above were made
    assert len(list((tmp_path / "state").glob("rows-*.columns"))) == 1  # earlier images deleted


def test_a_row_written_by_hand_makes_the_next_run_scan_sqlite(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        db.execute("UPDATE documents SET size = size + 1 WHERE key = 'day1/storm.txt'")
    image, _ = rows_both_ways(tmp_path / "state")
    assert not image.from_image
    assert image.size[image.index["day1/storm.txt"]] == (scrape / "day1" / "storm.txt").stat().st_size + 1


DAMAGE = [
    "none", "truncate", "grown", "flip", "footer", "older", "fifo", "orphan", "manifest", "manifest-mtime",
]  # fmt: skip


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_image_or_an_orphan_is_not_used_and_the_run_equals_one_without_it(
    scrape: Path, tmp_path: Path, damage: str
) -> None:
    cron(scrape, tmp_path)
    (older,) = (tmp_path / "state").glob("rows-*.columns")
    older_bytes = older.read_bytes()
    (scrape / "day1" / "storm.txt").write_text(STORM + "\nUpdated at noon.\n")  # the same rows, other facts
    cron(scrape, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    for name in ("state", "out"):
        shutil.copytree(tmp_path / name, other / name)
    (image,) = (tmp_path / "state").glob("rows-*.columns")
    data = bytearray(image.read_bytes())
    if damage == "truncate":
        image.write_bytes(data[: len(data) // 2])
    elif damage == "grown":  # its footer is no longer at its end: not read whole
        with open(image, "ab") as fh:
            fh.truncate(len(data) + (64 << 20))
    elif damage == "flip":
        data[len(data) // 3] ^= 1
        image.write_bytes(data)
    elif damage == "footer":  # a status name in the footer: "ok" -> "nk"
        image.write_bytes(data[:-200] + data[-200:].replace(b'"ok"', b'"nk"'))
    elif damage == "older":  # the last run's image, under this run's name: the same number of rows
        image.write_bytes(older_bytes)
    elif damage == "fifo":  # not a regular file: never opened to wait for a writer
        image.unlink()
        os.mkfifo(image)
    elif damage == "orphan":  # an image a killed run wrote before its commit: not named
        shutil.copy(image, image.with_name("rows-0123456789abcdef.columns"))
    elif damage.startswith("manifest"):  # OUT's manifest edited: its records are not copied from it
        path = tmp_path / "out" / "manifest.jsonl"
        times = path.stat().st_atime_ns, path.stat().st_mtime_ns
        with open(path, "r+b") as fh:  # in place, the same size
            edited = fh.read().replace(b'"status":"ok"', b'"status":"OK"')
            fh.seek(0)
            fh.write(edited)
        if damage == "manifest-mtime":
            os.utime(path, ns=times)
    with sqlite3.connect(other / "state" / "state.sqlite") as db:
        db.execute("DELETE FROM columns")  # the other state: scanned, its records read from it
    (scrape / "day1" / "late.txt").write_text("A late article about the harbour bridge and its repairs.\n")
    cron(scrape, tmp_path)
    cron(scrape, other)
    assert read_manifest(tmp_path / "out") == read_manifest(other / "out")
    assert documents(tmp_path / "state") == documents(other / "state")
    left = list((tmp_path / "state").glob("rows-*.columns"))
    assert len(left) == 1 and left[0] != image  # the damaged one, or the orphan, deleted
    first, _ = rows_both_ways(tmp_path / "state")
    assert first.from_image


def test_keys_the_image_cannot_hold_and_an_out_path_not_utf8_leave_runs_working(
    tmp_path: Path, write_tree
) -> None:
    lines = [{"id": "a\u0000b", "text": "The harbour bridge council voted on the budget for three parks."}]
    lines.append({"id": "c", "text": "A storm swept across the northern coast overnight, closing roads."})
    scrape = write_tree({"x.jsonl": b"".join(orjson.dumps(x) + b"\n" for x in lines)})
    out = tmp_path / os.fsdecode(b"out\xff")
    for k in range(3):
        (scrape / f"n{k}.txt").write_text(f"A new article, number {k}, about the museum's new wing.\n")
        counts = run([scrape], out, Config(jobs=1, state=str(tmp_path / "state"))).counts
        assert counts["new"] == (3 if k == 0 else 1)
    image, _ = rows_both_ways(tmp_path / "state")
    assert not image.from_image and "x.jsonl/a\x00b" in image.keys  # the key, as it is
