"""Records and outputs: ``manifest.jsonl``, ``canonical/`` and ``summary.json``.

Every file is written to a temporary name inside OUT and renamed into place, so a
reader (or a crash) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import gzip
import hashlib
import itertools
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from dedup.document import Document, Source, Status, printable
from dedup.errors import InputChangedError, OutputError
from dedup.readers import containers
from dedup.readers.files import mtime_ns

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"
CANONICAL = "canonical"
RUNS = "runs"
OUT_LOCK = ".lock"
REPORT = "report.html"  # dedup report OUT
OUTPUT_NAMES = (MANIFEST, SUMMARY, CANONICAL, RUNS, REPORT)
BUFFER = 1 << 20  # an output's write buffer: a cron run copies its carried records into it, a run at a time
# What a killed run leaves at OUT's top level, under names no output of dedup has: removed
# by the next run (``remove_leftovers``), never a reason to call OUT not empty.
LEFTOVERS = (
    f".{MANIFEST}.*.tmp",
    f".{SUMMARY}.*.tmp",
    f".{CANONICAL}.*.tmp",
    f".{CANONICAL}.old",
    ".spool.*.tmp",  # readers.spooled (readers.stdin_copied removes its own leftovers)
    ".signatures.*.tmp",  # signature_spill.Spilled (up to the index), .RowSpill (to the commit)
    ".records.*.tmp",  # record_spill.SpilledRecords, between pass 2 and the manifest
    ".tables.*.tmp",  # columns.directory_in: a batch run's per-document columns
    ".texts.*.tmp",  # text_spill: pass 1's comparison texts, for pass 2
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def check_apart(path: Path, inputs: Iterable[str], what: str) -> None:
    """Refuse a directory that dedup writes if it overlaps an INPUT: inputs are only ever read.

    Raises:
        OutputError: ``path`` is an INPUT, inside one, or holds one.
    """
    resolved = path.resolve()
    above = _identities(resolved)  # a bind mount of an INPUT has another path, the same inode
    for given in inputs:
        if given == "-":  # standard input is no directory: nothing to overlap
            continue
        root = Path(given).resolve()
        if (
            resolved == root
            or root in resolved.parents
            or resolved in root.parents
            or _identity(root) in above
            or _identity(resolved) in _identities(root)
        ):
            raise OutputError(f"{what} {path} overlaps INPUT {given}: choose a directory outside the inputs")


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``; None if it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _identities(path: Path) -> set[tuple[int, int]]:
    """The (device, inode) of ``path`` and of each directory above it, where they can be stat'ed."""
    return {found for p in (path, *path.parents) if (found := _identity(p)) is not None}


def prepare_out(
    out: Path, inputs: Iterable[str], *, force: bool, ours_ok: bool = False, not_ours: str = ""
) -> None:
    """Create OUT, or check that it may be written.

    Args:
        ours_ok: OUT may hold dedup's own outputs (a cron run updating its last outputs).
        not_ours: why OUT's outputs of an earlier run may not be replaced, and what to do:
            said instead of "not empty" when those are all OUT holds.

    Raises:
        OutputError: OUT is a file, is not empty without ``force``, or overlaps an INPUT
            (``--force`` replaces dedup's files there, which must never be inputs).
    """
    check_apart(out, inputs, "OUT")
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(f"OUT {out} exists and is not a directory")
        if out.is_dir() and not force:
            foreign = [  # the lock file alone is left by any run, even one killed before it wrote
                p.name
                for p in out.iterdir()
                if p.name != OUT_LOCK
                and not any(fnmatch.fnmatchcase(p.name, pattern) for pattern in LEFTOVERS)  # a killed run's
                and not (ours_ok and (p.name in OUTPUT_NAMES or p.name[0] == "."))
            ]
            if not_ours and MANIFEST in foreign and all(n in OUTPUT_NAMES or n[0] == "." for n in foreign):
                raise OutputError(f"OUT {out} holds an earlier run's outputs, {not_ours}")
            if foreign:
                raise OutputError(f"OUT {out} is not empty (use --force to replace dedup's files in it)")
        check_creatable(out, "OUT")
        _make_dirs(out)
        if not os.access(out, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write to OUT {out}: Permission denied")
    except OSError as err:
        raise OutputError(f"cannot create OUT {out}: {err.strerror or err}") from err


def check_creatable(path: Path, what: str) -> None:
    """Refuse a directory that cannot be made before anything is made: nothing is left half-made.

    What can be known up front is checked: the name and path lengths the file
    system allows, and that the nearest existing directory can be written.

    Raises:
        OutputError: ``path`` does not exist and cannot be created.
    """
    missing: list[str] = []
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        missing.append(existing.name)
        existing = existing.parent
    if not missing:
        return
    try:
        name_max, path_max = (os.pathconf(existing, name) for name in ("PC_NAME_MAX", "PC_PATH_MAX"))
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    if any(len(os.fsencode(n)) > name_max for n in missing) or len(os.fsencode(path)) >= path_max:
        raise OutputError(f"cannot create {what} {path}: {os.strerror(errno.ENAMETOOLONG)}", path=path)
    if not existing.is_dir():
        raise OutputError(f"cannot create {what} {path}: {existing} is not a directory", path=path)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create {what} {path}: {os.strerror(errno.EACCES)}", path=path)


def _make_dirs(path: Path) -> None:
    """``mkdir -p``, undone on failure: the directories this call made are removed again."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        if path == path.parent:
            break
        path = path.parent
    made: list[Path] = []
    try:
        for directory in reversed(missing):
            os.mkdir(directory)
            made.append(directory)
    except OSError:
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Any]:
    """Write to a temporary file beside ``path`` and rename it over ``path`` on success.

    Raises:
        OutputError: the file cannot be written (no space, no permission); the
            temporary file is removed and ``path`` left as it was.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}", path=path) from err
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; outputs are for other users and jobs too
        with os.fdopen(fd, "wb", buffering=BUFFER) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            where = err.filename or path
            raise OutputError(f"cannot write {where}: {err.strerror or err}", path=where) from err
        raise


def write_delta(out: Path, run: int, changes: Iterable[dict[str, Any]]) -> Path:
    """``runs/run-NNNNNN.jsonl``: what one cron run changed (new, changed, superseded, gone)."""
    (out / RUNS).mkdir(exist_ok=True)
    path = out / RUNS / f"run-{run:06d}.jsonl"
    with atomic_file(path) as fh:
        for change in changes:
            fh.write(orjson.dumps(change) + b"\n")
    return path


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    with atomic_file(out / SUMMARY) as fh:
        fh.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def read_manifest(out: Path) -> list[dict[str, Any]]:
    """The records of a previous run (for ``dedup explain``).

    Raises:
        OutputError: when OUT holds no readable manifest.
    """
    try:
        with open(out / MANIFEST, "rb") as fh:
            return [orjson.loads(line) for line in fh if line.strip()]
    except (OSError, orjson.JSONDecodeError) as err:
        raise OutputError(f"no readable {MANIFEST} in {out}: {err}") from err


def stage_canonical(out: Path) -> Path:
    """A fresh directory inside OUT to build ``canonical/`` in before it is swapped in."""
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".canonical.", suffix=".tmp"))
    os.chmod(staging, _DIR_MODE)  # mkdtemp makes 0700
    return staging


def container_output(source: Source) -> str:
    """Where, inside ``canonical/``, the kept records of a container (JSONL, WARC) go."""
    if source.output:
        return source.output
    name = printable(Path(source.root).name)
    return f"{source.label}/{name}" if source.label else name


def container_outputs(sources: Iterable[Source], files: Iterable[str]) -> dict[str, str]:
    """Where the kept records of each container file go inside ``canonical/`` (cron runs).

    A container gone from a directory INPUT has no source in this run any more;
    its output is still found, from its place in the directory.
    """
    sources = list(sources)
    found = {s.root: container_output(s) for s in sources if s.kind in containers.CONTAINER_KINDS}
    for file in files:
        if file in found:
            continue
        for s in sources:
            if s.kind == "dir" and file.startswith(os.path.join(s.root, "")):
                found[file] = s.key(printable(Path(os.path.relpath(file, s.root)).as_posix()))
    return found


def write_containers(staging: Path, kept: Iterable[Document]) -> None:
    """Kept container records, as read, to one file per container, in its format and compression.

    A JSONL line keeps its line ending (LF or CRLF); a WARC record is copied whole
    (headers, content and the blank line after), and in a ``.warc.gz`` each record
    is its own gzip member, as WARC tools expect. ``kept`` is in manifest order,
    where each container's records are together: one output is open at a time, the
    input is read once, front to back, and no list of its records is built.
    """
    for _, group in itertools.groupby(kept, key=lambda doc: doc.file):
        first = next(group)
        assert first.status is Status.OK and first.offset >= 0
        target = staging / container_output(first.source)
        target.parent.mkdir(parents=True, exist_ok=True)
        warc_gz = first.source.kind == "warc" and containers.compression(first.file) == ".gz"
        jsonl = first.source.kind == "jsonl"
        docs, spans = itertools.tee(itertools.chain([first], group))  # noqa: B031 - one pass each
        wanted = ((doc.offset, doc.size) for doc in spans)
        read = containers.read_records(first.file, wanted, tail=2 * jsonl)  # + a JSONL line's CRLF or LF
        try:
            with (
                open(target, "wb") if warc_gz else containers.open_writer(str(target), first.file) as dst,
                _Writer(dst, str(target), member=warc_gz) as writer,
            ):
                for doc, data in zip(docs, read, strict=True):
                    record, end = data[: doc.size], data[doc.size :]
                    if hashlib.sha256(record).hexdigest() != doc.sha256:
                        raise InputChangedError(
                            f"{doc.file}: changed while dedup was running; run again when it is stable"
                        )
                    if jsonl:
                        record += b"\r\n" if end.startswith(b"\r\n") else b"\n"
                    writer.write(record)
        except containers.DAMAGE as err:
            raise InputChangedError(f"{first.file}: cannot be read again: {err}") from err


class _Writer:
    """Compresses and writes in a thread, while the caller reads, decompresses and checks the input.

    zlib, zstd and sha256 release the GIL: reading and writing a compressed
    container take two cores instead of one (the write stage of a gzip shard set
    was mostly compression). ``member``: each record its own gzip member.
    """

    def __init__(self, dst: Any, name: str, *, member: bool) -> None:
        self._dst, self._name, self._member = dst, name, member
        self._batch: list[bytes] = []
        self._size = 0
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def write(self, record: bytes) -> None:
        self._batch.append(record)
        self._size += len(record)
        if self._size >= 1 << 20:
            self._put()

    def _put(self) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(self._batch)
        self._batch, self._size = [], 0

    def _drain(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    for record in batch:
                        self._dst.write(self._pack(record))
                except BaseException as err:  # handed to the caller's thread
                    self._error = err

    def _pack(self, record: bytes) -> bytes:
        return gzip.compress(record, containers.GZIP_LEVEL, mtime=0) if self._member else record

    def __exit__(self, *exc: object) -> None:
        if self._batch and exc[0] is None:
            self._put()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise OutputError(f"cannot write {self._name}: {self._error}") from self._error


def remove_leftovers(out: Path) -> None:
    """Remove the temporary files and directories a killed run left in OUT (hold OUT's lock).

    All are at OUT's top level (copies into ``canonical/`` are made in a
    ``.canonical.*.tmp`` directory), under names no output of dedup has.
    """
    for pattern in LEFTOVERS:
        for path in out.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    for path in (out / RUNS).glob(".run-*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):  # a report of an earlier run would now mislead
        (out / REPORT).unlink()


def copy_document(doc: Document, target: str, *, atomic: bool = False, temp_dir: str | None = None) -> None:
    """Copy a whole-file document byte for byte, in the kernel (``copy_file_range``).

    ``shutil.copyfile`` costs ~4x more here (~120 us against ~30 us a file on this
    VM's ext4) in the checks it makes around the copy; at 800k canonical files that
    is a minute and a half. The input is checked, on the open file, to be the one
    pass 1 hashed (same size and mtime).

    Args:
        atomic: copy to a temporary name and rename it over ``target``, so that a
            reader sees the old copy or the new one (a cron run updating in place).
        temp_dir: where that temporary copy is made (named by the document's index),
            on ``target``'s file system; by default beside ``target``.

    Raises:
        InputChangedError: the input changed or vanished since it was read.
        OutputError: the copy cannot be written.
    """
    dest = target
    if atomic:
        dest = os.path.join(temp_dir, str(doc.index)) if temp_dir else partial_name(target)
    try:
        src = os.open(doc.file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise InputChangedError(f"{doc.file}: cannot be read again: {err.strerror or err}") from err
    try:
        try:
            mode = copy_mode(os.fstat(src).st_mode)
            dst = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
            try:
                os.fchmod(dst, mode)
                _copy_bytes(src, dst, doc.size)
            finally:
                os.close(dst)
        except OSError as err:
            raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
        info = os.fstat(src)
        if (info.st_size, mtime_ns(info)) != (doc.size, doc.mtime_ns):
            raise InputChangedError(
                f"{doc.file}: changed while dedup was running; run again when it is stable"
            )
        if atomic:
            os.replace(dest, target)
    except BaseException:
        if atomic:
            with contextlib.suppress(OSError):
                os.unlink(dest)
        raise
    finally:
        os.close(src)


def copy_mode(source_mode: int) -> int:
    """The permissions of a copy: never wider than the source's (a private input stays private)."""
    return _FILE_MODE & source_mode


def partial_name(target: str) -> str:
    """The temporary name a copy is written under beside ``target``, within the 255-byte name limit."""
    name = os.path.basename(target)
    if len(os.fsencode(name)) > 200:
        name = hashlib.sha256(os.fsencode(name)).hexdigest()
    return os.path.join(os.path.dirname(target), f".{name}.partial")


def _copy_bytes(src: int, dst: int, size: int) -> None:
    """Copy the first ``size`` bytes; the caller checks that the file did not change."""
    done = 0
    try:
        while done < size and (n := os.copy_file_range(src, dst, size - done)):
            done += n
    except (AttributeError, OSError):  # not Linux, or a file system that cannot: copy by hand
        os.lseek(src, done, os.SEEK_SET)
        os.lseek(dst, done, os.SEEK_SET)
        while chunk := os.read(src, 1 << 20):
            os.write(dst, chunk)
