"""Tests of the labelled-corpus generator (corpora/) and the benchmark's metrics, on small built-in texts.

No network: the base articles are made here from a fixed vocabulary, with the features the damage
functions act on (hyphenated words, pronouns, contractions, quotes, names, accents).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.accuracy import adjusted_rand_index, canonical_choices, pair_counts, score
from corpora import damage as D
from corpora.generate import (
    CHAIN_JACCARD,
    CHAIN_MAX_CONTAINMENT,
    GENERATOR_VERSION,
    PATTERNS,
    dump_truth,
    excerpt,
    generate,
    load_truth,
)
from corpora.sources import Article, jaccard_containment, shingles, split_sentences, to_paragraphs, topic_key

REPO = Path(__file__).resolve().parents[1]

VOCAB = tuple(
    str.split(
        "river council budget market winter harbor school bridge station garden factory village doctor "
        "teacher farmer engineer museum library stadium hospital airport highway tunnel festival election "
        "committee report figure plan record program project proposal season surface system theory "
        "measure method region policy concern quarter district evidence effort income option pattern "
        "quality reason source strategy threat volume window account balance capital channel climate "
        "contract crisis culture damage demand design detail energy estate feature finance growth impact "
        "journey labour leader margin member network output owner panel pressure profit range reform "
        "rescue review sector signal storm supply target transport trial union vessel weather worker "
        "quickly slowly openly rarely nearly mostly loudly calmly firmly gently partly fully badly "
        "green silent narrow broad distant local coastal rural urban northern southern eastern western "
        "approved delayed rejected built closed opened visited reported announced described expected "
        "promised reviewed examined questioned criticised welcomed recorded supported measured"
    )
)
HYPHENATED = ("well-known", "long-term", "cross-border", "state-owned", "so-called", "high-profile")
FIRST = ("Maria", "Tomas", "Aoife", "Kenji", "Lena", "Omar", "Priya", "Jonas", "Elif", "Ruth", "Sven", "Ines")
LAST = ("Okafor", "Lindqvist", "Moreau", "Haddad", "Novak", "Brennan", "Castillo", "Ferreira", "Kowalski")
TOWNS: tuple[str, ...] = ("Arden", "Bexley", "Corwin", "Delph", "Eskar", "Fenwick", "Galloway", "Harrow")
TOWNS += ("Islay", "Jarrow", "Kilbride", "Lorne", "Mallow", "Nairn", "Oban", "Penrith", "Quorn", "Rye")
TOWNS += ("Selby", "Thirsk", "Ulverston", "Wick", "Yarm", "Zennor")
PLACES = ("Velmora", "Ostrava", "Kellan", "Duneport", "Marisol", "Tarrow", "Quillon", "Brevik", "Solenne")


def _sentence(rng: random.Random, names: list[str]) -> str:
    words = rng.sample(VOCAB, rng.randint(9, 15))
    roll = rng.random()
    if roll < 0.2:
        words.insert(rng.randrange(len(words)), rng.choice(HYPHENATED))
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(names))
    s = " ".join(words)
    s = s[0].upper() + s[1:]
    pick = rng.random()
    if pick < 0.25:
        return f'"{s}," {rng.choice(("he", "she", "they"))} said.'
    if pick < 0.45:
        who, verb, name = rng.choice(("it", "he", "she")), rng.choice(VOCAB), rng.choice(names)
        return f"{s}, but {who} didn't {verb} {name}'s plan."
    if pick < 0.6:
        return f"{s}, and {rng.choice(('him', 'her', 'them'))} it's {rng.choice(VOCAB)} at the café."
    return s + "."


def fake_article(i: int, names: list[str], rng: random.Random) -> Article:
    """A paragraph-structured fake news article; names set its topic."""
    sentences = [_sentence(rng, names) for _ in range(rng.randint(14, 20))]
    key = f"fake:{i}"
    paras = to_paragraphs(" ".join(sentences), key)
    title = f"{names[0]} and the {rng.choice(VOCAB)} {rng.choice(VOCAB)} in {names[-1]}"
    text = title + " " + " ".join(paras)
    return Article(key, title, paras, f"site{i % 3}.example", topic_key(text))


def fake_articles(n: int = 24) -> list[Article]:
    """n articles; articles 0 and 1 share their names (a same-event pair), the rest have their own."""
    rng = random.Random(20240601)
    shared = [f"{FIRST[0]} {LAST[0]}", f"{FIRST[1]} {LAST[1]}", PLACES[0], PLACES[1], "Commissioner Varga"]
    out = [fake_article(0, shared, rng), fake_article(1, shared, rng)]
    for i in range(2, n):
        names = [f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}", f"Minister {LAST[(i + 3) % len(LAST)]}"]
        names.append(TOWNS[i - 2])
        out.append(fake_article(i, names, rng))
    return out


PLAN = {
    "truncated_clean": 2,
    "original_plus_damaged": 2,
    "damaged_only": 2,
    "revision": 1,
    "exact": 1,
    "singleton": 2,
    "same_event": 1,
    "chained": 2,
}


def _make(tmp: Path, seed: int = 7, plan: dict[str, int] | None = None) -> tuple[Path, dict]:
    corpus = tmp / f"corpus{seed}"
    truth = generate(fake_articles(), corpus, seed=seed, plan=plan or PLAN, source="test")
    return corpus, dict(truth)


def _files(corpus: Path) -> dict[str, bytes]:
    return {
        p.relative_to(corpus).as_posix(): p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _make(tmp_path_factory.mktemp("gen"))


# ---------------------------------------------------------------- generator


def test_same_seed_gives_identical_bytes_and_truth(tmp_path: Path) -> None:
    a, ta = _make(tmp_path / "a")
    b, tb = _make(tmp_path / "b")
    assert _files(a) == _files(b)
    assert dump_truth(ta) == dump_truth(tb)  # type: ignore[arg-type]
    assert (a.parent / "corpus7_truth.json").read_bytes() == (b.parent / "corpus7_truth.json").read_bytes()


def test_different_seed_gives_different_corpus(tmp_path: Path) -> None:
    a, _ = _make(tmp_path, seed=1)
    b, _ = _make(tmp_path, seed=2)
    assert _files(a) != _files(b)
    assert set(_files(a)) != set(_files(b))


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    """str hashing is randomised per process: generation must not iterate sets of strings."""
    code = (
        "import importlib.util, sys, hashlib, pathlib\n"
        f"spec = importlib.util.spec_from_file_location('t', {str(Path(__file__))!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "out = pathlib.Path(sys.argv[1])\n"
        "m.generate(m.fake_articles(), out / 'c', seed=3, plan=m.PLAN)\n"
        "h = hashlib.sha256()\n"
        "for p in sorted(out.rglob('*')):\n"
        "    h.update(p.relative_to(out).as_posix().encode())\n"
        "    h.update(p.read_bytes() if p.is_file() else b'')\n"
        "print(h.hexdigest())\n"
    )
    digests = set()
    for hs in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hs, "PYTHONPATH": str(REPO)}
        out = tmp_path / hs
        res = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        digests.add(res.stdout.strip())
    assert len(digests) == 1


def test_every_file_is_labelled_exactly_once(made: tuple[Path, dict]) -> None:
    corpus, truth = made
    on_disk = set(_files(corpus))
    assert on_disk == set(truth["files"])
    seen: list[str] = []
    for cid, cl in truth["clusters"].items():
        seen += cl["members"]
        for m in cl["members"]:
            assert truth["files"][m]["cluster"] == cid
            assert truth["files"][m]["pattern"] == cl["pattern"]
    assert sorted(seen) == sorted(on_disk)
    for p in truth["files"]:
        assert (corpus / p).is_file()
        (corpus / p).read_bytes().decode("utf-8")


def test_truth_file_is_outside_the_corpus_and_round_trips(made: tuple[Path, dict]) -> None:
    corpus, truth = made
    path = corpus.parent / (corpus.name + "_truth.json")
    assert path.exists() and not path.resolve().is_relative_to(corpus.resolve())
    assert load_truth(path) == truth
    assert set(truth) >= {"seed", "source", "files", "clusters"}


def test_every_cluster_has_an_acceptable_member(made: tuple[Path, dict]) -> None:
    _, truth = made
    for cl in truth["clusters"].values():
        assert cl["acceptable"], cl
        assert set(cl["acceptable"]) <= set(cl["members"])


def test_all_patterns_present(made: tuple[Path, dict]) -> None:
    _, truth = made
    assert {c["pattern"] for c in truth["clusters"].values()} == set(PATTERNS)


def test_file_names_reveal_nothing(made: tuple[Path, dict]) -> None:
    _, truth = made
    for p in truth["files"]:
        assert re.fullmatch(r"docs/(?:[0-9a-f]{2}/)?[0-9a-f]{8}\.txt", p), p
        for word in (*PATTERNS, "cluster", "g0", "orig", "dup", "copy"):
            assert word not in p


def test_pattern_shapes(made: tuple[Path, dict]) -> None:
    corpus, truth = made
    files = truth["files"]
    for cl in truth["clusters"].values():
        members, acc, pat = cl["members"], cl["acceptable"], cl["pattern"]
        texts = {m: (corpus / m).read_bytes() for m in members}
        if pat == "exact":
            assert len(members) >= 2 and len(set(texts.values())) == 1 and acc == members
        elif pat == "truncated_clean":
            assert [files[a]["role"] for a in acc] == ["clean_truncated"]
            for m in members:
                if m not in acc:
                    assert len(files[m]["damage"]) >= 2
                    assert set(files[m]["damage"]) <= {"treebank", "drop_hyphen", "coref"}
        elif pat == "damaged_only":
            assert len(acc) == 1 and len(files[acc[0]]["damage"]) == 1
            assert all(len(files[m]["damage"]) >= 2 for m in members if m not in acc)
        elif pat == "revision":
            assert sorted(files[a]["role"] for a in acc) == ["original", "revision"]
            assert len(members) >= 3
        elif pat == "original_plus_damaged":
            assert all(files[a]["damage"] == [] for a in acc)
            assert all(1 <= len(files[m]["damage"]) <= 3 for m in members if m not in acc)
        elif pat == "singleton":
            assert members == acc and len(members) == 1
        elif pat == "chained":
            roles = sorted(files[m]["role"] for m in members)
            assert roles in (["bridge"], ["original"], ["damaged", "original"]), roles
            assert [files[a]["role"] for a in acc] in (["bridge"], ["original"])


def test_truncated_clean_is_the_hard_case(made: tuple[Path, dict]) -> None:
    """The clean truncated copy is mostly contained in the garbled complete copies, yet Jaccard is low."""
    corpus, truth = made
    checked = 0
    for cl in truth["clusters"].values():
        if cl["pattern"] != "truncated_clean":
            continue
        clean = shingles((corpus / cl["acceptable"][0]).read_text(encoding="utf-8"))
        for m in cl["members"]:
            if m in cl["acceptable"]:
                continue
            jac, con = jaccard_containment(clean, shingles((corpus / m).read_text(encoding="utf-8")))
            assert con > 0.5, (m, con)
            assert jac < con and jac < 0.75, (m, jac)
            checked += 1
    assert checked >= 2


def _check_chained(corpus: Path, truth: dict) -> int:
    """Check every chained group against the documented ranges, recomputing the recorded overlaps.

    Returns the number of bridges checked.
    """
    files, clusters = truth["files"], truth["clusters"]
    sh = {}

    def sets(p: str) -> set[str]:
        return sh.setdefault(p, shingles((corpus / p).read_text(encoding="utf-8")))

    lo, hi = CHAIN_JACCARD
    bridges = [p for p, f in files.items() if f["pattern"] == "chained" and f["role"] == "bridge"]
    for b in bridges:
        f = files[b]
        assert f["bridge"] in ("roundup", "liveblog", "glitch")
        assert clusters[f["cluster"]]["members"] == [b] == clusters[f["cluster"]]["acceptable"]
        originals = []
        for link in f["links"]:
            other = files[link["to"]]
            assert other["pattern"] == "chained" and other["cluster"] != f["cluster"]
            jac, con = jaccard_containment(sets(b), sets(link["to"]))
            assert link["jaccard"] == pytest.approx(jac, abs=1e-4), (b, link)
            assert link["containment"] == pytest.approx(con, abs=1e-4), (b, link)
            assert jac <= hi and con < CHAIN_MAX_CONTAINMENT, (b, link)
            if other["role"] == "original":
                assert lo <= jac, (b, link)
                originals.append(link["to"])
            else:
                assert other["role"] in ("damaged", "bridge"), other
        # it links exactly two different articles, which share no word 5-gram at all
        assert len(originals) == 2
        a, c = originals
        assert files[a]["cluster"] != files[c]["cluster"]
        assert sets(a).isdisjoint(sets(c)), (a, c)
        # every file of the group is linked (copies of a, the other bridge)
        group = {m for o in originals for m in clusters[files[o]["cluster"]]["members"]}
        assert group <= {link["to"] for link in f["links"]}
    return len(bridges)


def test_chained_bridges_link_unrelated_articles(made: tuple[Path, dict]) -> None:
    corpus, truth = made
    assert _check_chained(corpus, truth) >= 2
    n_articles = sum(
        1 for f in truth["files"].values() if f["pattern"] == "chained" and f["role"] == "original"
    )
    assert n_articles == 2 * PLAN["chained"]


def test_chained_ranges_hold_across_seeds(tmp_path: Path) -> None:
    for seed in (1, 2, 3):
        corpus, truth = _make(tmp_path, seed=seed)
        assert _check_chained(corpus, truth) >= PLAN["chained"]


def test_excerpt_takes_head_or_tail() -> None:
    art = fake_articles()[5]
    n = len(art.text.split())
    head, tail = excerpt(art, 0.35 * n), excerpt(art, 0.35 * n, tail=True)
    assert art.paragraphs[0].startswith(head[:40])
    assert tail.split("\n\n")[-1] == art.paragraphs[-1]
    for part in (head, tail):
        assert 0.25 * n <= len(part.split()) <= 0.45 * n


def test_refuses_truth_inside_corpus_and_non_empty_dir(tmp_path: Path) -> None:
    arts = fake_articles()
    with pytest.raises(ValueError):
        generate(arts, tmp_path / "c", seed=1, plan=PLAN, truth_path=tmp_path / "c" / "t.json")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate(arts, tmp_path / "d", seed=1, plan=PLAN)


def test_committed_sample_matches_its_truth() -> None:
    sample, truth_path = REPO / "corpora" / "sample", REPO / "corpora" / "sample_truth.json"
    if not truth_path.exists():
        pytest.skip("sample not generated")
    truth = load_truth(truth_path)
    assert set(_files(sample)) == set(truth["files"])
    assert 200 <= len(truth["files"]) <= 300
    assert truth["generator"] == GENERATOR_VERSION
    assert {c["pattern"] for c in truth["clusters"].values()} == set(PATTERNS)
    assert _check_chained(sample, dict(truth)) >= 5


# ---------------------------------------------------------------- damage functions

TEXT = fake_articles()[3].text


def _check(out: str, before: str) -> None:
    assert before == TEXT, "damage must not touch its input"
    assert out != TEXT


def test_mojibake() -> None:
    before = TEXT
    out = D.mojibake(TEXT, random.Random(1), codec="cp1252", smart_rate=1.0, scope="all", double=False)
    _check(out, before)
    assert "\u00e2\u20ac" in out  # the "â€" of a mis-decoded curly quote
    assert "\u00c3\u00a9" in out  # "Ã©" from the "é" of café
    latin = D.mojibake(TEXT, random.Random(1), codec="latin-1", scope="all")
    assert "\u00e2\x80" in latin


def test_treebank() -> None:
    out = D.treebank(TEXT, random.Random(2), curly=False, layout="one_line")
    _check(out, TEXT)
    assert " n't" in out and " ," in out and " 's" in out
    assert "\n" not in out
    curly = D.treebank(TEXT, random.Random(2), curly=True, backticks=True, layout="sentences")
    assert " n\u2019t" in curly and "``" in curly
    assert D.treebank("He can't go.", random.Random(0), curly=False, layout="one_line") == "He ca n't go ."


def test_html_and_markdown() -> None:
    out = D.html(TEXT, random.Random(3), level="heavy")
    _check(out, TEXT)
    assert re.search(r"</?[a-z]+[ >/]|&#?\w+;", out)
    light = D.html(TEXT, random.Random(3), level="light")
    assert re.search(r"&#?\w+;", light) and not re.search(r"<[a-z/]", light)
    md = D.markdown(TEXT, random.Random(4), features=("links",))
    _check(md, TEXT)
    assert re.search(r"\[[^\]]+\]\([^)]*\)", md)


def test_truncate() -> None:
    for seed in range(10):
        out = D.truncate(TEXT, random.Random(seed), frac=0.5)
        _check(out, TEXT)
        assert len(out) <= 0.5 * len(TEXT) + 10
        assert len(out) >= 0.3 * len(TEXT)
        assert TEXT.startswith(out.rstrip(".\u2026[] "))


def test_ocr() -> None:
    out = D.ocr(TEXT, random.Random(5), rate=0.02)
    _check(out, TEXT)
    assert abs(len(out) - len(TEXT)) < 0.05 * len(TEXT)
    light = D.ocr(TEXT, random.Random(5), slips=2)
    assert light != TEXT and abs(len(light) - len(TEXT)) <= 4
    assert 1 <= len(set(light.split()) - set(TEXT.split())) <= 2


def test_boilerplate_join_drop_coref() -> None:
    out = D.boilerplate(TEXT, random.Random(6), lines=3)
    _check(out, TEXT)
    lines = set(out.splitlines())
    pool = [b.split("{")[0].strip() for b in D.BOILERPLATE]
    assert sum(any(line.startswith(p) for p in pool if p) for line in lines) >= 1
    joined = D.join_paragraphs(TEXT, random.Random(7))
    _check(joined, TEXT)
    assert "\n" not in joined
    dropped = D.drop_hyphenated(TEXT, random.Random(8), rate=1.0, gap=3)
    _check(dropped, TEXT)
    assert not re.search(r"\w-\w", dropped) and "   " in dropped
    phrase = ("The city attorney",)
    co = D.coref(TEXT, random.Random(9), rate=1.0, pronouns=("he", "she"), phrases=phrase, mode="replace")
    _check(co, TEXT)
    assert co.count("The city attorney") >= 2
    assert not re.search(r"\b(he|she)\b", co, re.IGNORECASE)
    ins = D.coref(TEXT, random.Random(9), rate=1.0, pronouns=("he",), phrases=phrase, mode="insert")
    assert re.search(r"\b[Hh]e The city attorney\b", ins)


@pytest.mark.parametrize("kind", D.KINDS)
@pytest.mark.parametrize("level", D.LEVELS)
def test_apply_changes_text(kind: str, level: str) -> None:
    before = TEXT
    out = D.apply(kind, TEXT, random.Random(hashlib.sha256(f"{kind}{level}".encode()).digest()), level)
    _check(out, before)


def test_sentence_split_keeps_abbreviations() -> None:
    s = split_sentences('Mr. Smith went to Washington. He said "yes." Then U.S. officials left! Done?')
    assert s == ["Mr. Smith went to Washington.", 'He said "yes."', "Then U.S. officials left!", "Done?"]


# ---------------------------------------------------------------- benchmark metrics


def test_pair_metrics_and_ari() -> None:
    truth = {"a": "1", "b": "1", "c": "2", "d": "3"}
    assert pair_counts(truth, truth) == (1, 1, 1)
    assert adjusted_rand_index(truth, truth) == pytest.approx(1.0)
    merged = {"a": "x", "b": "x", "c": "x", "d": "y"}
    assert pair_counts(truth, merged) == (1, 1, 3)
    split = {"a": "p", "b": "q", "c": "r", "d": "s"}
    assert adjusted_rand_index(truth, split) == pytest.approx(0.0)


def test_score_and_canonical_choice(made: tuple[Path, dict]) -> None:
    _, truth = made
    perfect = {}
    for cid, cl in truth["clusters"].items():
        for m in cl["members"]:
            perfect[m] = (cid, m == cl["acceptable"][0])
    s = score("perfect", truth, perfect, 0.0)  # type: ignore[arg-type]
    assert (s.precision, s.recall, s.canonical) == (1.0, 1.0, 1.0)
    assert s.ari == pytest.approx(1.0)
    singletons = {p: (p, True) for p in truth["files"]}
    chosen = canonical_choices(truth, singletons)  # type: ignore[arg-type]
    for cid, path in chosen.items():
        assert path == min(truth["clusters"][cid]["members"])


def test_chaining_bridges_shows_in_chained_precision(made: tuple[Path, dict]) -> None:
    """Merging each bridge with everything it links (what chained LSH does) costs chained precision."""
    _, truth = made
    label = {p: f["cluster"] for p, f in truth["files"].items()}
    for p, f in sorted(truth["files"].items()):
        for link in f.get("links", []):
            old, new = label[link["to"]], label[p]
            label = {q: new if c == old else c for q, c in label.items()}
    pred = {p: (c, False) for p, c in label.items()}
    s = score("chain", truth, pred, 0.0)  # type: ignore[arg-type]
    chained = s.per_pattern["chained"]
    assert chained["pair_precision"] < 0.5
    assert not chained["pair_recall"] < 1.0  # 1.0, or nan when no article got a copy
    assert s.precision < 1.0 and s.recall == 1.0
