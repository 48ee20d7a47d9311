"""INPUT arguments -> a stream of ``Document`` records, in a stable order.

Directories are walked in sorted order, files matched by ``Config.globs``; a
container (``.jsonl``/``.ndjson``, one article per line, or ``.warc``, one per
response record; plain or ``.gz``/``.bz2``/``.xz``/``.zst``) holds many, given
directly or found in a directory. ``-`` is JSON Lines on standard input. Anything
wrong with one document becomes its ``status`` and ``error``; only an unusable
INPUT raises.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from dedup.config import Config
from dedup.document import Document, DocumentTable, Source, Status, printable, unprintable
from dedup.errors import InputChangedError, InputError, NoDocumentsError
from dedup.readers.containers import (
    DAMAGE,
    container_kind,
    make_spool,
    read_records,
)
from dedup.readers.decode import Undecodable, text_of
from dedup.readers.files import Ahead, file_documents, is_html, read_bytes, read_file, walk
from dedup.readers.jsonl import Span, jsonl_documents, text_of_line
from dedup.readers.shards import PIECE_BYTES, Joiner, Piece, Task, openable, plan, read_piece
from dedup.readers.warc import payload_text, warc_documents

__all__ = [
    "PIECE_BYTES",
    "Ahead",
    "Joiner",
    "Piece",
    "Span",
    "Task",
    "check_found",
    "container_kind",
    "discover",
    "file_documents",
    "iter_documents",
    "jsonl_documents",
    "locate",
    "plan",
    "printable",
    "read_file",
    "read_piece",
    "reload_text",
    "spooled",
    "stdin_copied",
    "unprintable",
    "walk",
    "warc_documents",
]

STDIN = "-"


def discover(inputs: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """Check the INPUT arguments and give each a unique label.

    Raises:
        InputError: when an INPUT is missing or is neither a file nor a directory.
    """
    if not inputs:
        raise InputError("no INPUT given")
    sources = []
    taken: set[str] = set()
    if sum(str(given) == STDIN for given in inputs) > 1:
        raise InputError("standard input (-) can be given once")
    for given in inputs:
        path = Path(given)
        if str(given) == STDIN:
            kind, path = "stdin", Path("stdin")
        else:
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                raise InputError(f"{given}: no such file or directory", path=given) from None
            except OSError as err:  # no permission to reach it, a name too long, a loop of links
                raise InputError(f"{given}: {err.strerror or err}", path=given) from err
            if stat.S_ISDIR(mode):
                kind = "dir"
            elif stat.S_ISREG(mode):
                kind = container_kind(path.name) or "file"
            else:
                raise InputError(f"{given}: not a regular file or directory", path=given)
        label = ""
        if len(inputs) > 1:
            base = printable(path.resolve().name) or "input"
            label, n = base, 2
            while label in taken:
                label, n = f"{base}-{n}", n + 1
            taken.add(label)
        root = STDIN if kind == "stdin" else str(path.resolve())
        sources.append(Source(kind=kind, root=root, label=label))
    return sources


@contextlib.contextmanager
def stdin_copied(sources: list[Source], out: Path, stream: BinaryIO | None = None) -> Iterator[list[Source]]:
    """The sources, with standard input copied to a file in OUT (removed after).

    Its lines are read twice (pass 2, canonical output), and a pipe can be read
    once. The copy's kept lines go to ``canonical/stdin.jsonl``.
    """
    for left in out.glob(".stdin.*.tmp"):  # a killed run's copy, in any run (the caller holds OUT's lock)
        with contextlib.suppress(FileNotFoundError):
            left.unlink()
    if not any(s.kind == "stdin" for s in sources):
        yield sources
        return
    fd, path = tempfile.mkstemp(dir=out, prefix=".stdin.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as copy:
            shutil.copyfileobj(stream or sys.stdin.buffer, copy, 1 << 20)
        yield [stdin_copy(path, s.label) if s.kind == "stdin" else s for s in sources]
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def stdin_copy(path: str, label: str) -> Source:
    """What is read in place of standard input: its copy at ``path`` in OUT (kept lines: ``stdin.jsonl``)."""
    return Source("jsonl", path, label, output=f"{label}/stdin.jsonl" if label else "stdin.jsonl")


def is_stdin_copy(source: Source) -> bool:
    """Whether a finished run's source was standard input (its copy in OUT is gone after the run)."""
    return source.kind == "jsonl" and fnmatch.fnmatchcase(os.path.basename(source.root), ".stdin.*.tmp")


def iter_documents(
    sources: Sequence[Source], config: Config, *, read: bool = True, start: int = 0
) -> Iterator[Document]:
    """Yield every document of every source in manifest order (indices from ``start``).

    With ``read=False`` whole files are yielded unread (``read_file`` reads them), so
    that worker processes receive paths, not texts. Container records are always
    read here (a cron run's path; a batch run's workers read them: ``plan``). A
    container inside a directory becomes a source of its own, at its place in the
    directory's sorted order.
    """
    index = start
    for source in sources:
        for doc in _documents(source, config, index):
            doc.index = index
            for found in within(doc, config, read=read):
                yield found
                index += 1


def within(doc: Document, config: Config, *, read: bool = True) -> Iterator[Document]:
    """The documents a listed one holds: itself, or the records of a container found in a directory
    (numbered on from ``doc.index``). ``read``: a whole file is read (``read_file``)."""
    source = doc.source
    if source.kind == "dir" and not doc.error and container_kind(doc.file):
        if openable(doc, config):  # else a FIFO, a device, a link out: recorded, never opened
            label = doc.path
            inner = Source(container_kind(doc.file) or "", doc.file, label, output=label)
            yield from _documents(inner, config, doc.index)
            return
    elif read:
        read_file(doc, config)
    yield doc


def _documents(source: Source, config: Config, start: int) -> Iterator[Document]:
    if source.kind == "jsonl":
        return jsonl_documents(source, config, start)
    if source.kind == "warc":
        return warc_documents(source, config, start)
    return file_documents(source, config, start, False)


def locate(path: str, sources: Sequence[Source], config: Config) -> Document:
    """The document at a manifest path of a finished run, found again in its input (``dedup explain``).

    A container's records are read through to the one with that path (its
    offset is not in the manifest).

    Raises:
        InputError: the path is under no input, or is no longer in it.
    """
    for source in sources:
        prefix = f"{source.label}/" if source.label else ""
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix) :]
        inner: Source | None = source if source.kind in ("jsonl", "warc") else None
        if source.kind == "dir":
            parts = rel.split("/")
            for k in range(1, len(parts)):
                file = os.path.join(source.root, *map(unprintable, parts[:k]))
                if container_kind(parts[k - 1]) and os.path.isfile(file):
                    label = prefix + "/".join(parts[:k])
                    inner = Source(container_kind(file) or "", file, label, output=label)
                    break
            else:
                return Document(
                    index=0, path=path, source=source, file=os.path.join(source.root, unprintable(rel))
                )
        elif inner is None:
            return Document(index=0, path=path, source=source, file=source.root)
        try:
            return next(doc for doc in _documents(inner, config, 0) if doc.path == path)
        except StopIteration:
            raise InputError(f"{path}: no longer in {inner.root}") from None
    raise InputError(f"{path}: not under any input of the run")


def check_found(docs: DocumentTable, config: Config, sources: Sequence[Source]) -> None:
    """Refuse a run that found nothing that could be an article.

    That is: no file matched the globs, or every record was ``malformed`` or
    ``unsupported`` (a wrong ``--text-field`` on every line, a WARC of requests).
    Documents found but skipped for what they hold (empty, binary, too large)
    are a normal run: the manifest says what each one was.

    Raises:
        NoDocumentsError: naming what was looked for (the globs; the fields the lines had).
    """
    if not len(docs):
        if all(s.kind != "dir" for s in sources):  # the globs choose files in directories only
            given = "standard input was" if all(map(is_stdin_copy, sources)) else "the INPUTs were"
            raise NoDocumentsError(f"no document found: {given} empty")
        raise NoDocumentsError(
            "no document found: no file in the INPUTs matched --glob " + " ".join(config.globs)
        )
    if docs.statuses() - {Status.MALFORMED, Status.UNSUPPORTED}:
        return
    statuses = Counter(docs.status(i) for i in range(len(docs)))
    first = docs[0]
    counts = ", ".join(f"{status} {n:,}" for status, n in statuses.most_common())
    raise NoDocumentsError(
        f"no document read: all {len(docs):,} records were skipped ({counts}); "
        f"the first, {first.path}: {first.error}"
    )


@contextlib.contextmanager
def spooled(docs: DocumentTable, wanted: Iterable[int], out: Path) -> Iterator[None]:
    """While inside, the wanted records of compressed containers are read from a spool file in OUT.

    Pass 2 reads documents again; a compressed stream can only be read from its
    start, so the records it needs are copied out once, in one sequential read
    of each container, and the spool is removed afterwards.
    """
    spool = make_spool(docs, wanted, out)
    del wanted  # used up: what it held is not kept through the stage
    docs.spool = spool
    try:
        yield
    finally:
        docs.spool = None
        if spool is not None:
            spool.remove()


def reread(doc: Document, config: Config) -> bytes:
    """A document's bytes read again, checked to be the ones first read (or taken from the state).

    Raises:
        InputChangedError: when the bytes on disk no longer match ``doc.sha256``.
    """
    try:
        if doc.offset < 0:
            data = read_bytes(doc.file, config.max_bytes)[0]
        else:  # a container's record: from the spool, by seeking, or reading a compressed stream through
            data = next(read_records(doc.file, [(doc.offset, doc.size)]))
    except DAMAGE as err:
        message = f"{doc.file}: cannot be read again: {getattr(err, 'strerror', None) or err}"
        raise InputChangedError(message, path=doc.file) from err
    if hashlib.sha256(data).hexdigest() != doc.sha256:
        raise InputChangedError(
            f"{doc.file}: changed while dedup was running; run again when it is stable", path=doc.file
        )
    return data


def reload_text(doc: Document, config: Config) -> str:
    """Read an ``ok`` document's text again, for the stages after signing.

    Pass 1 drops texts to keep memory flat; the few documents that have candidate
    near-duplicates are read a second time, and decoded (and extracted) exactly
    as the first time.

    Raises:
        InputChangedError: when the bytes on disk no longer match the first read.
    """
    data = reread(doc, config)
    try:
        if doc.offset < 0:
            return text_of(data, html=is_html(doc.file)).text
        if doc.source.kind == "warc":
            return payload_text(data)
    except Undecodable as err:  # the same bytes decoded the first time
        raise InputChangedError(f"{doc.file}: cannot be decoded again: {err}", path=doc.file) from err
    return text_of_line(data, config)
