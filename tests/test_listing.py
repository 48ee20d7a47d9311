"""A cron run takes its INPUT directories' files from find's listing (``listing``), not a walk and a stat
each: the same files, order, sizes and mtimes, and the same run, or no listing at all."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COUNCIL, MUSEUM, STORM, STORM_OTHER
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cron_rerun import outputs

from dedup import Config, cron_pass1, listing, run
from dedup.config import DEFAULT_GLOBS
from dedup.readers.files import walk

pytestmark = pytest.mark.skipif(shutil.which("find") is None, reason="GNU find lists the INPUTs")


def _names(root: Path) -> None:
    """Names that sort or decode differently, a FIFO, a file no glob takes, an empty directory."""
    for rel in ("a-b.txt", "a/x.txt", "a.txt", "a0.txt", "b/c/d.md", "sp ace.txt", "new\nline.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"{rel} {MUSEUM}")
    (root / "café.txt").write_text(STORM_OTHER)
    (root / "日本.txt").write_text(STORM)
    (root / "caf\\xe9.txt").write_text("a backslash literally " + COUNCIL)
    (root / "x.bin").write_bytes(b"\0\1")
    (root / "rows.jsonl").write_text('{"id": "1", "text": "one line of text here"}\n')
    (root / "empty").mkdir()
    os.mkfifo(root / "pipe.txt")
    os.utime(root / "a.txt", ns=(1, 1_700_000_000_123_456_789))
    (root / "x\uff01.txt").write_text("full width " + COUNCIL)  # sorts after x\xff as bytes, before as names
    for name in (b"caf\xe9-latin1.txt", b"x\xff.txt"):
        with open(os.path.join(os.fsencode(root), name), "wb") as fh:
            fh.write(b"a name that is not UTF-8 " + name + STORM.encode())


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    _names(root)
    return root


@pytest.mark.parametrize("globs", [DEFAULT_GLOBS, ("*",), ("a*", "*.md", "?ew*"), ("*.txt", "*/x.txt")])
def test_files_are_the_walks_with_finds_facts(tree: Path, globs: tuple[str, ...]) -> None:
    listed = listing.find(str(tree))
    assert listed is not None
    found = listing.files(listed, globs, str(tree))
    assert found is not None
    assert found.rels == [rel for rel, _ in walk(str(tree), globs)]
    assert ("x.bin" in found.rels) == (globs == ("*",))
    for rel, regular, size, mtime in zip(found.rels, found.regular, found.sizes, found.mtimes, strict=True):
        info = os.lstat(os.path.join(os.fsencode(tree), os.fsencode(rel)))
        assert (bool(regular), int(size), int(mtime)) == (rel != "pipe.txt", info.st_size, info.st_mtime_ns)


def test_no_files_where_the_listing_does_not_fit(tree: Path) -> None:
    """A link (walked as it is), an mtime before 1970 (a wider field), a cut listing: pass 1 walks."""
    os.utime(tree / "a0.txt", ns=(1, -5_000_000_000))
    assert listing.files(listing.find(str(tree)) or b"", DEFAULT_GLOBS, str(tree)) is None
    os.utime(tree / "a0.txt", ns=(1, 5_000_000_000))
    listed = listing.find(str(tree))
    assert listed is not None and listing.files(listed, DEFAULT_GLOBS, str(tree)) is not None
    assert listing.files(listed[:-1], DEFAULT_GLOBS, str(tree)) is None
    assert listing.files(listed[:-40], DEFAULT_GLOBS, str(tree)) is None
    (tree / "link.txt").symlink_to(tree / "a.txt")
    assert listing.files(listing.find(str(tree)) or b"", DEFAULT_GLOBS, str(tree)) is None


def _changes(root: Path, step: int) -> None:
    """What a day brings: an edit, a new file, one gone, one touched, one put back as it was."""
    if step == 1:
        (root / "a/x.txt").write_text("edited " + MUSEUM)
        (root / "new.txt").write_text(MUSEUM + " and a new ending")
        (root / "b/c/d.md").unlink()
        os.utime(root / "café.txt", ns=(1, 1_800_000_000_000_000_000))
    elif step == 2:
        (root / "b/c/d.md").write_text(f"b/c/d.md {MUSEUM}")
        (root / "日本.txt").write_text(STORM + " more")


def _run_walking(inputs: Path, where: Path, jobs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cron run into ``where``'s out and state with no find on PATH: the walk, and a stat a file."""
    with monkeypatch.context() as patched:
        patched.setenv("PATH", str(where / "nowhere"))
        run([inputs], where / "out", Config(jobs=jobs, state=str(where / "state")))


def test_a_cron_run_from_the_listing_equals_one_that_walks(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[bool] = []
    files = listing.files

    def spied(found: bytes, globs: tuple[str, ...], root: str) -> listing.Files | None:
        got = files(found, globs, root)
        taken.append(got is not None)
        return got

    walked, listed = tmp_path / "walked", tmp_path / "listed"
    for step in range(3):
        _changes(tree, step)
        _run_walking(tree, walked, 1, monkeypatch)
        with monkeypatch.context() as patched:
            patched.setattr(listing, "files", spied)
            summary = run([tree], listed / "out", Config(jobs=1, state=str(listed / "state"))).summary
        assert taken == [True] * (step + 1)
        assert outputs(listed / "out", listed / "state") == outputs(walked / "out", walked / "state")
        counts = summary["counts"]
        assert [counts["new"], counts["changed"], counts["gone"]] == [[15, 0, 0], [1, 1, 1], [1, 1, 0]][step]


def test_the_listing_is_the_same_whatever_the_finds_at_once(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top's entries are dealt out among the same finds however many run at once: a rerun with
    another --jobs is still told it has nothing to do."""
    for k in range(12):
        (tree / f"sub{k}").mkdir()
        (tree / f"sub{k}" / "f.txt").write_text(f"{k} {MUSEUM}")
    listings = {listing.find(str(tree), parallel=p) for p in (1, 2, 3, 8)}
    assert len(listings) == 1 and None not in listings
    passes: list[int] = []
    read_all = cron_pass1.read_all
    monkeypatch.setattr(cron_pass1, "read_all", lambda *a, **k: passes.append(1) or read_all(*a, **k))
    state = str(tmp_path / "state")
    run([tree], tmp_path / "out", Config(jobs=1, state=state))
    assert run([tree], tmp_path / "out", Config(jobs=2, state=state)).summary["counts"]["new"] == 0
    assert len(passes) == 1  # the second run: nothing to do, no pass 1


def test_a_directory_of_many_subdirectories_is_listed_by_one_find(tmp_path: Path) -> None:
    """Their names would fill the finds' command lines: one find lists it all, the same files."""
    root = tmp_path / "wide"
    for k in range(2200):
        (root / f"{k:06d}-a-rather-long-directory-name").mkdir(parents=True)
        (root / f"{k:06d}-a-rather-long-directory-name" / "a.txt").write_text(str(k))
    (root / "top.txt").write_text("top")
    listed = listing.find(str(root), parallel=2)
    assert listed is not None and listed == listing.find(str(root), parallel=1)
    found = listing.files(listed, DEFAULT_GLOBS, str(root))
    assert found is not None and found.rels == [rel for rel, _ in walk(str(root), DEFAULT_GLOBS)]
    assert len(found.rels) == 2201


def _cron_and_batch(root: Path, tmp_path: Path) -> tuple[bytes, bytes]:
    run([root], tmp_path / "cron", Config(jobs=1, state=str(tmp_path / "state")))
    run([root], tmp_path / "batch", Config(jobs=1))
    return (tmp_path / "cron" / "manifest.jsonl").read_bytes(), (
        tmp_path / "batch" / "manifest.jsonl"
    ).read_bytes()


def test_a_tree_deeper_than_the_system_lists_is_walked(tmp_path: Path) -> None:
    """find goes below PATH_MAX, ``os.scandir`` cannot: the directory it cannot list is one record."""
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.txt").write_text(MUSEUM)
    fd = os.open(root, os.O_RDONLY)
    try:
        for k in range(18):  # ~4,400 bytes deep
            name = f"d{k:02d}" + "x" * 240
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            with open(os.open(f"deep{k}.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
                fh.write(f"deep text {k} {COUNCIL}")
    finally:
        os.close(fd)
    assert listing.files(listing.find(str(root)) or b"", DEFAULT_GLOBS, str(root)) is None
    cron, batch = _cron_and_batch(root, tmp_path)
    assert cron == batch and b"cannot list directory" in cron


def test_a_file_dated_after_2262_is_recorded(tmp_path: Path) -> None:
    """Its mtime in nanoseconds is past int64: held at the end of the range, in batch and cron runs."""
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.txt").write_text(MUSEUM)
    (root / "future.txt").write_text(COUNCIL)
    os.utime(root / "future.txt", (1, 10_413_792_000))  # 2300
    cron, batch = _cron_and_batch(root, tmp_path)
    assert cron == batch and b"future.txt" in cron
    again = run([root], tmp_path / "cron", Config(jobs=2, state=str(tmp_path / "state"))).summary
    assert again["counts"]["new"] == again["counts"]["changed"] == 0


def test_a_flat_directory_of_long_names_is_listed(tmp_path: Path) -> None:
    """Its files are not put on the finds' command lines: listed under a small ARG_MAX."""
    root = tmp_path / "in"
    root.mkdir()
    for k in range(2600):  # ~150 KB of names for each of four finds, over the 128 KB allowed below
        (root / (f"{k:06d}" + "n" * 224 + ".txt")).write_text(f"text number {k} " + STORM[: 40 + k % 50])
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_STACK, (1 << 19, 1 << 19)); "
        "from dedup import Config, listing, run; "
        f"state = {str(tmp_path / 'state')!r}; run([{str(root)!r}], {str(tmp_path / 'out')!r}, "
        "Config(jobs=2, state=state)); "
        f"print(listing.find({str(root)!r}, parallel=2) is not None)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "True\n"  # listed, not walked for want of a listing
    assert len((tmp_path / "out" / "manifest.jsonl").read_bytes().splitlines()) == 2600


def _plain_day(root: Path, day: int) -> None:
    """Plain files only (no container, no FIFO), so that the whole listing is taken at once: new
    files between stored ones, an edit (one of a name that is not UTF-8), one touched, one gone, an
    empty file that gets words."""
    if day == 0:
        for k in range(40):
            (root / f"f{k:02d}.txt").write_text(f"file {k} {(MUSEUM, COUNCIL, STORM)[k % 3]}")
        (root / "café.txt").write_text(STORM_OTHER)
        (root / "caf\\xe9.txt").write_text("a backslash literally " + COUNCIL)
        (root / "empty.txt").write_text("")
    with open(os.path.join(os.fsencode(root), b"caf\xe9-latin1.txt"), "wb") as fh:  # not UTF-8: edited
        fh.write(b"a name that is not UTF-8 " + STORM.encode() + b" day %d" % day)
    if day == 0:
        return
    for k in (3, 17, 29):
        (root / f"f{k:02d}-new.txt").write_text(f"new {k} {(MUSEUM, COUNCIL, STORM)[k % 3]}")
    (root / "f05.txt").write_text("edited " + COUNCIL)
    os.utime(root / "f08.txt", ns=(1, 1_800_000_000_000_000_000))
    (root / "f11.txt").unlink()
    (root / "empty.txt").write_text("now a text " + STORM_OTHER)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_listing_of_plain_files_is_numbered_as_the_walk_numbers_it(tmp_path: Path, jobs: int) -> None:
    """Pass 1 of a cron run takes a listing of plain files at once, the new and changed ones read:
    the same documents, rows, features and flags as walking it, with many batches in flight."""
    from dedup import readers
    from dedup.frequency import TokenFrequency
    from dedup.incremental import Incremental
    from dedup.rows import Matched
    from dedup.state import State

    root = tmp_path / "in"
    root.mkdir()
    _plain_day(root, 0)
    state = tmp_path / "state"
    run([root], tmp_path / "out", Config(jobs=jobs, state=str(state)))
    _plain_day(root, 1)
    config = Config(jobs=jobs, state=str(state))
    sources = readers.discover([root])
    got = []
    for listings in ({sources[0]: listing.find(str(root))}, None):
        store = State(state, config.stamp())
        try:
            cache = Incremental(store, config)
            cache.begin()
            matched, frequency = Matched(), TokenFrequency()
            docs, feats, fresh = cron_pass1.read_all(
                sources, config, frequency, cache.previous, matched, batch_size=2, listings=listings
            )
        finally:
            store.close()
        table = [
            (d.index, d.path, d.file, d.size, d.mtime_ns, str(d.status), d.sha256, d.error) for d in docs
        ]
        names = ("node_of", "contents", "sizes", "signals")
        columns = [getattr(feats, name).numbers().tobytes() for name in names]
        flags = (bytes(fresh), matched.rows().tolist(), matched.same_file().tolist())
        got.append((table, columns, flags, frequency.table.tobytes()))
    assert got[0] == got[1]
    table, _, (fresh, rows, _), _ = got[0]
    assert len(table) == 46 and fresh.count(1) == 7  # three new, two edits, the touched, the empty one
    assert [rows[i] for i, flag in enumerate(fresh) if flag].count(-1) == 3


def test_a_cron_run_over_plain_files_from_the_listing_equals_one_that_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole run, its listing taken at once: OUT and the state as a run that walks leaves them."""
    root = tmp_path / "in"
    root.mkdir()
    walked, listed = tmp_path / "walked", tmp_path / "listed"
    for day in range(2):
        _plain_day(root, day)
        _run_walking(root, walked, 2, monkeypatch)
        counts = run([root], listed / "out", Config(jobs=2, state=str(listed / "state"))).counts
        assert outputs(listed / "out", listed / "state") == outputs(walked / "out", walked / "state")
    assert [counts["new"], counts["changed"], counts["gone"]] == [3, 3, 1]


def _dirs_walked(top: Path) -> list[bytes]:
    """Every directory under ``top`` as ``os.walk`` finds them, as ``listing.directories`` names them."""
    found = []
    for at, subdirectories, _ in os.walk(os.fsencode(top)):
        found += [os.path.relpath(os.path.join(at, d), os.fsencode(top)) + b"/" for d in subdirectories]
    return sorted(found)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(["a", "b", "a-b", "é", "z z"]), min_size=1, max_size=4), max_size=12),
    st.lists(st.integers(0, 11), max_size=8),
)
def test_directories_are_every_directory_with_leaves_stated_not_read(
    tmp_path_factory: pytest.TempPathFactory, paths: list[list[str]], files: list[int]
) -> None:
    """Leaves told by their link count (not read) give the lines reading every directory gives:
    every directory under the top, in path order, whatever the tree."""
    top = tmp_path_factory.mktemp("dirs")
    made = [top.joinpath(*parts) for parts in paths]
    for path in made:
        path.mkdir(parents=True, exist_ok=True)
    for k in files:
        if made:
            (made[k % len(made)] / f"f{k}").write_text("x")
    listed = listing.directories(str(top))
    assert listed is not None and listed == listing.directories(str(top), counted=False)
    assert [line.split(b"\0")[0] for line in listed.splitlines()] == _dirs_walked(top)


def test_directories_move_with_a_change_in_a_leaf(tmp_path: Path) -> None:
    """A leaf (never read) still moves the listing when a file is added, one is removed with the
    mtime put back (its ctime), or a subdirectory is made in it (then it is read)."""
    leaf = tmp_path / "canonical" / "site" / "day1"
    leaf.mkdir(parents=True)
    (leaf / "a.txt").write_text("a")
    top = str(tmp_path / "canonical")
    seen = [listing.directories(top)]
    (leaf / "b.txt").write_text("b")
    seen.append(listing.directories(top))
    folder = os.stat(leaf)
    (leaf / "b.txt").unlink()
    os.utime(leaf, ns=(folder.st_atime_ns, folder.st_mtime_ns))
    seen.append(listing.directories(top))
    (leaf / "deeper").mkdir()
    seen.append(listing.directories(top))
    assert len(set(seen)) == len(seen) and None not in seen
    assert seen[-1] is not None and b"site/day1/deeper/\0" in seen[-1]


def test_directories_where_link_counts_are_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system whose directories' link counts are not 2 and their subdirectories (here, the
    top's said to be 9): every directory is read, the same lines; one that cannot be read: None."""
    (tmp_path / "top" / "a" / "b").mkdir(parents=True)
    (tmp_path / "top" / "c").mkdir()
    top = str(tmp_path / "top")
    expected = listing.directories(top, counted=False)
    lstat = os.lstat

    def miscounted(path: object) -> os.stat_result:
        info = lstat(path)  # type: ignore[arg-type]
        return os.stat_result((info.st_mode, info.st_ino, info.st_dev, 9, *tuple(info)[4:]))

    monkeypatch.setattr(os, "lstat", miscounted)
    assert listing.directories(top) == expected
    monkeypatch.undo()
    assert listing.directories(str(tmp_path / "missing")) is None
