"""The evidence behind penalties: what each signal found, as text."""

import difflib
import random
import re
from collections import Counter
from unittest import mock

from conftest import COUNCIL, boilerplate, coref, html, mojibake, ocr, treebank
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import evidence, normalize, quality


def found(text: str) -> dict[str, evidence.Finding]:
    return evidence.intrinsic(text)


def test_a_clean_article_has_no_findings() -> None:
    assert {name: f.count for name, f in found(COUNCIL).items()} == dict.fromkeys(quality.INTRINSIC, 0)


def test_mojibake_is_shown_with_its_repair() -> None:
    finding = found(mojibake(COUNCIL))["mojibake"]
    assert finding.count > 0
    for before, garbled, after, repaired in finding.examples:
        assert garbled != repaired and normalize.repair(garbled) == repaired
        assert before + garbled + after in mojibake(COUNCIL).replace("\n", " ")


def test_boilerplate_lines_are_the_lines_themselves() -> None:
    finding = found(boilerplate(COUNCIL))["boilerplate"]
    lines = [e[1] for e in finding.examples]
    assert "Home | News | Local" in lines and "Advertisement" in lines
    assert finding.count == quality.intrinsic(*_texts(boilerplate(COUNCIL)))["boilerplate"]


def test_markup_treebank_and_ocr_findings_hold_the_matched_text() -> None:
    assert all(re.fullmatch(r"</?p>|&#8217;", e[1]) for e in found(html(COUNCIL))["markup"].examples)
    assert {e[1] for e in found(treebank(COUNCIL))["treebank"].examples} <= {" ,", " .", " n't", " 's", "``"}
    assert all(re.search(r"[a-z][0-9]|[0-9][a-z]", e[1]) for e in found(ocr(COUNCIL))["ocr"].examples)
    assert (
        found(html(COUNCIL))["markup"].count
        > evidence.MAX_EXAMPLES
        == len(found(html(COUNCIL))["markup"].examples)
    )


def test_repeated_phrases_are_the_pasted_phrase() -> None:
    tokens = normalize.tokens(coref(COUNCIL, "The city council member"))
    top = evidence.repeated_phrases(tokens).examples[0]
    assert top[1] in ("the city council", "city council member") and int(top[3].split()[0]) >= 3
    assert evidence.repeated_phrases(normalize.tokens(COUNCIL)).count == 0


def test_outvoted_words_are_blamed_on_the_copy_with_the_slips() -> None:
    clean = normalize.tokens(COUNCIL)
    slipped = [w.replace("the", "tbe") if i % 7 == 3 else w for i, w in enumerate(clean)]
    findings = evidence.outvoted([clean, slipped])
    assert findings[0].count == 0 and findings[1].count > 0
    assert all(e[1].count("tbe") >= 1 and e[3] == e[1].replace("tbe", "the") for e in findings[1].examples)


def test_cluster_evidence_has_every_signal_for_every_member() -> None:
    result = evidence.cluster_evidence([COUNCIL, treebank(COUNCIL), ocr(COUNCIL)], [0.0, 0.0, 2.0])
    assert len(result) == 3
    assert all(set(r) == {*quality.INTRINSIC, "repetition", "outvoted"} for r in result)
    assert result[1]["treebank"].count > 0 and result[0]["treebank"].count == 0
    assert result[2]["outvoted"].count > 0 and result[0]["outvoted"].count == 0


def _texts(raw: str) -> tuple[str, str, str]:
    repaired = normalize.repair(raw)
    return raw, repaired, normalize.comparison_text(repaired)


WORDS = st.lists(
    st.sampled_from(["the", "tbe", "cat", "sat", "on", "a", "mat", "wou1d", "would", ","]), max_size=40
)


@settings(derandomize=True, max_examples=200)
@given(WORDS, WORDS)
def test_unmarked_words_are_the_same_in_both_texts(a: list[str], b: list[str]) -> None:
    """Outside the marked spans both texts hold the same words, in the same order."""
    assert_unmarked_words_same(a, b)


def assert_unmarked_words_same(a: list[str], b: list[str]) -> None:
    text_a, text_b = " ".join(a), "  ".join(b)
    spans_a, spans_b = evidence.differing_spans(text_a, text_b)

    def unmarked(text: str, spans: list[tuple[int, int]]) -> list[str]:
        kept, at = [], 0
        for start, end in spans:
            kept.append(text[at:start])
            at = end
        return " ".join([*kept, text[at:]]).split()

    assert unmarked(text_a, spans_a) == unmarked(text_b, spans_b)
    assert (spans_a == spans_b == []) == (a == b)


@settings(derandomize=True, max_examples=200)
@given(WORDS, WORDS, st.integers(0, 60))
def test_a_spent_diff_budget_still_marks_every_difference(a: list[str], b: list[str], budget: int) -> None:
    """Past the budget the texts are cut at words each holds once: what is left unmarked is still
    the same words in the same order, and under it the spans are difflib's own."""
    with mock.patch.object(evidence, "DIFF_BUDGET", budget):
        assert_unmarked_words_same(a, b)
        found = list(evidence.differing_words(a, b))
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    plain = [tuple(op[1:]) for op in matcher.get_opcodes() if op[0] != "equal"]
    if cost(a, b) <= budget:
        assert found == plain


def cost(a: list[str], b: list[str]) -> int:
    """What difflib's first look at two word lists costs: each word against its places in the other."""
    counts = Counter(b)
    return sum(n * counts[w] for w, n in Counter(a).items())


def test_texts_of_few_distinct_words_cost_difflib_a_bounded_look() -> None:
    """30 texts of 7,000 "yes" and "no" made a report take minutes: difflib's look at each word's
    places in the other text is quadratic in such texts. What it is given now stays in budget."""
    rng = random.Random(7)
    shared = [f"anchor{k}" for k in range(40)]

    def text() -> str:
        words: list[str] = []
        for anchor in shared:
            words += [anchor, *rng.choices(["yes", "no"], k=150)]
        return " ".join(words)

    a, b = text(), text()
    looked: list[int] = []
    real = difflib.SequenceMatcher.__init__

    def counted(
        self: difflib.SequenceMatcher[str], junk: object, x: list[str], y: list[str], autojunk: bool
    ) -> None:
        looked.append(sum(n * Counter(y)[w] for w, n in Counter(x).items()))
        real(self, junk, x, y, autojunk)

    with mock.patch.object(difflib.SequenceMatcher, "__init__", counted):
        spans_a, spans_b = evidence.differing_spans(a, b)
    assert (
        sum(looked)
        <= evidence.DIFF_BUDGET
        < sum(n * Counter(b.split())[w] for w, n in Counter(a.split()).items())
    )
    assert looked  # the stretches between the anchors were still compared word by word
    marked = " ".join(a[start:end] for start, end in spans_a)
    assert spans_a and spans_b and not any(anchor in marked.split() for anchor in shared)
