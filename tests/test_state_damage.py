"""A state damaged or edited by hand: one Error: line that names it and says --rebuild, never a
traceback, a wrong manifest from an exit 0, or a lock that keeps every later run out."""

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import COUNCIL, MUSEUM, STORM, read_manifest

from dedup.cli import cli


def made(tmp_path: Path) -> tuple[Path, list[str]]:
    """Inputs with a cluster, one cron run over them; the arguments of the next."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    texts = {"a.txt": COUNCIL, "b.txt": COUNCIL.replace("\n", " "), "c.txt": STORM, "d.txt": MUSEUM}
    for name, text in texts.items():
        (inputs / name).write_text(text)
    args = ["run", str(inputs), "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    (inputs / "e.txt").write_text(STORM.replace("\n", " "))  # the next run has work
    return inputs, args


@pytest.mark.parametrize(
    "edit",
    [
        "DELETE FROM documents",
        "DELETE FROM documents WHERE rowid = (SELECT max(rowid) FROM documents)",
        "DROP TABLE documents",
        "DELETE FROM blobs WHERE key = 'token_frequency'",
        "UPDATE blobs SET value = 'text' WHERE key = 'token_frequency'",
        "UPDATE meta SET value = 'garbage' WHERE key = 'stamp'",
        "UPDATE meta SET value = '[1,2]' WHERE key = 'stamp'",
        "UPDATE meta SET value = 'abc' WHERE key = 'outputs'",
        "UPDATE documents SET record = CAST(x'7b2270617468223aff7d' AS TEXT)",  # not UTF-8
    ],
)
def test_a_state_edited_by_hand_is_an_error_that_says_rebuild(tmp_path: Path, edit: str) -> None:
    # Each ran on with exit 0 and other scores and canonicals (the rows or their token counts gone),
    # or ended in a traceback (a stamp, a run number or a blob of another type, a record not UTF-8).
    _, args = made(tmp_path)
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        db.execute(edit)
    db.close()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: state ") and "--rebuild" in result.output, result.output
    assert CliRunner().invoke(cli, [*args, "--rebuild"]).exit_code == 0


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "directory"])
def test_a_lock_file_that_is_not_a_file_is_named_and_keeps_no_run_out_once_removed(
    tmp_path: Path, kind: str
) -> None:
    # A FIFO or a link to /dev/zero as STATE/lock failed every run, --rebuild too, blaming OUT
    # ("out: Invalid argument": ftruncate on the lock).
    _, args = made(tmp_path)
    lock = tmp_path / "state" / "lock"
    lock.unlink()
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "directory":
        lock.mkdir()
    else:
        lock.symlink_to("/dev/zero")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert (
        result.output.startswith("Error: cannot use state ") and "lock is not a regular file" in result.output
    )
    lock.rmdir() if kind == "directory" else lock.unlink()
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert len(read_manifest(tmp_path / "out")) == 5


def test_a_row_count_left_by_an_earlier_run_is_not_checked_and_is_counted_again(tmp_path: Path) -> None:
    """A version before the count (a rollback) runs without counting: the count of an earlier run
    than the last is no evidence of an edit, and the next run counts again."""
    _, args = made(tmp_path)
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        db.execute("UPDATE meta SET value = '0 999' WHERE key = 'rows'")  # run 1 is the last
    db.close()
    assert CliRunner().invoke(cli, args).exit_code == 0
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone() == ("2 5",)
    db.close()


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_database_that_is_not_a_file_says_rebuild(tmp_path: Path, kind: str) -> None:
    # It was "disk I/O error", with no word of what to do.
    _, args = made(tmp_path)
    database = tmp_path / "state" / "state.sqlite"
    for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
        (tmp_path / "state" / name).unlink(missing_ok=True)
    os.mkfifo(database) if kind == "fifo" else database.symlink_to("/dev/zero")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "state.sqlite is not a regular file" in result.output and "--rebuild" in result.output
    assert CliRunner().invoke(cli, [*args, "--rebuild"]).exit_code == 0


def test_a_run_that_writes_no_row_carries_the_count_on_without_counting(tmp_path: Path) -> None:
    """A rerun with nothing to do commits a run but no row: it renames the count's run (a count of
    a cold 1M state's rows took 1.4 s), and a row deleted after it is still found."""
    _, args = made(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0  # run 2: e.txt
    assert runner.invoke(cli, args).exit_code == 0  # run 3: nothing to do
    database = tmp_path / "state" / "state.sqlite"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT max(run) FROM runs").fetchone() == (3,)
        assert db.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone() == ("3 5",)
        db.execute("DELETE FROM documents WHERE key = 'c.txt'")
    db.close()
    (tmp_path / "in" / "f.txt").write_text(MUSEUM.replace("\n", " "))
    result = runner.invoke(cli, args)
    assert result.exit_code == 1 and "4 document rows where its last run left 5" in result.output
