"""The columnar document table gives back exactly the documents the readers made."""

import os

import pytest

from dedup import Config, readers
from dedup.document import DocumentTable, Status


@pytest.fixture
def sources(write_tree, tmp_path):
    a = write_tree({"x/one.txt": "First article text.", "two.txt": "", "bin.txt": b"a\x00b"})
    jsonl = tmp_path / "feed.jsonl"
    jsonl.write_bytes(b'{"id": "p1", "text": "hello"}\nnot json\n{"id": "p1", "text": "again"}\n')
    single = tmp_path / "single.txt"
    single.write_text("A lone file.")
    return readers.discover([a, jsonl, single])


def test_table_round_trips_every_field(sources):
    config = Config()
    made = []
    for doc in readers.iter_documents(sources, config, read=True):
        doc.text = None
        made.append(doc)
    table = DocumentTable(sources)
    for doc in made:
        table.append(doc)
    assert len(table) == len(made) == 7
    assert [table[i] for i in range(len(table))] == made
    assert list(table) == made
    # Files are not stored for directory documents, but found where the reader found them.
    assert all(os.path.isfile(doc.file) for doc in table)
    statuses = {doc.path.rsplit("/", 1)[-1]: doc.status for doc in table}
    assert statuses["bin.txt"] is Status.BINARY and statuses["two.txt"] is Status.EMPTY
    assert any(doc.status is Status.MALFORMED and doc.sha256 for doc in table)  # a bad line still has a hash


def test_update_replaces_what_reading_found(sources):
    config = Config()
    docs = list(readers.iter_documents(sources, config, read=False))
    table = DocumentTable(sources)
    for doc in docs:
        table.append(doc)
    first = next(doc for doc in docs if doc.path.endswith("one.txt"))
    i = first.index
    assert table[i].sha256 == "" and table[i].size == 0  # not read yet
    readers.read_file(first, config)
    first.text = None
    first.error = "a warning"
    table.update(first)
    assert table[i] == first and table[i].sha256 and table[i].size == len("First article text.")
    first.error = None
    table.update(first)
    assert table[i].error is None


def test_documents_and_features_cross_processes_unchanged(sources):
    """Pass 1's documents and features are pickled to and from the workers: every field comes
    back equal, the arrays with their dtype and values (a text still held, an error, extras too)."""
    import pickle

    import numpy as np

    from dedup.document import Features
    from dedup.pass1 import Analyser

    config = Config()
    docs = list(readers.iter_documents(sources, config, read=False))
    docs[0].extra, docs[0].counted = {"encoding": "cp1252"}, "ab" * 32
    results, _ = Analyser(config)(docs)
    assert any(feat is not None for _, feat in results) and any(feat is None for _, feat in results)
    results[1][0].text = "held"
    back = pickle.loads(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    for (doc, feat), (doc2, feat2) in zip(results, back, strict=True):
        assert doc2 == doc and doc2.source == doc.source
        if feat is None:
            assert feat2 is None
            continue
        assert (feat2.content, feat2.shingles, feat2.repair) == (feat.content, feat.shingles, feat.repair)
        for mine, theirs in ((feat.signature, feat2.signature), (feat.signals, feat2.signals)):
            assert theirs.dtype == mine.dtype and theirs.tolist() == mine.tolist()
    odd = Features(1, 2, np.arange(3, dtype=np.uint64), np.array([0.5, -1.0]), (("fix", "x"),))
    again = pickle.loads(pickle.dumps(odd))
    assert again.signature.dtype == np.uint64 and again.signals.dtype == np.float64
    assert again.signature.tolist() == [0, 1, 2] and again.signals.tolist() == [0.5, -1.0]
    assert again.repair == (("fix", "x"),)
