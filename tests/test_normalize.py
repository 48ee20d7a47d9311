"""Formatting noise must not count as difference; real differences must survive."""

import html

import pytest
from conftest import ARTICLES, COUNCIL, NOISE, mojibake, truncate
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dedup.normalize import (
    HTML_TAG,
    MARKDOWN_LINK,
    UNSPACED_RANGES,
    comparison,
    comparison_text,
    repair,
    repair_planned,
    tokens,
)


@pytest.mark.parametrize("noise", ["treebank", "mojibake", "html", "markdown", "boilerplate"])
def test_formatting_noise_gives_the_clean_tokens(noise: str) -> None:
    assert tokens(repair(NOISE[noise](COUNCIL))) == tokens(repair(COUNCIL))


@pytest.mark.parametrize(
    ("noisy", "clean"),
    [
        ("Trump \u2019s aide ca n\u2019t go .", "Trump's aide can't go."),
        ("They do n't know", "They don't know"),
        ("The mayor\u00e2\u20ac\u2122s office", "The mayor\u2019s office"),
        ("a <b>bold</b> &amp; <a href='x'>linked</a> word", "a bold & linked word"),
        ("see [Customs Enforcement](#) today", "see Customs Enforcement today"),
        ("CAF\u00c9 Owner", "caf\u00e9 owner"),
    ],
)
def test_noisy_and_clean_spellings_agree(noisy: str, clean: str) -> None:
    assert tokens(repair(noisy)) == tokens(repair(clean))


def test_boilerplate_lines_are_dropped_but_article_lines_are_kept() -> None:
    text = "Home | World | Politics\nThe council met today.\nAdvertisement\nRead more: other news"
    assert comparison_text(text).split() == ["the", "council", "met", "today."]


def test_real_differences_survive() -> None:
    assert tokens(repair(truncate(COUNCIL, 0.5))) != tokens(repair(COUNCIL))
    assert tokens("the cat sat") != tokens("the cat sad")


def test_repair_leaves_ascii_alone() -> None:
    assert repair("plain ascii text") == "plain ascii text"


@pytest.mark.parametrize("article", ARTICLES.values())
def test_a_repair_replayed_from_its_plan_is_the_searched_repair(article: str) -> None:
    # Whole texts garbled, one paragraph garbled (ftfy then fixes a mixed text), twice garbled.
    first, _, rest = article.partition("\n\n")
    first += " The caf\u00e9 \u2014 \u201cits best\u201d \u2014 stays open."
    for garbled in (mojibake(first + rest), mojibake(first) + "\n\n" + rest, mojibake(mojibake(first))):
        fixed, plan = repair_planned(garbled)
        assert plan is not None and fixed == repair(garbled) != garbled
        assert repair(garbled, plan) == fixed
    assert repair_planned(article) == (article, None)  # ftfy is not asked: nothing to replay


_MARKUP_TEXTS = st.lists(
    st.sampled_from(
        ["<b>", "</p>", "<!-- x -->", "&amp;", "&#93;", "&lt;", "[link](u)", "](", "[a]", "(b)", "&", "<",
         "Advertisement", "\n", " ", "ca n't", "Caf\u00e9", "word", "Share this", "[", "(u)"]
    ),
    max_size=30,
).map("".join)  # fmt: skip


@settings(derandomize=True, max_examples=300)
@given(_MARKUP_TEXTS)
@example("see [the link&#93;(u) here")  # an entity that was a bracket makes a link
def test_markup_is_removed_as_each_step_applied_in_turn_removes_it(text: str) -> None:
    """Tags, then entities, then markdown links: a step runs only when its mark is there, and the
    text comes out as running all three does; the boilerplate count is given only without markup."""
    stepped = MARKDOWN_LINK.sub(r"\1", html.unescape(HTML_TAG.sub(" ", text)))
    got, count = comparison(text)
    if not any(mark in stepped for mark in ("<", "&", "](")):
        assert got == comparison(stepped)[0]
    assert (count is None) == any(mark in text for mark in ("<", "&", "]("))


@pytest.mark.parametrize(("first", "last"), UNSPACED_RANGES)
def test_every_character_of_an_unspaced_script_is_cut_from_its_neighbours(first: int, last: int) -> None:
    """In any text, with or without other non-ASCII characters (a curly quote, a ligature)."""
    for code in [*range(first, last + 1, 61), last]:
        for context in ("x{}y", "it\u2019s x{}y", "\ufb01x{}y caf\u00e9"):
            cut = comparison_text(context.format(chr(code))).split()
            assert len(cut) == len(comparison_text(context.format("")).split()) + 2, hex(code)
