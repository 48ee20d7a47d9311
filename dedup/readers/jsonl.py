"""JSON Lines, plain or compressed: one article per line, keyed by its id field."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
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


# How a piece's record is named once its place in the container is known (``LineNames.name``).
AS_IS = 0  # named already (a container that cannot be opened)
LINE = 1  # a line: path and line number relative to its piece
LINE_ERROR = 2  # a line whose reading error names its (relative) line number
DAMAGED = 3  # damage from here on: the container's last record; its path is never made unique


@dataclass(slots=True)
class Span:
    """What a piece of a container held, besides its records: the driver numbers the next piece from it."""

    lines: int = 0  # lines that start in the piece, blank ones too
    ended: bool = False  # damage or an unreadable file: the container ends in this piece


def jsonl_documents(source: Source, config: Config, start: int) -> Iterator[Document]:
    """Every non-blank line of a JSONL container, in order; damage ends it with one ``malformed`` record."""
    names = LineNames(source)
    for index, (doc, mark) in enumerate(jsonl_lines(source, config), start=start):
        names.name(doc, mark)
        doc.index = index
        yield doc


def jsonl_lines(
    source: Source, config: Config, start: int = 0, stop: int = -1, span: Span | None = None
) -> Iterator[tuple[Document, int]]:
    """The non-blank lines that start at a byte in ``[start, stop)`` of a container (``stop`` -1: to its end).

    A piece of a plain file is read from its middle: the line running through
    ``start`` belongs to the piece before. Line numbers count from 1 at the
    piece's first line and paths are unkeyed, ``""`` when the line has no id:
    ``LineNames`` makes them the container's, in piece order. Each record comes
    with its mark (``LINE``...); ``span`` is filled in as the piece is read.
    """
    span = span if span is not None else Span()
    try:
        fh = open_stream(source.root)
    except OSError as err:
        span.ended = True
        if start == 0:
            yield unreadable(source, 0, err), AS_IS
        else:  # gone since its first piece was read
            yield _damaged(source, start, 1, err), DAMAGED
        return
    limit = config.max_bytes + 2  # a line at the limit, with its CRLF
    with fh:
        offset, lineno = start, 0
        try:
            offset += _to_line_start(fh, start)
        except DAMAGE as err:
            span.ended = True
            yield _damaged(source, offset, 1, err), DAMAGED
            return
        while stop < 0 or offset < stop:
            lineno += 1
            skeleton = None
            try:
                raw = fh.readline(limit)
                over = 0
                if len(raw) == limit and not raw.endswith(b"\n"):
                    skeleton = _Skeleton(offset == 0)
                    skeleton.feed(raw)
                    over = _skip_line(fh, skeleton)
            except DAMAGE as err:
                span.ended = True
                yield _damaged(source, offset, lineno, err), DAMAGED
                return
            if not raw:
                return
            span.lines = lineno
            line_offset, offset = offset, offset + len(raw) + over
            if not raw.strip():
                continue
            if over and skeleton is not None:
                doc = _too_long(source, config, len(raw) + over, lineno, line_offset)
                doc.path = skeleton.ident(config) or doc.path
            else:
                doc = _jsonl_record(source, config, raw.rstrip(b"\r\n"), lineno, line_offset)
            yield doc, LINE_ERROR if doc.error else LINE


def _to_line_start(fh: Any, start: int) -> int:
    """Move a plain file from ``start`` to the first line that starts there or after; bytes skipped."""
    if start == 0:
        return 0
    fh.seek(start - 1)
    if fh.read(1) in (b"\n", b""):
        return 0
    return _skip_line(fh, None)


def _damaged(source: Source, offset: int, lineno: int, err: BaseException) -> Document:
    return Document(
        index=0, path="", source=source, file=source.root, offset=offset, line=lineno,
        status=Status.MALFORMED,
        error=f"line {lineno} and after: {damage_message(err, offset, source.root)}",
    )  # fmt: skip


class LineNames:
    """A JSONL container's line numbers and paths, as one reader of the whole file gives them.

    Its pieces are read apart (by workers), each numbering its lines from 1;
    given their records in piece order, this adds the lines of the pieces before
    and makes ids unique within the container (a repeated id is keyed by its
    line number). It holds the container's paths: per-shard bookkeeping.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.base = 0  # lines in the pieces before
        self.ended = False
        self._seen: set[str] = set()

    def name(self, doc: Document, mark: int) -> None:
        if mark == AS_IS:
            return
        local = doc.line
        doc.line += self.base
        if mark != LINE and self.base and doc.error:
            doc.error = f"line {doc.line}{doc.error[len(f'line {local}') :]}"
        path = doc.path or f"line-{doc.line}"
        if mark != DAMAGED:
            if path in self._seen:  # "id#LN", made unique again if an id of another line is already that
                note = f"id {path!r} repeats an earlier line; keyed by line number"
                doc.error = f"{doc.error}; {note}" if doc.error else note
                while path in self._seen:
                    path = f"{path}#L{doc.line}"
            self._seen.add(path)
        doc.path = self.source.key(path)

    def end_piece(self, span: Span) -> None:
        self.base += span.lines
        self.ended = self.ended or span.ended


def _skip_line(fh: Any, skeleton: _Skeleton | None) -> int:
    """Skip the rest of an over-long line without holding it (its skeleton is kept); its length."""
    skipped = 0
    while chunk := fh.readline(1 << 20):
        if skeleton is not None:
            skeleton.feed(chunk)
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _too_long(source: Source, config: Config, size: int, lineno: int, offset: int) -> Document:
    """A line over --max-bytes, never held whole (a compressed stream can hold gigabytes in one line)."""
    return Document(
        index=0, path="", source=source, file=source.root, offset=offset, line=lineno,
        size=size, status=Status.TOO_LARGE,
        error=f"line {lineno}: {size} bytes is over --max-bytes {config.max_bytes}",
    )  # fmt: skip


def _jsonl_record(source: Source, config: Config, raw: bytes, lineno: int, offset: int) -> Document:
    """A line's record: its id (``""`` for none), hash and text, or why it is skipped."""
    doc = Document(index=0, path="", source=source, file=source.root, offset=offset, line=lineno)
    doc.size = len(raw)
    doc.sha256 = hashlib.sha256(raw).hexdigest()
    if len(raw) > config.max_bytes:
        doc.status, doc.error = Status.TOO_LARGE, f"line {lineno}: {len(raw)} bytes is over --max-bytes"
        skeleton = _Skeleton(offset == 0)
        skeleton.feed(raw)
        doc.path = skeleton.ident(config) or doc.path
        return doc
    try:  # a UTF-8 byte-order mark may open the file (its bytes stay in the hash and the copy)
        record = orjson.loads(raw[3:] if offset == 0 and raw.startswith(b"\xef\xbb\xbf") else raw)
    except orjson.JSONDecodeError as err:
        doc.status, doc.error = Status.MALFORMED, f"line {lineno}: invalid JSON: {err}"
        return doc
    if not isinstance(record, dict):
        doc.status, doc.error = Status.MALFORMED, f"line {lineno}: not a JSON object"
        return doc
    doc.path = _ident(record, config) or doc.path
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


def _ident(record: dict[str, Any], config: Config) -> str | None:
    """The record's id as a manifest path, if it has a usable one."""
    ident = field(record, config.id_field)
    if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident):
        return str(ident)
    return None


class _Skeleton:
    """An over-long JSON line streamed by, with its long strings emptied: small enough to parse for its id.

    The line is never held (a compressed stream can hold gigabytes in one line);
    strings over ``KEEP`` bytes (the text) become ``""``, and a skeleton over ``CAP``
    bytes (a huge array of numbers) is given up on: the line then keeps its line number.
    """

    KEEP = 4096
    CAP = 1 << 20

    def __init__(self, first_line: bool) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._string: bytearray | None = None  # the string being read, None between strings or once too long
        self._in_string = False
        self._pending = b""  # a backslash that ended a chunk: it escapes the next chunk's first byte
        self._first_line = first_line

    def feed(self, chunk: bytes) -> None:
        data, self._pending = self._pending + chunk, b""
        pos = 0
        while pos < len(data) and self._size <= self.CAP:
            if not self._in_string:
                end = data.find(b'"', pos)
                end = len(data) if end < 0 else end
                self._keep(data[pos : end + 1])
                self._in_string, self._string = end < len(data), bytearray()
                pos = end + 1
                continue
            end = _closing_quote(data, pos)
            if end < 0:  # the string goes on in the next chunk
                end = len(data)
                if (end - len(data.rstrip(b"\\"))) % 2:  # an odd run of backslashes: the last escapes
                    end, self._pending = end - 1, b"\\"
            if self._string is not None:
                self._string += data[pos : min(end, pos + self.KEEP + 1)]
                if len(self._string) > self.KEEP:
                    self._string = None
            if end < len(data) and not self._pending:  # the closing quote
                self._keep(bytes(self._string or b"") + b'"')
                self._in_string = False
            pos = end + 1

    def _keep(self, part: bytes) -> None:
        self._parts.append(part)
        self._size += len(part)

    def ident(self, config: Config) -> str | None:
        """The line's id, if the skeleton holds one."""
        if self._size > self.CAP:
            return None
        data = b"".join(self._parts)
        if self._first_line and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return _ident(record, config) if isinstance(record, dict) else None


_ESCAPED = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)  # a string's bytes, escapes included


def _closing_quote(data: bytes, pos: int) -> int:
    """Where the string running from ``pos`` ends (its unescaped quote), or -1 if not in ``data``."""
    quote = data.find(b'"', pos)
    if quote < 0 or quote == pos or data[quote - 1] != 0x5C:  # memchr: no backslash before it
        return quote
    end = _ESCAPED.match(data, pos).end()  # type: ignore[union-attr]  # escapes: scanned in C
    return end if end < len(data) and data[end] == 0x22 else -1


def text_of_line(data: bytes, config: Config) -> str:
    """The text of a JSONL line read again (it was read and checked the first time; a first line
    read with its byte-order mark, which pass 1 left out: a later line with one was not ``ok``)."""
    text = field(orjson.loads(data[3:] if data.startswith(b"\xef\xbb\xbf") else data), config.text_field)
    assert isinstance(text, str)
    return text
