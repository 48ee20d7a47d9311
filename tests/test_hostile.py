"""Hostile input and faults: no hang, no traceback, no lock-out (issue #11)."""

import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner, Result
from conftest import (
    COUNCIL,
    MUSEUM,
    STORM,
    by_path,
    read_manifest,
    scrape_files,
    truncate,
)

from dedup import Config, comparison, normalize, pass1, quality, readers, signatures
from dedup.cli import cli
from dedup.locks import locked
from dedup.records import cluster_name
from dedup.signatures import Signer, document_shingles, shingle_hashes

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _dedup(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dedup", "run", *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, **kwargs)


def test_many_unclosed_comments_take_linear_time() -> None:
    text = " <!-- x" * 20_000  # 140 KB: minutes with a comment pattern that scans to the end from each "<!--"
    started = time.perf_counter()
    comparison = normalize.comparison_text(text)
    quality.intrinsic(text, text, comparison)
    assert time.perf_counter() - started < 5
    assert comparison.split() == ["<!--", "x"] * 20_000


def test_comments_are_still_removed() -> None:
    text = "Before <!-- a - b -- c\n<p>x</p> ---> after <!-- open"
    assert normalize.comparison_text(text).split() == ["before", "after", "<!--", "open"]


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_main_process_alone_frees_the_state(tmp_path: Path, how: signal.Signals) -> None:
    vocabulary = [f"w{k}" for k in range(3000)]
    scrape = tmp_path / "scrape"
    scrape.mkdir()
    for i in range(3000):  # distinct texts: a pass 1 long enough to be caught in, a short pass 2
        rng = random.Random(i)
        (scrape / f"{i:05d}.txt").write_text(" ".join(rng.choices(vocabulary, k=150)))
    out, state = tmp_path / "out", tmp_path / "state"
    command = [sys.executable, "-m", "dedup", "run", str(scrape), "--out", str(out),
               "--state", str(state), "-j2", "-q"]  # fmt: skip
    main = subprocess.Popen(command, cwd=REPO, env=ENV, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and main.poll() is None and time.monotonic() < deadline:
            workers = _children(main.pid)
            time.sleep(0.01)
        assert len(workers) >= 2, "the run ended before its workers could be seen"
        main.send_signal(how)  # the main process only
        main.wait()
        rerun = _dedup(scrape, "--out", out, "--state", state, "-j2", "-q")  # at once, no --lock-timeout
        assert rerun.returncode == 0, rerun.stderr
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers)), "workers outlived the killed run"
    finally:
        for pid in workers:  # the workers this test caused, if the fix is missing
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    reference = _dedup(scrape, "--out", tmp_path / "reference", "-j1", "-q")
    assert reference.returncode == 0, reference.stderr
    keys = ("path", "status", "cluster", "canonical", "duplicate_of", "score")
    ours, theirs = read_manifest(out), read_manifest(tmp_path / "reference")
    assert [[r[k] for k in keys] for r in ours] == [[r[k] for k in keys] for r in theirs]


# ---------------------------------------------------------------- faults --


@pytest.fixture
def scrape(write_tree) -> Path:
    return write_tree(scrape_files())


def _one_error_line(result: subprocess.CompletedProcess[str] | Result) -> str:
    stderr = result.stderr
    assert result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["run", *map(str, args), "-j1", "-q"])


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _as_nobody(*args: str | Path) -> subprocess.CompletedProcess[str]:
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    command = [*drop, sys.executable, "-m", "dedup", "run", *map(str, args), "-j1", "-q"]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True)


needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="permission tests drop root's override with setpriv (util-linux), as root",
)


@pytest.fixture
def public(scrape: Path):
    """A directory the unprivileged user can reach (pytest's own is private to root), with the scrape."""
    root = Path(tempfile.mkdtemp(prefix="dedup-hostile-"))
    root.chmod(0o755)
    shutil.copytree(scrape, root / "in")
    for p in [root / "in", *(root / "in").rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield root
    for p in root.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(root)


@needs_setpriv
def test_read_only_out_is_one_error_line(public: Path) -> None:
    out = public / "out"
    out.mkdir()
    out.chmod(0o555)
    error = _one_error_line(_as_nobody(public / "in", "--out", out, "--force"))
    assert "Permission denied" in error
    assert list(out.iterdir()) == []
    error = _one_error_line(_as_nobody(public / "in", "--out", out / "sub"))
    assert "Permission denied" in error


@needs_setpriv
def test_unwritable_state_parent_is_one_error_line(public: Path) -> None:
    (public / "out").mkdir()
    (public / "out").chmod(0o777)
    locked_parent = public / "ro"
    locked_parent.mkdir()
    locked_parent.chmod(0o555)
    error = _one_error_line(
        _as_nobody(public / "in", "--out", public / "out", "--state", locked_parent / "state")
    )
    assert "state" in error and "Permission denied" in error
    assert list(locked_parent.iterdir()) == []


@needs_setpriv
def test_unreachable_input_is_one_error_line(public: Path) -> None:
    (public / "in").chmod(0o700)
    (public / "out").mkdir()
    (public / "out").chmod(0o777)
    error = _one_error_line(_as_nobody(public / "in" / "storm.txt", "--out", public / "out"))
    assert "Permission denied" in error


def _small_files(limit: int) -> None:
    """In the child: files cannot grow past ``limit`` bytes (EFBIG, as a full disk gives ENOSPC)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_no_space_for_the_manifest_is_one_error_line_and_leaves_nothing(scrape: Path, tmp_path: Path) -> None:
    for k in range(60):  # a manifest of some 40 KB, each copy small
        (scrape / f"more-{k:02d}.txt").write_text(f"Filler article number {k} " * 20)
    out = tmp_path / "out"
    full = _dedup(scrape, "--out", out, "-j1", "-q", preexec_fn=lambda: _small_files(16_000))
    assert "manifest.jsonl" in _one_error_line(full)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # no manifest, no temporary file


def test_no_space_in_a_cron_run_leaves_the_state_as_it_was(scrape: Path, tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    assert _dedup(scrape, "--out", out, "--state", state, "-j1", "-q").returncode == 0
    for k in range(60):
        (scrape / f"more-{k:02d}.txt").write_text(f"Filler article number {k} " * 20)
    before = _tree(out)
    full = _dedup(
        scrape, "--out", out, "--state", state, "-j1", "-q", preexec_fn=lambda: _small_files(16_000)
    )
    _one_error_line(full)
    assert _tree(out) == before
    with sqlite3.connect(state / "state.sqlite") as db:
        assert db.execute("SELECT max(run) FROM runs").fetchone() == (1,)
    again = _dedup(scrape, "--out", out, "--state", state, "-j1", "-q")
    assert again.returncode == 0, again.stderr
    assert len(read_manifest(out)) == 65


def _cron(scrape: Path, tmp_path: Path, *more: str) -> Result:
    return _invoke(scrape, "--out", tmp_path / "out", "--state", tmp_path / "state", *more)


def test_garbled_state_pages_ask_for_a_rebuild_and_are_left_alone(scrape: Path, tmp_path: Path) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    database = tmp_path / "state" / "state.sqlite"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    data[200:] = bytes(b ^ 0x5A for b in data[200:])  # every page but the header's first bytes
    database.write_bytes(bytes(data))
    error = _one_error_line(_cron(scrape, tmp_path))
    assert "--rebuild" in error
    assert database.read_bytes() == bytes(data)
    assert _cron(scrape, tmp_path, "--rebuild").exit_code == 0


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE documents SET signature = x'0102' WHERE key = 'storm.txt'",
        "UPDATE documents SET record = 'not json' WHERE key = 'storm.txt'",
        "UPDATE documents SET status = 'melted' WHERE key = 'storm.txt'",
    ],
)
def test_a_bad_stored_record_asks_for_a_rebuild(scrape: Path, tmp_path: Path, damage: str) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    with sqlite3.connect(tmp_path / "state" / "state.sqlite") as db:
        db.execute(damage)
    error = _one_error_line(_cron(scrape, tmp_path))
    assert "storm.txt" in error and "--rebuild" in error
    assert _cron(scrape, tmp_path, "--rebuild").exit_code == 0


def test_an_emptied_state_is_refused_not_restarted(scrape: Path, tmp_path: Path) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    (tmp_path / "state" / "state.sqlite").write_bytes(b"")
    for extra in ("state.sqlite-wal", "state.sqlite-shm"):
        (tmp_path / "state" / extra).unlink(missing_ok=True)
    assert "--rebuild" in _one_error_line(_cron(scrape, tmp_path))
    assert (tmp_path / "state" / "state.sqlite").stat().st_size == 0
    assert _cron(scrape, tmp_path, "--rebuild").exit_code == 0


def test_out_path_too_long_is_one_error_line(scrape: Path, tmp_path: Path) -> None:
    error = _one_error_line(_invoke(scrape, "--out", tmp_path / ("x" * 300)))
    assert "too long" in error


def test_a_long_file_name_is_copied_in_place_by_a_cron_run(scrape: Path, tmp_path: Path) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    name = "n" * 250 + ".txt"  # its temporary ".NAME.partial" would pass the 255-byte limit
    (scrape / name).write_text(MUSEUM)
    result = _cron(scrape, tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "canonical" / name).read_text() == MUSEUM


# ------------------------------------------------------------ cron mode --


def test_a_run_killed_after_its_commit_gets_its_change_list_written(scrape: Path, tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    assert _cron(scrape, tmp_path).exit_code == 0
    (scrape / "teaser.txt").write_text(truncate(COUNCIL, 0.45))
    launcher = [
        sys.executable,
        str(REPO / "tests" / "crash_at.py"),
        "committed",
        str(scrape),
        str(out),
        str(state),
    ]
    assert subprocess.run(launcher, cwd=REPO, env=ENV, capture_output=True).returncode == -signal.SIGKILL
    assert not (out / "runs" / "run-000002.jsonl").exists()
    assert _cron(scrape, tmp_path).exit_code == 0
    killed = [orjson.loads(line) for line in (out / "runs" / "run-000002.jsonl").read_bytes().splitlines()]
    assert [(c["change"], c["path"]) for c in killed if c["change"] == "new"] == [("new", "teaser.txt")]
    assert (out / "runs" / "run-000003.jsonl").read_bytes() == b""  # the rerun itself changed nothing


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--max-bytes", "100", "max_bytes"),
        ("--text-field", "body", "text_field"),
        ("--id-field", "u", "id_field"),
    ],
)
def test_options_that_change_stored_documents_are_refused(
    scrape: Path, tmp_path: Path, option: str, value: str, field: str
) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    error = _one_error_line(_cron(scrape, tmp_path, option, value))
    assert field in error and "--rebuild" in error
    assert _cron(scrape, tmp_path, option, value, "--rebuild").exit_code == 0


def test_cron_runs_lock_out(scrape: Path, tmp_path: Path) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    with locked(tmp_path / "out", 0, ".lock"):  # another run, with its own --state, writing this OUT
        result = _cron(scrape, tmp_path)
    assert result.exit_code == 3
    assert "OUT" in result.stderr and "locked" in result.stderr


def test_state_inside_out_is_a_usage_error(scrape: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _invoke(scrape, "--out", out, "--state", out / "state")
    assert result.exit_code == 2, result.output
    assert "--state" in result.stderr and not (out / "state").exists()


def test_a_file_edited_in_place_with_its_mtime_kept_is_read_again(scrape: Path, tmp_path: Path) -> None:
    museum = scrape / "museum.txt"
    museum.write_text(MUSEUM)
    assert _cron(scrape, tmp_path).exit_code == 0
    before = museum.stat()
    size = before.st_size
    museum.write_bytes((COUNCIL.encode() * 2)[:size])  # other words, same size ...
    os.utime(museum, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and the same mtime
    (scrape / "museum-copy.txt").write_text(truncate(MUSEUM, 0.7))  # a near-duplicate of what it was
    result = _cron(scrape, tmp_path)
    assert result.exit_code == 0, result.output
    reference = _invoke(scrape, "--out", tmp_path / "reference")
    assert reference.exit_code == 0, reference.output
    keys = ("path", "status", "sha256", "cluster", "canonical", "duplicate_of", "score")
    ours = [[r.get(k) for k in keys] for r in read_manifest(tmp_path / "out")]
    assert ours == [[r.get(k) for k in keys] for r in read_manifest(tmp_path / "reference")]
    assert by_path(tmp_path / "out")["museum-copy.txt"]["duplicate_of"] is None


# ---------------------------------------------------------- long texts --


def _one_line(words: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5000)
    ]
    return " ".join(rng.choices(vocabulary, k=words))


def _peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_signing_a_long_one_line_text_takes_bounded_memory(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "long.txt").write_text(_one_line(320_000))  # ~2 MB: its MinHash buffer alone was 320 MB
    size = (tmp_path / "long.txt").stat().st_size
    config = Config(jobs=1)
    signer = Signer(num_perm=config.num_perm, seed=config.seed)
    (doc,) = readers.iter_documents(readers.discover([tmp_path]), config, read=False)
    features: list = []
    assert _peak_bytes(lambda: features.append(pass1.analyse(doc, config, signer)[1])) < 30 * size
    shingles = np.random.default_rng(1).integers(0, 2**63, 50_000, dtype=np.uint64)
    blocked = signer.sign(shingles)
    monkeypatch.setattr(signatures, "SIGN_CHUNK", 1 << 30)
    assert (signer.sign(shingles) == blocked).all()  # the same signature as in one block


def test_scoring_long_copies_aligns_a_bounded_prefix() -> None:
    a = _one_line(200_000).split()
    b = [("x" + w if k % 500 == 0 else w) for k, w in enumerate(a)]
    shingles = [shingle_hashes(a, 5), shingle_hashes(b, 5)]
    assert _peak_bytes(lambda: quality.relative([a, b], shingles)) < 60_000_000  # 140 MB aligning all


def test_a_cluster_is_renamed_exactly_when_its_first_member_changes(scrape: Path, tmp_path: Path) -> None:
    assert _cron(scrape, tmp_path).exit_code == 0
    first = by_path(tmp_path / "out")
    assert (
        first["storm.txt"]["cluster"]
        == first["storm-boiler.txt"]["cluster"]
        == cluster_name("storm-boiler.txt")
    )
    (scrape / "t-storm.txt").write_text(truncate(STORM, 0.6))  # sorts after the first member: name kept
    assert _cron(scrape, tmp_path).exit_code == 0
    assert by_path(tmp_path / "out")["t-storm.txt"]["cluster"] == cluster_name("storm-boiler.txt")
    (scrape / "a-storm.txt").write_text(truncate(STORM, 0.7))  # sorts first: every member renamed
    assert _cron(scrape, tmp_path).exit_code == 0
    names = {by_path(tmp_path / "out")[p]["cluster"] for p in ("a-storm.txt", "storm.txt", "t-storm.txt")}
    assert names == {cluster_name("a-storm.txt")}
    (scrape / "a-storm.txt").unlink()  # gone: the next member in order names it again
    assert _cron(scrape, tmp_path).exit_code == 0
    assert by_path(tmp_path / "out")["storm.txt"]["cluster"] == cluster_name("storm-boiler.txt")


def test_a_long_text_is_hashed_in_pieces_to_the_same_shingles() -> None:
    text = _one_line(100_000) + " rn cl vv 1i0 " * 10  # > 256 KB of tokens: hashed in several pieces
    toks, shingles, *_ = comparison.compared(text, 5)
    assert (shingles == document_shingles(toks, 5)).all()
    buf = np.frombuffer(normalize.skeleton_bytes(text.encode()), np.uint8)
    assert (signatures.hash_tokens(buf, chunk=1000) == signatures.hash_tokens(buf, chunk=len(buf))).all()
