"""Whole files: a directory walked in sorted order, each matching file one document."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dedup.config import Config
from dedup.document import Document, Source, Status, printable
from dedup.readers.decode import decode


def walk(root: str, globs: tuple[str, ...]) -> Iterator[tuple[str, str | None]]:
    """(relative POSIX path, error) of matching files below root, sorted; errors for unreadable dirs.

    Like ``os.walk`` (symlinked directories are not followed), with paths built by
    joining names: ``os.path.relpath`` per file was a third of a cron run's
    listing time. One directory at a time, in the order the whole sorted list
    would have (a subdirectory sorts as its name and a slash, as its files'
    paths do): the listing of a million files held whole was ~135 MB of the
    driver's heap through pass 1.
    """
    matches = re.compile("|".join(fnmatch.translate(g) for g in globs)).match
    try:
        top = _sorted_entries("", root, matches)
    except OSError as err:
        yield ".", _unlistable(err)
        return
    stack = [iter(top)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        rel, directory, error = entry
        if directory is None:  # a file, or a directory that cannot be listed
            yield rel, error
            continue
        try:
            stack.append(iter(_sorted_entries(rel + "/", directory, matches)))
        except OSError as err:  # listable when its parent was listed, a moment ago
            yield rel, _unlistable(err)


def _unlistable(err: OSError) -> str:
    return f"cannot list directory: {err.strerror}"


def _sorted_entries(
    prefix: str, directory: str, matches: Callable[[str], object]
) -> list[tuple[str, str | None, str | None]]:
    """(path, directory to list or None, error) of one directory's matching files and subdirectories,
    sorted as their paths are: a subdirectory by its name and a slash, unless it cannot be listed
    (then it is one entry, named as it is)."""
    with os.scandir(directory) as scan:
        entries = list(scan)
    keyed: list[tuple[str, str, str | None, str | None]] = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        rel = prefix + entry.name
        if is_dir:
            if entry.is_symlink():
                continue
            try:
                os.scandir(entry.path).close()  # opened, not read: whether it can be listed
            except OSError as err:
                keyed.append((rel, rel, None, _unlistable(err)))
                continue
            keyed.append((rel + "/", rel, entry.path, None))
        elif matches(entry.name):
            keyed.append((rel, rel, None, None))
    keyed.sort()
    return [(rel, path, error) for _, rel, path, error in keyed]


def file_documents(source: Source, config: Config, start: int, read: bool) -> Iterator[Document]:
    if source.kind == "file":
        entries: Iterator[tuple[str, str | None]] = iter([(Path(source.root).name, None)])
        base = str(Path(source.root).parent)
    else:
        entries, base = walk(source.root, config.globs), source.root
    prefix = os.path.join(base, "")
    for offset, (rel, walk_error) in enumerate(entries):
        doc = Document(
            index=start + offset, path=source.key(printable(rel)), source=source, file=prefix + rel
        )
        if walk_error:
            doc.status, doc.error = Status.UNREADABLE, walk_error
        elif read:
            read_file(doc, config)
        yield doc


HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".shtml")
# What open(O_NOFOLLOW) of a symbolic link fails with: Linux and macOS, FreeBSD.
_NOFOLLOW_ERRORS = (errno.ELOOP, errno.EMLINK)


def is_html(name: str) -> bool:
    """Whether a file is an HTML page by its name: its main text is extracted, its template dropped."""
    return name.lower().endswith(HTML_SUFFIXES)


def read_bytes(
    path: str, limit: int, *, follow: bool = True, opened: int | OSError | None = None
) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file, at most ``limit + 1`` of them.

    Opened without blocking and checked on the open descriptor, so that a FIFO
    (which would block ``open`` forever) or a device behind a link (``/dev/zero``
    reports size 0 and never ends) is refused instead of read. ``opened``: what
    opening ``path`` so gave already (``Ahead``): its descriptor (closed here) or its error.

    Raises:
        OSError: the file cannot be opened or read, or is not a regular file (``errno`` 0);
            ``ELOOP`` (``EMLINK`` on FreeBSD) when ``path`` is a symbolic link and not ``follow``.
    """
    if isinstance(opened, OSError):
        raise opened
    fd = os.open(path, _open_flags(follow)) if opened is None else opened
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if info.st_size > limit:
            return b"", info
        # The size stat gave, plus one byte to see growth: asking for limit + 1 bytes
        # made every read allocate --max-bytes (16 MB), 2 ms a file.
        data = read_upto(fd, info.st_size + 1)
        if len(data) > info.st_size:  # more than stat said: growing, or a size-0 special file
            data += read_upto(fd, limit + 1 - len(data))
        return data, info
    finally:
        os.close(fd)


def _open_flags(follow: bool) -> int:
    return os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)


def _guarded(doc: Document, config: Config) -> bool:
    """Whether a link is found by the open (O_NOFOLLOW): in a directory INPUT without --follow-links."""
    return not config.follow_links and doc.source.kind == "dir"


class Ahead:
    """A batch's whole files opened before they are read, the kernel asked to read them in meanwhile.

    Read one after the other, files the page cache does not hold cost a trip to the
    disk each, waited for: pass 1 in one process over 6,000 noisy files took 416-425 us
    a document read cold against ~270 warm, 305-310 with the batch's files asked for at
    once (``posix_fadvise(WILLNEED)``: the disk reads them together while the first are
    analysed). Each file is opened as ``read_file`` opens it, which then takes its
    descriptor (``take``), or the error the open met: the same outcome, met a batch
    earlier. At most ``MOST`` files at once, and none more once descriptors run out:
    those are opened when read, as before. Used as a context manager: what was not
    taken is closed.
    """

    MOST = 256

    def __init__(self, docs: Iterable[Document], config: Config) -> None:
        self._opened: dict[int, int | OSError] = {}  # by id(doc): indexes repeat across sources
        for doc in docs:
            if doc.offset >= 0 or doc.status is not Status.OK:
                continue
            if len(self._opened) == self.MOST:
                break
            try:
                fd = os.open(doc.file, _open_flags(not _guarded(doc, config)))
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE):
                    break
                self._opened[id(doc)] = err
                continue
            self._opened[id(doc)] = fd
            with contextlib.suppress(OSError):  # a hint: a FIFO or a device is not asked for
                info = os.fstat(fd)
                if stat.S_ISREG(info.st_mode) and 0 < info.st_size <= config.max_bytes:
                    os.posix_fadvise(fd, 0, info.st_size, os.POSIX_FADV_WILLNEED)

    def take(self, doc: Document) -> int | OSError | None:
        """``doc``'s descriptor (the caller's to close) or the error its open met; None: not opened.
        ``doc`` is one of the documents given (the same object)."""
        return self._opened.pop(id(doc), None)

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        for opened in self._opened.values():
            if isinstance(opened, int):
                os.close(opened)
        self._opened.clear()


def read_upto(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``fd``, fewer only at its end (``os.read`` on the descriptor:
    a buffered file object around it cost ~4 us a file, 2% of pass 1)."""
    parts = []
    while size > 0 and (part := os.read(fd, size)):
        parts.append(part)
        size -= len(part)
    return b"".join(parts)  # one part, as a rule: returned as it is


def leaves(path: str, root: str) -> bool:
    """Whether ``path`` is a symbolic link whose target lies outside ``root``."""
    if not os.path.islink(path):
        return False
    inside = os.path.join(os.path.realpath(root), "")
    return not os.path.realpath(path).startswith(inside)


def mtime_ns(info: os.stat_result) -> int:
    """A file's mtime in nanoseconds, as the run's tables hold it: in int64 (a file dated after 2262,
    or before 1678, is held at the end of that range, not a crash)."""
    return min(max(info.st_mtime_ns, _EARLIEST), _LATEST)


_EARLIEST, _LATEST = -(1 << 63), (1 << 63) - 1


def read_file(doc: Document, config: Config, opened: int | OSError | None = None) -> None:
    """Fill size, sha256, text and status of a whole-file document (no-op for JSONL lines).

    ``opened``: what ``Ahead`` met opening it (a descriptor, closed here, or an error).
    """
    if doc.offset >= 0 or doc.status is not Status.OK:
        if isinstance(opened, int):
            os.close(opened)
        return
    guarded = _guarded(doc, config)
    try:
        try:  # a link is found by the open (O_NOFOLLOW), not by an lstat of every file
            data, info = read_bytes(doc.file, config.max_bytes, follow=not guarded, opened=opened)
        except OSError as err:
            if not guarded or err.errno not in _NOFOLLOW_ERRORS:
                raise
            if leaves(doc.file, doc.source.root):
                doc.status, doc.error = (
                    Status.OUTSIDE,
                    "a symbolic link out of the INPUT directory (see --follow-links)",
                )
                return
            data, info = read_bytes(doc.file, config.max_bytes)
    except OSError as err:
        doc.status, doc.error = Status.UNREADABLE, f"cannot read: {err.strerror or err}"
        return
    doc.size, doc.mtime_ns = max(info.st_size, len(data)), mtime_ns(info)
    if doc.size > config.max_bytes:
        doc.status, doc.error = Status.TOO_LARGE, f"{doc.size} bytes is over --max-bytes {config.max_bytes}"
        return
    doc.sha256 = hashlib.sha256(data).hexdigest()
    decode(doc, data, html=is_html(doc.file))
