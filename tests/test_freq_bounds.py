"""Frequency bounds: a cron run judges a kept group again when the corpus counts its verdicts rest
on have grown past what those verdicts allow, so it keeps what a full rebuild keeps."""

import os
import random
from pathlib import Path

import numpy as np
from conftest import read_manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import Config, run
from dedup.alignment import MARGIN
from dedup.freq_bounds import FIRST, NEITHER, SECOND, Bounds, line_limits, most_under, outvoted_limits

_WORDS = [f"{a}{b}" for a in ("sta", "ble", "mor", "quin", "dex", "pal", "vor", "tre") for b in "aeiouyrs"]


def _outcome(first: int, second: int) -> int:
    """The decision as ``alignment.outvoted_words`` takes it, on two rarest words' counts."""
    a, b = float(np.log1p(first)), float(np.log1p(second))
    return FIRST if a + MARGIN < b else SECOND if b + MARGIN < a else NEITHER


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(0, 400), st.integers(0, 400))
def test_a_decision_holds_exactly_while_the_counts_stay_within_their_limits(
    first: int, second: int, grow_first: int, grow_second: int
) -> None:
    """Counts only grow: within both limits the outcome is the same, and a limit is the last count
    at which growing that side alone keeps it (one more and it changes)."""
    outcome = _outcome(first, second)
    limit_first, limit_second = (
        int(x[0]) for x in outvoted_limits(np.array([first]), np.array([second]), np.array([outcome]), MARGIN)
    )
    a, b = first + grow_first, second + grow_second
    if a <= limit_first and b <= limit_second:
        assert _outcome(a, b) == outcome
    for limit, other, mine in ((limit_first, second, True), (limit_second, first, False)):
        if limit == np.iinfo(np.int64).max:  # this side may grow for ever
            assert (
                _outcome(first + 10**6, second) == outcome
                if mine
                else _outcome(first, second + 10**6) == outcome
            )
            continue
        at, past = (
            (limit, other) if mine else (other, limit),
            (limit + 1, other) if mine else (other, limit + 1),
        )
        assert _outcome(*at) == outcome and _outcome(*past) != outcome


def _holds(x: int, threshold: float, strict: bool) -> bool:
    lx = float(np.log1p(x))
    return lx + MARGIN < threshold if strict else not threshold + MARGIN < lx


def test_most_under_is_the_last_count_that_passes() -> None:
    for threshold in np.log1p(np.arange(0, 200, dtype=np.float64)).tolist():
        for strict in (True, False):
            c = int(most_under(np.array([threshold]), MARGIN, strict=strict)[0])
            if c == -1:
                assert not _holds(0, threshold, strict)
            else:
                assert _holds(c, threshold, strict) and not _holds(c + 1, threshold, strict)


def test_most_under_of_many_decisions_at_once_is_each_ones() -> None:
    """Counts whose first guess is off and counts whose guess is right, side by side: each gets
    its own last passing count (the steps are taken only where needed)."""
    rng = np.random.default_rng(7)
    at = np.log1p(rng.integers(0, 10**6, 300).astype(np.float64))
    for strict in (True, False):
        edge = at + MARGIN if strict else at - MARGIN  # a guess on a count's edge: rounding decides
        thresholds = np.concatenate(
            (edge, np.nextafter(edge, 0), np.nextafter(edge, 99), rng.random(300) * 9)
        )
        rng.shuffle(thresholds)
        together = most_under(thresholds, MARGIN, strict=strict).tolist()
        for threshold, c in zip(thresholds.tolist(), together, strict=True):
            if c == -1:
                assert not _holds(0, threshold, strict)
            else:
                assert _holds(c, threshold, strict) and not _holds(c + 1, threshold, strict)


def test_lines_kept_or_below_the_template_count_get_the_lowest_limit_that_changes_them() -> None:
    limits = line_limits(np.array([1, 9, 12, 30]), furniture_over=10, template_from=8)
    assert limits.tolist()[:2] == [7, 10]  # under the template count; kept, already a template line
    assert (limits[2:] == np.iinfo(np.int64).max).all()  # furniture already: counts never fall
    assert line_limits(np.array([3]), furniture_over=10, template_from=None).tolist() == [10]


def _triples(bounds: Bounds) -> list[tuple[int, int, int]]:
    owners = np.repeat(bounds.owners, bounds.sizes.astype(np.int64))
    return list(zip(owners.tolist(), bounds.keys.tolist(), bounds.limits.tolist(), strict=True))


def test_bounds_join_round_trip_and_say_which_owners_crossed() -> None:
    from dedup.frequency import TokenFrequency

    freq = TokenFrequency(width=1 << 10)
    for _ in range(5):
        freq.add(np.array([7], dtype=np.uint64))
    forever = np.iinfo(np.int64).max
    one = Bounds.found(
        np.array([2, 1, 1, 2], np.uint64), np.array([7, 9, 7, 5], np.uint64), [4, 3, 6, forever]
    )
    two = Bounds.found(np.array([3, 1], np.uint64), np.array([9, 7], np.uint64), np.array([-1, 4]))
    assert _triples(one) == [
        (1, 7, 6),
        (1, 9, 3),
        (2, 7, 4),
    ]  # by owner and key; a limit never crossed left out
    joined = Bounds.joined([one, two])
    assert _triples(joined) == [
        (1, 7, 4),
        (1, 9, 3),
        (2, 7, 4),
        (3, 9, 0),
    ]  # owner 1 in both: the lower limit
    apart = Bounds.joined([one, Bounds.found(np.array([4], np.uint64), np.array([7], np.uint64), [5])])
    assert _triples(apart) == [*_triples(one), (4, 7, 5)]
    loaded = Bounds.loads(joined.dumps())
    assert loaded is not None and _triples(loaded) == _triples(joined)
    assert loaded.crossed(freq).tolist() == [1, 2]  # key 7 counted 5, over 4; key 9 not counted
    three = Bounds.found(
        np.array([3], np.uint64), np.array([5], np.uint64), [-1]
    )  # a limit its counts cannot give
    freq.add(np.array([5], dtype=np.uint64))
    assert three.crossed(freq).tolist() == [3]
    for damaged in (joined.dumps()[:-1], b"XXXX" + joined.dumps()[4:], b"", None):
        assert Bounds.loads(damaged) is None
    kept = Bounds.loads(Bounds.dump_joined([(joined, joined.of(np.array([3, 2], np.uint64)))]))
    assert kept is not None and _triples(kept) == [(2, 7, 4), (3, 9, 0)]  # the runs of the owners kept
    both = Bounds.loads(Bounds.dump_joined([(joined, joined.of(np.array([2], np.uint64))), (one, None)]))
    assert both is not None and _triples(both) == _triples(one)  # owner 2 twice: merged


def test_bounds_as_the_state_table_rows_read_back() -> None:
    bounds = Bounds.found(np.array([2**63 + 5, 1, 1], np.uint64), np.array([7, 9, 7], np.uint64), [4, 3, 6])
    rows = bounds.rows()
    assert [(owner, len(data)) for owner, data in rows] == [
        (1, 24),
        (5 - 2**63, 12),
    ]  # signed, 12 bytes a pair
    again = Bounds.from_rows(rows)
    assert again is not None and _triples(again) == _triples(bounds)
    assert Bounds.from_rows([(1, b"x" * 13)]) is None


def _article(rng: random.Random, n: int, *, word: str | None = None) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    if word is not None:
        words[n // 2] = word
    return " ".join(words) + ".\n"


def test_a_kept_group_is_judged_again_when_arrivals_outvote_the_other_copy(tmp_path: Path) -> None:
    """Two copies that differ by one word, ``colour`` against ``color``: the corpus decides which
    copy has the slip. The first night ``colour`` is the commoner and the ``color`` copy is blamed;
    thirty arrivals that say ``color`` turn it round. The group did not change, but a full run over
    everything keeps the other copy now, and so must the cron run."""
    rng = random.Random(5)
    base = [rng.choice(_WORDS) for _ in range(160)]
    spots = (40, 100)
    a, b = list(base), list(base)
    for at in spots:
        a[at], b[at] = "colour", "color"
    corpus = tmp_path / "in"
    (corpus / "night1").mkdir(parents=True)
    (corpus / "night1" / "a.txt").write_text(" ".join(a) + ".\n")
    (corpus / "night1" / "b.txt").write_text(" ".join(b) + ".\n")
    for k in range(5):
        (corpus / "night1" / f"other{k}.txt").write_text(_article(rng, 120, word="colour"))
    state = Config(jobs=1, state=str(tmp_path / "state"))
    run([corpus], tmp_path / "out", state)
    first = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert first["night1/a.txt"]["canonical"] and not first["night1/b.txt"]["canonical"]

    (corpus / "night2").mkdir()
    for k in range(30):
        (corpus / "night2" / f"new{k}.txt").write_text(_article(rng, 120, word="color"))
    run([corpus], tmp_path / "out", state)
    run([corpus], tmp_path / "full", Config(jobs=1))
    full = {r["path"]: r for r in read_manifest(tmp_path / "full")}
    cron = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert full["night1/b.txt"]["canonical"] and not full["night1/a.txt"]["canonical"]  # turned round
    for path in ("night1/a.txt", "night1/b.txt"):
        assert cron[path]["canonical"] == full[path]["canonical"]
        assert cron[path]["signals"] == full[path]["signals"]


def _colour_corpus(tmp_path: Path, *, uk: int, us: int) -> Path:
    """Copies a and b that differ by ``colour`` against ``color``, and unrelated articles with one
    or the other: the corpus's counts decide which copy has the slip."""
    rng = random.Random(5)
    base = [rng.choice(_WORDS) for _ in range(160)]
    a, b = list(base), list(base)
    for at in (40, 100):
        a[at], b[at] = "colour", "color"
    corpus = tmp_path / "in"
    corpus.mkdir()
    (corpus / "a.txt").write_text(" ".join(a) + ".\n")
    (corpus / "b.txt").write_text(" ".join(b) + ".\n")
    for k in range(uk):
        (corpus / f"uk{k}.txt").write_text(_article(rng, 120, word="colour"))
    for k in range(us):
        (corpus / f"us{k}.txt").write_text(_article(rng, 120, word="color"))
    return corpus


def _same_as_a_full_run(corpus: Path, tmp_path: Path) -> None:
    run([corpus], tmp_path / "full", Config(jobs=1))
    full = {r["path"]: r for r in read_manifest(tmp_path / "full")}
    cron = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    for path in ("a.txt", "b.txt"):
        assert cron[path]["signals"] == full[path]["signals"], path
        assert cron[path]["canonical"] == full[path]["canonical"], path


def test_files_touched_are_read_again_but_not_counted_again(tmp_path: Path) -> None:
    """Found by a second reader: a file whose mtime changed (a scraper rewriting what it fetched)
    is read again; its bytes are the ones the state counted, so its words are not counted twice.
    Counted again, three nights of touching the ``color`` articles turned the vote a full run takes."""
    corpus = _colour_corpus(tmp_path, uk=5, us=4)
    state = Config(jobs=1, state=str(tmp_path / "state"))
    run([corpus], tmp_path / "out", state)
    for night in range(1, 4):
        for k in range(4):  # the same bytes, a later mtime
            os.utime(corpus / f"us{k}.txt", ns=(night * 10**18, night * 10**18))
        run([corpus], tmp_path / "out", state)
    _same_as_a_full_run(corpus, tmp_path)


def test_a_bounds_row_edited_into_text_is_not_trusted_and_every_group_is_judged_again(tmp_path: Path) -> None:
    """Found by a second reader: a ``bounds`` row holding text (not a blob) crashed the next run with
    a TypeError. Now the limits are not trusted: every group is judged again, once."""
    import sqlite3

    corpus = _colour_corpus(tmp_path, uk=5, us=3)
    state = Config(jobs=1, state=str(tmp_path / "state"))
    run([corpus], tmp_path / "out", state)
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite")
    with db:
        assert db.execute("UPDATE bounds SET data = 'x'").rowcount >= 1
    db.close()
    (corpus / "late.txt").write_text(_article(random.Random(9), 120, word="colour"))
    judged = {"verify": 0}
    run([corpus], tmp_path / "out", state, progress=lambda stage, done, total: judged.update({stage: total}))
    assert judged["verify"] >= 1  # the a/b group, though no count crossed its limit
    _same_as_a_full_run(corpus, tmp_path)
