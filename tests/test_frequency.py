"""The corpus token frequencies: batch counts from workers add up to counting each document."""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.frequency import BatchCounter, TokenFrequency, combined, counts
from dedup.signatures import token_hashes

documents = st.lists(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 40), max_size=30), max_size=12)


@given(st.lists(documents, max_size=5))
@settings(deadline=None, derandomize=True, max_examples=150)
def test_batches_count_each_document_once_whatever_the_batching(batches: list[list[list[int]]]) -> None:
    # A tiny sketch, so that distinct tokens of one batch share cells.
    batched, one_by_one = TokenFrequency(width=1 << 4, depth=3), TokenFrequency(width=1 << 4, depth=3)
    for batch in batches:
        arrays = [np.array(doc, dtype=np.uint64) for doc in batch]
        batched.merge(counts(arrays))
        for array in arrays:
            for token in set(array.tolist()):  # each distinct token of a document once
                one_by_one.merge(counts([np.array([token], dtype=np.uint64)]))
    assert np.array_equal(batched.table, one_by_one.table)
    docs = [set(doc) for batch in batches for doc in batch]
    for token in set().union(*docs):  # a count-min sketch never counts low
        held = sum(token in doc for doc in docs)
        assert batched.get(np.array([token], dtype=np.uint64))[0] >= held


@given(st.lists(documents, max_size=5))
@settings(deadline=None, derandomize=True, max_examples=100)
def test_combined_batches_count_as_one_batch(batches: list[list[list[int]]]) -> None:
    arrays = [[np.array(doc, dtype=np.uint64) for doc in batch] for batch in batches]
    hashes, times = combined([counts(batch) for batch in arrays])
    all_hashes, all_times = counts([doc for batch in arrays for doc in batch])
    assert hashes.tolist() == all_hashes.tolist() and times.tolist() == all_times.tolist()


@given(st.lists(documents, min_size=1, max_size=6), st.sampled_from([1, 2, 8, 1 << 15]))
@settings(deadline=None, derandomize=True, max_examples=150)
def test_the_batch_counter_counts_as_the_reference(batches: list[list[list[int]]], slots: int) -> None:
    # One counter for all the batches (its table reused), starting from tables too small to hold them.
    counter = BatchCounter(slots=slots)
    for batch in batches:
        arrays = [np.array(doc, dtype=np.uint64) for doc in batch]
        hashes, times = counter(arrays)
        want_hashes, want_times = counts(arrays)
        assert len(hashes) == len(set(hashes.tolist()))
        assert dict(zip(hashes.tolist(), times.tolist(), strict=True)) == dict(
            zip(want_hashes.tolist(), want_times.tolist(), strict=True)
        )
        if arrays:  # the first value of the first document that holds one comes first
            firsts = [doc[0] for doc in batch if doc]
            assert hashes[:1].tolist() == firsts[:1]


@pytest.mark.parametrize("slots", [0, 3, -4])
def test_a_batch_counter_table_is_a_power_of_two(slots: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        BatchCounter(slots=slots)


@given(st.lists(documents, max_size=4), st.sampled_from(["dumps", "zlib", "raw"]))
@settings(deadline=None, derandomize=True, max_examples=60)
def test_stored_counters_read_back_whatever_format_wrote_them(
    batches: list[list[list[int]]], form: str
) -> None:
    # "zlib" and "raw": how states written before zstd hold the table.
    written = TokenFrequency(width=1 << 6, depth=3)
    for batch in batches:
        written.merge(counts([np.array(doc, dtype=np.uint64) for doc in batch]))
    data = {
        "dumps": written.dumps(),
        "zlib": zlib.compress(written.table.tobytes()),
        "raw": written.table.tobytes(),
    }
    read = TokenFrequency(width=1 << 6, depth=3)
    read.loads(data[form])
    assert read.table.shape == written.table.shape and np.array_equal(read.table, written.table)
    tokens = np.array(sorted({t for batch in batches for doc in batch for t in doc})[:20], dtype=np.uint64)
    assert read.get(tokens).tolist() == written.get(tokens).tolist()
    read.merge(counts([np.array([7], dtype=np.uint64)]))  # writable, as a cron run adds to it
    assert read.get(np.array([7], dtype=np.uint64))[0] >= 1


def test_a_mostly_empty_table_is_stored_small() -> None:
    freq = TokenFrequency()  # 32 MB of counters
    freq.merge(counts([np.arange(1000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)]))
    assert len(freq.dumps()) < freq.table.nbytes // 1000


@pytest.mark.parametrize(
    "damage", ["flipped", "truncated", "resized", "checksum cut", "flipped, checksum cut"]
)
def test_a_damaged_stored_table_is_a_value_error(damage: str) -> None:
    written = TokenFrequency(width=1 << 6, depth=3)
    written.merge(counts([np.arange(50, dtype=np.uint64)]))
    data = bytearray(written.dumps())
    if damage.startswith("flipped"):
        data[12:40] = bytes(28)
    if damage == "truncated":
        del data[len(data) // 2 :]
    elif damage.endswith("checksum cut"):  # the table whole: only its checksum's bytes are missing
        del data[-2:]
    read = TokenFrequency(width=1 << 7 if damage == "resized" else 1 << 6, depth=3)
    with pytest.raises(ValueError):
        read.loads(bytes(data))


def test_stored_counters_count_words_as_before() -> None:
    freq = TokenFrequency(width=1 << 12)
    for words in (["the", "cat"], ["the", "dog"], ["a", "cat"]):
        freq.add(token_hashes(words))
    data = freq.dumps()
    assert len(data) < freq.table.nbytes
    back = TokenFrequency(width=1 << 12)
    back.loads(data)
    assert back.get(token_hashes(["the", "cat", "cow"])).tolist() == [2, 2, 0]
