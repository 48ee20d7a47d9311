"""A cron run with nothing to do, told without doing it (as black's cache tells an unchanged file).

The last run that brought OUT up to date recorded, with ``State.mark_synced``:

- ``inputs``: a hash of what decides the run's work: every entry under each INPUT
  (path, type, size, mtime and inode, as GNU find lists them: ``listing.find``,
  taken before the run read anything; pass 1 reads its files from the same
  listing), the options, dedup's own source files and datasketch's version;
- ``out``: a hash of OUT's ``manifest.jsonl`` and of ``canonical/``'s directories
  (path, mtime, ctime and inode: ``listing.directories``) as the run left them: a
  copy added, removed, renamed or replaced changes its directory's mtime. A copy
  edited in place is not looked at, as a full run does not look either (it makes
  the copies that are missing); a stat of each of a million copies was 1.6 s of
  every run with work;
- ``summary``: its summary.json, and the state's stamp as stored.

When they all hold, a run would read no document, judge no group and write the
same manifest and canonical copies: it only records itself (the run in the
state, an empty ``runs/`` change list, summary.json), without loading the
state's rows or importing numba, datasketch and scipy. Anything else (a file
touched, moved, replaced or added anywhere under an INPUT, another option, a
changed or removed manifest, a copy gone, a symbolic link inside an INPUT, standard
input) runs in full, which finds out what changed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import orjson

from dedup import __version__, listing
from dedup.config import Config
from dedup.document import Source, printable
from dedup.manifest import CANONICAL, MANIFEST

_CODE = Path(__file__).resolve().parent


def inputs_print(
    sources: Sequence[Source],
    config: Config,
    listings: dict[Source, bytes] | None = None,
    ahead: Callable[[bytes], None] | None = None,
) -> bytes | None:
    """The hash of the INPUTs' listing and of what else decides a run's work; None: not comparable.

    ``listings``: given, it is told each INPUT directory's listing as find printed it
    (``listing.FIND_FORMAT``), which a run with work then reads its files from.
    ``ahead``: called once with a hash of the first INPUT directory's own entries (its
    files and subdirectories, with their mtimes) as soon as they are listed, while its
    subdirectories still are: where that hash moved since the last run, so did this one,
    and the caller can start on the run's work (``Incremental.unchanged``)."""
    digest = hashlib.blake2b(digest_size=20)
    try:
        version = metadata.version("datasketch")
    except metadata.PackageNotFoundError:
        version = None
    digest.update(orjson.dumps([__version__, version, config.as_dict()]))
    code = _listing(str(_CODE), code=True)
    if code is None:
        return None
    digest.update(code)
    for source in sources:
        if source.kind == "stdin":
            return None  # read from a pipe: never the same input for sure
        digest.update(orjson.dumps([source.kind, printable(source.root), source.label, source.output]))
        try:
            info = os.stat(source.root)
        except OSError:
            return None
        digest.update(_entry("", info).encode())
        if stat.S_ISDIR(info.st_mode):
            found = None
            if (finds := listing.started(source.root, parallel=config.workers)) is not None:
                with finds:
                    if ahead is not None and (top := finds.top()) is not None:
                        ahead(hashlib.blake2b(top, digest_size=20).digest())
                    ahead = None  # the first INPUT directory's entries only: the stored print is of those
                    found = finds.result()
            listed = _listing(source.root) if found is None else _no_links(found)
            if listed is None:
                return None
            digest.update(listed)
            if listings is not None and found is not None:
                listings[source] = found
    return digest.digest()


def out_print(out: Path) -> bytes:
    """The hash of OUT's manifest and ``canonical/``'s directories (a missing or unreadable one hashes
    as such)."""
    digest = hashlib.blake2b(digest_size=20)
    for name in (MANIFEST, CANONICAL):
        try:
            info = os.lstat(out / name)
        except OSError:
            digest.update(f"{name}\0missing\n".encode())
            continue
        digest.update(_entry(name, info).encode())
        if stat.S_ISDIR(info.st_mode):
            digest.update(listing.directories(str(out / name)) or b"\0unreadable\n")
    return digest.digest()


def file_print(path: Path) -> bytes:
    """A file's type, size, mtime, inode and ctime: the same print, the same file
    (``LastManifest``). The ctime changes with any write, even one that puts the mtime back."""
    try:
        info = os.lstat(path)
    except OSError:
        return b"missing"
    return f"{_entry(str(path), info)}{info.st_ctime_ns}".encode("utf-8", "surrogateescape")


def opened_print(path: Path) -> bytes:
    """``file_print`` of the file the system opens by ``path`` (symbolic links followed): OUT's
    manifest, for ``Incremental``. A run given OUT spelled otherwise (relative, from another
    directory) still finds the manifest the last run wrote, and ``dir/link/../out`` is the file
    ``open`` reads."""
    return file_print(Path(os.path.realpath(path)))


def _entry(path: str, info: os.stat_result) -> str:
    return f"{path}\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\n"


def _listing(top: str, *, code: bool = False) -> bytes | None:
    """Every entry under ``top``: type, size, mtime, inode and path; None at a symbolic link.

    GNU find lists them at ~2 us an entry, a third of what ``os.scandir`` and a
    ``stat`` per file cost in Python; where find cannot (not GNU), Python does.
    ``code``: only Python files (dedup's own), not the caches beside them.
    """
    if not code and (listed := listing.find(top)) is not None:
        return _no_links(listed)
    digest = hashlib.blake2b(digest_size=20)
    try:
        return digest.digest() if _walk(digest, top, "", code=code) else None
    except OSError:
        return None


def _no_links(listed: bytes) -> bytes | None:
    """A find listing, or None if it holds a symbolic link (its size is short: a blank follows its type)."""
    return None if listed.startswith(b"l ") or b"\0l " in listed else listed


def _walk(digest: hashlib.blake2b, top: str, prefix: str, *, code: bool) -> bool:
    """Hash every entry under ``top``, in name order; False at a symbolic link."""
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    lines = []
    below = []
    for e in entries:
        if e.is_symlink():
            return False
        if e.is_dir(follow_symlinks=False):
            if not (code and e.name == "__pycache__"):
                below.append(e)
            lines.append(f"{prefix}{e.name}/\n")
        elif not code or e.name.endswith(".py"):
            lines.append(_entry(prefix + e.name, e.stat(follow_symlinks=False)))
    digest.update("".join(lines).encode("utf-8", "surrogateescape"))
    return all(_walk(digest, e.path, f"{prefix}{e.name}/", code=code) for e in below)
