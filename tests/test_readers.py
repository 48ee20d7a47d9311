"""Directory listing: the same files, in the same order, as ``os.walk`` would give."""

import os
from fnmatch import fnmatch
from fnmatch import translate as fnmatch_translate
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup.readers import walk


def walk_reference(root: str, globs: tuple[str, ...]) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            if any(fnmatch(name, g) for g in globs):
                found.append(Path(os.path.relpath(os.path.join(dirpath, name), root)).as_posix())
    return sorted(found)


def test_walk_matches_oswalk(tmp_path):
    root = tmp_path / "in"
    for rel in ("a.txt", "b.md", "c.csv", "sub/d.txt", "sub/deeper/e.TXT", "sub/deeper/f.txt", "z/[x].txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "g.txt").write_text("not below root")
    os.symlink(outside, root / "linked-dir")  # like os.walk: not followed
    os.symlink(root / "a.txt", root / "link.txt")  # a symlinked file is listed
    os.symlink(root / "nowhere.txt", root / "dangling.txt")  # and so is a dangling one (then unreadable)
    globs = ("*.txt", "*.md")
    got = list(walk(str(root), globs))
    assert [rel for rel, _ in got] == walk_reference(str(root), globs)
    assert all(error is None for _, error in got)
    assert "linked-dir/g.txt" not in [rel for rel, _ in got]
    assert "z/[x].txt" in [rel for rel, _ in got]  # glob characters in names are not patterns


def test_walk_reports_a_directory_it_cannot_list(tmp_path, monkeypatch):
    root = tmp_path / "in"
    (root / "ok").mkdir(parents=True)
    (root / "ok" / "a.txt").write_text("a")
    (root / "locked").mkdir()
    real = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert list(walk(str(root), ("*.txt",))) == [
        ("locked", "cannot list directory: Permission denied"),
        ("ok/a.txt", None),
    ]


def _listing_whole(root: str, globs: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """The listing as it was before 2026-12-04 (every path held, then sorted): the order to keep."""
    import re

    matches = re.compile("|".join(fnmatch_translate(g) for g in globs)).match
    found: list[tuple[str, str | None]] = []
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError as err:
            found.append((prefix[:-1] or ".", f"cannot list directory: {err.strerror}"))
            continue
        for entry in entries:
            if entry.is_dir():
                if not entry.is_symlink():
                    pending.append((f"{prefix}{entry.name}/", entry.path))
            elif matches(entry.name):
                found.append((prefix + entry.name, None))
    return sorted(found)


_NAMES = st.sampled_from(["a", "a.txt", "a-b", "a b", "a!", "a0", "ab", "A", "b.txt", "a.md", "z"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tree=st.lists(st.lists(_NAMES, min_size=1, max_size=4), min_size=1, max_size=12),
    locked=st.sets(st.integers(0, 11), max_size=3),
)
def test_a_directory_at_a_time_lists_in_the_order_of_the_whole_sorted_listing(
    tmp_path_factory, monkeypatch, tree: list[list[str]], locked: set[int]
) -> None:
    """Names that sort around a directory's slash ('a-b', 'a.txt', 'a0' beside directory 'a'), and
    directories that cannot be listed, which sort by their bare name."""
    root = tmp_path_factory.mktemp("tree")
    made_dirs: list[Path] = []
    for parts in tree:
        *dirs, name = parts
        parent = root.joinpath(*dirs)
        if any(p.is_file() for p in [root.joinpath(*dirs[: k + 1]) for k in range(len(dirs))]):
            continue  # a file already holds that name
        parent.mkdir(parents=True, exist_ok=True)
        made_dirs += [root.joinpath(*dirs[: k + 1]) for k in range(len(dirs))]
        if not (parent / name).exists():
            (parent / name).write_text(name)
    unlistable = {str(d) for k, d in enumerate(sorted(set(made_dirs))) if k in locked}
    real = os.scandir

    def scandir(path):
        if str(path) in unlistable:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    with monkeypatch.context() as patched:
        patched.setattr(os, "scandir", scandir)
        globs = ("*.txt", "a*", "z")
        assert list(walk(str(root), globs)) == _listing_whole(str(root), globs)


def _hostile_dir(tmp_path: Path) -> tuple[Path, list[str]]:
    """A directory of files read ahead or not: plain, empty, over the size limit, cp1252, a FIFO,
    links in and out of it, a dangling one, and a name with no file behind it."""
    root, outside = tmp_path / "in", tmp_path / "outside.txt"
    root.mkdir()
    outside.write_text("Outside the input.\n")
    (root / "a.txt").write_text("A plain article about the storm.\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "big.txt").write_bytes(b"x" * 5000)
    (root / "cp1252.txt").write_bytes("Caf\u00e9 \u2019s owner.\n".encode("cp1252"))
    os.mkfifo(root / "pipe.txt")  # never waited on: opened without blocking
    os.symlink(root / "a.txt", root / "inside.txt")
    os.symlink(outside, root / "out.txt")
    os.symlink(root / "missing-target.txt", root / "dangling.txt")
    names = [*sorted(p.name for p in root.iterdir()), "gone.txt"]
    return root, names


def _fields(doc: object) -> tuple[object, ...]:
    return tuple(getattr(doc, f) for f in ("status", "error", "size", "sha256", "text", "mtime_ns", "extra"))


def test_a_file_opened_ahead_reads_as_one_opened_when_read(tmp_path: Path) -> None:
    from dedup.config import Config
    from dedup.document import Document, Source
    from dedup.readers import Ahead, read_file

    root, names = _hostile_dir(tmp_path)
    fds = len(os.listdir("/proc/self/fd"))
    source = Source("dir", str(root), "")

    def docs() -> list[Document]:  # numbered 0 all: a batch from several INPUTs repeats numbers
        return [Document(0, name, source, str(root / name)) for name in names]

    for follow in (False, True):
        config = Config(max_bytes=4096, follow_links=follow)
        plain, ahead_read = docs(), docs()
        for doc in plain:
            read_file(doc, config)
        with Ahead(ahead_read, config) as ahead:
            for doc in ahead_read:
                read_file(doc, config, ahead.take(doc))
        assert [_fields(d) for d in ahead_read] == [_fields(d) for d in plain]
        statuses = {d.path: d.status.value for d in plain}
        assert statuses["a.txt"] == "ok" and statuses["pipe.txt"] == "unreadable"
        assert statuses["out.txt"] == ("ok" if follow else "outside")
        with Ahead(docs(), config):  # none taken: all closed at the end
            pass
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_batch_reads_all_its_files_when_descriptors_run_out(tmp_path: Path) -> None:
    import resource

    from dedup.config import Config
    from dedup.document import Document, Source, Status
    from dedup.pass1 import Analyser

    root = tmp_path / "in"
    root.mkdir()
    for i in range(40):
        (root / f"{i:02d}.txt").write_text(f"Article {i} says the river rose {i} feet overnight.\n")
    source = Source("dir", str(root), "")
    batch = [Document(i, f"{i:02d}.txt", source, str(root / f"{i:02d}.txt")) for i in range(40)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 12, hard))
    try:
        results, _ = Analyser(Config())(batch)  # ~10 opened ahead, the rest when read
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [doc.status for doc, _ in results] == [Status.OK] * 40
    assert all(features is not None for _, features in results)
