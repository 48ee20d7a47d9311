"""One-word votes: kept as their two words and taken again on the night's counts (``freq_votes``)."""

import random
from pathlib import Path

import numpy as np
from conftest import read_manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import Config, run
from dedup.alignment import MARGIN
from dedup.freq_votes import Votes, found, outcomes
from dedup.frequency import TokenFrequency

_WORDS = [f"{a}{b}" for a in ("sta", "ble", "mor", "quin", "dex", "pal", "vor", "tre") for b in "aeiouyrs"]


def _article(rng: random.Random, n: int, word: str) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    words[n // 2] = word
    return " ".join(words) + ".\n"


def _decided(first: int, second: int) -> int:
    """The decision as ``alignment.outvoted_words`` takes it on two one-word stretches."""
    a, b = float(np.log1p(first)), float(np.log1p(second))
    return 1 if a + MARGIN < b else 2 if b + MARGIN < a else 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 5000)), max_size=30))
def test_outcomes_are_the_alignments_decisions(pairs: list[tuple[int, int]]) -> None:
    first, second = np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)
    assert outcomes(first, second).tolist() == [_decided(a, b) for a, b in pairs]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, 6)), max_size=20),
    st.lists(st.integers(0, 12), min_size=7, max_size=7),
)
def test_a_group_is_stale_exactly_when_one_of_its_votes_turns(
    votes: list[tuple[int, int, int]], grown: list[int]
) -> None:
    """Each vote decided on the counts of its night; the sketch then counts each word ``grown`` more
    (a word's count never falls): the owners flagged are those with a vote that now goes another way."""
    before = [0, 3, 1, 8, 2, 5, 0]  # word k's count when the votes were taken
    votes = [v for v in votes if v[1] != v[2]]
    keys = (np.arange(1, 8, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)  # word k's
    freq = TokenFrequency(width=1 << 12)
    now = [b + g for b, g in zip(before, grown, strict=True)]
    for word, count in enumerate(now):
        for _ in range(count):
            freq.add(keys[word : word + 1])
    assert freq.get(keys).tolist() == now  # no two words share their cells
    owners = np.array([v[0] for v in votes], dtype=np.uint64)
    first, second = keys[[v[1] for v in votes]], keys[[v[2] for v in votes]]
    outcome = np.array([_decided(before[v[1]], before[v[2]]) for v in votes], dtype=np.uint8)
    table = Votes.found(owners, found(np.zeros(len(votes), np.int64), first, second, outcome))
    expected = sorted(
        {v[0] for v in votes if _decided(now[v[1]], now[v[2]]) != _decided(before[v[1]], before[v[2]])}
    )
    assert table.turned(freq).tolist() == expected
    again = Votes.from_rows(table.rows())
    assert again is not None and again.turned(freq).tolist() == expected
    assert again.owners.tolist() == sorted({v[0] for v in votes})
    assert len(again) == len({(v[0], v[1], v[2]) for v in votes})  # each vote of an owner once


def test_rows_that_are_not_whole_votes_are_refused() -> None:
    assert Votes.from_rows([(1, b"x" * 18)]) is None


def _colours(corpus: Path, rng: random.Random, name: str, *, uk: int, us: int) -> None:
    for k in range(uk):
        (corpus / f"{name}-uk{k}.txt").write_text(_article(rng, 120, "colour"))
    for k in range(us):
        (corpus / f"{name}-us{k}.txt").write_text(_article(rng, 120, "color"))


def _night(corpus: Path, tmp_path: Path) -> int:
    """A cron run; how many groups it judged (pass 2's tasks)."""
    totals = {"verify": 0}

    def progress(stage: str, done: int, total: int) -> None:
        totals[stage] = total

    run([corpus], tmp_path / "out", Config(jobs=1, state=str(tmp_path / "state")), progress=progress)
    return totals["verify"]


def test_a_vote_both_words_grow_under_is_judged_again_only_when_it_turns(tmp_path: Path) -> None:
    """Copies a and b differ by ``colour`` against ``color``. Night 1: 6 documents say ``colour``, 4
    ``color``: b is blamed. Night 2 brings 6 and 2 more (12 against 6): ``color`` has grown past the
    limit a one-sided bound would set (4), but the vote still blames b: the group is kept. Night 3
    brings 12 ``color``: the vote turns, the group is judged again, and the cron run keeps what a
    full run keeps."""
    rng = random.Random(5)
    base = [rng.choice(_WORDS) for _ in range(160)]
    a, b = list(base), list(base)
    for at in (40, 100):
        a[at], b[at] = "colour", "color"
    corpus = tmp_path / "in"
    corpus.mkdir()
    (corpus / "a.txt").write_text(" ".join(a) + ".\n")
    (corpus / "b.txt").write_text(" ".join(b) + ".\n")
    _colours(corpus, rng, "n1", uk=5, us=3)
    assert _night(corpus, tmp_path) == 1
    first = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert first["a.txt"]["canonical"] and first["b.txt"]["signals"]["outvoted"] > 0

    _colours(corpus, rng, "n2", uk=6, us=2)
    assert _night(corpus, tmp_path) == 0
    _colours(corpus, rng, "n3", uk=0, us=12)
    assert _night(corpus, tmp_path) == 1

    run([corpus], tmp_path / "full", Config(jobs=1))
    full = {r["path"]: r for r in read_manifest(tmp_path / "full")}
    cron = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert full["b.txt"]["signals"]["outvoted"] == 0  # turned: neither blamed now, or a
    for path in ("a.txt", "b.txt"):
        assert cron[path]["signals"] == full[path]["signals"], path
        assert cron[path]["canonical"] == full[path]["canonical"], path


def test_a_damaged_votes_table_is_not_trusted_and_every_group_is_judged_again(tmp_path: Path) -> None:
    """Found by a second reader: a votes row edited to text crashed the next run. Now the state's
    limits are not trusted then (without the votes they leave one-word decisions out), every group
    is judged again, and the run keeps what a full run keeps."""
    import sqlite3

    rng = random.Random(7)
    base = [rng.choice(_WORDS) for _ in range(160)]
    a, b = list(base), list(base)
    a[80], b[80] = "colour", "color"
    corpus = tmp_path / "in"
    corpus.mkdir()
    (corpus / "a.txt").write_text(" ".join(a) + ".\n")
    (corpus / "b.txt").write_text(" ".join(b) + ".\n")
    _colours(corpus, rng, "n1", uk=5, us=3)
    assert _night(corpus, tmp_path) == 1
    _colours(corpus, rng, "n2", uk=1, us=0)
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite")
    with db:
        assert db.execute("UPDATE votes SET data = 'x'").rowcount == 1
    db.close()
    assert _night(corpus, tmp_path) == 1  # judged again, though no vote turned
    _colours(corpus, rng, "n3", uk=1, us=1)  # 8 against 5: past a one-sided limit, the vote the same
    assert _night(corpus, tmp_path) == 0  # its votes stored again, and trusted
    run([corpus], tmp_path / "full", Config(jobs=1))
    full = {r["path"]: r for r in read_manifest(tmp_path / "full")}
    cron = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    for path in ("a.txt", "b.txt"):
        assert cron[path]["signals"] == full[path]["signals"], path
        assert cron[path]["canonical"] == full[path]["canonical"], path


def test_votes_joined_keep_an_owners_votes_from_every_part() -> None:
    """A group in two parts of a run's votes would keep only the later part's row: joined, its row
    holds both."""
    one = Votes.found(np.array([5, 9], np.uint64), found(np.zeros(2, np.int64), [1, 2], [3, 4], [1, 0]))
    two = Votes.found(np.array([5], np.uint64), found(np.zeros(1, np.int64), [6], [7], [2]))
    joined = Votes.joined([one, two])
    assert joined.owners.tolist() == [5, 9] and joined.sizes.tolist() == [2, 1]
    rows = dict(joined.rows())
    again = Votes.from_rows([(5, rows[5])])
    assert again is not None and sorted(again.entries["first"].tolist()) == [1, 6]
