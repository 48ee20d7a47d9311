"""Labelled near-duplicate corpora: clean base texts in, a directory of damaged copies plus ground truth out.

Everything is drawn from one `random.Random(seed)`, so the same base texts and seed give byte-identical
files and truth (the committed sample depends on it). File names are random hex from the same RNG and
carry no hint of cluster, pattern or order; the ground truth is written outside the corpus directory
so that a tool run on the corpus cannot see it.

Run `python -m corpora.generate sample` to regenerate the committed sample, or
`python -m corpora.generate news --out DIR` for the benchmark corpus.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import NotRequired, TypedDict

import orjson

from corpora import damage as D
from corpora.sources import (
    DEFAULT_CACHE,
    NEWS_SOURCE,
    SOTU_SOURCE,
    Article,
    idf_weights,
    jaccard_containment,
    load_news,
    load_sotu,
    shingles,
    split_sentences,
    words,
)

GENERATOR_VERSION = "2"
"""Bump whenever output for a given seed changes, so cached benchmark corpora are rebuilt."""

MULTI_PATTERNS = ("truncated_clean", "original_plus_damaged", "damaged_only", "revision", "exact")
PATTERNS = (*MULTI_PATTERNS, "singleton", "same_event", "chained")
MULTI_WEIGHTS: Mapping[str, float] = {
    "truncated_clean": 0.25,
    "original_plus_damaged": 0.30,
    "damaged_only": 0.20,
    "revision": 0.13,
    "exact": 0.12,
}
ORDINARY = (
    "mojibake",
    "html",
    "markdown",
    "boilerplate",
    "ocr",
    "joined_paragraphs",
    "truncation",
    "treebank",
)
GARBLE = ("treebank", "drop_hyphen", "coref")
HEAVY_PRIMARY = ("mojibake", "ocr", "treebank", "html", "markdown", "boilerplate", "coref")
LIGHT = ("ocr", "boilerplate", "html")

SAMPLE_SEED = 1
SAMPLE_N_BASE = 180
NEWS_N_BASE = 2500
HERE = Path(__file__).resolve().parent


class Link(TypedDict):
    """A bridge's measured overlap with another file of its chained group (word 5-grams, as in sources)."""

    to: str
    jaccard: float
    containment: float


class FileTruth(TypedDict):
    """Ground truth for one file: its cluster, the cluster's pattern, the damage it got and its role.

    Bridges of the `chained` pattern also carry their kind and their links to the rest of the group.
    """

    cluster: str
    pattern: str
    damage: list[str]
    role: str
    bridge: NotRequired[str]
    links: NotRequired[list[Link]]


class ClusterTruth(TypedDict):
    """One true cluster: its members and the members that are acceptable canonicals."""

    pattern: str
    members: list[str]
    acceptable: list[str]
    base: list[str]


class Truth(TypedDict):
    """The ground-truth file: paths are POSIX and relative to the corpus directory."""

    seed: int
    source: str
    generator: str
    files: dict[str, FileTruth]
    clusters: dict[str, ClusterTruth]


@dataclass(eq=False)
class _Doc:
    text: str
    role: str
    damage: list[str]
    acceptable: bool
    bridge: str | None = None
    links: list[tuple[_Doc, float, float]] = field(default_factory=list)


@dataclass
class _Cluster:
    pattern: str
    base: list[str]
    docs: list[_Doc] = field(default_factory=list)


def _damaged(
    text: str,
    rng: Random,
    kinds: Sequence[str],
    *,
    levels: dict[str, str] | None = None,
    min_kinds: int = 1,
    fallback: Sequence[str] = ORDINARY,
) -> tuple[str, list[str]]:
    """Apply kinds; if fewer than min_kinds changed the text, add kinds from fallback until they do."""
    out, done = D.apply_all(text, list(kinds), rng, levels)
    extra = [k for k in fallback if k not in kinds]
    rng.shuffle(extra)
    while len(done) < min_kinds and extra:
        kinds = [*done, extra.pop()]
        out, done = D.apply_all(text, kinds, rng, levels)
    return out, done


def _truncated_clean(art: Article, rng: Random) -> list[_Doc]:
    """Clean but truncated copy (keep it) vs complete copies garbled by NLP preprocessing."""
    frac = rng.uniform(0.4, 0.7)
    clean = D.truncate(art.text, rng, frac=frac, boundary=rng.choice(("sentence", "sentence", "word")))
    docs = [_Doc(clean, "clean_truncated", ["truncation"], True)]
    for _ in range(rng.randint(1, 3)):
        kinds = rng.sample(GARBLE, rng.choice((2, 2, 3)))
        text, done = _damaged(art.text, rng, kinds, min_kinds=2, fallback=GARBLE)
        if not done:
            text, done = _damaged(art.text, rng, ["treebank"], min_kinds=1)
        docs.append(_Doc(text, "garbled", done, False))
    return docs


def _copies(text: str, rng: Random, n: int, role: str) -> list[_Doc]:
    docs = []
    for _ in range(n):
        kinds = rng.sample(ORDINARY, rng.randint(1, 3))
        out, done = _damaged(text, rng, kinds)
        docs.append(_Doc(out, role, done, False))
    return docs


def _original_plus_damaged(art: Article, rng: Random) -> list[_Doc]:
    """The original (keep it) plus copies with one to three ordinary kinds of damage each."""
    docs = [_Doc(art.text, "original", [], True)]
    if rng.random() < 0.15:
        docs.append(_Doc(art.text, "exact_copy", [], True))
    return docs + _copies(art.text, rng, rng.randint(1, 4), "damaged")


def _damaged_only(art: Article, rng: Random) -> list[_Doc]:
    """No clean copy: one lightly damaged complete copy (keep it) and heavily damaged ones."""
    kind = rng.choice(LIGHT)
    light = D.apply(kind, art.text, rng, "light")
    docs = [_Doc(light, "light", [kind], True)]
    for _ in range(rng.randint(1, 3)):
        primary = rng.choice(HEAVY_PRIMARY)
        others = [k for k in (*ORDINARY, *GARBLE) if k != primary]
        kinds = [primary, *rng.sample(sorted(set(others)), rng.randint(1, 2))]
        text, done = _damaged(art.text, rng, kinds, levels={primary: "heavy"}, min_kinds=2)
        docs.append(_Doc(text, "heavy", done, False))
    return docs


UPDATES = (
    "Update: This story has been updated with additional reporting.",
    "Update: {name} did not immediately respond to a request for comment.",
    "Update ({month} {day}): {name} later issued a statement confirming the account.",
    "This article was updated to include a response from {name}.",
    "Correction: An earlier version of this article misstated the date of the meeting.",
    "UPDATE: Officials said on {weekday} that the review is still ongoing.",
    "Update, {weekday}: {name} said more details would be released in the coming days.",
    "Editor's note: This story has been updated to reflect new information from {name}.",
)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def make_revision(art: Article, rng: Random) -> str:
    """A later clean revision: a paragraph dropped, an "Update: ..." line added, maybe a sentence edited."""
    paras = list(art.paragraphs)
    if len(paras) >= 4:
        del paras[rng.randint(1, len(paras) - 1)]
    names, _ = D.antecedent_phrases(art.text)
    name = rng.choice(names) if names else "A spokesperson"
    update = rng.choice(UPDATES).format(
        name=name, month=rng.choice(MONTHS), day=rng.randint(1, 28), weekday=rng.choice(WEEKDAYS)
    )
    if rng.random() < 0.5:
        paras.insert(0, update)
    else:
        paras.append(update)
    if rng.random() < 0.6:
        i = rng.randrange(len(paras))
        edits: list[Callable[[str], str]] = [
            lambda p: re.sub(r"\b\d+\b", lambda m: str(int(m.group(0)) + rng.randint(1, 5)), p, count=1),
            lambda p: p.replace(" said ", " told reporters ", 1),
            lambda p: p.replace(" announced ", " confirmed ", 1),
            lambda p: p.replace(" will ", " would ", 1),
        ]
        for edit in rng.sample(edits, len(edits)):
            new = edit(paras[i])
            if new != paras[i]:
                paras[i] = new
                break
    return "\n\n".join(([art.title] if art.title else []) + paras)


def _revision(art: Article, rng: Random) -> list[_Doc]:
    """Original and a clean revision (either is fine to keep) plus damaged copies of either."""
    rev = make_revision(art, rng)
    docs = [_Doc(art.text, "original", [], True), _Doc(rev, "revision", [], True)]
    for _ in range(rng.randint(1, 2)):
        of_rev = rng.random() < 0.5
        docs += _copies(rev if of_rev else art.text, rng, 1, "damaged_revision" if of_rev else "damaged")
    return docs


def _exact(art: Article, rng: Random) -> list[_Doc]:
    """Byte-identical syndicated copies: any of them is fine to keep."""
    return [_Doc(art.text, "original", [], True)] + [
        _Doc(art.text, "exact_copy", [], True) for _ in range(rng.randint(1, 3))
    ]


BUILDERS: Mapping[str, Callable[[Article, Random], list[_Doc]]] = {
    "truncated_clean": _truncated_clean,
    "original_plus_damaged": _original_plus_damaged,
    "damaged_only": _damaged_only,
    "revision": _revision,
    "exact": _exact,
}


# ---------------------------------------------------------------- chained groups

CHAIN_JACCARD = (0.2, 0.35)
"""A bridge's word 5-gram Jaccard with each of the two articles it links lies in this range."""
CHAIN_MAX_CONTAINMENT = 0.45
"""A bridge's containment (overlap over the smaller set) with any file of its group stays below this."""
CHAIN_SIZE_RATIO = 0.7
"""The two linked articles differ in length by at most this factor (words), so one bridge suits both."""
BRIDGE_KINDS = ("roundup", "liveblog", "glitch")
ROUNDUP_INTROS = (
    "Here are the stories we are following this {weekday}.",
    "Morning briefing: what you need to know on {weekday}, {month} {day}.",
    "Evening roundup: the day's top stories",
    "Catch up: the news you may have missed on {month} {day}",
    "Top stories this {weekday}",
    "Your {weekday} digest of the headlines.",
)
LIVEBLOG_HEADS = (
    "Live updates: the latest as it happens",
    "LIVE: follow the day's developments",
    "As it happened: {weekday}, {month} {day}",
    "Live blog: latest news and reaction",
)
GLITCH_JOINS = ("", "", "Next story", "Up next", "Continue reading", "More from this section")


def _sentences(art: Article) -> list[tuple[int, str, int]]:
    """Body sentences as (paragraph index, sentence, word count)."""
    return [(i, s, len(words(s))) for i, para in enumerate(art.paragraphs) for s in split_sentences(para)]


def excerpt(art: Article, n_words: float, *, tail: bool = False) -> str:
    """About n_words words from the start (or the end) of the body, paragraphs kept.

    Whole sentences while they fit; the next one is cut at a word boundary (a head excerpt then
    ends in "...", as digest snippets do; a tail excerpt starts mid-sentence, as a glitched scrape does).
    """
    sents = _sentences(art)
    if tail:
        sents.reverse()
    chosen: list[tuple[int, str, int]] = []
    total = 0
    for pi, sent, n in sents:
        if total + n <= n_words:
            chosen.append((pi, sent, n))
            total += n
            continue
        toks = sent.split()
        k = round((n_words - total) * len(toks) / max(1, n))
        if k >= 3:
            part = " ".join(toks[-k:]) if tail else " ".join(toks[:k]).rstrip(",;:") + " ..."
            chosen.append((pi, part, k))
        break
    if tail:
        chosen.reverse()
    paras: list[list[str]] = []
    last = -1
    for pi, sent, _ in chosen:
        if pi != last:
            paras.append([])
            last = pi
        paras[-1].append(sent)
    return "\n\n".join(" ".join(p) for p in paras)


def _bridge_text(kind: str, segs: list[tuple[Article, float, bool]], rng: Random) -> str:
    """A page quoting several stories: segs are (article, words to quote, quote its end?).

    roundup: a digest quoting the opening of each story under its headline; liveblog: timestamped
    entries, newest first; glitch: a scrape that runs from the end of one story into the next ones.
    """
    fill = {"weekday": rng.choice(WEEKDAYS), "month": rng.choice(MONTHS), "day": rng.randint(1, 28)}
    parts: list[str] = []
    if kind == "roundup":
        parts.append(rng.choice(ROUNDUP_INTROS).format(**fill))
        for art, n, tail in segs:
            parts += ([art.title] if art.title else []) + [excerpt(art, n, tail=tail)]
    elif kind == "liveblog":
        parts.append(rng.choice(LIVEBLOG_HEADS).format(**fill))
        minute = rng.randint(14 * 60, 22 * 60)
        with_titles = rng.random() < 0.5
        for art, n, tail in segs:
            parts.append(f"{minute // 60:02d}:{minute % 60:02d} {rng.choice(('GMT', 'BST', 'ET', 'CET'))}")
            parts += ([art.title] if art.title and with_titles else []) + [excerpt(art, n, tail=tail)]
            minute -= rng.randint(7, 95)
    else:
        for k, (art, n, tail) in enumerate(segs):
            if k:
                join = rng.choice(GLITCH_JOINS)
                parts += ([join] if join else []) + ([art.title] if art.title else [])
            parts.append(excerpt(art, n, tail=tail))
    return "\n\n".join(parts)


def _make_bridge(
    kind: str,
    a: Article,
    c: Article,
    fillers: Sequence[Article],
    group: Sequence[_Doc],
    rng: Random,
    tries: int = 400,
) -> _Doc:
    """A bridge page linking a and c, redrawn until it sits in the documented overlap ranges.

    group[0] and group[1] are the originals of a and c: Jaccard with each must lie in CHAIN_JACCARD.
    The other members (a light copy, an earlier bridge) only must not be near-duplicates of it:
    Jaccard <= CHAIN_JACCARD[1]. Containment with every member stays below CHAIN_MAX_CONTAINMENT.
    The fillers are stories quoted on the same page whose own files are not in the corpus.
    """
    n_a, n_c = len(words(a.text)), len(words(c.text))
    sets = [shingles(d.text) for d in group]
    for _ in range(tries):
        fa, fc = rng.uniform(0.3, 0.45), rng.uniform(0.3, 0.45)
        share = rng.uniform(0.12, 0.3)
        n_fill = share / (1 - share) * (fa * n_a + fc * n_c)
        cuts = sorted(rng.uniform(0, 1) for _ in range(len(fillers) - 1))
        weights = [y - x for x, y in zip([0.0, *cuts], [*cuts, 1.0], strict=True)]
        fsegs = [(f, max(20.0, w * n_fill), False) for f, w in zip(fillers, weights, strict=True)]
        if kind == "glitch":
            (x, n_x), (y, n_y) = rng.sample([(a, fa * n_a), (c, fc * n_c)], 2)
            segs = [(x, n_x, True), (y, n_y, False), *fsegs]
        else:
            segs = [(a, fa * n_a, False), (c, fc * n_c, False), *fsegs]
            rng.shuffle(segs)
        text = _bridge_text(kind, segs, rng)
        sh = shingles(text)
        links = [(d, *jaccard_containment(sh, other)) for d, other in zip(group, sets, strict=True)]
        lo, hi = CHAIN_JACCARD
        if all(lo <= jac <= hi for _, jac, _ in links[:2]) and all(
            jac <= hi and con < CHAIN_MAX_CONTAINMENT for _, jac, con in links
        ):
            doc = _Doc(text, "bridge", [], True, bridge=kind)
            doc.links = [(d, round(jac, 4), round(con, 4)) for d, jac, con in links]
            return doc
    raise RuntimeError(f"no {kind} bridge for {a.key} and {c.key} within the overlap ranges")


def _chained(arts: Sequence[Article], rng: Random) -> list[_Cluster]:
    """Two unrelated articles (a sometimes with a light copy) and one or two bridge pages quoting both.

    Every bridge is its own cluster: it is not a copy of either article, but it shares enough with
    each that chaining loose LSH candidates merges the two articles.
    """
    a, c, fillers = arts[0], arts[1], list(arts[2:])
    a_cl = _Cluster("chained", [a.key], [_Doc(a.text, "original", [], True)])
    c_cl = _Cluster("chained", [c.key], [_Doc(c.text, "original", [], True)])
    if rng.random() < 0.4:
        kind = rng.choice(LIGHT)
        a_cl.docs.append(_Doc(D.apply(kind, a.text, rng, "light"), "damaged", [kind], False))
    two = len(fillers) >= 2 and rng.random() < 0.6
    split = rng.randint(1, len(fillers) - 1) if two else len(fillers)
    parts = [fillers[:split], fillers[split:]] if two else [fillers]
    group = [a_cl.docs[0], c_cl.docs[0], *a_cl.docs[1:]]
    bridges: list[_Cluster] = []
    # Two bridges must quote different parts of at least one article (both head-quoting kinds quote
    # both heads), so one of them is a glitch.
    kinds = (
        rng.sample([rng.choice(("roundup", "liveblog")), "glitch"], 2) if two else [rng.choice(BRIDGE_KINDS)]
    )
    for kind, fill in zip(kinds, parts, strict=True):
        doc = _make_bridge(kind, a, c, fill, group, rng)
        for other, jac, con in doc.links[len(group) - len(bridges) :]:
            other.links.append((doc, jac, con))
        group.append(doc)
        bridges.append(_Cluster("chained", [a.key, c.key, *(f.key for f in fill)], [doc]))
    return [a_cl, c_cl, *bridges]


def find_chain_pairs(
    articles: Sequence[Article], pool: Sequence[int], n_pairs: int, *, window: int = 400
) -> list[tuple[int, int]]:
    """Greedy pairs (in pool order) of articles of similar length that share no word 5-gram."""
    if n_pairs <= 0:
        return []
    size = {i: len(words(articles[i].text)) for i in pool}
    cache: dict[int, set[str]] = {}

    def sets(i: int) -> set[str]:
        if i not in cache:
            cache[i] = shingles(articles[i].text)
        return cache[i]

    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for x, i in enumerate(pool):
        if len(pairs) >= n_pairs:
            break
        if i in used:
            continue
        for j in pool[x + 1 : x + 1 + window]:
            if j in used or min(size[i], size[j]) < CHAIN_SIZE_RATIO * max(size[i], size[j]):
                continue
            if sets(i).isdisjoint(sets(j)):
                pairs.append((i, j))
                used.update((i, j))
                break
    if len(pairs) < n_pairs:
        raise ValueError(f"found only {len(pairs)} of {n_pairs} article pairs for chained groups")
    return pairs


def _fillers(
    articles: Sequence[Article], pool: Sequence[int], pair: tuple[int, int], n: int, used: set[int]
) -> list[int]:
    """n unused articles from pool sharing no word 5-gram with either article of pair."""
    linked = shingles(articles[pair[0]].text) | shingles(articles[pair[1]].text)
    out: list[int] = []
    for k in pool:
        if len(out) == n:
            break
        if k not in used and linked.isdisjoint(shingles(articles[k].text)):
            out.append(k)
            used.add(k)
    if len(out) < n:
        raise ValueError(f"not enough base articles for the chained groups' bridges ({len(articles)} given)")
    return out


def find_same_event_pairs(
    articles: Sequence[Article],
    n_pairs: int,
    rng: Random,
    *,
    max_df: float = 0.01,
    min_shared: int = 3,
    max_jaccard: float = 0.1,
    max_containment: float = 0.2,
) -> list[tuple[int, int]]:
    """Pairs of different articles sharing many rare capitalised words (same event, different text).

    Candidates come from words in at most max_df of the articles; pairs are taken greedily by the
    summed IDF of shared topic words (times a random factor, so the seed matters) and must have word 5-gram
    Jaccard below max_jaccard and containment below max_containment, so the truth "different" is right.
    """
    if n_pairs <= 0 or len(articles) < 2:
        return []
    idf = idf_weights(articles)
    cap = max(2, int(max_df * len(articles)))
    index: dict[str, list[int]] = {}
    for i, a in enumerate(articles):
        for w in a.topic:
            index.setdefault(w, []).append(i)
    shared: dict[tuple[int, int], int] = {}
    for w in sorted(index):
        docs = index[w]
        if len(docs) > cap:
            continue
        for x in range(len(docs)):
            for y in range(x + 1, len(docs)):
                key = (docs[x], docs[y])
                shared[key] = shared.get(key, 0) + 1
    scored = []
    for (i, j), n in shared.items():
        if n < min_shared:
            continue
        common = set(articles[i].topic) & set(articles[j].topic)
        scored.append((-sum(idf[w] for w in sorted(common)) * rng.uniform(0.8, 1.0), i, j))
    scored.sort()
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    sh: dict[int, set[str]] = {}
    for _, i, j in scored:
        if len(pairs) >= n_pairs:
            break
        if i in used or j in used:
            continue
        sh_i = sh.setdefault(i, shingles(articles[i].text))
        sh_j = sh.setdefault(j, shingles(articles[j].text))
        jac, con = jaccard_containment(sh_i, sh_j)
        if jac >= max_jaccard or con >= max_containment:
            continue
        pairs.append((i, j))
        used.update((i, j))
    return pairs


def _allocate(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split total into integer counts proportional to weights (largest remainder, name order on ties)."""
    norm = sum(weights.values())
    raw = {k: total * v / norm for k, v in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    rest = total - sum(counts.values())
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[:rest]:
        counts[k] += 1
    return counts


def plan_clusters(
    articles: Sequence[Article],
    rng: Random,
    *,
    n_base: int | None = None,
    multi_fraction: float = 0.18,
    same_event_fraction: float = 0.06,
    chained_fraction: float = 0.06,
    weights: Mapping[str, float] | None = None,
    plan: Mapping[str, int] | None = None,
) -> list[tuple[str, list[Article]]]:
    """Decide which base article goes to which pattern (each used at most once).

    `plan` gives exact cluster counts per pattern (same_event and chained count pairs / groups);
    otherwise n_base articles are used, same_event_fraction of them in same-event pairs and
    multi_fraction of the rest in multi-member clusters split by weights. chained_fraction of
    n_base (in pairs of similar length sharing no 5-gram) go to chained groups instead of being
    singletons; the remainder are singletons. The other stories a chained group's bridge pages quote
    ("fillers", 1-3 per group) are further unused articles, preferably beyond n_base, whose own
    files are not in the corpus.
    """
    n_base = min(len(articles), n_base or len(articles))
    n_pairs = plan.get("same_event", 0) if plan is not None else round(n_base * same_event_fraction / 2)
    pairs = find_same_event_pairs(articles, n_pairs, rng)
    used = {i for p in pairs for i in p}
    rest = [i for i in range(len(articles)) if i not in used]
    rng.shuffle(rest)
    if plan is not None:
        counts = {k: plan.get(k, 0) for k in (*MULTI_PATTERNS, "singleton")}
        n_chain = plan.get("chained", 0)
    else:
        take = max(0, n_base - 2 * len(pairs))
        counts = _allocate(round(multi_fraction * take), weights or MULTI_WEIGHTS)
        n_chain = max(0, min(round(n_base * chained_fraction / 2), (take - sum(counts.values())) // 2))
        counts["singleton"] = take - sum(counts.values()) - 2 * n_chain
    short = ValueError(f"not enough base articles for the plan ({len(articles)} given)")
    out: list[tuple[str, list[Article]]] = []
    for i, j in pairs:
        out.append(("same_event", [articles[i], articles[j]]))
    pos = 0
    for pattern in MULTI_PATTERNS:
        for _ in range(counts[pattern]):
            if pos >= len(rest):
                raise short
            out.append((pattern, [articles[rest[pos]]]))
            pos += 1
    pool = rest[pos:]
    chain_pairs = find_chain_pairs(articles, pool, n_chain)
    taken = {i for p in chain_pairs for i in p}
    free = [i for i in pool if i not in taken]
    if counts["singleton"] > len(free):
        raise short
    singles, spare = free[: counts["singleton"]], free[counts["singleton"] :]
    taken.update(singles)
    for i, j in chain_pairs:
        fill = _fillers(articles, spare, (i, j), rng.choice((1, 2, 2, 3)), taken)
        out.append(("chained", [articles[i], articles[j], *(articles[k] for k in fill)]))
    out += [("singleton", [articles[i]]) for i in singles]
    return out


def _build(planned: list[tuple[str, list[Article]]], rng: Random) -> list[_Cluster]:
    clusters: list[_Cluster] = []
    for pattern, arts in planned:
        if pattern == "same_event":
            with_copy = rng.randrange(2) if rng.random() < 0.5 else -1
            for k, art in enumerate(arts):
                cl = _Cluster(pattern, [art.key], [_Doc(art.text, "original", [], True)])
                if k == with_copy:
                    cl.docs += _copies(art.text, rng, 1, "damaged")
                clusters.append(cl)
        elif pattern == "chained":
            clusters += _chained(arts, rng)
        elif pattern == "singleton":
            clusters.append(_Cluster(pattern, [arts[0].key], [_Doc(arts[0].text, "original", [], True)]))
        else:
            clusters.append(_Cluster(pattern, [arts[0].key], BUILDERS[pattern](arts[0], rng)))
    return clusters


def _file_bytes(text: str) -> bytes:
    return (text.rstrip() + "\n").encode("utf-8")


def _assign_paths(n: int, rng: Random) -> list[str]:
    """n distinct random paths like docs/3f/9c01ab27.txt, a few directly under docs/."""
    n_sub = max(2, min(16, n // 150))
    subs: list[str] = []
    while len(subs) < n_sub:
        s = f"{rng.getrandbits(8):02x}"
        if s not in subs:
            subs.append(s)
    names: set[str] = set()
    paths: list[str] = []
    while len(paths) < n:
        name = f"{rng.getrandbits(32):08x}"
        if name in names:
            continue
        names.add(name)
        paths.append(f"docs/{name}.txt" if rng.random() < 0.1 else f"docs/{rng.choice(subs)}/{name}.txt")
    return paths


def default_truth_path(out_dir: Path) -> Path:
    """Ground truth goes beside the corpus directory: corpora/sample -> corpora/sample_truth.json."""
    return out_dir.with_name(out_dir.name + "_truth.json")


def generate(
    articles: Sequence[Article],
    out_dir: Path,
    *,
    seed: int,
    truth_path: Path | None = None,
    source: str = "",
    n_base: int | None = None,
    multi_fraction: float = 0.18,
    same_event_fraction: float = 0.06,
    chained_fraction: float = 0.06,
    weights: Mapping[str, float] | None = None,
    plan: Mapping[str, int] | None = None,
    overwrite: bool = False,
) -> Truth:
    """Write a labelled corpus of damaged copies of `articles` to out_dir and its truth to truth_path.

    See plan_clusters for how articles are allotted to patterns. out_dir must be empty or absent
    unless overwrite is set (then it is deleted first, provided it holds only .txt files, as a
    generated corpus does). Returns the truth that was written.
    """
    out_dir = Path(out_dir)
    truth_path = Path(truth_path) if truth_path is not None else default_truth_path(out_dir)
    if truth_path.resolve().is_relative_to(out_dir.resolve()):
        raise ValueError("the ground truth must be written outside the corpus directory")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty (use overwrite=True)")
        foreign = [p for p in out_dir.rglob("*") if p.is_file() and p.suffix != ".txt"]
        if foreign:
            raise FileExistsError(f"{out_dir} holds non-corpus files (e.g. {foreign[0]}); not deleting it")
        shutil.rmtree(out_dir)
    rng = Random(seed)
    planned = plan_clusters(
        articles,
        rng,
        n_base=n_base,
        multi_fraction=multi_fraction,
        same_event_fraction=same_event_fraction,
        chained_fraction=chained_fraction,
        weights=weights,
        plan=plan,
    )
    clusters = _build(planned, rng)
    rng.shuffle(clusters)
    width = max(4, len(str(len(clusters))))
    flat = [(ci, doc) for ci, cl in enumerate(clusters) for doc in cl.docs]
    rng.shuffle(flat)
    paths = _assign_paths(len(flat), rng)
    truth: Truth = {
        "seed": seed,
        "source": source,
        "generator": GENERATOR_VERSION,
        "files": {},
        "clusters": {},
    }
    for ci, cl in enumerate(clusters):
        cid = f"g{ci + 1:0{width}d}"
        truth["clusters"][cid] = {"pattern": cl.pattern, "members": [], "acceptable": [], "base": cl.base}
    path_of = {id(doc): rel for (_, doc), rel in zip(flat, paths, strict=True)}
    for (ci, doc), rel in zip(flat, paths, strict=True):
        cid = f"g{ci + 1:0{width}d}"
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_file_bytes(doc.text))
        entry: FileTruth = {
            "cluster": cid,
            "pattern": clusters[ci].pattern,
            "damage": doc.damage,
            "role": doc.role,
        }
        if doc.bridge is not None:
            entry["bridge"] = doc.bridge
            links: list[Link] = [
                {"to": path_of[id(o)], "jaccard": j, "containment": c} for o, j, c in doc.links
            ]
            entry["links"] = sorted(links, key=lambda x: x["to"])
        truth["files"][rel] = entry
        truth["clusters"][cid]["members"].append(rel)
        if doc.acceptable:
            truth["clusters"][cid]["acceptable"].append(rel)
    for c in truth["clusters"].values():
        c["members"].sort()
        c["acceptable"].sort()
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.write_bytes(dump_truth(truth))
    return truth


def dump_truth(truth: Truth) -> bytes:
    """The truth as written to disk: orjson, sorted keys, two-space indent, trailing newline."""
    return orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def load_truth(path: Path) -> Truth:
    """Read a truth file written by generate."""
    truth: Truth = orjson.loads(Path(path).read_bytes())
    return truth


def generate_sample(cache_dir: Path | None = None, out_dir: Path | None = None) -> Truth:
    """Regenerate the committed sample (corpora/sample + corpora/sample_truth.json) from the SOTU texts."""
    out = out_dir or HERE / "sample"
    return generate(
        load_sotu(cache_dir),
        out,
        seed=SAMPLE_SEED,
        source=SOTU_SOURCE,
        n_base=SAMPLE_N_BASE,
        overwrite=True,
        truth_path=default_truth_path(out),
    )


def news_corpus(cache_dir: Path | None, seed: int, n_base: int = NEWS_N_BASE) -> tuple[Path, Path]:
    """The benchmark's news corpus for a seed, generated once into the cache and reused afterwards."""
    cache = Path(cache_dir or DEFAULT_CACHE)
    root = cache / "corpora" / f"news-s{seed}-v{GENERATOR_VERSION}-n{n_base}"
    corpus, truth, done = root / "corpus", root / "truth.json", root / ".complete"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        generate(load_news(cache), corpus, seed=seed, truth_path=truth, source=NEWS_SOURCE, n_base=n_base)
        done.write_text("ok\n")
    return corpus, truth


def _summary(truth: Truth) -> str:
    files = truth["files"]
    multi = sum(len(c["members"]) for c in truth["clusters"].values() if len(c["members"]) > 1)
    per: dict[str, int] = {}
    for c in truth["clusters"].values():
        per[c["pattern"]] = per.get(c["pattern"], 0) + 1
    pats = ", ".join(f"{k} {v}" for k, v in sorted(per.items()))
    n_clusters = len(truth["clusters"])
    return f"{len(files)} files, {n_clusters} clusters ({pats}); {multi} files in multi-member clusters"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `sample` regenerates the committed sample; `news` writes a benchmark corpus."""
    ap = argparse.ArgumentParser(prog="python -m corpora.generate", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("sample", help="regenerate corpora/sample and corpora/sample_truth.json")
    sp.add_argument("--cache", type=Path, default=None, help=f"download cache (default {DEFAULT_CACHE})")
    sp.add_argument("--out", type=Path, default=None, help="corpus directory (default corpora/sample)")
    nw = sub.add_parser("news", help="write a labelled news corpus (the benchmark's)")
    nw.add_argument("--cache", type=Path, default=None, help=f"download cache (default {DEFAULT_CACHE})")
    nw.add_argument("--out", type=Path, required=True, help="corpus directory (must be empty or absent)")
    nw.add_argument("--truth", type=Path, default=None, help="truth file (default OUT_truth.json)")
    nw.add_argument("--seed", type=int, default=1)
    nw.add_argument("--n-base", type=int, default=NEWS_N_BASE, help="base articles to use")
    args = ap.parse_args(argv)
    if args.cmd == "sample":
        truth = generate_sample(args.cache, args.out)
    else:
        truth = generate(
            load_news(args.cache),
            args.out,
            seed=args.seed,
            truth_path=args.truth,
            source=NEWS_SOURCE,
            n_base=args.n_base,
        )
    print(_summary(truth), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
