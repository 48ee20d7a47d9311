"""Containers read by the workers, in pieces: the same documents as reading them in the driver."""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from dedup import Config, readers
from dedup.frequency import TokenFrequency
from dedup.pass1 import read_all

T = TypeVar("T")
R = TypeVar("R")

ARTICLE = "the quick brown fox jumps over the lazy dog while the farmer sleeps in the barn {n}. "


def _line(ident: object, n: int, extra: str = "") -> bytes:
    text = (ARTICLE.format(n=n) * 3).replace('"', "")
    return f'{{"id": {ident!r}, "text": "{text}"{extra}}}'.replace("'", '"').encode()


def _hostile_jsonl(path: Path) -> None:
    """Lines every piece boundary must keep: repeated ids, bad JSON, a long line, blanks, a BOM, CRLF."""
    lines = [b"\xef\xbb\xbf" + _line("a", 0)]
    for n in range(1, 40):
        lines.append(_line(f"d{n % 7}", n))  # ids repeat across pieces: keyed by line number
        if n % 9 == 0:
            lines.append(b"")  # blank lines count as lines
            lines.append(b"{not json")
        if n % 13 == 0:
            lines.append(_line("x", n, ', "pad": "' + "y" * 3000 + '"'))  # over --max-bytes
        if n == 20:
            lines.append(_line("line-23", n))  # an id that is another line's default path
            lines.append(b"[1, 2]")
            lines.append(b'{"id": "nt"}')
    path.write_bytes(b"\r\n".join(lines[:10]) + b"\r\n" + b"\n".join(lines[10:]))  # no final newline


def _columns(docs: Any) -> list[tuple[Any, ...]]:
    return [
        (d.index, d.path, d.file, d.offset, d.line, d.sha256, d.size, d.status, d.error, d.extra, d.source)
        for d in docs
    ]


def _read(inputs: list[Path], config: Config, **kw: Any) -> tuple[list[Any], Any, TokenFrequency]:
    frequency = TokenFrequency()
    docs, feats, _ = read_all(readers.discover(inputs), config, frequency, batch_size=3, **kw)
    return _columns(docs), feats, frequency


def _corpus(tmp_path: Path) -> list[Path]:
    plain = tmp_path / "feed.jsonl"
    _hostile_jsonl(plain)
    root = tmp_path / "dir"
    (root / "sub").mkdir(parents=True)
    for n in range(5):
        (root / f"f{n}.txt").write_text(ARTICLE.format(n=n) * 4)
    _hostile_jsonl(root / "b.jsonl")
    (root / "c.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
    (root / "sub" / "d.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes())[:-40])  # damaged
    os.mkfifo(root / "e.jsonl")  # never opened
    return [plain, root]


@pytest.mark.parametrize(("jobs", "piece_bytes"), [(1, 1), (1, 100), (2, 333), (2, 1 << 20)])
def test_pieces_give_the_documents_one_reader_gives(tmp_path: Path, jobs: int, piece_bytes: int) -> None:
    inputs = _corpus(tmp_path)
    # A cron run reads containers in the driver, in one stream each: the reference.
    driver_side = Config(jobs=1, max_bytes=2000, state=str(tmp_path / "state"))
    expected, expected_feats, expected_freq = _read(inputs, driver_side)
    found, feats, freq = _read(inputs, Config(jobs=jobs, max_bytes=2000), piece_bytes=piece_bytes)
    assert found == expected
    for name in ("node_of", "contents", "sizes", "signals"):
        assert (
            getattr(feats, name).numbers().tobytes() == getattr(expected_feats, name).numbers().tobytes()
        ), name
    assert np.array_equal(feats.matrix(), expected_feats.matrix())
    assert np.array_equal(freq.table, expected_freq.table)
    statuses = {row[7] for row in found}
    assert {"ok", "malformed", "too_large", "unreadable"} <= statuses
    assert any(row[8] and "repeats an earlier line" in row[8] for row in found)
    assert any(row[8] and "and after" in row[8] for row in found)


class _Recording:
    """An engine that runs in this process and keeps the size of every task it was sent."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def ordered(
        self, stage: Callable[[T], R], tasks: Iterable[T], *, window_per_worker: int, per_call: int = 1
    ) -> Iterator[R]:
        for task in tasks:
            self.sent.append(len(pickle.dumps(task)))
            yield stage(task)


def test_texts_never_cross_to_the_workers(tmp_path: Path) -> None:
    """The workers are sent where to read (a path and a byte range), never the articles."""
    corpus = tmp_path / "big.jsonl"
    with corpus.open("wb") as fh:
        for n in range(2000):
            fh.write(_line(f"n{n}", n) + b"\n")
    engine = _Recording()
    docs, _, _ = read_all(
        readers.discover([corpus]), Config(jobs=1), TokenFrequency(), engine=engine, piece_bytes=100_000
    )
    assert len(docs) == 2000
    assert len(engine.sent) == -(-corpus.stat().st_size // 100_000)
    assert max(engine.sent) < 1000  # bytes: the corpus is 600 KB


def test_pieces_on_dask_workers_give_the_same_documents(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from dedup import dask_workers

    inputs = _corpus(tmp_path)
    expected = _read(inputs, Config(jobs=1, max_bytes=2000, state=str(tmp_path / "state")))
    config = Config(jobs=2, max_bytes=2000, engine="dask")
    with dask_workers.connect(config) as workers:
        found = _read(inputs, config, piece_bytes=333, engine=workers)
    assert found[0] == expected[0]
    assert found[1].contents.numbers().tolist() == expected[1].contents.numbers().tolist()
    assert np.array_equal(found[1].matrix(), expected[1].matrix())
    assert np.array_equal(found[2].table, expected[2].table)
