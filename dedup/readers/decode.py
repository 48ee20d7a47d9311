"""Raw bytes -> text, or the status that says why not."""

from __future__ import annotations

from dedup.document import Document, Status


def decode(doc: Document, data: bytes) -> None:
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
