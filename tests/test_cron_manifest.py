"""A cron run's manifest: stored records carried forward in bulk, and the rows that must change."""

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import read_manifest, scrape_files

from dedup import Config, run


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
