"""Directory listing: the same files, in the same order, as ``os.walk`` would give."""

import os
from fnmatch import fnmatch
from pathlib import Path

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
