"""The state's rows as a cron run reads them (dedup/rows.py): damage found with the row named."""

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import scrape_files

from dedup.cli import cli


@pytest.fixture
def scrape(write_tree) -> Path:
    return write_tree(scrape_files("day1/"))


def _cron(scrape: Path, tmp_path: Path, *more: str) -> Result:
    out, state = str(tmp_path / "out"), str(tmp_path / "state")
    return CliRunner().invoke(cli, ["run", str(scrape), "--out", out, "--state", state, "-j1", "-q", *more])


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE documents SET sha256 = 'not hexadecimal' WHERE key = 'day1/storm.txt'",
        "UPDATE documents SET size = 'large' WHERE key = 'day1/storm.txt'",
        "UPDATE documents SET content = x'00' WHERE key = 'day1/storm.txt'",
    ],
)
def test_a_stored_row_with_unusable_facts_asks_for_a_rebuild_naming_it(
    scrape: Path, tmp_path: Path, damage: str
) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    (scrape / "day1" / "late.txt").write_text("A late article about something else entirely.\n")
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        db.execute(damage)
    result = _cron(scrape, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: state ") and "day1/storm.txt" in lines[0] and "--rebuild" in lines[0]
    assert _cron(scrape, tmp_path, "--rebuild").exit_code == 0
