"""Tests of the scale-corpus generator (corpora/scale.py) on built-in base texts: fast, no network.

The generator is trained on a few paragraphs written here. For the 5-gram test it is trained on a
larger base made here from a fixed vocabulary. A model trained on eight paragraphs replays them word
for word, as any Markov chain would. The real news base gives the chain news-like branching, and so
does the large base; the benchmark prints the sharing figures for the real one.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from corpora.scale import (
    MARKER,
    MarkovModel,
    clean_base,
    corpus_path,
    doc_path,
    generate_scale,
    load_truth,
    read_texts,
    sharing_stats,
    shingles,
)

PARAGRAPHS = [
    "The city council voted on Tuesday to approve a new budget. It sets aside money for three "
    "parks, two libraries and a long-delayed repair of the harbor bridge. The mayor said the vote "
    "was a turning point.",
    "Opponents said the plan relies on optimistic revenue forecasts. They warned that a downturn would "
    "force deep cuts within two years. A councilman called the spending a gamble with money the city "
    "does not have.",
    "A powerful storm swept across the northern coast overnight, knocking out power to more than forty "
    "thousand homes. Schools in at least six counties were closed. Forecasters said the winds reached ninety "
    "kilometres an hour.",
    "Emergency crews worked through the night to clear fallen trees from the main highway. The road reopened "
    "shortly after dawn. Residents described a frightening night, and many said their windows were shaking.",
    "The central bank left interest rates unchanged on Thursday, as expected. Officials said inflation had "
    "eased but remained above target. Markets rose after the announcement, and the currency fell slightly.",
    "Analysts said the bank was likely to cut rates early next year if growth slowed further. Exporters "
    "welcomed the decision, while savers complained that returns on deposits were still too low.",
    "The national team won its opening match of the tournament by two goals to one. The coach praised the "
    "young striker, who scored both goals in the second half. Fans celebrated in the streets until late.",
    "Health officials urged older people to get a booster shot before the winter. Hospitals reported a rise "
    "in admissions last month, and doctors said the season could be worse than the last one.",
]
BASE = ["\n\n".join(PARAGRAPHS[i : i + 3]) for i in range(0, len(PARAGRAPHS), 2)]


def _wide_base(n_texts: int = 300, seed: int = 7) -> list[str]:
    """Texts of Zipf-weighted words from a fixed vocabulary: a base with news-like branching."""
    rng = random.Random(seed)
    vocab = sorted({w.lower() for p in PARAGRAPHS for w in re.findall(r"[A-Za-z]+", p)})
    vocab += [
        a + b + c
        for a in ("bra", "cel", "dor", "fen", "gal", "hul", "mir", "tov", "zan", "pel")
        for b in ("a", "e", "i", "o", "u", "ar", "en")
        for c in ("t", "n", "s", "ck", "rd", "l")
    ]
    weights = [1 / (k + 1) for k in range(len(vocab))]
    texts = []
    for _ in range(n_texts):
        paras = []
        for _ in range(rng.randint(3, 6)):
            sents = []
            for _ in range(rng.randint(2, 4)):
                words = rng.choices(vocab, weights, k=rng.randint(8, 22))
                sents.append(" ".join(words).capitalize() + ".")
            paras.append(" ".join(sents))
        texts.append("\n\n".join(paras))
    return texts


def _files(corpus: Path) -> dict[str, bytes]:
    return {p.relative_to(corpus).as_posix(): p.read_bytes() for p in sorted(corpus.rglob("*.txt"))}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "s"
    generate_scale(400, out, fmt="dir", seed=3, base_texts=BASE)
    return out


def test_same_seed_same_bytes(small: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_scale(400, again, fmt="dir", seed=3, base_texts=BASE)
    assert _files(small / "corpus") == _files(again / "corpus")
    assert (small / "truth.jsonl").read_bytes() == (again / "truth.jsonl").read_bytes()
    other = tmp_path / "other"
    generate_scale(400, other, fmt="dir", seed=4, base_texts=BASE)
    assert _files(small / "corpus") != _files(other / "corpus")


def test_requested_count_and_layout(small: Path, tmp_path: Path) -> None:
    files = _files(small / "corpus")
    assert len(files) == 400
    assert all(re.fullmatch(r"([0-9a-f]{2})/\1[0-9a-f]{14}\.txt", rel) for rel in files)
    assert sorted(p.name for p in (small / "corpus").iterdir()) == [f"{i:02x}" for i in range(256)]
    out = tmp_path / "j"
    info = generate_scale(123, out, fmt="jsonl", seed=3, base_texts=BASE)
    lines = corpus_path(out, "jsonl").read_bytes().splitlines()
    recs = [orjson.loads(line) for line in lines]
    assert len(recs) == 123 == info["documents"]
    assert len({r["id"] for r in recs}) == 123
    assert all(set(r) == {"id", "text"} and r["text"].strip() for r in recs)


def test_about_a_fifth_are_near_duplicates_with_truth(small: Path) -> None:
    truth = load_truth(small)
    texts = read_texts(small)
    copies = {c["id"]: c for c in truth}
    assert len(copies) == round(0.2 * 400)
    exact = 0
    for c in truth:
        assert c["of"] in texts and c["of"] not in copies
        a, b = texts[c["id"]], texts[c["of"]]
        if not c["damage"]:
            assert a == b
            exact += 1
            continue
        sa, sb = shingles(a), shingles(b)
        inter = len(sa & sb)
        assert inter / len(sa | sb) >= 0.5 or inter / min(len(sa), len(sb)) >= 0.5, c
    assert 0 < exact < len(truth)


def test_unrelated_documents_share_no_five_grams(tmp_path: Path) -> None:
    out = tmp_path / "wide"
    generate_scale(300, out, fmt="jsonl", seed=1, base_texts=_wide_base(), dup_frac=0.0)
    texts = list(read_texts(out).values())
    stats = sharing_stats(texts, pairs=3000)
    assert stats["mean"] < 0.05 and stats["max"] <= 2, stats
    # and the chains are independent: no two documents start alike
    assert len({t[:60] for t in texts}) == len(texts)


def test_texts_look_like_news(small: Path) -> None:
    copies = {c["id"] for c in load_truth(small)}
    texts = [t for i, t in read_texts(small).items() if i not in copies]
    sizes = np.array([len(t.encode()) for t in texts])
    assert 3000 <= sizes.mean() <= 5500, sizes.mean()
    assert np.mean([t.count("\n\n") >= 2 for t in texts]) > 0.9
    for t in texts[:50]:
        assert not t.startswith(" ") and "\n\n " not in t and " ." not in t and " ," not in t
        assert t.rstrip().endswith((".", "!", "?", "%")) or t.rstrip()[-1].isalnum()
    words = re.findall(r"\w+", " ".join(texts).lower())
    assert 550 <= len(words) / len(texts) <= 900


def test_marker_caches_and_parameters_invalidate(tmp_path: Path) -> None:
    out = tmp_path / "m"
    generate_scale(150, out, fmt="dir", seed=3, base_texts=BASE)
    marker = out / MARKER
    stamp = marker.stat().st_mtime_ns
    some = doc_path(out / "corpus", next(iter(read_texts(out, limit=1))))
    file_stamp = some.stat().st_mtime_ns
    info = generate_scale(150, out, fmt="dir", seed=3, base_texts=BASE)
    assert info["complete"] and marker.stat().st_mtime_ns == stamp and some.stat().st_mtime_ns == file_stamp
    (out / "keep.txt").write_text("not ours")
    generate_scale(150, out, fmt="jsonl", seed=3, base_texts=BASE)
    assert not (out / "corpus").exists() and corpus_path(out, "jsonl").exists()
    assert (out / "keep.txt").exists()
    marker.unlink()  # an incomplete corpus is rebuilt
    generate_scale(150, out, fmt="jsonl", seed=3, base_texts=BASE)
    assert marker.exists()


def test_clean_base_drops_repeated_boilerplate() -> None:
    footer = "Follow our live coverage of the summit on our website and social media channels every day."
    texts = [p + " " + footer for p in PARAGRAPHS]
    cleaned = clean_base(texts)
    assert all("live coverage" not in t for t in cleaned)
    assert all("council" in t for t in cleaned[:1])
    model = MarkovModel.train(cleaned)
    assert "\n\n" in model.vocab and model.occ.size > 100


def test_noisy_corpus_shares_sentences_and_damages_copies_heavily(small: Path, tmp_path: Path) -> None:
    noisy = tmp_path / "noisy"
    generate_scale(400, noisy, fmt="dir", seed=3, base_texts=_wide_base(), noise="noisy")
    again = tmp_path / "again"
    generate_scale(400, again, fmt="dir", seed=3, base_texts=_wide_base(), noise="noisy")
    assert _files(noisy / "corpus") == _files(again / "corpus")
    clean = tmp_path / "clean"
    generate_scale(400, clean, fmt="dir", seed=3, base_texts=_wide_base())
    assert orjson.loads((noisy / MARKER).read_bytes())["params"]["noise"] == "noisy"
    assert "noise" not in orjson.loads((clean / MARKER).read_bytes())["params"]  # cached clean corpora hold

    copies = {c["id"]: c for c in load_truth(noisy)}
    originals = [t for i, t in read_texts(noisy).items() if i not in copies]
    seen: dict[str, set[int]] = {}
    for n, text in enumerate(originals):
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if len(sentence.split()) >= 8:
                seen.setdefault(sentence, set()).add(n)
    shared = [s for s, holders in seen.items() if len(holders) >= 3]
    assert len(shared) >= 20  # whole sentences repeated across unrelated originals; the clean corpus has none

    def several_kinds(out: Path) -> float:
        return float(np.mean([len(c["damage"]) >= 2 for c in load_truth(out)]))

    assert several_kinds(noisy) >= 0.5 > 0.2 >= several_kinds(clean)
