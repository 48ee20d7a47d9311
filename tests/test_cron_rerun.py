"""Cron mode: a rerun with nothing to do is recorded without the work, and anything changed is noticed."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import MUSEUM, NOISE, STORM_OTHER, read_manifest, scrape_files

from dedup import Config, run
from dedup.errors import StateMismatchError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def scrape(write_tree) -> Path:
    return write_tree(scrape_files("day1/"))


def cron(inputs: Path, tmp: Path, **options) -> dict:
    return run([inputs], tmp / "out", Config(jobs=1, state=str(tmp / "state"), **options)).summary


def outputs(out: Path, state: Path) -> dict[str, bytes]:
    """OUT's files (summary.json without timings) and the state's rows (runs without clock times)."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    files.pop(".lock", None)
    summary = orjson.loads(files.pop("summary.json"))
    summary.pop("timings_s")
    files["summary"] = orjson.dumps(summary)
    with sqlite3.connect(state / "state.sqlite") as db:
        for table, sql in {
            "documents": "SELECT * FROM documents ORDER BY key",
            "supersessions": "SELECT * FROM supersessions ORDER BY rowid",
            "runs": "SELECT run, inputs, counts FROM runs ORDER BY run",
            "blobs": "SELECT * FROM blobs ORDER BY key",
        }.items():
            files[table] = repr(db.execute(sql).fetchall()).encode()
    return files


def test_a_rerun_with_nothing_to_do_loads_no_stage(scrape: Path, tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    code = (
        "import sys; from dedup import Config, run; "
        f"s = run([{str(scrape)!r}], {str(out)!r}, Config(jobs=1, state={str(state)!r})); "
        "print(s.summary['run'], s.counts['new'], "
        "sorted(m for m in ('numba', 'scipy', 'datasketch', 'scipy.integrate') if m in sys.modules))"
    )
    command = [sys.executable, "-c", code]
    lines = [
        subprocess.run(command, env=ENV, capture_output=True, text=True, check=True).stdout for _ in range(3)
    ]
    assert lines[0] == "1 5 ['numba', 'scipy']\n"  # datasketch's layout and permutations are not imported
    assert lines[1:] == ["2 0 []\n", "3 0 []\n"]
    assert (tmp_path / "out" / "runs" / "run-000003.jsonl").read_bytes() == b""


def test_a_run_with_work_imports_the_stages_while_find_lists(scrape: Path, tmp_path: Path) -> None:
    """A file added in a subdirectory moves the INPUT's own entries: the stages are imported once
    find has listed them, before it has listed the rest; a rerun with nothing to do imports none."""
    out, state = tmp_path / "out", tmp_path / "state"
    code = (
        "import sys; from dedup import Config, listing, run; "
        "seen = []; whole = listing.Finds.result; "
        "listing.Finds.result = lambda self: seen.append('numba' in sys.modules) or whole(self); "
        f"s = run([{str(scrape)!r}], {str(out)!r}, Config(jobs=1, state={str(state)!r})); "
        "print(s.summary['run'], s.counts['new'], seen[0])"
    )
    command = [sys.executable, "-c", code]

    def once() -> str:
        return subprocess.run(command, env=ENV, capture_output=True, text=True, check=True).stdout

    assert once() == "1 5 True\n"  # the state's first run: nothing stored, all is work
    assert once() == "2 0 False\n"
    (scrape / "day1" / "museum.txt").write_text(MUSEUM)
    assert once() == "3 1 True\n"
    assert once() == "4 0 False\n"
    with sqlite3.connect(state / "state.sqlite") as db:  # as a state from an earlier version
        db.execute("DELETE FROM prints WHERE key = 'top'")
    db.close()
    assert once() == "5 0 True\n"  # not told: imported, and the print stored for the next
    assert once() == "6 0 False\n"


def test_a_rerun_with_nothing_to_do_writes_what_a_full_rerun_writes(scrape: Path, tmp_path: Path) -> None:
    """Two histories with the same changes; the last rerun is recorded in one, done in full in the other."""
    stages = [tmp_path / "stage1", tmp_path / "stage2"]
    shutil.copytree(scrape, stages[0], copy_function=shutil.copy2)
    (scrape / "day1" / "storm.txt").unlink()  # a canonical gone: its cluster elects another
    (scrape / "day2").mkdir()
    (scrape / "day2" / "museum.txt").write_text(MUSEUM)
    (scrape / "day2" / "museum-copy.txt").write_text(NOISE["boilerplate"](MUSEUM))
    shutil.copytree(scrape, stages[1], copy_function=shutil.copy2)
    seen = []
    for side in ("recorded", "done"):
        tmp = tmp_path / side
        for stage in stages:  # the same inputs at the same paths, mtimes kept
            shutil.rmtree(scrape)
            shutil.copytree(stage, scrape, copy_function=shutil.copy2)
            cron(scrape, tmp)
        if side == "done":  # OUT's manifest touched: the rerun cannot trust OUT and does everything
            os.utime(tmp / "out" / "manifest.jsonl")
        last = cron(scrape, tmp)
        assert last["run"] == 3 and last["counts"]["new"] == 0
        seen.append(outputs(tmp / "out", tmp / "state"))
    assert seen[0].keys() == seen[1].keys()
    differ = {k for k in seen[0] if seen[0][k] != seen[1][k]}
    assert differ == set()


def _same_size_edit(path: Path) -> None:
    """Other bytes of the same size, and another mtime."""
    data = path.read_bytes()
    path.write_bytes(data.replace(b"the", b"tha", 1))
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def test_a_file_edited_to_the_same_size_is_noticed(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    cron(scrape, tmp_path)
    _same_size_edit(scrape / "day1" / "schools.txt")
    counts = cron(scrape, tmp_path)["counts"]
    assert counts["changed"] == 1
    record = next(r for r in read_manifest(tmp_path / "out") if r["path"] == "day1/schools.txt")
    assert (tmp_path / "out" / "canonical" / "day1" / "schools.txt").read_bytes() != STORM_OTHER.encode()
    assert record["size"] == len(STORM_OTHER.encode())


def test_a_file_put_back_with_its_size_and_mtime_is_noticed(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    cron(scrape, tmp_path)
    os.rename(scrape / "day1" / "schools.txt", scrape / "day1" / "schools-2.txt")  # mtime kept
    counts = cron(scrape, tmp_path)["counts"]
    assert (counts["new"], counts["gone"]) == (1, 1)


def test_outputs_removed_or_edited_in_out_are_put_back(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    out = tmp_path / "out"
    manifest = (out / "manifest.jsonl").read_bytes()
    canonical = sorted(p for p in (out / "canonical").rglob("*") if p.is_file())
    cron(scrape, tmp_path)
    canonical[0].unlink()
    cron(scrape, tmp_path)
    assert sorted(p for p in (out / "canonical").rglob("*") if p.is_file()) == canonical
    (out / "manifest.jsonl").write_bytes(manifest[: len(manifest) // 2])
    cron(scrape, tmp_path)
    assert (out / "manifest.jsonl").read_bytes() == manifest
    shutil.rmtree(out / "canonical")
    cron(scrape, tmp_path)
    assert sorted(p for p in (out / "canonical").rglob("*") if p.is_file()) == canonical


@pytest.mark.parametrize("find", [True, False])
def test_a_copy_edited_in_place_is_left_as_a_full_run_leaves_it(
    scrape: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, find: bool
) -> None:
    """OUT's print looks at canonical/'s directories, not at each copy: a copy removed is put back,
    one edited in place is not, by a rerun or by a full run (it makes the copies that are missing)."""
    from dedup import cron_pass1

    if not find:  # Python's walk in place of GNU find
        monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    passes: list[int] = []
    read_all = cron_pass1.read_all
    monkeypatch.setattr(cron_pass1, "read_all", lambda *a, **k: passes.append(1) or read_all(*a, **k))
    cron(scrape, tmp_path)
    copy = sorted(p for p in (tmp_path / "out" / "canonical").rglob("*") if p.is_file())[0]
    copy.write_bytes(copy.read_bytes() + b" edited")
    cron(scrape, tmp_path)
    assert len(passes) == 1 and copy.read_bytes().endswith(b" edited")  # nothing to do: no pass 1
    (scrape / "day1" / "new.txt").write_text(" ".join(f"unrelated word{k} of a new story" for k in range(60)))
    assert cron(scrape, tmp_path)["counts"]["new"] == 1
    assert len(passes) == 2 and copy.read_bytes().endswith(b" edited")
    copy.unlink()
    cron(scrape, tmp_path)
    assert len(passes) == 3 and not copy.read_bytes().endswith(b" edited")
    # Removed, and its directory's mtime set back: its ctime still moves. Put back by a rerun with
    # nothing to do, and by a run with work (which then lists canonical/ rather than trust OUT).
    for news in ("", " ".join(f"another word{k} of another story" for k in range(60))):
        if news:
            (scrape / "day1" / "news.txt").write_text(news)
        folder = os.stat(copy.parent)
        copy.unlink()
        os.utime(copy.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))
        cron(scrape, tmp_path)
        assert copy.exists(), repr(news)


def test_other_options_are_not_taken_for_the_same_run(scrape: Path, tmp_path: Path) -> None:
    cron(scrape, tmp_path)
    cron(scrape, tmp_path)
    with pytest.raises(StateMismatchError, match="containment"):
        cron(scrape, tmp_path, containment=0.6)
    summary = cron(scrape, tmp_path, globs=("council-*",))  # free: the files it drops are gone
    assert summary["counts"]["gone"] == 3 and summary["config"]["globs"] == ["council-*"]


def test_a_row_damaged_after_a_run_is_found_by_a_rerun_with_nothing_to_do(
    scrape: Path, tmp_path: Path
) -> None:
    from dedup.errors import StateError

    cron(scrape, tmp_path)
    cron(scrape, tmp_path)
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        db.execute("UPDATE documents SET signals = x'00' WHERE key = 'day1/storm.txt'")
    with pytest.raises(StateError, match=r"storm\.txt"):
        cron(scrape, tmp_path)


@pytest.mark.parametrize("point", ["committed", "written"])
def test_a_rerun_with_nothing_to_do_killed_then_rerun_matches(
    scrape: Path, tmp_path: Path, point: str
) -> None:
    cron(scrape, tmp_path)
    cron(scrape, tmp_path)
    launcher = [sys.executable, str(REPO / "tests" / "crash_at.py"), point,
                str(scrape), str(tmp_path / "out"), str(tmp_path / "state")]  # fmt: skip
    assert subprocess.run(launcher, cwd=REPO, env=ENV, capture_output=True).returncode == -9
    summary = cron(scrape, tmp_path)
    assert summary["run"] == 4
    for k in (3, 4):
        assert (tmp_path / "out" / "runs" / f"run-{k:06d}.jsonl").read_bytes() == b""
    reference = tmp_path / "reference"
    reference.mkdir()
    for _ in range(4):
        expected = cron(scrape, reference)
    assert read_manifest(tmp_path / "out") == read_manifest(reference / "out")
    assert summary["counts"] == expected["counts"]
