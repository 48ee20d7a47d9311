"""An INPUT directory listed once, by GNU find: the rerun print hashes the listing (``rerun``), and a
cron run's pass 1 takes each file's name, size and mtime from it (``cron_pass1``).

Pass 1 walked the directory again and stat'ed each file to see it unchanged: ~3 us of
kernel time a file on this VM, the same work find had just done (2.8 s each at 1M
files). find's fields are printed at fixed widths so that numpy reads them all at
once; a field wider than its width (an mtime before 1970) gives no files, and pass 1
walks the directory as before. With ``parallel`` (a cron run's ``--jobs``), the
directory's entries are dealt out among finds running at once: stat'ing is kernel
time, and two finds at once halve it on two cores (1M files: 3.0-3.4 -> 1.6 s).
The top-level entries are listed by a find of their own, soon done: a caller can
wait for them alone and act on them (``Finds.top``) while the subdirectories are
still being listed. OUT's ``canonical/`` is listed for its directories alone
(``directories``), by Python: most of them are never read.
"""

from __future__ import annotations

import fnmatch
import itertools
import operator
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np

# Type, size, mtime (seconds, a dot and 10 digits of fraction: nanoseconds and a 0), inode, path
# (as ``./`` and the path from the directory listed).
FIND_FORMAT = "%y%19s%22T@%20i%p\\0"
_SIZE, _SECONDS, _DOT, _FRACTION, _HEAD = 1, 20, 31, 32, 62  # where each field starts; the path's
_DOT_SLASH = 2  # before each path
_CHUNK = 1 << 16  # entries parsed at once
_GROUPS = 4  # finds a listing's subdirectories are dealt out among
_LATEST_SECOND = (1 << 63) // 1_000_000_000 - 1  # in int64 nanoseconds
_MAX_NAMES = 1 << 16  # bytes of subdirectory names on the finds' command lines, at most


def find(top: str, *, parallel: int = 1) -> bytes | None:
    """Every entry under ``top`` as ``FIND_FORMAT`` prints it; None where GNU find is missing or
    failed (``started``)."""
    finds = started(top, parallel=parallel)
    if finds is None:
        return None
    with finds:
        return finds.result()


def started(top: str, *, parallel: int = 1) -> Finds | None:
    """The finds that list everything under ``top``, started; None where GNU find is missing or
    ``top`` cannot be scanned. One find lists the top's own entries, and the subdirectories are
    dealt out among ``_GROUPS`` more, run ``parallel`` at a time: the listing is the same
    whatever ``parallel``. So many subdirectories that their names would fill a command line:
    one find lists everything (and ``Finds.top`` has nothing apart)."""
    program = shutil.which("find")
    if program is None:
        return None
    try:
        with os.scandir(top) as scan:
            subdirectories = sorted(e.name for e in scan if e.is_dir(follow_symlinks=False))
    except OSError:
        return None
    printed = ["-printf", FIND_FORMAT]
    if sum(len(name) + 3 for name in subdirectories) > _MAX_NAMES:
        return Finds(top, [[program, ".", "-mindepth", "1", *printed]], parallel, apart=False)
    groups = [[f"./{name}" for name in subdirectories[k::_GROUPS]] for k in range(_GROUPS)]
    commands = [[program, ".", "-mindepth", "1", "-maxdepth", "1", *printed]]
    commands += [[program, *group, "-mindepth", "1", *printed] for group in groups if group]
    return Finds(top, commands, parallel, apart=True)


class Finds:
    """Finds running (a few threads, each waiting on one find), their listings joined in order.

    Each find writes to a temporary file (the system's temporary directory, ~65 bytes
    an entry), not a pipe: a pipe is read a chunk at a time by a thread that needs the
    interpreter's lock for each, and a caller busy in Python meanwhile (importing the
    stages, ``Finds.top``) held a find up at every chunk. A context manager: leaving
    it waits for the finds started; on an error, those not started yet are not. A run
    killed meanwhile leaves its finds to end on their own (they hold no lock).
    """

    def __init__(self, top: str, commands: list[list[str]], parallel: int, *, apart: bool) -> None:
        self._pool = ThreadPoolExecutor(max(1, min(parallel, len(commands))))
        self._found: list[Future[bytes | None]] = [self._pool.submit(_found, c, top) for c in commands]
        self._apart = apart

    def top(self) -> bytes | None:
        """The top's own entries, once their find is done (the others may still run); None when
        they are not listed apart, or their find failed."""
        return self._found[0].result() if self._apart else None

    def result(self) -> bytes | None:
        """The whole listing; None if a find failed."""
        found = [f.result() for f in self._found]
        return None if any(f is None for f in found) else b"".join(f or b"" for f in found)

    def __enter__(self) -> Finds:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=error is not None)


def _found(command: list[str], top: str) -> bytes | None:
    environment = {**os.environ, "LC_ALL": "C"}
    try:
        with tempfile.TemporaryFile() as listed:
            done = subprocess.run(
                command, stdout=listed, stderr=subprocess.PIPE, cwd=top, env=environment, check=False
            )
            if done.returncode != 0 or done.stderr:
                return None
            listed.seek(0)
            return listed.read()
    except OSError:  # find gone, the arguments too long after all, or no room for the listing
        return None


def directories(top: str, *, counted: bool = True) -> bytes | None:
    """Every directory under ``top``, a line each in path order: path, size, mtime, ctime (a file
    removed and the mtime put back still moves it) and inode; None if one cannot be read.

    OUT's print for the next rerun (``rerun.out_print``). A directory whose link count is 2
    has no subdirectory (each one links it as ``..``), so it is stat'ed, not read, as GNU
    find's leaf optimisation has it: find read all 800,000 entries of a 1M run's
    ``canonical/`` for its 128 directories (0.25-0.8 s), this stats them (~1 ms). Where a
    directory that is read shows that its file system does not keep that count (a count
    other than 2 and its subdirectories; 1, as btrfs gives, only says "not counted"), every
    directory is read: the same lines. ``counted=False`` reads every one from the start (as
    find's ``-noleaf``).

    Example:
        >>> import pathlib, tempfile
        >>> tmp = tempfile.TemporaryDirectory(); top = pathlib.Path(tmp.name)
        >>> (top / "a" / "b").mkdir(parents=True); (top / "c").mkdir(); _ = (top / "c" / "x").write_text("x")
        >>> [line.split(b"\\0")[0] for line in directories(str(top)).splitlines()]
        [b'a/', b'a/b/', b'c/']
        >>> tmp.cleanup()
    """
    try:
        try:
            return _directories(top, counted=counted)
        except _Uncounted:
            return _directories(top, counted=False)
    except OSError:
        return None


class _Uncounted(Exception):
    """A directory's link count is not 2 and its subdirectories: leaves cannot be told by it."""


def _directories(top: str, *, counted: bool) -> bytes:
    lines = []
    pending = [(top, "", os.lstat(top).st_nlink)]
    while pending:
        path, prefix, links = pending.pop()
        with os.scandir(path) as scan:
            below = [e for e in scan if e.is_dir(follow_symlinks=False)]
        if counted and links != 1 and links != 2 + len(below):
            raise _Uncounted(path)
        for entry in below:
            info = entry.stat(follow_symlinks=False)
            name = f"{prefix}{entry.name}/"
            lines.append(f"{name}\0{info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} {info.st_ino}\n")
            if not (counted and info.st_nlink == 2):
                pending.append((entry.path, name, info.st_nlink))
    return "".join(sorted(lines)).encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Files:
    """The entries of a listing that are not directories and whose names match the globs, in
    manifest order (``files.walk``'s: sorted as paths), with find's facts about each."""

    rels: list[str]  # relative paths, as ``os.scandir`` names them (bytes not UTF-8 as surrogates)
    regular: np.ndarray  # bool: a regular file (else a FIFO, socket or device: read as ever)
    sizes: np.ndarray  # int64
    mtimes: np.ndarray  # int64, nanoseconds


def files(listing: bytes, globs: tuple[str, ...], root: str) -> Files | None:
    """The files of a ``find`` listing (``FIND_FORMAT``) of ``root``; None if a symbolic link is
    among them (``walk`` does not follow a linked directory, and reads a linked file as its
    target), a field does not fit its width, an mtime does not fit in nanoseconds, or a path is
    too long for the system (find goes deeper than ``os.scandir`` can).

    Example:
        >>> row = lambda kind, size, t, name: f"{kind}{size:>19}{t:>22}{7:>20}./{name}\\0".encode()
        >>> listing = row("f", 5, "1.5000000000", "b.txt") + row("d", 9, "2.0000000000", "a")
        >>> listing += row("f", 3, "3.0000000000", "a/x.txt") + row("f", 1, "4.0000000000", "a/x.bin")
        >>> got = files(listing, ("*.txt",), "/data")
        >>> got.rels, got.sizes.tolist(), got.mtimes.tolist()
        (['a/x.txt', 'b.txt'], [3, 5], [3000000000, 1500000000])
    """
    buf = np.frombuffer(listing, dtype=np.uint8)
    ends = np.flatnonzero(buf == 0)
    if not len(ends) or ends[-1] != len(buf) - 1:
        return None if len(buf) else Files([], np.zeros(0, dtype=bool), *np.zeros((2, 0), dtype=np.int64))
    starts = np.concatenate((np.zeros(1, dtype=np.int64), ends[:-1] + 1))
    lengths = ends - starts - _HEAD - _DOT_SLASH
    if np.any(lengths <= 0) or len(os.fsencode(root)) + 1 + int(lengths.max()) >= _path_max(root):
        return None
    kinds = buf[starts]
    if np.any(kinds == ord("l")):
        return None
    keep = kinds != ord("d")
    starts, ends, kinds = starts[keep], ends[keep], kinds[keep]
    sizes = np.zeros(len(starts), dtype=np.int64)
    mtimes = np.zeros(len(starts), dtype=np.int64)
    window = np.lib.stride_tricks.sliding_window_view(buf, _HEAD)
    for at in range(0, len(starts), _CHUNK):  # a few MB of digits at a time
        head = window[starts[at : at + _CHUNK]].T.copy()  # a field's digits are a row
        digits = head - np.uint8(ord("0"))
        blank = head == ord(" ")
        number = (digits <= 9) | blank
        number[_DOT] = head[_DOT] == ord(".")
        last = (_SECONDS - 1, _DOT - 1, _HEAD - 1)  # each field ends in a digit; the fraction has 10
        if not number[1:].all() or blank[list(last)].any() or blank[_FRACTION : _DOT + 11].any():
            return None
        digits[blank] = 0
        if (_number(digits, _SECONDS, _DOT) > _LATEST_SECOND).any():  # after 2262: the walk's stat says
            return None
        sizes[at : at + _CHUNK] = _number(digits, _SIZE, _SECONDS)
        mtimes[at : at + _CHUNK] = _number(digits, _SECONDS, _DOT) * 1_000_000_000
        mtimes[at : at + _CHUNK] += _number(digits, _FRACTION, _FRACTION + 9)
    # Decoded whole, a name is sliced at its byte offsets if each byte became one character.
    text = listing.decode("utf-8", "surrogateescape")
    spans = zip((starts + _HEAD + _DOT_SLASH).tolist(), ends.tolist(), strict=True)
    if len(text) == len(listing):
        rels = [text[a:b] for a, b in spans]
    else:  # a name in UTF-8 that is not ASCII: each decoded alone, as ``os.scandir`` does
        rels = [os.fsdecode(listing[a:b]) for a, b in spans]
    if (suffixes := _suffixes(globs)) is not None:  # "*.txt": the path's end is its name's
        wanted = list(
            itertools.compress(range(len(rels)), map(operator.methodcaller("endswith", suffixes), rels))
        )
    else:
        matches = re.compile("|".join(fnmatch.translate(g) for g in globs)).match
        wanted = [k for k, rel in enumerate(rels) if matches(rel[rel.rfind("/") + 1 :])]
    order = sorted(wanted, key=rels.__getitem__)
    take = np.array(order, dtype=np.int64)
    return Files(list(map(rels.__getitem__, order)), kinds[take] == ord("f"), sizes[take], mtimes[take])


def _suffixes(globs: tuple[str, ...]) -> tuple[str, ...] | None:
    """The globs' ends, if each is ``*`` and a plain end (no wildcard, no slash); else None."""
    ends = tuple(g[1:] for g in globs)
    if all(g.startswith("*") for g in globs) and not any(c in end for end in ends for c in "*?[/"):
        return ends
    return None


def _path_max(root: str) -> int:
    try:
        return os.pathconf(root, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def _number(digits: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The decimal numbers in rows ``start:stop`` of a column-major digit matrix (blanks as 0)."""
    value = np.zeros(digits.shape[1], dtype=np.int64)
    for row in digits[start:stop]:
        value *= 10
        value += row
    return value
