"""Articles that quote one paragraph stay apart, even when a teaser of that paragraph links them all."""

import os
import random
import subprocess
import sys
from pathlib import Path

from conftest import by_path

from dedup import Config, run

ONE_JOB = Config(jobs=1)


def words(rng: random.Random, n: int) -> list[str]:
    """``n`` pronounceable words, sentences of 12 with a capital and a full stop."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    out = ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 3))) for _ in range(n)]
    for k in range(0, n, 12):
        out[k] = out[k].capitalize()
        out[min(k + 11, n - 1)] += "."
    return out


def text(ws: list[str]) -> str:
    return " ".join(ws) + "\n"


def test_articles_quoting_one_paragraph_are_each_kept_though_a_teaser_of_it_verifies_against_all(
    write_tree, tmp_path: Path
) -> None:
    # A wire paragraph of 84 words opens four unrelated articles of ~480 words; a teaser of the
    # first article (the paragraph and its next 24 words) is contained in every one of them. Each
    # article shares 17% of its shingles with each other one: over the 15% that keeps two texts
    # apart, all of it the teaser's. Before ``cluster.glued`` the teaser was the centre of one
    # cluster of all five, and three of the four articles were dropped as its duplicates.
    rng = random.Random(7)
    quote = words(rng, 84)
    own = [words(rng, 400) for _ in range(4)]
    files = {f"article-{k}.txt": text(quote + own[k]) for k in range(4)}
    files["teaser.txt"] = text(quote + own[0][:24])
    records = by_path(run([write_tree(files)], tmp_path / "out", ONE_JOB).out)

    assert all(records[f"article-{k}.txt"]["canonical"] for k in range(4))
    assert records["teaser.txt"]["duplicate_of"] == "article-0.txt"
    assert len({records[f"article-{k}.txt"]["cluster"] for k in range(4)}) == 4


def test_a_teaser_and_two_complete_copies_of_its_article_one_damaged_stay_one_cluster(
    write_tree, tmp_path: Path
) -> None:
    # Both copies are over twice the teaser's size, so ``glued`` asks what they share past it:
    # every tenth word of one is misspelt, and they still share over half of what lies past the
    # teaser. One article: the clean complete copy is kept, the others are its duplicates.
    rng = random.Random(11)
    article = words(rng, 480)
    damaged = [w + "x" if k % 10 == 5 else w for k, w in enumerate(article)]
    files = {"full.txt": text(article), "full-damaged.txt": text(damaged), "teaser.txt": text(article[:90])}
    records = by_path(run([write_tree(files)], tmp_path / "out", ONE_JOB).out)

    assert records["full.txt"]["canonical"]
    assert records["full-damaged.txt"]["duplicate_of"] == "full.txt"
    assert records["teaser.txt"]["duplicate_of"] == "full.txt"


def test_an_article_whose_pages_each_add_as_much_text_of_their_own_is_kept_once_a_page(
    write_tree, tmp_path: Path
) -> None:
    # The price of ``cluster.glued``, chosen and pinned: two pages that each hold the whole
    # article and as many words again of their own (comments a site does not repeat) share
    # nothing past it, as articles quoting one paragraph do. They are kept apart: a copy too
    # many is kept, nothing is lost (the bare article joins one of them).
    rng = random.Random(13)
    article = words(rng, 170)
    files = {
        "story.txt": text(article),
        "site-a.txt": text(article + words(rng, 180)),
        "site-b.txt": text(article + words(rng, 180)),
    }
    records = by_path(run([write_tree(files)], tmp_path / "out", ONE_JOB).out)

    assert records["site-a.txt"]["cluster"] != records["site-b.txt"]["cluster"]
    kept = {path for path, record in records.items() if record["canonical"]}
    assert len(kept) == 2
    assert records["story.txt"]["cluster"] in {
        records["site-a.txt"]["cluster"],
        records["site-b.txt"]["cluster"],
    }


def test_the_reference_path_keeps_glued_articles_apart_as_the_kernels_do(write_tree, tmp_path: Path) -> None:
    # DEDUP_KERNELS=0 (as without numba) compares words as strings: the same manifest, byte for byte.
    rng = random.Random(7)
    quote = words(rng, 84)
    own = [words(rng, 400) for _ in range(3)]
    files = {f"article-{k}.txt": text(quote + own[k]) for k in range(3)}
    files["teaser.txt"] = text(quote + own[0][:24])
    tree = write_tree(files)
    manifests = []
    for flag in ("1", "0"):
        out = tmp_path / f"out{flag}"
        env = {**os.environ, "DEDUP_KERNELS": flag}
        subprocess.run(
            [sys.executable, "-m", "dedup", "run", str(tree), "--out", str(out), "-q"], env=env, check=True
        )
        manifests.append((out / "manifest.jsonl").read_bytes())
    assert manifests[0] == manifests[1]
    records = by_path(tmp_path / "out0")
    assert all(records[f"article-{k}.txt"]["canonical"] for k in range(3))
