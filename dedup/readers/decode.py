"""Raw bytes -> text, whatever the encoding; HTML pages -> their main text.

The order follows what a browser trusts: a byte-order mark, then the encoding the
document or its transport declares (an HTML ``<meta charset>``, a WARC record's
HTTP ``Content-Type``), then UTF-8, then a detector (resiliparse's, the library
that already parses the HTML). A declaration that does not decode the bytes
cleanly is ignored rather than believed. The manifest records the encoding used
when it was not UTF-8.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from resiliparse.parse.encoding import detect_encoding

from dedup import extract
from dedup.document import Document, Status

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)
_SNIFF = 4096  # a <meta charset> must come within the first 1024 bytes by the standard; be lenient


class Undecodable(Exception):
    """Bytes that are not text: carries the status and the message for the manifest."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str  # Python codec name; "utf-8" for plain UTF-8 (with or without a BOM)


# Declared charsets that are ignored, as browsers ignore them (WHATWG): UTF-16 and
# UTF-32 without a byte-order mark (a page declaring "utf-16" is UTF-8 to a browser,
# and any even number of bytes decodes as UTF-16), UTF-7, EBCDIC code pages (they
# "decode" anything), and Python codecs that are no charset (punycode, "undefined").
_IGNORED = frozenset(
    codecs.lookup(name).name
    for name in (
        "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-7",
        "cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140",
        "punycode", "undefined", "idna", "unicode-escape", "raw-unicode-escape",
    )
)  # fmt: skip


def codec(name: str | None) -> str | None:
    """The Python codec for a declared charset name, or ``None`` when unknown or not one to trust.

    Example:
        >>> codec("Windows-1252"), codec("latin1"), codec("x-unknown"), codec("utf-16"), codec("punycode")
        ('cp1252', 'cp1252', None, None, None)
    """
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except LookupError:
        return None
    if info.name in _IGNORED or not getattr(info, "_is_text_encoding", True):  # hex, base64, rot13
        return None
    # As browsers do (WHATWG): latin-1 labels mean windows-1252, its superset; ASCII is UTF-8.
    return {"iso8859-1": "cp1252", "ascii": "utf-8"}.get(info.name, info.name)


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeError, LookupError):  # UnicodeError: a codec that fails otherwise (punycode)
        return None


def decode_bytes(data: bytes, *, html: bool = False, declared: str | None = None) -> Decoded:
    """The text of ``data``: BOM, then declared charset, then UTF-8, then detection.

    Raises:
        Undecodable: NUL bytes without a UTF-16/32 BOM (``binary``), or no
            encoding that decodes the bytes (``undecodable``).

    Example:
        >>> decode_bytes("caf\\u00e9 \\u2019".encode("cp1252"), declared="Windows-1252").encoding
        'cp1252'
        >>> decode_bytes(codecs.BOM_UTF16_LE + "hi".encode("utf-16-le")).encoding
        'utf-16-le'
    """
    for bom, unicode in _BOMS:
        if data.startswith(bom):
            text = _strict(data[len(bom) :], unicode)
            if text is None:
                raise Undecodable(Status.UNDECODABLE, f"not valid {unicode} after its byte-order mark")
            return Decoded(text, unicode)
    if b"\x00" in data:
        raise Undecodable(Status.BINARY, "contains NUL bytes: not a text file")
    wanted = [codec(declared)]
    if html and (meta := _META_CHARSET.search(data, 0, _SNIFF)):
        wanted.insert(0, codec(meta.group(1).decode("ascii")))
    for name in wanted:
        if name is not None and (found := _strict(data, name)) is not None:
            return Decoded(found, name)
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as err:
        problem = f"not valid UTF-8 (byte {err.start}: {err.reason})"
    guess = codec(detect_encoding(data[: 1 << 16]))
    if guess and guess != "utf-8" and (guessed := _strict(data, guess)) is not None:
        return Decoded(guessed, guess)
    if (korean := _strict(data, "euc_kr")) is not None and _mostly_hangul(korean):
        return Decoded(korean, "euc_kr")
    raise Undecodable(Status.UNDECODABLE, f"{problem} and no encoding detected")


def _mostly_hangul(text: str) -> bool:
    """Whether most characters beyond ASCII are Hangul syllables: Korean text, as read.

    resiliparse's detector takes EUC-KR for UTF-8, so such a file was
    ``undecodable``. Bytes that EUC-KR decodes cleanly are not Korean for that
    alone (GB18030 or Big5 bytes decode too, into unlikely characters): most of
    the text must be Hangul. Plain EUC-KR, not cp949: cp949's extension turns
    almost any pair of high bytes into a syllable.
    """
    wide = [c for c in text if ord(c) > 0x7F]
    hangul = sum("\uac00" <= c <= "\ud7a3" for c in wide)
    return bool(wide) and hangul >= 0.8 * len(wide)


def text_of(data: bytes, *, html: bool = False, declared: str | None = None) -> Decoded:
    """Decoded text, and for an HTML page its main text (``extract.main_text``).

    Raises:
        Undecodable: as ``decode_bytes``, or ``empty`` when no text is left.
    """
    decoded = decode_bytes(data, html=html, declared=declared)
    text = extract.main_text(decoded.text) if html else decoded.text
    if not text.strip():
        raise Undecodable(Status.EMPTY, "no main text in the HTML page" if html else "no text")
    return Decoded(text, decoded.encoding)


def decode(doc: Document, data: bytes, *, html: bool = False, declared: str | None = None) -> None:
    """Fill ``doc.text`` (and ``extra["encoding"]`` when not UTF-8), or its status and error."""
    try:
        decoded = text_of(data, html=html, declared=declared)
    except Undecodable as err:
        doc.status, doc.error = err.status, str(err)
        return
    doc.text = decoded.text
    if decoded.encoding != "utf-8":
        doc.extra = {**(doc.extra or {}), "encoding": decoded.encoding}
