"""What each penalty found, as text: the snippets behind a score.

The manifest keeps rates, not texts. This module reads a document's text again
and finds what the scorer counted, with the scorer's own patterns
(``quality.PATTERNS``, ``normalize``): the repaired characters, the leftover
markup, the boilerplate lines, the repeated phrases, the words another copy
replaces. It also marks where two copies differ, for side-by-side views. Pure
functions: texts in, findings out.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from dedup import alignment, normalize, quality

# before, found, after, replacement ("" when the finding has none)
Example = tuple[str, str, str, str]

MAX_EXAMPLES = 5
_CONTEXT = 28
_WORD = re.compile(r"\S+")

# Plain words for each signal; the signal's name stays the manifest's field name.
PLAIN: dict[str, str] = {
    "mojibake": "garbled characters: text decoded with the wrong encoding (\u00e2\u20ac\u2122 for \u2019)",
    "markup": "leftover HTML tags and entities, markdown links and emphasis",
    "treebank": "tokeniser spacing: punctuation and contractions split off (ca n't, Trump 's, word ,)",
    "gaps": "holes where words were dropped: runs of spaces, empty quotes or brackets",
    "repetition": "the same phrase said three or more times, as when a name is pasted for every 'he'",
    "boilerplate": "site furniture in the text: Advertisement, Subscribe, navigation, cookie lines",
    "one_line": "paragraphs joined into one long line",
    "ocr": "letters and digits mixed inside words (wou1d), as OCR leaves them",
    "outvoted": "words where another copy has a more common word in the same place (tbe for the)",
    "incomplete": "part of the article missing: the copy lacks shingles the other copies have",
}


@dataclass(slots=True)
class Finding:
    """How many times a signal fired in a text, and the first few places."""

    count: int = 0
    examples: list[Example] = field(default_factory=list)

    def add(self, example: Example) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    def as_dict(self) -> dict[str, object]:
        return {"count": self.count, "examples": [list(e) for e in self.examples]}


def _around(text: str, start: int, end: int, replacement: str = "") -> Example:
    """The match with a little context each side, on one line."""
    before = text[max(0, start - _CONTEXT) : start].replace("\n", " ")
    after = text[end : end + _CONTEXT].replace("\n", " ")
    return before, text[start:end], after, replacement


def _matches(finding: Finding, pattern: re.Pattern[str], text: str) -> None:
    for m in pattern.finditer(text):
        finding.add(_around(text, m.start(), m.end()))


def intrinsic(text: str, wanted: Collection[str] = quality.INTRINSIC) -> dict[str, Finding]:
    """What each signal measured on one document alone found in ``text`` (see ``quality.intrinsic``).

    Only the ``wanted`` signals are looked for (the others stay empty): a report
    shows the evidence of the penalties a copy paid, and each scan costs.

    Example:
        >>> found = intrinsic("He said , `` no . ''\\nAdvertisement\\nThe mayor\\u00e2\\u20ac\\u2122s car")
        >>> found["treebank"].count > 0, found["boilerplate"].examples[0][1]
        (True, 'Advertisement')
        >>> found["mojibake"].examples[0][1:] == ("mayor\u00e2\u20ac\u2122s", " car", "mayor\u2019s")
        True
    """
    repaired = normalize.repair(text)
    found = {name: Finding() for name in quality.INTRINSIC}
    if "mojibake" in wanted and repaired != text:
        for m in _WORD.finditer(text):
            word = m.group()
            if not word.isascii() and (fixed := normalize.repair(word)) != word:
                found["mojibake"].add(_around(text, m.start(), m.end(), fixed))
    if "markup" in wanted:
        for pattern in (normalize.HTML_TAG, normalize.HTML_ENTITY, normalize.MARKDOWN_LINK):
            _matches(found["markup"], pattern, repaired)
        _matches(found["markup"], quality.PATTERNS["markdown"], repaired)
    if "treebank" in wanted:
        _matches(found["treebank"], quality.PATTERNS["treebank"], text)
    if "gaps" in wanted:
        _matches(found["gaps"], quality.PATTERNS["gaps"], text)
    if "ocr" in wanted:
        _matches(found["ocr"], quality.PATTERNS["ocr"], normalize.comparison_text(repaired))
    if "boilerplate" in wanted:
        for line in repaired.split("\n"):
            if line.strip() and normalize.strip_boilerplate(line)[1]:
                found["boilerplate"].add(("", line.strip(), "", ""))
        _matches(found["boilerplate"], quality.PATTERNS["boilerplate_inline"], repaired)
    if "one_line" in wanted and len(text) > 400 and "\n" not in text.strip():
        found["one_line"].add(
            ("", text.strip()[:60] + "...", f" ({len(text):,} characters, no line break)", "")
        )
    return found


def repeated_phrases(tokens: Sequence[str], n: int = 3, min_count: int = 3) -> Finding:
    """Phrases of ``n`` words said ``min_count``+ times (what ``repetition`` counts), most repeated first.

    Example:
        >>> words = ("the city attorney said the city attorney would ask "
        ...          "the city attorney to go").split()
        >>> repeated_phrases(words).examples[0]
        ('', 'the city attorney', '', '3 times')
    """
    grams = Counter(zip(*(tokens[i:] for i in range(n)), strict=False))
    finding = Finding()
    frequent = [(-count, gram) for gram, count in grams.items() if count >= min_count]
    for count, gram in sorted(frequent):
        finding.add(("", " ".join(gram), "", f"{-count} times"))
    return finding


def outvoted(members: Sequence[Sequence[str]], recorded: Sequence[float] | None = None) -> list[Finding]:
    """Per member, its words that another copy replaces by commoner ones, with the replacement.

    The run judged which side is commoner by corpus document frequencies, which a
    finished run does not keep. Here the members themselves judge (how many hold
    the rarest word of each side); where they cannot (``wou1d``/``would`` in a
    pair: one copy each), the side whose ``outvoted`` rate the run ``recorded``
    higher is the one the corpus outvoted.

    Example:
        >>> text = "the mayor said on monday that the new bridge would open in the spring of next year"
        >>> found = outvoted([text.split(), text.replace("would", "wou1d").split()], [0.0, 6.25])
        >>> found[0].count, found[1].examples
        (0, [('', 'wou1d', '', 'would')])
    """
    holders: Counter[str] = Counter(t for toks in members for t in set(toks))
    rates = list(recorded) if recorded is not None else [0.0] * len(members)

    def commonness(words: Sequence[str]) -> float:
        return float(np.log1p(min(holders[w] for w in words)))

    found = [Finding() for _ in members]
    for a in range(len(members)):
        for b in range(a + 1, len(members)):
            for seg_a, seg_b in alignment.replacements(members[a], members[b]):
                lean = commonness(seg_b) - commonness(seg_a)  # > 0: a's words are the rarer
                if abs(lean) <= 0.3:
                    lean = rates[a] - rates[b]
                if lean > 0:
                    found[a].add(("", " ".join(seg_a), "", " ".join(seg_b)))
                elif lean < 0:
                    found[b].add(("", " ".join(seg_b), "", " ".join(seg_a)))
    return found


def cluster_evidence(
    texts: Sequence[str],
    recorded: Sequence[float] | None = None,
    wanted: Sequence[Collection[str]] | None = None,
) -> list[dict[str, Finding]]:
    """Every signal's findings for each member of a cluster (one text per member).

    ``recorded``: each member's ``outvoted`` signal in the manifest (see
    ``outvoted``); ``wanted``: per member, the signals to look for (default all;
    identical copies share their findings, looked for as any of them wants).
    Repetition is looked for in the same-length start of every copy, as the
    scorer does (long copies repeat more, and truncation keeps the start).
    """
    every = (*quality.INTRINSIC, "repetition", "outvoted")
    wants = list(wanted) if wanted is not None else [every] * len(texts)
    rates = list(recorded) if recorded is not None else [0.0] * len(texts)
    # Identical copies are examined once (the run, too, compares distinct texts): a cluster
    # of a thousand exact copies is one text, not half a million pairs.
    distinct: dict[str, int] = {}
    of = [distinct.setdefault(t, len(distinct)) for t in texts]
    union: list[set[str]] = [set() for _ in distinct]
    rate = [0.0] * len(distinct)
    for k, want, r in zip(of, wants, rates, strict=True):
        union[k].update(want)
        rate[k] = max(rate[k], r)
    tokens = [normalize.tokens(normalize.repair(t)) for t in distinct]
    window = max(min((len(t) for t in tokens), default=0), 100)
    if len(distinct) > 1 and any("outvoted" in w for w in union):
        relative = outvoted(tokens, rate)
    else:
        relative = [Finding() for _ in distinct]
    found = [
        {
            **intrinsic(text, want),
            "repetition": repeated_phrases(toks[:window]) if "repetition" in want else Finding(),
            "outvoted": rel if "outvoted" in want else Finding(),
        }
        for text, toks, rel, want in zip(distinct, tokens, relative, union, strict=True)
    ]
    return [found[k] for k in of]


def differing_spans(a: str, b: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character spans of ``a`` and of ``b`` whose words the other text does not have there.

    Words are compared as written (whitespace-separated), so a treebank ``ca n't``
    or a tag differs from the clean ``can't``: what a reader sees differ.

    Example:
        >>> differing_spans("the tbe cat sat", "the the cat sat")
        ([(4, 7)], [(4, 7)])
    """
    wa, wb = list(_WORD.finditer(a)), list(_WORD.finditer(b))
    spans_a: list[tuple[int, int]] = []
    spans_b: list[tuple[int, int]] = []
    for a1, a2, b1, b2 in differing_words([m.group() for m in wa], [m.group() for m in wb]):
        if a2 > a1:
            spans_a.append((wa[a1].start(), wa[a2 - 1].end()))
        if b2 > b1:
            spans_b.append((wb[b1].start(), wb[b2 - 1].end()))
    return spans_a, spans_b


# difflib's look for the longest match goes through every place of the other text that holds
# each word: ~sum over words of (count in a) x (count in b), again for each match it finds.
# Articles cost ~10^4-10^5 (20,000 characters of news: at most 1.7 * 10^5); 3,000 words of only
# "yes" and "no" 4.5 * 10^6, and took a second; 1,000 of them, at the budget, ~0.1 s.
DIFF_BUDGET = 500_000


def differing_words(a: Sequence[str], b: Sequence[str]) -> Iterator[tuple[int, int, int, int]]:
    """Where word lists ``a`` and ``b`` differ, as (a1, a2, b1, b2): difflib's opcodes other than
    ``equal`` (``autojunk=False``).

    Texts of few distinct words made that quadratic (a report of 30 such texts took minutes):
    past ``DIFF_BUDGET`` the texts are cut at the words each has once, in the same order in both
    (as patience diff does), difflib compares the stretches between while the budget lasts, and
    a stretch past it is shown as differing whole.

    Example:
        >>> list(differing_words("a b c d".split(), "a x c d e".split()))
        [(1, 2, 1, 2), (4, 4, 4, 5)]
    """
    count_a, count_b = Counter(a), Counter(b)
    if _cost(count_a, count_b) <= DIFF_BUDGET:
        yield from _opcodes(a, b, 0, 0)
        return
    once_b = {w: j for j, w in enumerate(b) if count_b[w] == 1}
    anchors = [(i, once_b[w]) for i, w in enumerate(a) if count_a[w] == 1 and w in once_b]
    budget = DIFF_BUDGET
    i0 = j0 = 0
    for i, j in [*alignment.longest_increasing(anchors), (len(a), len(b))]:
        stretch_a, stretch_b = a[i0:i], b[j0:j]
        if stretch_a != stretch_b:
            cost = _cost(Counter(stretch_a), Counter(stretch_b))
            if cost <= budget:
                budget -= cost
                yield from _opcodes(stretch_a, stretch_b, i0, j0)
            else:
                yield i0, i, j0, j
        i0, j0 = i + 1, j + 1


def _cost(count_a: Counter[str], count_b: Counter[str]) -> int:
    return sum(n * count_b[w] for w, n in count_a.items())


def _opcodes(a: Sequence[str], b: Sequence[str], i0: int, j0: int) -> Iterator[tuple[int, int, int, int]]:
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            yield i0 + a1, i0 + a2, j0 + b1, j0 + b2


def describe(
    findings: dict[str, Finding], penalties: dict[str, float]
) -> Iterable[tuple[str, float, Finding]]:
    """The penalties a member paid, largest first, each with what was found."""
    for name, value in sorted(penalties.items(), key=lambda item: (-item[1], item[0])):
        if value >= 0.005:
            yield name, value, findings.get(name, Finding())
