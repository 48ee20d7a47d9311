"""Hostile input and faults, continued (issue #11): leftovers, half-made paths, in-place edits, ids."""

import gzip
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from conftest import COUNCIL, MUSEUM, STORM, read_manifest, truncate

from dedup import Config, readers
from dedup.cli import cli

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["run", *map(str, args), "-j1", "-q"])


def _cron(inputs: Path, tmp_path: Path, *more: str) -> Result:
    return _invoke(inputs, "--out", tmp_path / "out", "--state", tmp_path / "state", *more)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


# ------------------------------------------------------------ JSONL ids --


def test_repeated_ids_get_unique_paths_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    feed = _jsonl(
        tmp_path / "feed.jsonl",
        [{"id": "a#L3", "text": MUSEUM}, {"id": "a", "text": COUNCIL}, {"id": "a", "text": STORM}],
    )
    assert _cron(feed, tmp_path, "--id-field", "id").exit_code == 0
    records = read_manifest(tmp_path / "out")
    paths = [r["path"] for r in records]
    assert len(set(paths)) == 3 and paths[:2] == ["a#L3", "a"]
    assert len({r["cluster"] for r in records}) == 3
    manifest = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    again = _cron(feed, tmp_path, "--id-field", "id")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == manifest
    assert (tmp_path / "out" / "runs" / "run-000002.jsonl").read_bytes() == b""


@pytest.mark.parametrize("max_bytes", range(100, 124))  # the first read ends at every byte of the escapes
def test_a_line_over_max_bytes_keeps_its_id(tmp_path: Path, max_bytes: int) -> None:
    text = "x" * 90 + '\\"\\\\' * 12 + "y" * 5000  # escaped quotes and backslashes across the cut
    raw = orjson.dumps({"text": text, "meta": {"id": 'q"1\\'}})  # the id after the long text
    assert orjson.loads(raw)["text"] == text
    (tmp_path / "feed.jsonl").write_bytes(orjson.dumps({"id": "x", "text": "short"}) + b"\n" + raw + b"\n")
    gz = tmp_path / "feed.jsonl.gz"
    gz.write_bytes(gzip.compress((tmp_path / "feed.jsonl").read_bytes()))
    config = Config(jobs=1, id_field="meta.id", max_bytes=max_bytes)
    for path in (tmp_path / "feed.jsonl", gz):
        docs = list(readers.iter_documents(readers.discover([path]), config))
        assert [(d.path, d.status.value) for d in docs] == [("line-1", "ok"), ('q"1\\', "too_large")]


def test_a_too_large_line_keeps_its_id_in_the_manifest(tmp_path: Path) -> None:
    feed = _jsonl(
        tmp_path / "feed.jsonl",
        [{"id": "m", "text": MUSEUM}, {"text": STORM * 3, "id": "big"}, {"id": "big", "text": COUNCIL}],
    )
    assert _invoke(feed, "--out", tmp_path / "out", "--max-bytes", "2000").exit_code == 0
    records = read_manifest(tmp_path / "out")
    assert [(r["path"], r["status"]) for r in records] == [
        ("m", "ok"),
        ("big", "too_large"),
        ("big#L3", "ok"),
    ]
    assert "over --max-bytes" in records[1]["error"]


# ------------------------------------------------------ in-place edits --


@pytest.mark.parametrize("edited", ["a.txt", "b.txt"])  # the copy pass 2 reads, and the one it does not
def test_an_exact_copy_edited_in_place_with_its_mtime_kept_is_read_again(
    tmp_path: Path, write_tree, edited: str
) -> None:
    scrape = write_tree({"a.txt": MUSEUM, "b.txt": MUSEUM, "storm.txt": STORM})  # a and b: one text
    assert _cron(scrape, tmp_path).exit_code == 0
    before = (scrape / edited).stat()
    (scrape / edited).write_bytes((COUNCIL.encode() * 2)[: before.st_size])  # other words, same size ...
    os.utime(scrape / edited, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and the same mtime
    (scrape / "museum-copy.txt").write_text(truncate(MUSEUM, 0.7))  # the group is judged again
    result = _cron(scrape, tmp_path)
    assert result.exit_code == 0, result.output
    reference = _invoke(scrape, "--out", tmp_path / "reference")
    assert reference.exit_code == 0, reference.output
    keys = ("path", "status", "sha256", "cluster", "canonical", "duplicate_of", "score")
    ours = [[r.get(k) for k in keys] for r in read_manifest(tmp_path / "out")]
    assert ours == [[r.get(k) for k in keys] for r in read_manifest(tmp_path / "reference")]
    assert (tmp_path / "out" / "canonical" / edited).read_bytes() == (scrape / edited).read_bytes()


# ------------------------------------------------------------ half-made --

LONG = "x" * 300  # over the 255-byte name limit


@pytest.mark.parametrize("cron", [False, True], ids=["batch", "cron"])
def test_an_out_name_too_long_leaves_no_directory_behind(tmp_path: Path, write_tree, cron: bool) -> None:
    scrape = write_tree({"storm.txt": STORM})
    work = tmp_path / "work"
    work.mkdir()
    state = ("--state", str(work / "state")) if cron else ()
    result = _invoke(scrape, "--out", work / "a" / "b" / LONG, *state)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "too long" in lines[0]
    assert list(work.iterdir()) == []  # neither a/b nor the state


def test_a_state_name_too_long_leaves_no_directory_behind(tmp_path: Path, write_tree) -> None:
    scrape = write_tree({"storm.txt": STORM})
    work = tmp_path / "work"
    work.mkdir()
    result = _invoke(scrape, "--out", work / "out", "--state", work / "s" / LONG)
    assert result.exit_code == 1 and "too long" in result.stderr, result.output
    assert list(work.iterdir()) == []


def test_an_out_path_over_the_path_limit_leaves_no_directory_behind(tmp_path: Path, write_tree) -> None:
    scrape = write_tree({"storm.txt": STORM})
    work = tmp_path / "work"
    work.mkdir()
    deep = work.joinpath(*["d" * 200] * 25)  # every name allowed, the whole over PATH_MAX (4096)
    result = _invoke(scrape, "--out", deep, "--state", work / "state")
    assert result.exit_code == 1 and "too long" in result.stderr, result.output
    assert list(work.iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="drops root's override with setpriv (util-linux), as root",
)
def test_an_unwritable_out_parent_in_a_cron_run_makes_no_state(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="dedup-hostile-"))  # pytest's tmp_path is private to root
    try:
        root.chmod(0o777)
        (root / "in").mkdir()
        (root / "in" / "storm.txt").write_text(STORM)
        (root / "in").chmod(0o755)
        (root / "ro").mkdir(mode=0o555)
        (root / "ro").chmod(0o555)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        command = [*drop, sys.executable, "-m", "dedup", "run", str(root / "in"), "--out",
                   str(root / "ro" / "out"), "--state", str(root / "state"), "-j1", "-q"]  # fmt: skip
        result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True)
        assert result.returncode == 1 and "Permission denied" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in root.iterdir()) == [
            "in",
            "ro",
        ]  # no state made for a run that cannot be
    finally:
        shutil.rmtree(root)


# ------------------------------------------------------------ leftovers --


def test_a_users_dot_partial_file_keeps_its_copy_when_a_cron_run_updates_canonical(
    tmp_path: Path, write_tree
) -> None:
    scrape = write_tree({"x.txt": MUSEUM, ".x.txt.partial": STORM})  # a name like a temporary copy's
    assert _cron(scrape, tmp_path, "--glob", "*").exit_code == 0
    (scrape / "x.txt").write_text(COUNCIL)  # copied again, in place
    assert _cron(scrape, tmp_path, "--glob", "*").exit_code == 0
    canonical = tmp_path / "out" / "canonical"
    assert sorted(p.name for p in canonical.iterdir()) == [".x.txt.partial", "x.txt"]
    assert (canonical / ".x.txt.partial").read_text() == STORM
    assert (canonical / "x.txt").read_text() == COUNCIL


def _temporary(out: Path) -> list[Path]:
    """What a run writes before renaming it into place: temporary files and staging directories.

    ``os.walk`` skips a directory that vanishes while it is listed (the run may be
    removing one); ``Path.rglob`` raised, and the test failed on a busy machine.
    """
    suffixes = (".tmp", ".partial")
    return [Path(top, n) for top, dirs, files in os.walk(out) for n in dirs + files if n.endswith(suffixes)]


def test_a_cron_run_killed_while_copying_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    scrape = tmp_path / "scrape"
    (scrape / "sub").mkdir(parents=True)
    (scrape / "first.txt").write_text(MUSEUM)
    command = [sys.executable, "-m", "dedup", "run", str(scrape), "--out", str(tmp_path / "out"),
               "--state", str(tmp_path / "state"), "-j1", "-q"]  # fmt: skip
    assert subprocess.run(command, cwd=REPO, env=ENV, capture_output=True).returncode == 0
    vocabulary = [f"w{k}" for k in range(3000)]
    for i in range(2000):  # distinct texts: 2,000 canonical copies to make in place
        rng = random.Random(i)
        (scrape / "sub" / f"{i:05d}.txt").write_text(" ".join(rng.choices(vocabulary, k=150)))
    run = subprocess.Popen(command, cwd=REPO, env=ENV, stderr=subprocess.DEVNULL)
    seen: list[Path] = []
    deadline = time.monotonic() + 120
    try:
        while not seen and run.poll() is None and time.monotonic() < deadline:
            seen = [p for p in _temporary(tmp_path / "out") if "canonical" in str(p.relative_to(tmp_path))]
        run.send_signal(signal.SIGKILL)  # while the copies are made
    finally:
        run.wait()
    assert seen and run.returncode == -signal.SIGKILL, "the run ended before it could be caught copying"
    assert _temporary(tmp_path / "out")
    rerun = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert _temporary(tmp_path / "out") == []
    reference = tmp_path / "reference"
    assert _invoke(scrape, "--out", reference).exit_code == 0
    ours = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out" / "canonical").rglob("*"))
    assert ours == sorted(str(p.relative_to(reference)) for p in (reference / "canonical").rglob("*"))


def test_a_killed_stdin_runs_copy_is_removed_by_the_next_run_whatever_it_reads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dedup", "run", "-", "--out", str(out), "-j1", "-q"]
    run = subprocess.Popen(command, cwd=REPO, env=ENV, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert run.stdin is not None
    run.stdin.write(orjson.dumps({"id": "m", "text": MUSEUM}) + b"\n")
    run.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(out.glob(".stdin.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)  # while standard input is copied into OUT
    run.wait()
    run.stdin.close()
    assert list(out.glob(".stdin.*.tmp"))
    scrape = tmp_path / "scrape"
    scrape.mkdir()
    (scrape / "storm.txt").write_text(STORM)
    assert _invoke(scrape, "--out", out, "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]


# ------------------------------------------------------------- stdin --


def test_show_and_explain_after_a_run_on_stdin_read_kept_texts_from_canonical(tmp_path: Path) -> None:
    rows = [
        {"id": "m1", "text": MUSEUM},
        {"id": "m2", "text": truncate(MUSEUM, 0.8)},
        {"id": "c", "text": COUNCIL},
    ]
    feed = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    out = str(tmp_path / "out")
    assert CliRunner().invoke(cli, ["run", "-", "--out", out, "-j1", "-q"], input=feed).exit_code == 0
    shown = CliRunner().invoke(cli, ["show", "--path", "m2", "--in", out, "--json"])
    assert shown.exit_code == 0, shown.output
    members = {m["path"]: m for m in orjson.loads(shown.stdout)["members"]}
    assert members["m1"]["text_from"] == "canonical copy (standard input is not kept)"
    assert members["m2"]["text_from"] == "unavailable: it was read from standard input, which is not kept"
    explained = CliRunner().invoke(cli, ["explain", "m1", "c", "--in", out])
    assert explained.exit_code == 0, explained.output
    assert "verdict: different documents" in explained.stdout


def test_a_first_cron_run_refused_for_its_out_leaves_no_state(tmp_path: Path) -> None:
    out, state_dir = tmp_path / "out", tmp_path / "state"
    out.mkdir()
    (out / "notes.txt").write_text("a user's file\n")
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text(COUNCIL)
    result = CliRunner().invoke(cli, ["run", str(src), "--out", str(out), "--state", str(state_dir), "-q"])
    assert result.exit_code == 1 and "not empty" in result.output
    assert not state_dir.exists()  # was: an empty state.sqlite and a lock file
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("lost", ["the directory", "the database"])
def test_a_cron_run_whose_state_was_deleted_says_to_rebuild_and_rebuild_starts_again(
    tmp_path: Path, lost: str
) -> None:
    out, state_dir, src = tmp_path / "out", tmp_path / "state", tmp_path / "in"
    src.mkdir()
    for name, text in (("a.txt", COUNCIL), ("b.txt", truncate(COUNCIL, 0.7)), ("c.txt", STORM)):
        (src / name).write_text(text)
    args = ["run", str(src), "--out", str(out), "--state", str(state_dir), "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    first = (out / "manifest.jsonl").read_bytes()
    shutil.rmtree(state_dir) if lost == "the directory" else (state_dir / "state.sqlite").unlink()
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1
    assert refused.output == (
        f"Error: OUT {out} holds an earlier run's outputs, and --state {state_dir} holds no state: "
        "run with --rebuild to build it and replace them\n"
    )
    assert (out / "manifest.jsonl").read_bytes() == first and not (state_dir / "state.sqlite").exists()
    (out / "notes.txt").write_text("a user's file\n")  # not only dedup's outputs: the plain refusal
    assert "is not empty (use --force" in CliRunner().invoke(cli, args).output
    (out / "notes.txt").unlink()
    rebuilt = CliRunner().invoke(cli, [*args, "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (out / "manifest.jsonl").read_bytes() == first
    assert CliRunner().invoke(cli, args).exit_code == 0  # and the next night runs on it


# ------------------------------------------------ numbers past int()'s limit --


def test_a_decimal_reference_of_thousands_of_digits_is_read_as_html_would(tmp_path: Path) -> None:
    # html.unescape reads it with int(), which refuses over 4,300 digits: the run ended in a traceback.
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text(f"{STORM} &#{'9' * 4301}; and &#{'0' * 5000}65;")
    (inputs / "b.jsonl").write_bytes(orjson.dumps({"id": "b", "text": f"{COUNCIL} &#{'7' * 4400}"}) + b"\n")
    result = _invoke(inputs, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    records = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert records["a.txt"]["status"] == "ok" and records["b.jsonl/b"]["status"] == "ok"


@pytest.mark.parametrize("digits", [19, 4301])
def test_a_warc_record_whose_length_has_too_many_digits_is_malformed(tmp_path: Path, digits: int) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text(STORM)
    (inputs / "crawl.warc").write_bytes(
        b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: " + b"9" * digits + b"\r\n\r\nxx"
    )
    result = _invoke(inputs, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    damaged = [r for r in read_manifest(tmp_path / "out") if r["path"].startswith("crawl.warc")]
    assert [r["status"] for r in damaged] == ["malformed"]
    assert f"Content-Length has {digits} digits" in damaged[0]["error"]


def test_out_inside_an_input_reached_by_a_bind_mount_is_refused(tmp_path: Path) -> None:
    # A bind mount gives INPUT a second path: OUT beneath the first was not seen to be inside it,
    # and a --force rerun read OUT's own manifest and copies back as input.
    inputs, mounted = tmp_path / "in", tmp_path / "mounted"
    inputs.mkdir()
    mounted.mkdir()
    (inputs / "a.txt").write_text(STORM)
    if subprocess.run(["mount", "--bind", str(inputs), str(mounted)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        inside = _invoke(mounted, "--out", inputs / "out")
        holding = _invoke(inputs, "--out", mounted / "out")
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    for result in (inside, holding):
        assert result.exit_code == 1 and "overlaps INPUT" in result.output
    assert sorted(p.name for p in inputs.iterdir()) == ["a.txt"]  # no OUT made in the input


def test_show_names_a_gone_jsonl_records_text_unavailable_when_its_id_holds_a_nul(tmp_path: Path) -> None:
    # The id, joined to the gone container's path, was opened as a file: ValueError, a traceback.
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text(COUNCIL)
    one_line = COUNCIL.replace("\n", " ")  # a copy not kept: its text is read from the input alone
    _jsonl(inputs / "r.jsonl", [{"id": "n\u0000ul", "text": one_line}])
    assert _invoke(inputs, "--out", tmp_path / "out").exit_code == 0
    (inputs / "r.jsonl").unlink()
    result = CliRunner().invoke(cli, ["show", "--in", str(tmp_path / "out"), "--path", "a.txt"])
    assert result.exit_code == 0, result.output
    assert "text: unavailable" in result.output and "duplicate of a.txt" in result.output


@pytest.mark.parametrize("damage", ["fifo", "zero", "truncated", "newer", "not a record", "no counts"])
def test_a_damaged_out_is_one_error_line_for_show_and_report(tmp_path: Path, damage: str) -> None:
    # A FIFO as summary.json hung them, /dev/zero read until memory ran out; a truncated manifest line
    # and a summary with an option this dedup does not know were tracebacks.
    out, _ = _two_copies_run(tmp_path)
    summary, manifest = out / "summary.json", out / "manifest.jsonl"
    if damage in ("fifo", "zero"):
        summary.unlink()
        os.mkfifo(summary) if damage == "fifo" else summary.symlink_to("/dev/zero")
    elif damage == "truncated":
        manifest.write_bytes(manifest.read_bytes()[:-40] + b"\n")
    elif damage == "not a record":
        manifest.write_bytes(manifest.read_bytes() + b'{"path": "zz"}\n')
    else:
        data = orjson.loads(summary.read_bytes())
        if damage == "newer":
            data["config"]["an_option_of_later_versions"] = 1
        else:
            del data["counts"]
        summary.write_bytes(orjson.dumps(data))
    commands = [["report", str(out), "-q"]]
    if damage not in ("not a record", "no counts"):  # (show needs neither)
        commands.append(["show", "--in", str(out), "--path", "b.txt"])
    for args in commands:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and "Traceback" not in result.output


@pytest.mark.parametrize(
    "edit",
    [
        ("path", 5),
        ("cluster", []),
        ("canonical", None),
        ("score", "high"),
        ("similarity", "close"),
        ("penalties", {"markup": "x"}),
        ("size", 1.5),
        ("score", None),
        ("similarity", {"jaccard": 0.5}),
        ("warning", None, "no field"),
        ("canonical", False, "no canonical"),
    ],
)
def test_a_hand_edited_record_is_one_error_line_for_show_explain_and_report(
    tmp_path: Path, edit: tuple[Any, ...]
) -> None:
    # Each was a traceback: AttributeError, TypeError (unhashable), StopIteration (no canonical)...
    out, records = _two_copies_run(tmp_path)
    cluster = records[0]["cluster"]
    for record in records:  # both: the canonical and its duplicate
        if len(edit) == 3 and edit[2] == "no field":
            del record[edit[0]]
        elif len(edit) == 2 or record["canonical"]:
            record[edit[0]] = edit[1]
    _rewrite(out, records)
    for args in (
        ["report", str(out), "-q"],
        ["show", cluster, "--in", str(out)],
        ["show", "--in", str(out), "--path", "b.txt"],
        ["explain", "a.txt", "b.txt", "--in", str(out)],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and "Traceback" not in result.output, (args, result.output)


def test_hand_edited_values_of_the_right_type_are_shown(tmp_path: Path) -> None:
    # A Jaccard of 1e308 overflowed report's histogram; a kept path holding a NUL failed show's
    # look for its canonical copy (ValueError). Both are records dedup could read: shown as they are.
    out, records = _two_copies_run(tmp_path)
    for record in records:
        if record["canonical"]:
            record["path"] = "a\u0000.txt"
        else:
            record["similarity"]["jaccard"] = 1e308
            record["score"] = -1e308
    _rewrite(out, records)
    result = CliRunner().invoke(cli, ["report", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").stat().st_size > 0
    result = CliRunner().invoke(cli, ["show", records[0]["cluster"], "--in", str(out)])
    assert result.exit_code == 0, result.output
    assert "text: unavailable" in result.output


def _two_copies_run(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A run over a text and its copy on one line: OUT and its manifest's records."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text(COUNCIL)
    (inputs / "b.txt").write_text(COUNCIL.replace("\n", " "))
    out = tmp_path / "out"
    assert _invoke(inputs, "--out", out).exit_code == 0
    return out, [orjson.loads(line) for line in (out / "manifest.jsonl").read_bytes().splitlines()]


def _rewrite(out: Path, records: list[dict[str, Any]]) -> None:
    (out / "manifest.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
