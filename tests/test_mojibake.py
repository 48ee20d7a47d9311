"""The windowed badness test and repair loop give ftfy's own answers (``dedup.mojibake``)."""

from __future__ import annotations

import re

import ftfy
import pytest
from ftfy.badness import BADNESS_RE
from ftfy.badness import is_bad as ftfy_is_bad
from hypothesis import given, settings
from hypothesis import strategies as st

from corpora.scale import generate_scale
from dedup import mojibake, normalize

# The characters the badness regex is written in (its categories' are formatted into it), and
# a few spaces it matches with \s, beside ASCII.
_REGEX_CHARS = sorted({c for c in BADNESS_RE.pattern if ord(c) > 0x7F} | {"\x85", "\xa0", "\u2000"})
_TEXT = st.text(alphabet=st.sampled_from([*_REGEX_CHARS, *"abcXYZ .,?!'\"\n\t-0123456789"]), max_size=60)


def _ftfy(text: str) -> tuple[str, list[tuple[str, str]]]:
    fixed, steps = ftfy.fix_encoding_and_explain(text)
    return fixed, [tuple(s) for s in steps or ()]


def _ours(text: str) -> tuple[str, list[tuple[str, str]]]:
    fixed, steps = mojibake.fix_encoding_and_explain(text)
    return fixed, [tuple(s) for s in steps]


def test_the_installed_pattern_is_searched_in_windows() -> None:
    """Without this the fast path is never taken and the tests below compare ftfy with itself."""
    width = mojibake.search_width(BADNESS_RE)
    assert width is not None and 2 <= width <= 16


@pytest.mark.parametrize(
    "pattern",
    [
        "a[\u00e9]?",  # matches "a" alone: no non-ASCII character needed
        "(?=\u00e9)\u00e9",  # a lookahead could look past a window's end
        "\u00e9$",  # so could an end anchor
        "\u00e9+",  # unbounded
        "(?m)^\u00e9",  # ^ after every newline
        "\u00e9|x",  # one alternative is all ASCII
        "\u00e9(\\b)",  # an assertion inside a group (a second reader's cases)
        "\u00e9((?!abc))",
        "\u00e9((?=abcd))",
        "\u00e9(x$)",
        "(?i:\u212a)",  # a flag set inside: the Kelvin sign matches "k"
    ],
)
def test_patterns_a_window_could_get_wrong_are_searched_whole(pattern: str) -> None:
    assert mojibake.search_width(re.compile(pattern)) is None


def test_a_pattern_whose_matches_each_need_a_non_ascii_character_has_its_width() -> None:
    assert mojibake.search_width(re.compile("[a-z]\\s?[\u00c3\u00c2][ ]|\u00d7[\u00b2\u00b3]")) == 4
    assert mojibake.search_width(re.compile("\u00e9(a|b)|^[\u00c3\u00c2] ")) == 2  # ASCII after it: fine


@pytest.mark.parametrize(
    "text",
    [
        "the word a \u00c3 is here",  # [a-z]\s?[\u00c3\u00c2][ ]: two ASCII characters before it
        "\u00c3 at the start",  # ^[\u00c3\u00c2][ ]
        "x \u00c3 at the start",  # the same, not at the start
        "end. \u00c2 (quoted)",  # ASCII on both sides of the one non-ASCII character
        "caf\u00e9 then far away: the word a \u00c3 is here",  # two runs, windows apart
    ],
)
def test_matches_reaching_past_their_non_ascii_character_are_found(text: str) -> None:
    assert mojibake.is_bad(text) == ftfy_is_bad(text)


@settings(max_examples=600, deadline=None)
@given(_TEXT, _TEXT, st.integers(0, 3))
def test_is_bad_agrees_with_ftfy(head: str, tail: str, pad: int) -> None:
    # ASCII padding between the parts: windows apart, merged, or cut at the text's ends.
    text = head + "x" * (pad * 4) + tail
    assert mojibake.is_bad(text) == ftfy_is_bad(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["latin-1", "windows-1252", "macroman", "cp437"]), _TEXT)
def test_repair_agrees_with_ftfy(words: str, encoding: str, noise: str) -> None:
    garbled = words.encode("utf-8").decode(encoding, errors="replace")
    for text in (garbled, noise, garbled + "\n" + noise, "Plain text. " + garbled + " and more."):
        assert _ours(text) == _ftfy(text)


@pytest.mark.parametrize(
    ("text", "lossy"),
    [
        (
            "The mayor\u00e2\u20ac?s office said \u00e2\u20ac\u0153no\u00e2\u20ac? today.",
            True,
        ),  # a lost byte as ?
        ("caf\u00c3? ok \u00c3\u00a9", True),
        ("Smile \u00f0\u0178\u02dc? now", True),  # an emoji's last byte lost: ? three after its lead
        ("\u00e2\u20ac\u0153quoted\u00e2\u20ac\ufffd", True),  # as U+FFFD
        ("Why? Because caf\u00c3\u00a9 \u00e2\u20ac\u201d and so? On.", False),  # each ? far from mojibake
    ],
)
def test_lost_bytes_are_replaced_as_ftfy_does(text: str, lossy: bool) -> None:
    """ftfy's lossy-sequence step is skipped where it cannot match, and taken where it does."""
    assert mojibake.lossy_possible(text) is lossy
    assert _ours(text) == _ftfy(text)
    assert (("transcode", "replace_lossy_sequences") in _ftfy(text)[1]) is lossy


def test_repair_agrees_with_ftfy_on_the_noisy_corpus(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every text of a noisy corpus ftfy is asked about (its mojibake is the generator's, not ours)."""
    generate_scale(3000, tmp_path / "c", noise="noisy")
    asked = 0
    for path in sorted((tmp_path / "c").rglob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if text.isascii():
            continue
        assert mojibake.is_bad(text) == ftfy_is_bad(text), path
        fixed, plan = normalize.repair_planned(text)  # the pipeline's seam: ftfy asked where marked
        if plan is None:
            continue
        asked += 1
        expected, steps = _ftfy(text)
        assert (fixed, [tuple(s) for s in plan]) == (expected, steps), path
    assert asked >= 50
