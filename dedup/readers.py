"""INPUT arguments -> a stream of ``Document`` records, in a stable order.

Directories are walked in sorted order, files matched by ``Config.globs``; a file
ending in ``.jsonl``/``.ndjson`` holds one article per line. Anything wrong with
one document becomes its ``status`` and ``error``; only an unusable INPUT raises.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from dedup.config import Config
from dedup.document import Document, Source, Status
from dedup.errors import InputChangedError, InputError

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def discover(inputs: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """Check the INPUT arguments and give each a unique label.

    Raises:
        InputError: when an INPUT is missing or is neither a file nor a directory.
    """
    if not inputs:
        raise InputError("no INPUT given")
    sources = []
    taken: set[str] = set()
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            kind = "dir"
        elif path.is_file():
            kind = "jsonl" if path.name.lower().endswith(JSONL_SUFFIXES) else "file"
        elif path.exists():
            raise InputError(f"{given}: not a regular file or directory")
        else:
            raise InputError(f"{given}: no such file or directory")
        label = ""
        if len(inputs) > 1:
            base = path.resolve().name or "input"
            label, n = base, 2
            while label in taken:
                label, n = f"{base}-{n}", n + 1
            taken.add(label)
        sources.append(Source(kind=kind, root=str(path.resolve()), label=label))
    return sources


def iter_documents(sources: Sequence[Source], config: Config, *, read: bool = True) -> Iterator[Document]:
    """Yield every document of every source in manifest order.

    With ``read=False`` whole files are yielded unread (``read_file`` reads them), so
    that worker processes receive paths, not texts. JSONL lines are always read here.
    """
    index = 0
    for source in sources:
        if source.kind == "jsonl":
            docs: Iterator[Document] = _jsonl_documents(source, config, index)
        else:
            docs = _file_documents(source, config, index, read)
        for doc in docs:
            yield doc
            index += 1


def _walk(root: str, globs: tuple[str, ...]) -> Iterator[tuple[str, str | None]]:
    """(relative POSIX path, error) of matching files below root, sorted; errors for unreadable dirs.

    Like ``os.walk`` (symlinked directories are not followed), with paths built by
    joining names: ``os.path.relpath`` per file was a third of a cron run's
    listing time.
    """
    matches = re.compile("|".join(fnmatch.translate(g) for g in globs)).match
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
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    pending.append((f"{prefix}{entry.name}/", entry.path))
            elif matches(entry.name):
                found.append((prefix + entry.name, None))
    found.sort()
    yield from found


def _file_documents(source: Source, config: Config, start: int, read: bool) -> Iterator[Document]:
    if source.kind == "file":
        entries: Iterator[tuple[str, str | None]] = iter([(Path(source.root).name, None)])
        base = str(Path(source.root).parent)
    else:
        entries, base = _walk(source.root, config.globs), source.root
    prefix = os.path.join(base, "")
    for offset, (rel, walk_error) in enumerate(entries):
        doc = Document(index=start + offset, path=source.key(rel), source=source, file=prefix + rel)
        if walk_error:
            doc.status, doc.error = Status.UNREADABLE, walk_error
        elif read:
            read_file(doc, config)
        yield doc


def read_file(doc: Document, config: Config) -> None:
    """Fill size, sha256, text and status of a whole-file document (no-op for JSONL lines)."""
    if doc.offset >= 0 or doc.status is not Status.OK:
        return
    try:
        info = os.stat(doc.file)
        size, doc.size, doc.mtime_ns = info.st_size, info.st_size, info.st_mtime_ns

        if size > config.max_bytes:
            doc.status, doc.error = Status.TOO_LARGE, f"{size} bytes is over --max-bytes {config.max_bytes}"
            return
        with open(doc.file, "rb") as fh:
            data = fh.read()
    except OSError as err:
        doc.status, doc.error = Status.UNREADABLE, f"cannot read: {err.strerror or err}"
        return
    doc.size = len(data)
    doc.sha256 = hashlib.sha256(data).hexdigest()
    _decode(doc, data)


def _decode(doc: Document, data: bytes) -> None:
    if b"\x00" in data:
        doc.status, doc.error = Status.BINARY, "contains NUL bytes: not a text file"
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        doc.status, doc.error = Status.UNDECODABLE, f"not valid UTF-8 (byte {err.start}: {err.reason})"
        return
    if not text.strip():
        doc.status, doc.error = Status.EMPTY, "no text"
        return
    doc.text = text


def _jsonl_documents(source: Source, config: Config, start: int) -> Iterator[Document]:
    seen: set[str] = set()
    index = start
    try:
        fh = open(source.root, "rb")  # noqa: SIM115 - closed below; the generator keeps it open
    except OSError as err:
        doc = Document(index=index, path=source.key(Path(source.root).name), source=source, file=source.root)
        doc.status, doc.error = Status.UNREADABLE, f"cannot read: {err.strerror or err}"
        yield doc
        return
    with fh:
        offset = 0
        for lineno, raw in enumerate(fh, start=1):
            line_offset, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            doc = _jsonl_record(source, config, raw.rstrip(b"\r\n"), lineno, line_offset, index)
            if doc.path in seen:
                doc.error = f"id {doc.path!r} repeats an earlier line; keyed by line number"
                doc.path = source.key(f"{doc.path}#L{lineno}")
            else:
                seen.add(doc.path)
                doc.path = source.key(doc.path)
            yield doc
            index += 1


def _jsonl_record(
    source: Source, config: Config, raw: bytes, lineno: int, offset: int, index: int
) -> Document:
    doc = Document(
        index=index, path=f"line-{lineno}", source=source, file=source.root, offset=offset, line=lineno
    )
    doc.size = len(raw)
    doc.sha256 = hashlib.sha256(raw).hexdigest()
    if len(raw) > config.max_bytes:
        doc.status, doc.error = Status.TOO_LARGE, f"line {lineno}: {len(raw)} bytes is over --max-bytes"
        return doc
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        doc.status, doc.error = Status.MALFORMED, f"line {lineno}: invalid JSON: {err}"
        return doc
    if not isinstance(record, dict):
        doc.status, doc.error = Status.MALFORMED, f"line {lineno}: not a JSON object"
        return doc
    ident = record.get(config.id_field)
    if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident):
        doc.path = str(ident)
    text = record.get(config.text_field)
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        doc.status, doc.error = Status.MALFORMED, f"line {lineno}: field {config.text_field!r} is {what}"
    elif not text.strip():
        doc.status, doc.error = Status.EMPTY, f"line {lineno}: field {config.text_field!r} is empty"
    else:
        doc.text = text
    return doc


def reload_text(doc: Document, config: Config) -> str:
    """Read an ``ok`` document's text again, for the stages after signing.

    Pass 1 drops texts to keep memory flat; the few documents that have candidate
    near-duplicates are read a second time.

    Raises:
        InputChangedError: when the bytes on disk no longer match the first read.
    """
    try:
        with open(doc.file, "rb") as fh:
            if doc.offset < 0:
                data = fh.read()
            else:
                fh.seek(doc.offset)
                data = fh.readline().rstrip(b"\r\n")
    except OSError as err:
        raise InputChangedError(f"{doc.file}: cannot be read again: {err.strerror or err}") from err
    if hashlib.sha256(data).hexdigest() != doc.sha256:
        raise InputChangedError(f"{doc.file}: changed while dedup was running; run again when it is stable")
    if doc.offset < 0:
        return data.decode("utf-8-sig")
    text = orjson.loads(data)[config.text_field]
    assert isinstance(text, str)
    return text
