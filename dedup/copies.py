"""Canonical copies in ``OUT/canonical``: written whole (``write``, ``Staged`` as the records name
them) or brought up to date in place (``sync``).

Files are byte-identical copies at their manifest paths; the kept lines of a
JSONL input go to one JSONL per input file, as read.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dedup import last_copies, manifest
from dedup.columns import CHUNK, Column
from dedup.config import Config
from dedup.document import DocumentTable
from dedup.errors import DedupError, OutputError
from dedup.hooks import Checkpoint
from dedup.readers.files import mtime_ns

if TYPE_CHECKING:
    from dedup.pass2 import Corpus


@dataclass(frozen=True, slots=True)
class Before:
    """What the last run kept, as ``sync`` compares it: whole files by path, container lines by file."""

    files: frozenset[str]  # manifest paths of the kept whole files
    lines: dict[str, list[tuple[int, str, str]]]  # container file -> its kept (offset, path, sha256)


def sync(
    out: Path,
    docs: DocumentTable,
    kept: list[int],
    before: Before,
    fresh: Sequence[int],
    config: Config,
    checkpoint: Checkpoint,
    paths: Sequence[str],
    early: Early | None = None,
    intact: bool = False,
) -> None:
    """Bring OUT/canonical up to date in place: copy what is new or changed, remove what is no longer kept.

    ``paths``: the manifest paths of ``kept`` (a cron run's stored keys: not decoded
    from the table again). ``early``: copies made already, renamed into place.
    ``intact``: OUT had, as the run began, the print the last run left (``rerun.out_print``:
    ``canonical/``'s directories): its files are the ones that run kept, not listed again
    (0.85 s at a million kept files).
    """
    root = out / manifest.CANONICAL
    offsets = docs.facts()[0]
    files, wanted_paths, lined = [], [], []
    for i, name in zip(kept, paths, strict=True):
        if offsets[i] < 0:
            files.append(i)
            wanted_paths.append(name)
        else:
            lined.append((i, name))
    wanted = set(wanted_paths)
    # JSONL outputs: the ones left with no kept line go, the ones whose kept lines changed are redone.
    now: dict[str, list[tuple[int, str, str]]] = {}
    for i, name in lined:
        now.setdefault(docs.file(i), []).append((int(offsets[i]), name, docs.sha256(i)))
    then = before.lines
    outputs = manifest.container_outputs(docs.sources, then.keys() | now.keys())
    redo = {
        f for f, lines in now.items() if sorted(then.get(f, [])) != lines or not (root / outputs[f]).exists()
    }
    # What is no longer kept goes first, and a directory it leaves empty: a file of its name
    # may be kept now (a directory of the input replaced by a file).
    gone_outputs = sorted(outputs[f] for f in then.keys() - now.keys() if f in outputs)
    before_files = before.files
    dropped = sorted(before_files - wanted) + gone_outputs
    for path in dropped:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / path)
    for path in dropped:
        _prune(root, path)
    # One listing, not a stat per kept file (a miss is checked alone); none if OUT is intact.
    present = before_files if intact else listed(root, wanted)
    base = str(root)
    todo = [  # new, changed, or removed from OUT by someone: copied
        i
        for i, path in zip(files, wanted_paths, strict=True)
        if fresh[i]
        or path not in before_files
        or (path not in present and not os.path.exists(os.path.join(base, path)))
    ]
    if todo:  # each copied under a temporary name in OUT, renamed into canonical/ when whole
        temp = early.temp if early is not None else manifest.stage_canonical(out)
        staged = early.made() if early is not None else set()
        try:
            rest = [i for i in todo if i not in staged]
            ready = [i for i in todo if i in staged]
            _make_parents(docs, ready, base, set())
            for i in ready:
                if not _put_in_place(docs, i, os.path.join(temp, str(i)), os.path.join(base, docs.paths[i])):
                    rest.append(i)  # copied again, or reported, as any other
            _copy_files(docs, rest, root, config, temp=str(temp))
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    checkpoint("canonical")
    if redo:
        staging = manifest.stage_canonical(out)
        try:
            manifest.write_containers(
                staging,
                (docs[i] for i in kept if docs.file(i) in redo and docs.offset(i) >= 0),
            )
            for made in sorted(p for p in staging.rglob("*") if p.is_file()):
                target = root / made.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(made, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class Early:
    """Copies made into a directory in OUT before the state commits, of documents sure to be
    kept (a new file that is a text of its own): ``sync`` renames them into ``canonical/``.

    A cron run's copies came after its commit, each file made and then renamed: ~0.4 s
    for 800 new files at 100k, most of it the file system's create. Started while
    pass 2 runs (the driver waits on its workers then), only the renames are left
    for after the commit. A copy that failed here is made again by ``sync`` (which
    then reports what is wrong); what a killed run leaves is in one directory the
    next run removes (``manifest.remove_leftovers``).
    """

    def __init__(self, out: Path, docs: DocumentTable, files: Sequence[int]) -> None:
        self.temp = manifest.stage_canonical(out)
        # One thread beside pass 2's workers, which want every core: the file system's waits overlap.
        self._pool = ThreadPoolExecutor(1)
        self._stop = threading.Event()
        self._copied = self._pool.submit(_stage, docs, files, str(self.temp), self._stop)

    def made(self) -> set[int]:
        """The documents copied (waited for)."""
        return set(self._copied.result())

    def close(self) -> None:
        """Stop copying and remove the directory (``sync`` renamed what it used)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.temp, ignore_errors=True)


def _stage(docs: DocumentTable, files: Sequence[int], base: str, stop: threading.Event) -> list[int]:
    made = []
    for i in files:
        if stop.is_set():  # the run ended (an error): not worth finishing
            break
        try:
            manifest.copy_document(docs.whole_file(i), os.path.join(base, str(i)))
        except (DedupError, OSError):
            continue  # copied again, or reported, by ``sync``
        made.append(i)
    return made


def _put_in_place(docs: DocumentTable, i: int, copy: str, target: str) -> bool:
    """Rename document ``i``'s early copy to ``target`` if its file still has the size and mtime it
    was read with."""
    try:
        info = os.stat(docs.file(i))
        if (info.st_size, mtime_ns(info)) != (docs.size(i), docs.mtime_ns(i)):
            return False
        os.replace(copy, target)
    except OSError:
        return False
    return True


def _prune(root: Path, path: str) -> None:
    """Remove the directories above ``path`` (inside ``root``) that are empty, deepest first."""
    parent = os.path.dirname(path)
    while parent:
        try:
            os.rmdir(root / parent)
        except OSError:  # not empty (or not there): nor are the ones above it
            return
        parent = os.path.dirname(parent)


def listed(root: Path, among: set[str]) -> set[str]:
    """The paths of ``among`` (relative to ``root``, ``/``-joined) found in a walk of ``root``: one
    ``scandir`` per directory instead of a ``stat`` per file. A path not found may still exist
    (behind a link, in a directory that cannot be listed): ask ``os.path.exists`` for those.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     (Path(tmp) / "a").mkdir()
        ...     _ = (Path(tmp) / "a" / "b.txt").write_text("x")
        ...     (Path(tmp) / "gone").symlink_to(Path(tmp) / "nowhere")
        ...     sorted(listed(Path(tmp), {"a/b.txt", "a/c.txt", "gone"}))
        ['a/b.txt']
    """
    found: set[str] = set()
    pending = [("", str(root))]
    while pending:
        prefix, directory = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError:
            continue
        for entry in entries:
            name = prefix + entry.name
            if entry.is_symlink():
                continue  # left to os.path.exists
            if entry.is_dir(follow_symlinks=False):
                pending.append((name + "/", entry.path))
            elif name in among:
                found.add(name)
    return found


def write(out: Path, docs: DocumentTable, kept: list[int], config: Config) -> None:
    """Canonical copies, staged and swapped in whole."""
    with Staged(out, docs, config) as staged:
        staged.add(kept)


WAITING = 1 << 18  # kept files waiting for their copies (2 MB) before the records wait for them


class Staged:
    """``canonical/`` built in a staging directory as the kept documents become known, swapped in whole.

    A batch run learns which documents it keeps part by part, as the manifest's
    records are made (``manifest_workers``). Each part's whole files are copied
    at once by a few threads (the kernel copies: the threads mostly wait on it),
    so copying overlaps making the records instead of following them; or, when
    forked workers make the records, by those workers (``to_workers``). Kept
    container records are written last, in manifest order (``write_containers``).
    On a clean exit the copies are waited for and the directory is swapped in;
    on an error, they are stopped and the staging directory is removed.

    What waits is bounded, not a share of the corpus: at most ``WAITING`` kept
    files (the records wait for the copies beyond it), and the kept container
    records in a file beside the staging directory.
    """

    def __init__(self, out: Path, docs: DocumentTable, config: Config) -> None:
        self.out, self.docs = out, docs
        self.staging = manifest.stage_canonical(out)
        self._threads = max(2, config.workers)
        self._pool = ThreadPoolExecutor(self._threads)
        self._pending: deque[tuple[int, Future[None]]] = deque()  # (files, their copies)
        self._waiting = 0  # files in ``_pending``
        self._made: set[str] = set()  # parent directories made in the staging directory
        self._aside = manifest.stage_canonical(out)  # a ``.canonical.*.tmp``: a killed run's is removed
        self._containers = Column("q", self._aside / "containers")
        self._last = last_copies.root(out, self.staging)
        self._by_workers = False

    def to_workers(self) -> Into:
        """Where the workers making the records copy their parts' kept whole files; ``add`` then
        passes over those. The driver's threads took ~156 us a copy (noisy 20k: the records were
        all made 0.9 s before the copies), one GIL for them and the driver: two forked workers
        copy in parallel (the write stage of the clean 100k 6.0-7.6 -> 4.3-5.0 s)."""
        self._by_workers = True
        return Into(str(self.staging), self._last)

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            shutil.rmtree(self.staging, ignore_errors=True)
            shutil.rmtree(self._aside, ignore_errors=True)

    def add(self, kept: Sequence[int]) -> None:
        """Copy these kept documents (in manifest order, after those added before)."""
        docs, base = self.docs, str(self.staging)
        files = array("q")  # the copies run behind the records: 8 bytes a kept document waiting
        for i in kept:
            if docs.offset(i) >= 0:
                self._containers.append(i)
            elif not self._by_workers:
                files.append(i)
        _make_parents(docs, files, base, self._made)
        for share in _shares(files, self._threads):
            copying = self._pool.submit(_copy_share, docs, share, base, None, self._last)
            self._pending.append((len(share), copying))
            self._waiting += len(share)
        # A failed copy ends the run now, not at the end. 730,000 kept files waited at the noisy 1M
        # (6 MB as arrays; 23 MB as lists), ~80 million would at 100M: beyond ``WAITING`` the records
        # wait for the copies. Making them wait once a few parts behind cost ~5 s of the noisy
        # 100k's 8 s write stage; ``WAITING`` is more than the noisy 100k ever has waiting.
        while self._pending and (self._pending[0][1].done() or self._waiting > WAITING):
            files_copied, copied = self._pending.popleft()
            copied.result()
            self._waiting -= files_copied

    def _finish(self) -> None:
        while self._pending:
            self._pending.popleft()[1].result()
        manifest.write_containers(self.staging, (self.docs[i] for i in self._kept_records()))
        publish_canonical(self.out, self.staging)

    def _kept_records(self) -> Iterator[int]:
        """The kept container records, in manifest order, a chunk at a time from their file."""
        self._containers.seal()
        kept = self._containers.numbers()
        for start in range(0, len(kept), CHUNK):
            yield from kept[start : start + CHUNK].tolist()


@dataclass(frozen=True, slots=True)
class Into:
    """A staged ``canonical/`` as a forked worker copies into it (``Staged.to_workers``)."""

    base: str  # the staging directory
    last: str | None  # the last run's ``canonical/``, whose copies may be linked (``last_copies``)

    def copy(self, docs: DocumentTable, files: Sequence[int], made: set[str]) -> None:
        """Copy these kept whole files; ``made``: the directories this process made already."""
        _make_parents(docs, files, self.base, made)  # another worker may make one too: exist_ok
        _copy_share(docs, files, self.base, None, self.last)


def _make_parents(docs: DocumentTable, files: Sequence[int], base: str, made: set[str]) -> None:
    """Each copy's directory, made once (``mkdir(exist_ok=True)`` per file costs an exception per file)."""
    for parent in sorted({os.path.dirname(docs.paths[i]) for i in files} - made):
        os.makedirs(os.path.join(base, parent), exist_ok=True)
        made.add(parent)


def _shares(files: Sequence[int], threads: int) -> list[Sequence[int]]:
    """One contiguous share of the list per thread: no future per file."""
    step = -(-len(files) // threads) or 1
    return [files[k : k + step] for k in range(0, len(files), step)]


def _copy_share(
    docs: DocumentTable, share: Sequence[int], base: str, temp: str | None, last: str | None = None
) -> None:
    """Copy each document of ``share`` under ``base``; with ``last`` (OUT's ``canonical/`` as the last
    run left it), link a copy made then when it is still right (``last_copies.link``)."""
    directories: dict[str, bool] = {}
    for i in share:
        doc = docs.whole_file(i)
        target = os.path.join(base, doc.path)
        if last is None or not last_copies.link(doc, last, target, directories):
            manifest.copy_document(doc, target, atomic=temp is not None, temp_dir=temp)


def _copy_files(
    docs: DocumentTable, files: Sequence[int], root: Path, config: Config, *, temp: str | None = None
) -> None:
    """Byte-identical copies at their manifest paths, by the kernel, from a few threads (I/O bound).

    With ``temp`` (a directory in OUT), each copy is made there and renamed into
    place: no temporary file of ours is ever in ``canonical/``, where any name
    may be a user's (``--glob '*'`` reads ``.x.txt.partial``), and what a killed
    run leaves is in one directory the next run removes.
    """
    base = str(root)
    _make_parents(docs, files, base, set())
    threads = max(2, config.workers)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda share: _copy_share(docs, share, base, temp), _shares(files, threads)))


def publish_canonical(out: Path, staging: Path) -> None:
    """Swap the staged directory in as ``OUT/canonical`` (the old one, if any, is removed)."""
    final, old = out / manifest.CANONICAL, out / f".{manifest.CANONICAL}.old"
    try:
        if old.exists():
            remove_tree(old, strict=True)
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        remove_tree(old)
    except OSError as err:
        raise OutputError(f"cannot write {final}: {err.strerror or err}") from err


def remove_tree(tree: Path, *, strict: bool = False) -> None:
    """``shutil.rmtree(tree, ignore_errors=not strict)``, eight of its directories at a time:
    unlinking waits on the disk, not the CPU (the 80,000 old copies a 100k run replaces: 5.4 -> 2.0 s)."""
    if tree.is_dir() and not tree.is_symlink():
        pool = ThreadPoolExecutor(8)
        try:  # what a thread cannot remove, the last call meets again (and names, when strict)
            with contextlib.suppress(OSError):
                parts = [entry.path for entry in os.scandir(tree) if entry.is_dir(follow_symlinks=False)]
                list(pool.map(functools.partial(shutil.rmtree, ignore_errors=True), parts))
        finally:
            pool.shutdown(cancel_futures=True)  # an interrupt does not wait for every directory
    shutil.rmtree(tree, ignore_errors=not strict)


def new_alone(corpus: Corpus, comp_of: np.ndarray, fresh: Sequence[int]) -> list[int]:
    """New or changed whole files that are texts of their own (no candidate, no copy): kept, so a
    cron run copies them early (``Early``)."""
    lone = np.flatnonzero(comp_of < 0)
    lone = lone[(corpus.starts[lone + 1] - corpus.starts[lone]) == 1]
    docs = corpus.order[corpus.starts[lone]]
    docs = np.sort(docs[np.asarray(fresh, dtype=bool)[docs]])  # the few read, of ~700k at 1M
    table = corpus.docs
    return [d for d in docs.tolist() if table.offset(d) < 0]
