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
