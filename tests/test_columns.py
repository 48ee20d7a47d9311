"""A run's columns in files read back what was appended, whatever the chunking; a worker that
receives them (pickled, as Dask sends them) maps the files instead of receiving the values; a batch
run with its tables in files writes what it wrote with them in memory, and leaves none behind."""

import contextlib
import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import columns, kernels, table_kernels, text_nodes
from dedup.config import Config
from dedup.document import Document, DocumentTable, Paths, Source, Status
from dedup.frequency import TokenFrequency
from dedup.pass1 import read_all
from dedup.pass2 import Corpus
from dedup.pipeline import run
from dedup.readers import discover

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60),
    chunk=st.integers(1, 7),
    read_every=st.integers(1, 5),
)
def test_a_column_in_a_file_reads_back_what_was_appended(
    tmp_path_factory: pytest.TempPathFactory, values: list[int], chunk: int, read_every: int
) -> None:
    path = tmp_path_factory.mktemp("col") / "c"
    col = columns.Column("q", path, chunk=chunk)
    for k, v in enumerate(values):
        col.append(v)
        if k % read_every == 0:  # reads while the file grows: the map is made again when stale
            assert [col[i] for i in range(len(col))] == values[: k + 1]
    col.seal()
    assert len(col) == len(values)
    assert col.numbers().tolist() == values
    assert path.stat().st_size == 8 * len(values)
    sent = pickle.loads(pickle.dumps(col))
    assert [sent[i] for i in range(len(values))] == values
    assert sent.numbers().tolist() == values


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.binary(min_size=3, max_size=3), max_size=30), chunk=st.integers(1, 4))
def test_rows_are_read_whole_across_the_files_end(
    tmp_path_factory: pytest.TempPathFactory, rows: list[bytes], chunk: int
) -> None:
    col = columns.Column("B", tmp_path_factory.mktemp("rows") / "r", width=3, chunk=chunk)
    for k, row in enumerate(rows):
        col.extend(b"\0\0\0")
        col.set_row(k, row)  # the newest row is never in the file yet
    assert [col.row(k) for k in range(len(rows))] == rows
    assert col.items(0, 3 * len(rows)) == b"".join(rows)  # one range, part file and part memory
    col.seal()
    assert col.numbers().tobytes() == b"".join(rows)


def test_a_written_entry_cannot_be_changed(tmp_path: Path) -> None:
    col = columns.Column("q", tmp_path / "c", chunk=1)
    col.append(1)
    col.append(2)  # the first entry goes to the file first
    col[1] = 3
    with pytest.raises(AssertionError):
        col[0] = 5


def test_paths_in_files_equal_paths_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns, "CHUNK", 3)
    names = [f"d{k}/caf\u00e9-{k}.txt" for k in range(20)] + ["x\udce9.txt", "", "\u4e2d\u6587.html"]
    in_file, in_memory = Paths(tmp_path), Paths()
    for name in names:
        in_file.append(name)
        in_memory.append(name)
    assert list(in_file) == list(in_memory) == names
    assert in_file[-1] == names[-1] and in_file[2:5] == names[2:5]
    with pytest.raises(IndexError):
        in_file[len(names)]


def test_a_document_table_sent_to_a_worker_maps_its_files(tmp_path: Path) -> None:
    src = Source("dir", "/data", "")
    table = DocumentTable([src], tmp_path)
    for i in range(3000):
        status = Status.OK if i % 3 else Status.EMPTY
        table.append(
            Document(i, f"{i:05d}.txt", src, f"/data/{i:05d}.txt", sha256=f"{i:064x}", size=i, status=status)
        )
    table.seal()
    sent = pickle.dumps(table)
    assert len(sent) < 3000 * 8  # paths and columns by their files, not their values
    got = pickle.loads(sent)
    for i in (0, 1, 1234, 2999):
        assert (got.paths[i], got.sha256(i), got.size(i), got.status(i)) == (
            table.paths[i],
            table.sha256(i),
            table.size(i),
            table.status(i),
        )


def test_the_corpus_goes_to_a_worker_as_its_files(tmp_path: Path) -> None:
    sources = discover([str(SAMPLE)])
    config = Config(jobs=1)
    docs, feats, _ = read_all(sources, config, TokenFrequency(), tables=tmp_path)
    corpus = Corpus.of(config, docs, feats, TokenFrequency())
    mem_docs, mem_feats, _ = read_all(sources, config, TokenFrequency())
    in_memory = Corpus.of(config, mem_docs, mem_feats, TokenFrequency())
    got = pickle.loads(pickle.dumps(corpus))
    for name in ("node_of", "order", "starts", "sizes", "contents", "signals"):
        as_file = isinstance(columns.by_file(getattr(corpus, name)), tuple)  # its path, not its values
        assert as_file == kernels.AVAILABLE or name in {
            "order",
            "starts",
        }
        assert np.array_equal(getattr(got, name), getattr(in_memory, name)), name
    assert [got.members(n) for n in range(len(got.sizes))] == [
        in_memory.members(n) for n in range(len(got.sizes))
    ]
    part = corpus.signals[1:]  # a part of a mapped file goes as its values
    assert isinstance(columns.by_file(part), np.ndarray)
    assert np.array_equal(pickle.loads(pickle.dumps(part)), part)


@settings(max_examples=50, deadline=None)
@given(node_of=st.lists(st.integers(-1, 12), max_size=80))
def test_grouping_by_node_is_a_stable_sort(node_of: list[int]) -> None:
    nodes = max(node_of, default=-1) + 1
    values = np.array(node_of, dtype=np.int64)
    order = np.argsort(values, kind="stable")[int(np.count_nonzero(values < 0)) :]
    starts, got = np.zeros(nodes + 1, dtype=np.int64), np.zeros(len(order), dtype=np.int64)
    table_kernels.group_by_node(values, starts, got)
    assert got.tolist() == order.tolist()
    assert starts.tolist() == np.searchsorted(values[order], np.arange(nodes + 1)).tolist()


def _outputs(out: Path) -> dict[str, bytes]:
    found = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    found.pop("summary.json")
    return found


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_with_its_tables_in_small_chunks_writes_what_a_run_in_memory_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """Each column written in chunks of 5 entries, against a run whose tables stay in memory."""
    with monkeypatch.context() as patched:
        in_memory = lambda out, wanted=True, prefix="": contextlib.nullcontext(None)  # noqa: E731
        patched.setattr(columns, "directory_in", in_memory)
        run([str(SAMPLE)], tmp_path / "memory", Config(jobs=jobs))
    monkeypatch.setattr(columns, "CHUNK", 5)
    run([str(SAMPLE)], tmp_path / "files", Config(jobs=jobs))
    assert _outputs(tmp_path / "files") == _outputs(tmp_path / "memory")
    assert not [p for p in os.listdir(tmp_path / "files") if p.startswith(".tables.")]


def test_a_column_of_small_chunks_writes_its_file_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(columns, "CHUNK", 2)
    col = columns.Column("q", tmp_path / "c")
    for v in range(7):
        col.append(v)
    assert (tmp_path / "c").stat().st_size == 6 * 8  # three chunks written, the seventh entry held


def test_without_fallocate_a_table_is_made_sparse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without posix_fallocate gets the sparse file np.memmap made; other errors are errors."""

    def unsupported(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    table = columns.zeros(tmp_path / "a", np.int64, 10)
    table[3] = 7
    assert table.tolist() == [0, 0, 0, 7] + [0] * 6

    def full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left") as raised:
        columns.zeros(tmp_path / "b", np.int64, 10)
    assert raised.value.filename == str(tmp_path / "b")


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 40), max_size=25), max_size=12))
def test_node_keys_in_files_number_texts_as_the_dict_does(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]]
) -> None:
    """Nodes by first appearance, through tables grown from 4 slots (moved each time they fill), in
    files (a batch run) and in memory (a cron run), against the dict."""
    directory = tmp_path_factory.mktemp("keys")
    in_files, in_memory = text_nodes.NodeKeys(directory, slots=4), text_nodes.NodeKeys(None, slots=4)
    reference = text_nodes.NodeKeys(None, compiled=False)
    for batch in batches:
        keys = np.array(batch, dtype=np.uint64)
        expected = reference.assign(keys).tolist()
        assert in_files.assign(keys).tolist() == in_memory.assign(keys).tolist() == expected
    seen = {k for batch in batches for k in batch}
    new = next(k for k in range(41, 10**6) if k not in seen)
    assert in_files.node(new) == in_memory.node(new) == reference.node(new) == len(seen)  # one more text
    assert len(in_memory) == len(reference) == len(seen) + 1
    in_files.close()
    assert not list(directory.iterdir())


@settings(max_examples=30, deadline=None)
@given(codes=st.lists(st.sampled_from(list(Status)), max_size=40))
def test_the_statuses_a_table_holds_in_files_and_in_memory(
    tmp_path_factory: pytest.TempPathFactory, codes: list[Status]
) -> None:
    """``statuses`` (one pass over the column) against the statuses asked a document at a time,
    with most of the column written to its file (chunks of 2) and the rest not yet."""
    src = Source("dir", "/data", "")
    in_memory = DocumentTable([src])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(columns, "CHUNK", 2)
        in_file = DocumentTable([src], tmp_path_factory.mktemp("table"))
        for i, status in enumerate(codes):
            doc = Document(i, f"{i}.txt", src, f"/data/{i}.txt", status=status)
            in_file.append(doc)
            in_memory.append(doc)
    expected = {in_memory.status(i) for i in range(len(codes))}
    assert expected == set(codes)
    assert in_file.statuses() == in_memory.statuses() == expected


def test_notes_in_files_are_the_notes_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors and a WARC record's fields, surrogates in a message too, read back from files."""
    monkeypatch.setattr(columns, "CHUNK", 2)
    src = Source("warc", "/data/a.warc.gz", "")
    in_file, in_memory = DocumentTable([src], tmp_path), DocumentTable([src])
    for i in range(9):
        extra = {"url": f"https://example.org/{i}", "record_id": f"<urn:uuid:{i}>"} if i % 3 else None
        extra = {} if i == 8 else extra  # a WARC record with neither, skipped: read back as none
        error = f"caf\udce9 {i} unreadable" if i % 4 == 0 else None
        doc = Document(
            i, f"a.warc.gz/{i}", src, "/data/a.warc.gz", offset=i, line=i + 1, error=error, extra=extra
        )
        in_file.append(doc)
        in_memory.append(doc)
    in_file.seal()
    got = pickle.loads(pickle.dumps(in_file))
    for i in range(9):
        assert in_file.notes(i) == in_memory.notes(i) == got.notes(i)
        assert in_file[i] == in_memory[i]


_FULL_DISK = """
import sys, numpy as np
from pathlib import Path
from dedup import record_spill, text_nodes
keys = text_nodes.NodeKeys(Path(sys.argv[1]), slots=4)
try:
    keys.assign(np.arange(1, 40_000, dtype=np.uint64))  # grows past the space left
except OSError as err:
    print("error:", err)
"""


def test_a_full_disk_is_an_error_not_a_bus_error(tmp_path: Path) -> None:
    """A table mapped to be written has its blocks first: on a file system with no room, writing
    through the map of a sparse file kills the process with SIGBUS (no message, no cleanup)."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(tiny)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        (tiny / "fill").write_bytes(bytes(96 * 1024))
        done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tiny)], capture_output=True, text=True)
    finally:
        subprocess.run(["umount", str(tiny)], check=False)
    assert done.returncode == 0, done.stderr  # -7: SIGBUS
    assert "error:" in done.stdout and "No space left" in done.stdout
