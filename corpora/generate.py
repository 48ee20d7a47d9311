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
from typing import TypedDict

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
)

GENERATOR_VERSION = "1"
"""Bump whenever output for a given seed changes, so cached benchmark corpora are rebuilt."""

MULTI_PATTERNS = ("truncated_clean", "original_plus_damaged", "damaged_only", "revision", "exact")
PATTERNS = (*MULTI_PATTERNS, "singleton", "same_event")
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


class FileTruth(TypedDict):
    """Ground truth for one file: its cluster, the cluster's pattern, the damage it got and its role."""

    cluster: str
    pattern: str
    damage: list[str]
    role: str


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


@dataclass
class _Doc:
    text: str
    role: str
    damage: list[str]
    acceptable: bool


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
    weights: Mapping[str, float] | None = None,
    plan: Mapping[str, int] | None = None,
) -> list[tuple[str, list[Article]]]:
    """Decide which base article goes to which pattern (each used at most once).

    `plan` gives exact cluster counts per pattern (same_event counts pairs); otherwise n_base
    articles are used, same_event_fraction of them in same-event pairs and multi_fraction of the
    rest in multi-member clusters split by weights, the remainder as singletons.
    """
    n_base = min(len(articles), n_base or len(articles))
    n_pairs = plan.get("same_event", 0) if plan is not None else round(n_base * same_event_fraction / 2)
    pairs = find_same_event_pairs(articles, n_pairs, rng)
    used = {i for p in pairs for i in p}
    rest = [i for i in range(len(articles)) if i not in used]
    rng.shuffle(rest)
    if plan is not None:
        counts = {k: plan.get(k, 0) for k in (*MULTI_PATTERNS, "singleton")}
    else:
        take = max(0, n_base - 2 * len(pairs))
        rest = rest[:take]
        counts = _allocate(round(multi_fraction * take), weights or MULTI_WEIGHTS)
        counts["singleton"] = take - sum(counts.values())
    out: list[tuple[str, list[Article]]] = []
    for i, j in pairs:
        out.append(("same_event", [articles[i], articles[j]]))
    it = iter(rest)
    for pattern in (*MULTI_PATTERNS, "singleton"):
        for _ in range(counts.get(pattern, 0)):
            idx = next(it, None)
            if idx is None:
                raise ValueError(f"not enough base articles for the plan ({len(articles)} given)")
            out.append((pattern, [articles[idx]]))
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
    for (ci, doc), rel in zip(flat, paths, strict=True):
        cid = f"g{ci + 1:0{width}d}"
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_file_bytes(doc.text))
        truth["files"][rel] = {
            "cluster": cid,
            "pattern": clusters[ci].pattern,
            "damage": doc.damage,
            "role": doc.role,
        }
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
