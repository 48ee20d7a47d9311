"""Each kind of damage, on its own, makes a copy lose to the clean one."""

import bisect
import difflib
import itertools
from collections.abc import Sequence

import pytest
from conftest import ARTICLES, COUNCIL, MUSEUM, NOISE, coref, garble, join_paragraphs, truncate
from hypothesis import example, given
from hypothesis import strategies as st

from dedup.alignment import edits, longest_increasing, unique_trigrams
from dedup.canonical import Member, rank
from dedup.frequency import TokenFrequency
from dedup.normalize import comparison_text, repair, tokens
from dedup.quality import intrinsic, relative, repeated_phrase_fraction
from dedup.signatures import shingle_hashes, token_hashes

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
    chain = longest_increasing(pairs)
    assert all(p in pairs for p in chain)
    assert all(p[0] < q[0] and p[1] < q[1] for p, q in itertools.pairwise(chain))
    assert len(chain) == _longest_increasing_length(js)


_VOCABULARY = ["a", "b", "c", "the", "The", "city", *(f"w{i}" for i in range(14))]
_WORDS = st.lists(st.sampled_from(_VOCABULARY), max_size=60)


@given(_WORDS, st.integers(1, 4), st.integers(1, 4))
def test_repeated_phrase_fraction_counts_words_inside_frequent_phrases(words, n, min_count) -> None:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    inside = {k for i, g in enumerate(grams) if grams.count(g) >= min_count for k in range(i, i + n)}
    expected = max(len(inside) / len(words) - 0.02, 0.0) if len(words) >= n * min_count else 0.0
    assert repeated_phrase_fraction(words, n, min_count) == pytest.approx(expected)


@given(_WORDS)
def test_unique_trigrams_are_the_trigrams_seen_once_at_their_position(words) -> None:
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    assert unique_trigrams(words) == {g: i for i, g in enumerate(grams) if grams.count(g) == 1}


@given(_WORDS, st.lists(st.tuples(st.integers(0, 59), st.sampled_from(["", *_VOCABULARY]))))
def test_edits_are_the_differing_stretches_between_consecutive_anchors(a, slips) -> None:
    b = list(a)  # a copy with slips: words replaced, dropped ("") or inserted
    for at, word in slips:
        if at < len(b):
            b[at : at + 1] = [word] if word else []
        elif word:
            b.insert(at % (len(b) + 1), word)
    ga, gb = unique_trigrams(a), unique_trigrams(b)
    chain = longest_increasing(sorted((ga[g], gb[g]) for g in ga.keys() & gb.keys()))
    expected = []
    for (i1, j1), (i2, j2) in itertools.pairwise(chain):
        seg_a, seg_b = a[i1 + 3 : i2], b[j1 + 3 : j2]
        if len(seg_a) > 12 or len(seg_b) > 12 or seg_a == seg_b:
            continue
        if not seg_a or not seg_b:
            expected.append((seg_a, seg_b))
            continue
        ops = difflib.SequenceMatcher(None, seg_a, seg_b, autojunk=False).get_opcodes()
        expected += [(seg_a[a1:a2], seg_b[b1:b2]) for op, a1, a2, b1, b2 in ops if op != "equal"]
    assert list(edits(a, b, ga, gb)) == expected


def test_a_reason_never_says_a_score_is_below_the_same_printed_score() -> None:
    from dedup.canonical import Member, Scored, duplicate_reason

    best = Scored(Member(0, "a.txt", {}), 1.0, {"incomplete": 0.0})
    almost = Scored(Member(1, "b.txt", {}), 0.9992, {"incomplete": 0.0008})
    assert "tied at 1.00" in duplicate_reason(almost, best, "same text")
    worse = Scored(Member(2, "c.txt", {}), 0.75, {"treebank": 0.25})
    assert "score 0.75 < 1.00 (treebank -0.25)" in duplicate_reason(worse, best, "same text")


_INLINE_PIECES = [
    "subscribe to our", "Subscribe To The", "sign up for the", "CLICK HERE", "click herex",
    "share this story", "Share This page", "follow us on", "accept all cookies", "We use cookies",
    "all rights reserved",
    "continue reading", "Skip to main content", "download the app", "download our App", "newsletter", "x",
    "_", "é", "K", "\u212a", "\u017f", " ", "\n", ".", "subscribe", "to", "our", "here", "click",
]  # fmt: skip


@given(st.lists(st.sampled_from(_INLINE_PIECES), max_size=30).map("".join))
@example("Subscribe to our follow us on. Click here")  # a phrase inside another's match: once
def test_inline_boilerplate_counts_what_the_ignorecase_pattern_finds(text: str) -> None:
    from dedup.quality import PATTERNS, inline_boilerplate

    assert inline_boilerplate(text) == len(PATTERNS["boilerplate_inline"].findall(text))


@pytest.mark.parametrize("phrase", [p for p in _INLINE_PIECES if len(p) > 12 or p == "CLICK HERE"])
def test_each_inline_boilerplate_phrase_is_counted_where_it_stands(phrase: str) -> None:
    from dedup.quality import PATTERNS, inline_boilerplate

    for text in (f"{phrase} x", f"x {phrase}. {phrase}", f"x{phrase}"):
        assert inline_boilerplate(text) == len(PATTERNS["boilerplate_inline"].findall(text)), text
