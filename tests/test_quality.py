"""Each kind of damage, on its own, makes a copy lose to the clean one."""

import bisect
import itertools
from collections.abc import Sequence

import pytest
from conftest import ARTICLES, COUNCIL, MUSEUM, NOISE, coref, garble, join_paragraphs, truncate
from hypothesis import given
from hypothesis import strategies as st

from dedup.canonical import Member, rank
from dedup.normalize import comparison_text, repair, tokens
from dedup.quality import (
    _longest_increasing,
    intrinsic,
    relative,
    repeated_phrase_fraction,
)
from dedup.signatures import TokenFrequency, shingle_hashes, token_hashes

LONG = COUNCIL + "\n\n" + MUSEUM


def ranked_paths(texts: dict[str, str]) -> list[str]:
    """Score texts as one cluster, as the pipeline does, and return names best first."""
    names = list(texts)
    toks = [tokens(repair(texts[n])) for n in names]
    rel = relative(toks, [shingle_hashes(t, 5) for t in toks])
    members: Sequence[Member] = [
        Member(i, n, {**intrinsic(texts[n], repair(texts[n]), comparison_text(repair(texts[n]))), **rel[i]})
        for i, n in enumerate(names)
    ]
    return [s.member.path for s in rank(members)]


@pytest.mark.parametrize("noise", sorted(NOISE))
def test_each_noise_alone_is_less_clean(noise: str) -> None:
    damaged = NOISE[noise](LONG)
    assert damaged != LONG
    # The damaged copy comes first in order, so only the score can put the clean one ahead.
    assert ranked_paths({"damaged": damaged, "clean": LONG})[0] == "clean"


def test_joined_paragraphs_are_less_clean() -> None:
    assert ranked_paths({"joined": join_paragraphs(LONG), "clean": LONG})[0] == "clean"


def test_clean_truncated_beats_complete_garbled() -> None:
    texts = {
        "garbled-1": garble(COUNCIL, "The city council member"),
        "garbled-2": garble(COUNCIL, "Mayor Ellen Brandt"),
        "truncated": truncate(COUNCIL, 0.45),
    }
    assert ranked_paths(texts)[0] == "truncated"


def test_complete_clean_beats_truncated_clean() -> None:
    assert ranked_paths({"truncated": truncate(COUNCIL, 0.6), "complete": COUNCIL})[0] == "complete"


def test_outvoted_words_mark_the_ocr_copy_even_in_a_pair() -> None:
    clean = COUNCIL
    toks = [tokens(clean), tokens(clean.replace("of the harbor", "of tbe harbor"))]
    # "tbe" loses within the pair: the other copy says "the" everywhere.
    rel = relative(toks, [shingle_hashes(t, 5) for t in toks])
    assert rel[1]["outvoted"] > 0 and rel[0]["outvoted"] == 0

    # "people"/"pcople" occur once each: two copies alone cannot tell ...
    toks = [tokens(clean), tokens(clean.replace("asking people", "asking pcople"))]
    assert [r["outvoted"] for r in relative(toks, [shingle_hashes(t, 5) for t in toks])] == [0, 0]
    # ... the corpus can: "people" is in other articles too.
    corpus = TokenFrequency(width=1 << 12)
    for text in [*ARTICLES.values(), clean.replace("asking people", "asking pcople")]:
        corpus.add(token_hashes(tokens(text)))
    rel = relative(toks, [shingle_hashes(t, 5) for t in toks], lambda w: corpus.get(token_hashes(w)).tolist())
    assert rel[1]["outvoted"] > 0 and rel[0]["outvoted"] == 0


def test_outvoted_words_mark_pasted_phrases_by_majority() -> None:
    copies = [COUNCIL, COUNCIL.replace("Mayor Ellen", "Mayor  Ellen"), coref(COUNCIL, "The city official")]
    toks = [tokens(t) for t in copies]
    rel = relative(toks, [shingle_hashes(t, 5) for t in toks])
    assert rel[2]["outvoted"] > 0 and rel[0]["outvoted"] == rel[1]["outvoted"] == 0


def test_repeated_phrases_are_measured() -> None:
    assert repeated_phrase_fraction(
        tokens(garble(COUNCIL, "The city council member"))
    ) > repeated_phrase_fraction(tokens(COUNCIL))
    assert repeated_phrase_fraction(["a", "b"]) == 0.0


def test_ties_break_by_order_not_by_score_noise() -> None:
    assert ranked_paths({"first": COUNCIL, "second": COUNCIL}) == ["first", "second"]


def _longest_increasing_length(js):
    best = []
    for j in js:
        k = bisect.bisect_left(best, j)
        best[k : k + 1] = [j]
    return len(best)


@given(st.lists(st.integers(0, 30), max_size=40, unique=True))
def test_longest_increasing_chain_is_longest_and_increasing(js):
    pairs = list(enumerate(js))
    chain = _longest_increasing(pairs)
    assert all(p in pairs for p in chain)
    assert all(p[0] < q[0] and p[1] < q[1] for p, q in itertools.pairwise(chain))
    assert len(chain) == _longest_increasing_length(js)
