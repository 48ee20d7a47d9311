"""JSON Lines: one article per line, keyed by its id field."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import orjson

from dedup.config import Config
from dedup.document import Document, Source, Status


def jsonl_documents(source: Source, config: Config, start: int) -> Iterator[Document]:
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
