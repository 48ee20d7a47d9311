"""INPUT arguments -> a stream of ``Document`` records, in a stable order.

Directories are walked in sorted order, files matched by ``Config.globs``; a file
ending in ``.jsonl``/``.ndjson`` holds one article per line. Anything wrong with
one document becomes its ``status`` and ``error``; only an unusable INPUT raises.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from dedup.config import Config
from dedup.document import Document, Source
from dedup.errors import InputChangedError, InputError
from dedup.readers.decode import Undecodable, text_of
from dedup.readers.files import file_documents, is_html, read_bytes, read_file, walk
from dedup.readers.jsonl import jsonl_documents

__all__ = [
    "discover",
    "file_documents",
    "iter_documents",
    "jsonl_documents",
    "read_file",
    "reload_text",
    "walk",
]

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
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise InputError(f"{given}: no such file or directory", path=given) from None
        except OSError as err:  # no permission to reach it, a name too long, a loop of links
            raise InputError(f"{given}: {err.strerror or err}", path=given) from err
        if stat.S_ISDIR(mode):
            kind = "dir"
        elif stat.S_ISREG(mode):
            kind = "jsonl" if path.name.lower().endswith(JSONL_SUFFIXES) else "file"
        else:
            raise InputError(f"{given}: not a regular file or directory", path=given)
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
            docs: Iterator[Document] = jsonl_documents(source, config, index)
        else:
            docs = file_documents(source, config, index, read)
        for doc in docs:
            yield doc
            index += 1


def reload_text(doc: Document, config: Config) -> str:
    """Read an ``ok`` document's text again, for the stages after signing.

    Pass 1 drops texts to keep memory flat; the few documents that have candidate
    near-duplicates are read a second time, and decoded (and extracted) exactly
    as the first time.

    Raises:
        InputChangedError: when the bytes on disk no longer match the first read.
    """
    try:
        if doc.offset < 0:
            data = read_bytes(doc.file, config.max_bytes)[0]
        else:
            with open(doc.file, "rb") as fh:
                fh.seek(doc.offset)
                data = fh.readline().rstrip(b"\r\n")
    except OSError as err:
        message = f"{doc.file}: cannot be read again: {err.strerror or err}"
        raise InputChangedError(message, path=doc.file) from err
    if hashlib.sha256(data).hexdigest() != doc.sha256:
        raise InputChangedError(
            f"{doc.file}: changed while dedup was running; run again when it is stable", path=doc.file
        )
    if doc.offset < 0:
        try:
            return text_of(data, html=is_html(doc.file)).text
        except Undecodable as err:  # the same bytes decoded the first time
            raise InputChangedError(f"{doc.file}: cannot be decoded again: {err}", path=doc.file) from err
    text = orjson.loads(data)[config.text_field]
    assert isinstance(text, str)
    return text
