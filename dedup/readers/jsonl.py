"""JSON Lines, plain or compressed: one article per line, keyed by its id field."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from dedup.config import Config
from dedup.document import Document, Source, Status
from dedup.readers.containers import DAMAGE, damage_message, open_stream, unreadable

_MISSING = object()


def field(record: dict[str, Any], name: str) -> Any:
    """``record[name]``, or for a dotted name the nested value (``meta.id``); a literal key wins.

    Example:
        >>> field({"meta": {"id": 7}}, "meta.id"), field({"a.b": 1, "a": {"b": 2}}, "a.b")
        (7, 1)
    """
    if name in record:
        return record[name]
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def jsonl_documents(source: Source, config: Config, start: int) -> Iterator[Document]:
    """Every non-blank line of a JSONL container, in order; damage ends it with one ``malformed`` record."""
    seen: set[str] = set()
    index = start
    try:
        fh = open_stream(source.root)
    except OSError as err:
        yield unreadable(source, index, err)
        return
    limit = config.max_bytes + 2  # a line at the limit, with its CRLF
    with fh:
        offset, lineno = 0, 0
        while True:
            lineno += 1
            try:
                raw = fh.readline(limit)
                over = _skip_line(fh) if len(raw) == limit and not raw.endswith(b"\n") else 0
            except DAMAGE as err:
                doc = Document(
                    index=index, path=source.key(f"line-{lineno}"), source=source, file=source.root,
                    offset=offset, line=lineno, status=Status.MALFORMED,
                    error=f"line {lineno} and after: {damage_message(err, offset, source.root)}",
                )  # fmt: skip
                yield doc
                return
            if not raw:
                return
            line_offset, offset = offset, offset + len(raw) + over
            if not raw.strip():
                continue
            if over:
                doc = _too_long(source, config, len(raw) + over, lineno, line_offset, index)
            else:
                doc = _jsonl_record(source, config, raw.rstrip(b"\r\n"), lineno, line_offset, index)
            if doc.path in seen:
                doc.error = f"id {doc.path!r} repeats an earlier line; keyed by line number"
                doc.path = source.key(f"{doc.path}#L{lineno}")
            else:
                seen.add(doc.path)
                doc.path = source.key(doc.path)
            yield doc
            index += 1


def _skip_line(fh: Any) -> int:
    """Skip the rest of an over-long line without holding it; its length."""
    skipped = 0
    while chunk := fh.readline(1 << 20):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _too_long(source: Source, config: Config, size: int, lineno: int, offset: int, index: int) -> Document:
    """A line over --max-bytes, never held whole (a compressed stream can hold gigabytes in one line)."""
    return Document(
        index=index, path=f"line-{lineno}", source=source, file=source.root, offset=offset, line=lineno,
        size=size, status=Status.TOO_LARGE,
        error=f"line {lineno}: {size} bytes is over --max-bytes {config.max_bytes}",
    )  # fmt: skip


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
    try:  # a UTF-8 byte-order mark may open the file (its bytes stay in the hash and the copy)
        record = orjson.loads(raw[3:] if lineno == 1 and raw.startswith(b"\xef\xbb\xbf") else raw)
    except orjson.JSONDecodeError as err:
        doc.status, doc.error = Status.MALFORMED, f"line {lineno}: invalid JSON: {err}"
        return doc
    if not isinstance(record, dict):
        doc.status, doc.error = Status.MALFORMED, f"line {lineno}: not a JSON object"
        return doc
    ident = field(record, config.id_field)
    if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident):
        doc.path = str(ident)
    text = field(record, config.text_field)
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        present = ", ".join(sorted(record)[:20])
        doc.status = Status.MALFORMED
        doc.error = f"line {lineno}: field {config.text_field!r} is {what} (fields: {present})"
    elif not text.strip():
        doc.status, doc.error = Status.EMPTY, f"line {lineno}: field {config.text_field!r} is empty"
    else:
        doc.text = text
    return doc


def text_of_line(data: bytes, config: Config) -> str:
    """The text of a JSONL line read again (it was read and checked the first time)."""
    text = field(orjson.loads(data), config.text_field)
    assert isinstance(text, str)
    return text
