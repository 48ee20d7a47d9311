"""WARC files (1.0 and 1.1, plain or compressed): each HTML or text response is a document.

Records are framed here (header block, ``Content-Length`` bytes, the blank line
after), so that each record's exact bytes and offset are known: they are what
the manifest hashes, what pass 2 reads again and what ``canonical/`` copies. The
record itself is parsed by FastWARC (HTTP headers, charset, payload).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from fastwarc.warc import ArchiveIterator, WarcRecordType

from dedup.config import Config
from dedup.document import Document, Source, Status
from dedup.readers.containers import DAMAGE, damage_message, open_stream, unreadable
from dedup.readers.decode import Undecodable, decode, text_of

_HEADER_LIMIT = 1 << 16
_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.I | re.M)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
_HTML = ("text/html", "application/xhtml+xml")
_TEXT = ("text/plain",)


class _Damaged(Exception):
    """The stream is not WARC from here on: the rest of the file is one ``malformed`` record."""


@dataclass(slots=True)
class Payload:
    """What a WARC record holds for dedup: its body, how to read it, and where it came from."""

    body: bytes
    html: bool
    charset: str | None
    url: str | None
    record_id: str | None
    skip: str | None  # why the record is not a document (a request, an image, a redirect)


def parse(raw: bytes) -> Payload:
    """The payload of one framed record (FastWARC parses it).

    Example:
        >>> rec = b"WARC/1.1\\r\\nWARC-Type: resource\\r\\nWARC-Record-ID: <urn:x>\\r\\n" \\
        ...       b"Content-Type: text/plain; charset=utf-8\\r\\nContent-Length: 2\\r\\n\\r\\nhi\\r\\n\\r\\n"
        >>> p = parse(rec); (p.body, p.html, p.charset, p.record_id, p.skip)
        (b'hi', False, 'utf-8', '<urn:x>', None)
    """
    found = next(
        # auto_decode: bodies stored chunked and/or gzip-encoded, as wget and browsertrix store them
        iter(
            ArchiveIterator(
                io.BytesIO(raw), parse_http=True, record_types=WarcRecordType.any_type, auto_decode="all"
            )
        )
    )
    kind = found.record_type
    headers = found.headers
    url, record_id = headers.get("WARC-Target-URI"), found.record_id or None
    name = headers.get("WARC-Type") or "untyped"
    if kind not in (WarcRecordType.response, WarcRecordType.resource):
        return Payload(b"", False, None, url, record_id, f"a WARC {name} record, not a response or resource")
    if kind == WarcRecordType.response:
        http = found.http_headers
        if not found.is_http or http is None:
            return Payload(b"", False, None, url, record_id, "a response record without an HTTP message")
        status = http.status_code
        if status is not None and not 200 <= status < 300:
            return Payload(b"", False, None, url, record_id, f"an HTTP {status} response")
        content_type = http.get("Content-Type") or ""
    else:
        content_type = headers.get("Content-Type") or ""
    media = content_type.split(";", 1)[0].strip().lower()
    charset = m.group(1) if (m := _CHARSET.search(content_type)) else None
    if media not in _HTML + _TEXT:
        return Payload(b"", False, None, url, record_id, f"a {media or 'untyped'} payload, not HTML or text")
    body = found.reader.read()
    return Payload(body, media in _HTML, charset, url, record_id, None)


def payload_text(raw: bytes) -> str:
    """The text of a record read again, decoded and extracted exactly as the first time.

    Raises:
        Undecodable: the record no longer gives a text (it was checked the first time).
    """
    payload = parse(raw)
    if payload.skip:
        raise Undecodable(Status.MALFORMED, payload.skip)
    return text_of(payload.body, html=payload.html, declared=payload.charset).text


def _frame(fh: IO[bytes]) -> tuple[bytes, int, int] | None:
    """The next record: (header block, content length, bytes between records skipped first).

    ``None`` at the end of the stream.
    """
    skipped = 0
    while True:
        line = fh.readline(_HEADER_LIMIT)
        if not line:
            return None
        if line.strip():
            break
        skipped += len(line)
    if not line.startswith(b"WARC/"):
        raise _Damaged(f"not a WARC record (starts {line[:20]!r})")
    header = [line]
    size = len(line)
    while True:
        line = fh.readline(_HEADER_LIMIT)
        if not line:
            raise _Damaged("the stream ends inside a record's headers")
        header.append(line)
        size += len(line)
        if size > _HEADER_LIMIT:
            raise _Damaged(f"a record's headers are over {_HEADER_LIMIT} bytes")
        if not line.strip():
            break
    block = b"".join(header)
    found = _LENGTH.search(block)
    if not found:
        raise _Damaged("a record without Content-Length")
    digits = found.group(1).lstrip(b"0")
    if len(digits) > 18:  # past any file; and int() refuses over 4,300 digits (a ValueError)
        raise _Damaged(f"a record's Content-Length has {len(digits)} digits")
    return block, int(digits or b"0"), skipped


def _trailer(fh: IO[bytes]) -> bytes:
    """The blank line after a record's content (CRLF CRLF; bare LFs are tolerated)."""
    found = b""
    while len(found) < 4:
        ahead = fh.peek(1)[: 4 - len(found)]  # type: ignore[attr-defined]  # every stream here is buffered
        n = len(ahead) - len(ahead.lstrip(b"\r\n"))
        if not n:
            break
        found += fh.read(n)
    return found


def warc_documents(source: Source, config: Config, start: int) -> Iterator[Document]:
    """Every record of a WARC container, in order: documents, skipped records, then any damage."""
    seen: set[str] = set()
    index = start
    try:
        fh = open_stream(source.root)
    except OSError as err:
        yield unreadable(source, index, err)
        return
    with fh:
        offset, number = 0, 0
        while True:
            number += 1
            try:
                framed = _frame(fh)
                if framed is None:
                    return
                block, length, skipped = framed
                offset += skipped
                doc = Document(
                    index=index, path=f"record-{number}", source=source, file=source.root,
                    offset=offset, line=number,
                )  # fmt: skip
                if length > config.max_bytes:
                    _skip(fh, length)
                    doc.size = len(block) + length + len(_trailer(fh))
                    doc.status = Status.TOO_LARGE
                    doc.error = f"record {number}: {length} bytes is over --max-bytes {config.max_bytes}"
                else:
                    content = fh.read(length)
                    if len(content) < length:
                        raise _Damaged("the stream ends inside a record's content")
                    raw = block + content + _trailer(fh)
                    doc.size, doc.sha256 = len(raw), hashlib.sha256(raw).hexdigest()
                    _read_record(doc, raw, number)
            except (_Damaged, *DAMAGE) as err:
                where = damage_message(err, offset, source.root) if not isinstance(err, _Damaged) else err
                name = f"record-{number}"
                while name in seen:  # a record's id may already be that
                    name = f"{name}#R{number}"
                yield Document(
                    index=index, path=source.key(name), source=source, file=source.root,
                    offset=offset, line=number, status=Status.MALFORMED,
                    error=f"record {number} and after, from byte {offset}: {where}",
                )  # fmt: skip
                return
            offset += doc.size
            if doc.path in seen:
                repeat = f"record id {doc.path!r} repeats an earlier record; keyed by record number"
                doc.error = f"{doc.error}; {repeat}" if doc.error else repeat
                while doc.path in seen:  # "id#RN", unique again if another record's id is already that
                    doc.path = f"{doc.path}#R{number}"
            seen.add(doc.path)
            doc.path = source.key(doc.path)
            yield doc
            index += 1


def _skip(fh: IO[bytes], length: int) -> None:
    while length > 0:
        chunk = fh.read(min(length, 1 << 20))
        if not chunk:
            raise _Damaged("the stream ends inside a record's content")
        length -= len(chunk)


def _read_record(doc: Document, raw: bytes, number: int) -> None:
    """Fill a record's path, url, record id and text, or its skip status."""
    try:
        payload = parse(raw)
    except Exception as err:  # whatever the parser makes of bad bytes is a status
        doc.status, doc.error = Status.MALFORMED, f"record {number}: not a parseable WARC record: {err}"
        return
    if payload.record_id:
        doc.path = payload.record_id.strip("<>")
    extra = {"url": payload.url, "record_id": payload.record_id}
    doc.extra = {k: v for k, v in extra.items() if v}
    if payload.skip:
        doc.status, doc.error = Status.UNSUPPORTED, f"record {number}: {payload.skip}"
        return
    decode(doc, payload.body, html=payload.html, declared=payload.charset)
