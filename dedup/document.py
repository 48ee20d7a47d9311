"""The typed records that flow between stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Status(StrEnum):
    """What happened to an input; everything but ``OK`` is skipped and recorded."""

    OK = "ok"
    EMPTY = "empty"
    BINARY = "binary"
    UNDECODABLE = "undecodable"
    UNREADABLE = "unreadable"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Source:
    """One INPUT argument.

    ``label`` prefixes document paths when several INPUTs are given, so that two
    ``a.txt`` from two directories stay apart in the manifest and in ``canonical/``.
    """

    kind: str  # "dir", "file" or "jsonl"
    root: str  # the path as given, made absolute
    label: str

    def key(self, relative: str) -> str:
        return f"{self.label}/{relative}" if self.label else relative


@dataclass(slots=True)
class Document:
    """One input document: where it came from, and what the reading stage made of it.

    ``text`` is only held while a stage needs it; the records kept for the whole
    run carry the small ``Features`` instead.
    """

    index: int
    path: str
    source: Source
    file: str  # the file on disk holding the document
    offset: int = -1  # byte offset of the JSONL line, -1 for whole files
    line: int = 0  # JSONL line number (1-based), 0 for whole files
    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0  # whole files: to check, cheaply, that the file is unchanged when copied
    status: Status = Status.OK
    error: str | None = None
    text: str | None = None


@dataclass(slots=True)
class Features:
    """What pass 1 keeps of an ``ok`` document once its text is dropped."""

    content: int  # 64-bit hash of the normalised token sequence: equal => exact duplicate
    shingles: int  # size of the shingle set, for the containment estimate
    signature: np.ndarray = field(repr=False)  # uint32[num_perm], datasketch affine32
    signals: np.ndarray = field(repr=False)  # float32, quality.INTRINSIC order
