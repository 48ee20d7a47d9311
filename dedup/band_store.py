"""The stored texts' band keys in files beside the state (``STATE/bands/``): a cron run bands its
new texts against them where they lie, instead of streaming every signature out of SQLite.

With two rows a band (the default: 128 bands of 2 of the 256 permutations) a band's
key is its two uint32 values side by side, so a text's band keys *are* its
signature. A segment holds some texts' keys band-major: its texts' content keys,
then one uint64 column per band. A run reads a band's column whole (one read),
looks the new texts' keys up in it (``index.holding``) and never builds the matrix
of every text's signature in node order: at 1M texts that took streaming 1 GB out
of SQLite into block files and putting it back in node order each run (~8 s).

A text's signature follows from its content key under the state's stamp, so a
segment is valid whoever wrote it: segments are written and renamed into place
outside the commit, and a run killed after writing one leaves keys that are still
true. Each segment carries the stamp's digest, a checksum of its content keys and
of each band (checked as the band is read); anything wrong and the run takes the
old path (``stored.streamed``), which then writes the texts' keys anew. New texts
are appended as a segment of their own; past ``MAX_SEGMENTS`` the live texts are
written as one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from dedup.columns import read_at

if TYPE_CHECKING:
    from dedup.signature_spill import Blocks, RowSpill

DIRECTORY = "bands"
MAX_SEGMENTS = 8
_MAGIC = b"DDBANDS1"
_HEADER = struct.Struct("<8sQQ16sQ")  # magic, texts, bands, the stamp's digest, the content keys' checksum
_SUFFIX = ".bands"
_NAME = re.compile(r"(\d{8})-[0-9a-f]{8}\.bands")


class Damaged(Exception):
    """A segment's bytes are not what it says (``Store.band``): the run takes the old path."""


def files(state: Path) -> list[str]:
    """The paths of the segment files in ``state``'s band directory, by name (as ``Store.open``
    reads them); none if it cannot be listed."""
    directory = state / DIRECTORY
    with contextlib.suppress(OSError):
        return [str(directory / name) for name in _names(directory)]
    return []


def _names(directory: Path) -> list[str]:
    """The segments' names in ``directory``, in the order they were written (``OSError`` if it
    cannot be listed)."""
    return sorted(p for p in os.listdir(directory) if p.endswith(_SUFFIX))


def fits(num_perm: int, bands: int, rows: int) -> bool:
    """Whether a text's band keys are its whole signature: two rows a band, every permutation banded."""
    return rows == 2 and 2 * bands == num_perm


def replace(state: Path, stamp: str, contents: np.ndarray, signatures: Blocks, bands: int) -> None:
    """Every text's keys as one segment, in place of the state's others (a run that streamed them
    all); a failed write (a full disk) leaves none, and the next run streams them again."""
    directory = state / DIRECTORY
    try:
        old = []
        if directory.is_dir():
            old = _names(directory)
            _tidy(directory)

        def columns() -> Iterator[np.ndarray]:
            for block in signatures.blocks():
                yield from np.ascontiguousarray(np.ascontiguousarray(block).view(np.uint64).T)

        write(directory, stamp, contents, columns(), bands)
    except (OSError, ValueError):
        return
    for name in old:
        _remove(directory / name)


def stamp_digest(stamp: str) -> bytes:
    return hashlib.blake2b(stamp.encode(), digest_size=16).digest()


class _Segment:
    def __init__(self, path: Path, fd: int, texts: int, checksums: np.ndarray) -> None:
        self.path, self.fd, self.texts, self.checksums = path, fd, texts, checksums

    def column(self, band: int) -> np.ndarray:
        size = 8 * self.texts
        data = read_at(self.fd, size, _HEADER.size + size * (1 + band))
        if xxhash.xxh3_64_intdigest(data) != int(self.checksums[band]):
            raise Damaged(f"{self.path}: band {band}")
        return np.frombuffer(data, dtype=np.uint64)


class Store:
    """The segments of a state directory, opened and checked (``open``); their texts' content keys
    end to end (``contents``), and each band's keys in the same order (``band``)."""

    def __init__(self, directory: Path, bands: int, segments: list[_Segment], contents: np.ndarray) -> None:
        self.directory, self.bands, self.segments, self.contents = directory, bands, segments, contents

    @classmethod
    def open(cls, state: Path, stamp: str, bands: int) -> Store | None:
        """The valid segments under ``state``; None if there is none. Damaged ones are removed."""
        directory = state / DIRECTORY
        try:
            names = _names(directory)
            _tidy(directory)
        except OSError:
            return None
        digest, segments, contents = stamp_digest(stamp), [], []
        for name in names:
            opened = _open(directory / name, digest, bands)
            if opened is None:
                _remove(directory / name)
                continue
            segments.append(opened[0])
            contents.append(opened[1])
        if not segments:
            return None
        return cls(directory, bands, segments, np.concatenate(contents))

    def close(self) -> None:
        for segment in self.segments:
            os.close(segment.fd)
        self.segments = []

    def discard(self) -> None:
        """Remove every segment (one was found damaged)."""
        paths = [segment.path for segment in self.segments]
        self.close()
        for path in paths:
            _remove(path)

    def band(self, band: int) -> np.ndarray:
        """Every stored text's key in ``band`` (``contents`` order). Raises ``Damaged``."""
        columns = [segment.column(band) for segment in self.segments]
        return columns[0] if len(columns) == 1 else np.concatenate(columns)

    def append(self, stamp: str, contents: np.ndarray, signatures: np.ndarray) -> None:
        """A segment of these texts (uint32[k, 2 * bands] signatures)."""
        columns = np.ascontiguousarray(signatures, dtype=np.uint32).view(np.uint64).T
        write(self.directory, stamp, contents, iter(columns), self.bands)

    def rewrite(self, stamp: str, live: np.ndarray) -> None:
        """One segment of the stored texts whose keys are ``live`` (a bool per stored text), in
        place of all: read a band at a time."""
        old = [segment.path for segment in self.segments]
        write(
            self.directory,
            stamp,
            self.contents[live],
            (self.band(b)[live] for b in range(self.bands)),
            self.bands,
        )
        self.close()
        for path in old:
            _remove(path)


def write(
    directory: Path, stamp: str, contents: np.ndarray, columns: Iterable[np.ndarray], bands: int
) -> None:
    """A segment of ``contents``' texts from their band columns (each uint64[len(contents)], in band
    order), written under a temporary name and renamed into place once whole."""
    directory.mkdir(exist_ok=True)
    contents = np.ascontiguousarray(contents, dtype=np.uint64)
    keys = contents.tobytes()
    head = _HEADER.pack(_MAGIC, len(contents), bands, stamp_digest(stamp), xxhash.xxh3_64_intdigest(keys))
    checksums = np.zeros(bands, dtype=np.uint64)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head)
            fh.write(keys)
            written = 0
            for band, column in enumerate(columns):
                data = np.ascontiguousarray(column, dtype=np.uint64).tobytes()
                if len(data) != len(keys):
                    raise ValueError("a band column of another length")
                checksums[band] = xxhash.xxh3_64_intdigest(data)
                fh.write(data)
                written += 1
            if written != bands:
                raise ValueError("not every band written")
            fh.write(checksums.tobytes())
            fh.write(struct.pack("<Q", xxhash.xxh3_64_intdigest(head + checksums.tobytes())))
        os.replace(temporary, directory / f"{_next_name(directory)}{_SUFFIX}")
    except BaseException:
        _remove(Path(temporary))
        raise


def _next_name(directory: Path) -> str:
    numbers = [int(m.group(1)) for p in os.listdir(directory) if (m := _NAME.fullmatch(p))]
    return f"{max(numbers, default=0) + 1:08d}-{os.urandom(4).hex()}"


def _open(path: Path, digest: bytes, bands: int) -> tuple[_Segment, np.ndarray] | None:
    """A segment checked but for its band columns (checked as each is read), and its content keys."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        head = read_at(fd, _HEADER.size, 0) if stat.S_ISREG(info.st_mode) else b""
        if len(head) != _HEADER.size:
            raise Damaged(str(path))
        magic, texts, stored_bands, stamp, keys_sum = _HEADER.unpack(head)
        size = _HEADER.size + 8 * texts * (1 + bands) + 8 * bands + 8
        if (magic, stored_bands, stamp, info.st_size) != (_MAGIC, bands, digest, size):
            raise Damaged(str(path))
        tail = read_at(fd, 8 * bands + 8, size - 8 * bands - 8)
        if struct.unpack("<Q", tail[-8:])[0] != xxhash.xxh3_64_intdigest(head + tail[:-8]):
            raise Damaged(str(path))
        keys = read_at(fd, 8 * texts, _HEADER.size)
        if xxhash.xxh3_64_intdigest(keys) != keys_sum:
            raise Damaged(str(path))
    except (OSError, Damaged):
        os.close(fd)
        return None
    checksums = np.frombuffer(tail[:-8], dtype=np.uint64)
    return _Segment(path, fd, texts, checksums), np.frombuffer(keys, dtype=np.uint64)


def among(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``pool`` (content keys), by ``index.holding``: ``np.isin`` sorts
    both together, stably, 0.6-0.7 s at a million texts even for no values; this ~0.3 s.

    Example:
        >>> among(np.array([3, 9], dtype=np.uint64), np.array([9, 1], dtype=np.uint64)).tolist()
        [False, True]
    """
    from dedup.index import holding

    held = np.zeros(len(values), dtype=bool)
    held[holding(values, pool)] = True
    return held


def _nodes(store: Store, contents: np.ndarray) -> np.ndarray:
    """Each stored text's node among ``contents`` (-1: not among them, or stored twice after its first)."""
    from dedup.signatures import find_sorted

    now = np.full(len(store.contents), -1, dtype=np.int64)
    if len(contents):
        by_content = np.argsort(contents)
        at, found = find_sorted(contents[by_content], store.contents)
        now[found] = by_content[at[found]]
        placed = np.flatnonzero(now >= 0)
        first = np.unique(now[placed], return_index=True)[1]  # a text stored twice: its first place
        twice = np.ones(len(placed), dtype=bool)
        twice[first] = False
        now[placed[twice]] = -1
    return now


def _rows(given: np.ndarray | RowSpill, places: np.ndarray, num_perm: int) -> np.ndarray:
    """Rows ``places`` (ascending) of pass 1's signatures, in memory or on disk."""
    if isinstance(given, np.ndarray):
        return np.ascontiguousarray(given[places], dtype=np.uint32)
    out = np.zeros((len(places), num_perm), dtype=np.uint32)
    if not len(places):
        return out
    for lo, chunk in given.chunks():
        a, b = np.searchsorted(places, [lo, lo + len(chunk)])
        out[a:b] = chunk[places[a:b] - lo]
    return out


def _tidy(directory: Path) -> None:
    """Remove the temporary segments of runs killed while writing one (the state's lock is held)."""
    for left in os.listdir(directory):
        if left.startswith(".") and left.endswith(".tmp"):
            _remove(directory / left)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class StoredSignatures:
    """Every text of a run, the stored ones as the store holds them and the new ones in memory:
    what ``index_delta`` and the prefilter read, without a matrix of them all.

    ``now``: each stored text's node in this run (-1: not in it, or held twice); ``new``: the
    nodes banded against the others (ascending) and their signatures.
    """

    def __init__(self, store: Store, now: np.ndarray, texts: int, new: np.ndarray, signatures: np.ndarray):
        self.store, self.now, self.texts, self.new, self.signatures = store, now, texts, new, signatures
        self.contents = np.zeros(texts, dtype=np.uint64)  # each text's content key (``made``)
        self.num_perm = 2 * store.bands
        self.width = 16  # permutations in a block of eight bands of two (``index.band_width``)
        self.at = np.full(texts, -1, dtype=np.int64)  # node -> its place in the store
        self.at[now[now >= 0]] = np.flatnonzero(now >= 0)

    @classmethod
    def made(
        cls,
        store: Store,
        contents: np.ndarray,
        known: np.ndarray,
        nodes: np.ndarray,
        given: np.ndarray | RowSpill,
    ) -> StoredSignatures | None:
        """This run's texts (``contents``, by node) over ``store``: the ones not ``known`` (the last
        run's) are new, with their signatures from pass 1 (``nodes``' rows of ``given``). None if a
        known text is not stored or a new one was not read."""
        new = np.flatnonzero(~among(contents, known))
        places = np.minimum(np.searchsorted(nodes, new), max(len(nodes) - 1, 0))
        if len(new) and (not len(nodes) or not np.array_equal(nodes[places], new)):
            return None
        made = cls(store, _nodes(store, contents), len(contents), new, _rows(given, places, 2 * store.bands))
        made.contents = contents
        return made if made.covers() else None

    @classmethod
    def stored(cls, store: Store, contents: np.ndarray) -> StoredSignatures | None:
        """These texts, all stored (the last run's, to take some out: ``index_delta.pairs_without``);
        None if one is not."""
        nothing = np.empty((0, 2 * store.bands), dtype=np.uint32)
        made = cls(store, _nodes(store, contents), len(contents), np.empty(0, dtype=np.int64), nothing)
        made.contents = contents
        return made if made.covers() else None

    def keep_new(self, stamp: str) -> None:
        """Store the new texts' keys (those not stored yet), first merging the segments into one
        of the texts still here if there are ``MAX_SEGMENTS``. A failed write only costs time."""
        store = self.store
        try:
            if len(store.segments) >= MAX_SEGMENTS:
                store.rewrite(stamp, self.now >= 0)
            missing = ~among(self.contents[self.new], store.contents)
            if missing.any():
                store.append(stamp, self.contents[self.new][missing], self.signatures[missing])
        except (OSError, ValueError, Damaged):
            return

    def __len__(self) -> int:
        return self.texts

    def covers(self) -> bool:
        """Whether every text is here: stored, or new."""
        here = self.at >= 0
        here[self.new] = True
        return bool(here.all())

    def touching(self, texts: np.ndarray, bands: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(band, the texts whose key is one of ``texts``', ascending, and their keys), band by band:
        ``texts`` are the new ones (``index_delta.pairs_with``) or, where there are none, stored
        ones (``index_delta.pairs_without``)."""
        from dedup.index import holding

        given = np.array_equal(texts, self.new)
        assert given or not len(self.new), "texts taken out of a view without new ones"
        is_new = np.zeros(self.texts, dtype=bool)
        is_new[self.new] = True
        fresh = self.signatures.view(np.uint64)  # [k, bands]: a new text's keys
        for band in range(bands):
            column = self.store.band(band)
            wanted = np.ascontiguousarray(fresh[:, band] if given else column[self.at[texts]])
            at = holding(column, wanted)
            nodes = self.now[at]
            keep = nodes >= 0
            keep[keep] = ~is_new[nodes[keep]]
            members = np.concatenate((nodes[keep], self.new))
            keys = np.concatenate((column[at[keep]], fresh[:, band]))
            order = np.argsort(members, kind="stable")
            yield band, members[order], keys[order]

    def blocks(self) -> Iterator[np.ndarray]:
        """Every text's signature a block of eight bands at a time, in node order (``Blocks``)."""
        stored = np.flatnonzero(self.at >= 0)
        for lo in range(0, self.store.bands, 8):
            hi = min(lo + 8, self.store.bands)
            out = np.zeros((self.texts, hi - lo), dtype=np.uint64)
            for band in range(lo, hi):
                out[stored, band - lo] = self.store.band(band)[self.at[stored]]
            out[self.new] = self.signatures.view(np.uint64)[:, lo:hi]
            yield out.view(np.uint32)

    def subset(self, texts: np.ndarray) -> np.ndarray:
        """The signatures of ``texts`` (uint32[len(texts), num_perm]): a read of each band."""
        out = np.zeros((len(texts), self.store.bands), dtype=np.uint64)
        fresh = np.zeros(len(texts), dtype=bool)
        if len(self.new):
            places = np.minimum(np.searchsorted(self.new, texts), len(self.new) - 1)
            fresh = self.new[places] == texts
            out[fresh] = self.signatures.view(np.uint64)[places[fresh]]
        rows = np.flatnonzero(~fresh)
        stored = self.at[texts[rows]]
        if len(stored):
            assert (stored >= 0).all(), "a text neither stored nor new"
            # Eight bands at a time into a row each, then turned: a column of ``out`` written through
            # a mask per band was ~0.25 s a call at the noisy 1M +10,000 (three calls).
            keys = np.empty((8, len(stored)), dtype=np.uint64)
            for lo in range(0, self.store.bands, 8):
                hi = min(lo + 8, self.store.bands)
                for band in range(lo, hi):
                    np.take(self.store.band(band), stored, out=keys[band - lo])
                out[rows, lo:hi] = keys[: hi - lo].T
        return out.view(np.uint32).reshape(len(texts), self.num_perm)
