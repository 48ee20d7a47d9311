"""The compiled kernels give exactly what the numpy/regex reference gives (dedup/kernels.py)."""

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    ARTICLES,
    boilerplate,
    coref,
    garble,
    html,
    join_paragraphs,
    mojibake,
    ocr,
    treebank,
    truncate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup import align_kernels, alignment, index, kernels, quality, quality_kernels, table_kernels
from dedup.alignment import ALIGN_MAX_TOKENS
from dedup.comparison import compared, hashed_from, relative_of_ids
from dedup.frequency import TokenFrequency
from dedup.normalize import (
    SPACE_BMP,
    WORD_BMP,
    comparison,
    comparison_text,
    is_spaced,
    line_keys,
    repair,
    skeleton_bytes,
    token_bytes,
)
from dedup.quality import intrinsic, relative
from dedup.signatures import (
    Signer,
    distinct,
    fingerprint,
    hash_token_bytes,
    shingle_hashes,
    shingles_of,
    similarity,
    token_and_skeleton_hashes,
    token_hashes,
)

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not importable")

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"
SETTINGS = settings(
    derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Pieces that exercise every branch: OCR digraphs and doubled letters, letter/digit words,
# treebank and gap spacing, boilerplate cues in any case, Unicode spaces, letters and
# punctuation (the Kelvin sign lower-cases to "k"; U+0130 to "i" + a combining dot).
PIECES = [
    "the", "cornmunity", "clear", "vvorld", "wou1d", "c0mment", "0ne11", "1ab2", "Ab1cd", "ab_1c", "rnrn",
    "ll", "book", "1990s", "a1b2c", "B2B", " ", "  ", "\n", "\t", "\x0b", "\x1c", ",", " .", " ,", "(", "( ",
    "()", "( )", " )", "``", "''", " n't", " n\u2019t", "'s", '" "', "\u201c \u201d", "\u201c", "-", "_",
    "*", "<b>", "&amp;", "Subscribe", "SIGN UP", "cooKies", "coo\u212aies", "cl\u0130ck here", "skip to",
    "\u00a0", "\u0085", "\u1680", "\u2000", "\u2009", "\u200a", "\u200b", "\u2028", "\u202f", "\u205f",
    "\u3000", "\u00e9", "\u00fc", "\u00df", "\u0436", "\u4e2d\u6587", "\u2014", "\u2019",
    "\u00e2\u20ac\u2122", "\ud800", "x\u00e91", "1\u00e9a", "Advertisement", "Home | News | World",
    "[a link](http://x)", "&#8217;",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join) | st.text(max_size=80)


@given(st.binary(max_size=200))
@SETTINGS
def test_token_hashes_and_skeleton_match_the_reference_on_any_bytes(data: bytes) -> None:
    assert hash_token_bytes(data).tolist() == hash_token_bytes(data, compiled=False).tolist()
    folded = skeleton_bytes(data)
    assert bytes(folded) == bytes(skeleton_bytes(data, compiled=False))
    assert hash_token_bytes(folded).tolist() == hash_token_bytes(folded, compiled=False).tolist()
    signer = Signer(num_perm=8, seed=1)
    hashes, count, signature = fingerprint(data, 3, signer)
    shingles = shingles_of(hash_token_bytes(folded, compiled=False), 3, compiled=False)
    assert hashes.tolist() == hash_token_bytes(data, compiled=False).tolist()
    assert (count, signature.tolist()) == (len(shingles), signer.sign(shingles, compiled=False).tolist())


def test_fingerprint_builds_the_skeleton_first_when_folding_would_move_token_bounds() -> None:
    """Tables where a letter folds to a space: the one-pass hashing does not apply, the result still holds."""
    word = np.zeros(256, dtype=bool)
    word[ord("a") : ord("z") + 1] = True
    fold = np.arange(256, dtype=np.uint8)
    fold[ord("x")] = ord(" ")
    digraphs = np.array([[ord("r"), ord("n"), ord("m")]], dtype=np.uint8)
    buf = np.frombuffer(b"taxi barn, rnx ox", dtype=np.uint8)
    a, b = np.arange(1, 9, dtype=np.uint32), np.arange(8, dtype=np.uint32)
    mult = np.arange(1, 21, dtype=np.uint64)
    hashes, count, signature = kernels.fingerprint(buf, word, fold, digraphs, 2, mult, a, b)
    folded = kernels.token_hashes(kernels.skeleton(buf, word, fold, digraphs), word)
    assert len(folded) == 5 and len(hashes) == 4  # "taxi" -> "ta i", "rnx" -> "m ", "ox" -> "o "
    shingles = distinct(kernels.shingle_values(folded, 2, mult))
    assert hashes.tolist() == kernels.token_hashes(buf, word).tolist()
    assert (count, signature.tolist()) == (len(shingles), kernels.signature(shingles, a, b).tolist())


@given(
    st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 3), max_size=300),
    st.integers(1, 20),
)
@SETTINGS
def test_shingles_match_the_reference(values: list[int], k: int) -> None:
    """Including many equal hashes (the crowded-bucket path) and documents shorter than k."""
    th = np.array(values, dtype=np.uint64)
    assert shingles_of(th, k).tolist() == shingles_of(th, k, compiled=False).tolist()


@given(st.lists(st.integers(0, 2**64 - 1), max_size=200), st.sampled_from([1, 16, 128, 256]))
@SETTINGS
def test_signature_matches_the_reference(values: list[int], num_perm: int) -> None:
    signer = Signer(num_perm=num_perm, seed=num_perm)
    shingles = np.array(values, dtype=np.uint64)
    assert signer.sign(shingles).tolist() == signer.sign(shingles, compiled=False).tolist()


def test_a_signature_over_several_blocks_of_shingles_matches_the_reference() -> None:
    shingles = np.random.default_rng(5).integers(0, 2**64 - 1, 20_000, dtype=np.uint64, endpoint=True)
    signer = Signer(num_perm=64, seed=5)
    assert signer.sign(shingles).tolist() == signer.sign(shingles, compiled=False).tolist()


@given(st.lists(st.integers(0, 2**64 - 1), max_size=300), st.lists(st.integers(0, 2**20 - 1), max_size=60))
@SETTINGS
def test_distinct_count_counts_each_value_once(values: list[int], low: list[int]) -> None:
    """Including 0 (what marks a free slot), repeats, and values alike from bit 20 up (one slot)."""
    given_ = values + low + [(1 << 40) | v for v in low] + values[:10] + low[:10]
    assert kernels.distinct_count(np.array(given_, dtype=np.uint64)) == len(set(given_))


@given(st.sets(st.integers(0, 2**64 - 1), max_size=200), st.sets(st.integers(0, 2**64 - 1), max_size=200))
@SETTINGS
def test_shared_count_is_the_size_of_the_intersection(one: set[int], other: set[int]) -> None:
    """Of two sorted arrays of distinct values, some of them in both (the top of the range too)."""
    other |= set(list(one)[::2])
    a, b = (np.array(sorted(s), dtype=np.uint64) for s in (one, other))
    assert kernels.shared_count(a, b) == kernels.shared_count(b, a) == len(one & other)
    assert similarity(a, b)[2] == len(one & other)


@given(texts)
@SETTINGS
def test_token_and_skeleton_hashes_are_the_reference_steps_in_one_call(text: str) -> None:
    words = token_bytes(comparison_text(repair(text)))
    plain, folded = token_and_skeleton_hashes(words)
    assert plain.tolist() == hash_token_bytes(words, compiled=False).tolist()
    reference = hash_token_bytes(skeleton_bytes(words, compiled=False), compiled=False)
    assert folded.tolist() == reference.tolist()


@given(texts, st.integers(1, 7))
@SETTINGS
def test_fingerprint_is_the_reference_steps_in_one_call(text: str, k: int) -> None:
    words = token_bytes(comparison_text(repair(text)))
    signer = Signer(num_perm=32, seed=3)
    hashes, count, signature = fingerprint(words, k, signer)
    shingles = shingles_of(
        hash_token_bytes(skeleton_bytes(words, compiled=False), compiled=False), k, compiled=False
    )
    assert hashes.tolist() == hash_token_bytes(words, compiled=False).tolist()
    assert count == len(shingles)
    assert signature.tolist() == signer.sign(shingles, compiled=False).tolist()


@given(texts)
@SETTINGS
def test_cleanliness_signals_match_the_reference(text: str) -> None:
    repaired = repair(text)
    comparison_, found = comparison(repaired)
    assert comparison_ == comparison_text(repaired)
    reference = intrinsic(text, repaired, comparison_, compiled=False)
    assert intrinsic(text, repaired, comparison_) == reference
    # Pass 1 hands over the boilerplate count of the comparison text when it was counted on `repaired`.
    assert intrinsic(text, repaired, comparison_, boilerplate_lines=found) == reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"wou1d c0mment 0ne11 1ab2 1a2 a1b2c ab_1c Ab1c", 4),  # not 1a2 (one letter), a1b2c (five stretches)
        (b"wou1d\xc3\xa9", -1),  # touches a non-ASCII character: the regex decides
        (b"\xe2\x80\x94 wou1d", 1),
    ],
)
def test_ocr_mix_counts_whole_words_or_defers(text: bytes, expected: int) -> None:
    assert quality_kernels.ocr_mix(np.frombuffer(text, dtype=np.uint8)) == expected


# What the treebank and gap patterns look at, between words that end and start with a word
# character or not (the patterns look behind and ahead for one).
SPACING_WORDS = ("a", "n", "N", "s", "word", "1", "_", "\u00e9", "\u4e2d", "", ".", "\ud800")
SPACING = (
    " n't", " N\u2019T", " 're", " 'LL", " 've", " 's", " \u2019\u017f", " 'd", " 'm", " 'x", "'s", " ", "  ",
    "\t", "\n", "\r", "\u00a0", "\u0085", "\u2028", "\u3000", " .", " ,", " ;", " :", " !", " ?", " %", " )",
    " ]", "( ", "[ ", "``", "''", "'", '"', '" ', "\u201c", "\u201d", "()", "( )", ' \u201c \u201d ',
    ' \u201d\u201c ', ' " \u201d ', ' "\u00a0" ', '" " ', " \t ", "\n  ", " \n ", " ?", " ? ",
)  # fmt: skip
spaced = st.lists(st.tuples(st.sampled_from(SPACING_WORDS), st.sampled_from(SPACING)), max_size=10)


@given(spaced.map(lambda pairs: "".join(word + between for word, between in pairs)) | texts)
@settings(SETTINGS, max_examples=1500)
def test_spacing_counts_are_the_patterns_match_counts(text: str) -> None:
    buf = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    expected = (len(quality.PATTERNS["treebank"].findall(text)), len(quality.PATTERNS["gaps"].findall(text)))
    if max(map(ord, text), default=0) > 0xFFFF:
        expected = (-1, -1)
    assert quality_kernels.spacing_counts(buf, WORD_BMP, SPACE_BMP, True, True) == expected
    assert quality_kernels.spacing_counts(buf, WORD_BMP, SPACE_BMP, False, True) == (
        min(expected[0], 0),
        expected[1],
    )


def test_spacing_counts_leave_a_text_beyond_the_bmp_to_the_patterns() -> None:
    buf = np.frombuffer("a \U0001d400 n't".encode(), dtype=np.uint8)  # a letter (\w) outside the BMP
    assert quality_kernels.spacing_counts(buf, WORD_BMP, SPACE_BMP, True, True) == (-1, -1)


def _variants() -> list[str]:
    texts = [p.read_text("utf-8", "replace") for p in sorted(SAMPLE.rglob("*.txt"))]
    for article in ARTICLES.values():
        texts += [
            article,
            treebank(article),
            ocr(article),
            mojibake(article),
            html(article),
            boilerplate(article),
            join_paragraphs(article),
            coref(article, "The city official"),
        ]
    return texts


def test_kernels_match_the_reference_on_the_sample_corpus_and_damaged_articles() -> None:
    signer = Signer(num_perm=256, seed=1)
    for text in _variants():
        repaired = repair(text)
        comparison = comparison_text(repaired)
        words = token_bytes(comparison)
        hashes, count, signature = fingerprint(words, 5, signer)
        folded = skeleton_bytes(words, compiled=False)
        assert bytes(skeleton_bytes(words)) == bytes(folded)
        shingles = shingles_of(hash_token_bytes(folded, compiled=False), 5, compiled=False)
        assert shingles_of(hash_token_bytes(folded), 5).tolist() == shingles.tolist()
        assert hashes.tolist() == hash_token_bytes(words, compiled=False).tolist()
        assert (count, signature.tolist()) == (len(shingles), signer.sign(shingles, compiled=False).tolist())
        assert intrinsic(text, repaired, comparison) == intrinsic(text, repaired, comparison, compiled=False)


@settings(derandomize=True, max_examples=60)
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=80)
        )
    )
)
def test_component_roots_name_scipys_components_by_their_smallest_node(
    graph: tuple[int, list[tuple[int, int]]],
) -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n, pairs = graph
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    roots = table_kernels.component_roots(n, a, b)
    _, labels = connected_components(csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    smallest = {label: min(np.flatnonzero(labels == label)) for label in set(labels.tolist())}
    assert roots.tolist() == [smallest[label] for label in labels.tolist()]


def test_a_run_without_kernels_writes_the_same_outputs(tmp_path: Path) -> None:
    """DEDUP_KERNELS=0 (as without numba) takes the reference path: the same manifest, byte for byte."""
    outputs = []
    for flag in ("1", "0"):
        out = tmp_path / f"out{flag}"
        env = {**os.environ, "DEDUP_KERNELS": flag}
        check = f"from dedup import kernels; assert kernels.AVAILABLE == {flag == '1'}"
        subprocess.run([sys.executable, "-c", check], env=env, check=True)
        cmd = [sys.executable, "-m", "dedup", "run", str(SAMPLE), "--out", str(out), "-q", "-j", "2"]
        subprocess.run(cmd, env=env, check=True)
        outputs.append((out / "manifest.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


def test_kernels_compile_without_a_writable_cache_directory(tmp_path: Path) -> None:
    """A read-only install with no writable cache directory compiles in memory instead of failing."""
    env = {
        **os.environ,
        "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator",  # the only place numba may cache
        "NUMBA_CACHE_DIR": "/proc/dedup-no-cache",  # which cannot be created
    }
    code = (
        "from dedup.signatures import Signer, fingerprint, hash_token_bytes\n"
        "hashes, count, sig = fingerprint(b'a b c d e f', 5, Signer(num_perm=8, seed=1))\n"
        "assert hashes.tolist() == hash_token_bytes(b'a b c d e f', compiled=False).tolist() and count == 2\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tmp_path)


def test_a_cached_kernel_follows_a_change_to_a_helper_in_another_module(tmp_path: Path) -> None:
    """numba's cache checks only the kernel's own file; a helper's file changing must recompile it too."""
    (tmp_path / "helper.py").write_text(
        "from dedup.kernels import jit\n\n@jit(None)\ndef step(x):\n    return x + 1\n"
    )
    (tmp_path / "user.py").write_text(
        'from dedup.kernels import jit\nfrom helper import step\n\n@jit("int64(int64)")\n'
        "def bump(x):\n    return step(x)\n"
    )
    # numba caches both in tmp_path's __pycache__, and dedup's own kernels where they already are.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    code = "import user; print(user.bump(10), user.bump.stats.cache_hits and 'hit' or 'miss')"

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, check=True
        )
        return done.stdout.decode().strip()

    assert run() == "11 miss"
    assert run() == "11 hit"
    (tmp_path / "helper.py").write_text(
        "from dedup.kernels import jit\n\n@jit(None)\ndef step(x):\n    return x + 20\n"
    )
    assert run() == "30 miss"
    assert run() == "30 hit"
    # A helper whose source is gone once imported (a sourceless install): compiled in memory, no crash.
    code = "import os, helper; os.remove('helper.py'); " + code
    assert run() == "30 miss"


# Few words, so that copies share and repeat 3-grams; two are CJK bigrams (not spaced words).
WORDS = [
    "the",
    "mayor",
    "said",
    "tbe",
    "bridge",
    "would",
    "wou1d",
    "open",
    "in",
    "spring",
    "a",
    "\u6771\u4eac",
]


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[list[str]], dict[str, int]]:
    """An article and 1-4 copies of it, each with a few replaced, inserted and deleted words."""
    base = draw(st.lists(st.sampled_from(WORDS), max_size=120))
    members = [base]
    for _ in range(draw(st.integers(1, 4))):
        copy = list(base)
        for op, where, word in draw(
            st.lists(st.tuples(st.integers(0, 2), st.integers(0, 200), st.sampled_from(WORDS)), max_size=8)
        ):
            k = where % (len(copy) + 1)
            if op == 0 and k < len(copy):
                copy[k] = word
            elif op == 1:
                copy.insert(k, word)
            elif k < len(copy):
                del copy[k]
        members.append(copy)
    return members, dict(
        zip(WORDS, draw(st.lists(st.integers(0, 40), min_size=len(WORDS), max_size=len(WORDS))), strict=True)
    )


def _relative_both_ways(
    members: list[list[str]], counts: dict[str, int], wide: bool = False
) -> tuple[list, list]:
    """(``quality.relative`` of the words, ``relative_of_ids`` of their ids), each with its outvoted
    decisions (member, the two rarest words, outcome), the words ``freq_bounds`` sets limits on.

    ``wide``: more ids than the kernels pack, so that the reference code runs on the ids.
    """
    shingles = [shingle_hashes(m, 5) for m in members]
    template = [float(k) for k in range(len(members))]
    vocabulary = sorted({w for m in members for w in m})
    ids = {w: k for k, w in enumerate(vocabulary)}
    frequency = np.array([counts[w] for w in vocabulary], dtype=np.int64)
    if wide:
        frequency = np.concatenate((frequency, np.zeros(1 << align_kernels.ID_BITS, dtype=np.int64)))
    compiled, decisions = relative_of_ids(
        [np.array([ids[w] for w in m[:ALIGN_MAX_TOKENS]], dtype=np.int64) for m in members],
        shingles,
        frequency,
        template,
        [np.array([is_spaced(w) for w in m[:ALIGN_MAX_TOKENS]], dtype=bool) for m in members],
    )
    decided: list[tuple[int, str, str, int]] = []
    reference = relative(members, shingles, lambda ws: [counts[w] for w in ws], template, decided)
    named = [(m, vocabulary[a], vocabulary[b], outcome) for m, a, b, outcome in decisions.tolist()]
    return (reference, decided), (compiled, named)


@given(clusters())
@SETTINGS
def test_compiled_alignment_gives_the_reference_signals(
    cluster: tuple[list[list[str]], dict[str, int]],
) -> None:
    members, counts = cluster
    reference, compiled = _relative_both_ways(members, counts)
    assert compiled == reference


def test_compiled_alignment_matches_on_damaged_articles_and_past_the_packed_ids() -> None:
    for name, article in ARTICLES.items():
        texts = [article, ocr(article), garble(article, "The city official"), truncate(ocr(article), 0.6)]
        members = [comparison_text(repair(t)).split() for t in texts]
        counts = {w: (len(w) * 7 + ord(w[0])) % 13 for m in members for w in m}
        reference, compiled = _relative_both_ways(members, counts)
        assert compiled == reference, name
        assert any(r["outvoted"] > 0 for r in reference[0])  # the damage is seen
        assert {outcome for *_, outcome in reference[1]} == {0, 1, 2}  # decisions of every kind
        assert _relative_both_ways(members, counts, wide=True)[1] == reference


@given(st.lists(st.integers(0, 4), max_size=14), st.lists(st.integers(0, 4), max_size=14))
@SETTINGS
def test_replacements_are_difflibs(a: list[int], b: list[int]) -> None:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    expected = [(a1, a2, b1, b2) for op, a1, a2, b1, b2 in matcher.get_opcodes() if op == "replace"]
    found = align_kernels.replaced(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    assert [tuple(row) for row in found.tolist()] == expected


@given(
    st.lists(st.integers(0, 5), min_size=9, max_size=400),
    st.sampled_from([1, 7, (1 << align_kernels.ID_BITS) - 6]),
)
@SETTINGS
def test_repeated_words_count_the_references_covered_words(small: list[int], offset: int) -> None:
    """Few distinct ids (many repeated 3-grams, many taking the same slot), low and high ids alike."""
    ids = np.array(small, dtype=np.int64) + offset
    covered = align_kernels.repeated_words(ids, 3)
    expected = quality.repeated_phrase_fraction([str(i) for i in ids.tolist()])
    assert max(covered / len(ids) - 0.02, 0.0) == expected


@given(
    st.lists(st.integers(0, 3), max_size=120),
    st.lists(st.integers(0, 3), max_size=120),
    st.sampled_from([0, (1 << align_kernels.ID_BITS) - 4]),
)
@SETTINGS
def test_anchors_are_the_3grams_once_in_both(a: list[int], b: list[int], offset: int) -> None:
    """Four ids: 3-grams seen once on one side and more often on the other, slots shared by many keys."""
    words_a, words_b = [str(i + offset) for i in a], [str(i + offset) for i in b]
    ga, gb = alignment.unique_trigrams(words_a), alignment.unique_trigrams(words_b)
    expected = sorted((ga[g], gb[g]) for g in ga.keys() & gb.keys())
    tables = [align_kernels.trigram_table(np.array(w, dtype=np.int64) + offset) for w in (a, b)]
    assert [tuple(p) for p in align_kernels.anchors(*tables).tolist()] == expected


@given(st.permutations(range(12)))
@SETTINGS
def test_the_longest_chain_of_anchors_is_the_references(js: list[int]) -> None:
    pairs = [(3 * i, j) for i, j in enumerate(js)]
    found = align_kernels.longest_increasing(np.array(pairs, dtype=np.int64).reshape(-1, 2))
    assert [tuple(p) for p in found.tolist()] == alignment.longest_increasing(pairs)


def test_hashed_texts_give_the_tokens_and_shingles_of_the_reference() -> None:
    """Token hashes instead of words: the same tokens, shingles and line counts, CJK and giant texts too."""
    frequency = TokenFrequency(width=1 << 12)
    long_text = (
        "the storm hit the coast " * 20_000 + "\u6771\u4eac\u306e\u5929\u6c17"
    )  # past one hashing piece
    for text in [*_variants(), long_text, "\u6771\u4eac\u306e\u5929\u6c17 q3 caf\u00e9\nhome | news"]:
        frequency.add(line_keys(comparison_text(repair(text))))
        reference = compared(text, 5, frequency, 1)
        fast = hashed_from(comparison_text(repair(text)), 5, frequency, 1)
        words = reference.tokens[:ALIGN_MAX_TOKENS]
        assert fast.hashes.tolist() == token_hashes(words).tolist()
        assert fast.shingles.tolist() == reference.shingles.tolist()
        assert fast.lines.tolist() == reference.lines.tolist()
        spaced = [is_spaced(w) for w in words]
        assert (fast.spaced.tolist() if fast.spaced is not None else [True] * len(words)) == spaced


# Words of many scripts, spaced or not, with what comparison_text folds (NFKC, case, a Kelvin sign, a
# ligature, combining marks) and what separates tokens (curly quotes, dashes, no-break spaces).
MIXED = st.text(
    alphabet="ab rn1 _\u00e9\u00df\u0130K\u212a\ufb01e\u0301\u0416\u03c3\u00a0\u2019\u2014\u0e01\u0e32"
    "\u1000\u1780\u3042\u30ab\u4e00\u6771\uf900\U00020001\n",
    max_size=120,
)


@given(MIXED)
@SETTINGS
def test_hashed_texts_of_any_script_give_the_reference_tokens_and_spaced_words(text: str) -> None:
    frequency = TokenFrequency(width=1 << 10)
    reference = compared(text, 3, frequency, 1)
    fast = hashed_from(comparison_text(repair(text)), 3, frequency, 1)
    words = reference.tokens[:ALIGN_MAX_TOKENS]
    assert fast.hashes.tolist() == token_hashes(words).tolist()
    assert fast.shingles.tolist() == reference.shingles.tolist()
    spaced = [is_spaced(w) for w in words]
    assert (fast.spaced.tolist() if fast.spaced is not None else [True] * len(words)) == spaced


# The patterns as first written (a look-behind first): the reference for the faster forms.
READABLE_PATTERNS = {
    "treebank": re.compile(
        r"(?<=\w) (?:[,.;:!?%](?=\s|$)|[)\]]|n['\u2019]t\b|['\u2019](?:s|re|ve|ll|d|m)\b)|[(\[] (?=\w)|``|''",
        re.IGNORECASE | re.MULTILINE,
    ),
    "gaps": re.compile(
        r"(?<=\w)[^\S\n]{2,}(?=\w)|(?<=\w )[\"\u201c\u201d][^\S\n]*[\"\u201c\u201d](?= \w)|\([^\S\n]*\)"
    ),
}


@given(texts | st.text(alphabet=" \t\n\u00a0ab1_,.'`()[]\"\u201c\u201d\u2019n", max_size=40))
@SETTINGS
def test_the_signal_patterns_match_where_their_readable_forms_do(text: str) -> None:
    for name, readable in READABLE_PATTERNS.items():
        fast = quality.PATTERNS[name]
        assert [m.span() for m in fast.finditer(text)] == [m.span() for m in readable.finditer(text)], name


@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=60),
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4),
    st.integers(1, 2**32 - 1),
)
@SETTINGS
def test_count_min_add_is_add_at_per_row(hashes: list[int], multipliers: list[int], times_seed: int) -> None:
    width_bits = 3  # a tiny row: tokens share cells
    h = np.array(hashes, dtype=np.uint64)
    m = np.array(multipliers, dtype=np.uint64)
    times = ((np.arange(len(h), dtype=np.uint64) * np.uint64(times_seed)) % np.uint64(2**32)).astype(
        np.uint32
    )
    shift = np.uint64(64 - width_bits)
    table = np.full((len(m), 1 << width_bits), 2**32 - 5, dtype=np.uint32)  # wraps as uint32 does
    reference = table.copy()
    for r in range(len(m)):
        np.add.at(reference[r], ((h * m[r]) >> shift).astype(np.intp), times)
    table_kernels.count_min_add(table, h, times, m, shift)
    assert np.array_equal(table, reference)


@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=60),
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=5),
)
@SETTINGS
def test_count_min_get_is_the_smallest_cell(hashes: list[int], multipliers: list[int]) -> None:
    h, m, shift = np.array(hashes, dtype=np.uint64), np.array(multipliers, dtype=np.uint64), np.uint64(64 - 4)
    table = np.random.default_rng(len(h)).integers(0, 2**32, (len(m), 1 << 4), dtype=np.uint32)
    cells = [((h * m[r]) >> shift).astype(np.intp) for r in range(len(m))]
    reference = np.min([table[r][cells[r]] for r in range(len(m))], axis=0) if len(h) else []
    assert table_kernels.count_min_get(table, h, m, shift).tolist() == list(reference)


@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=300),
    st.lists(st.integers(0, 2**64 - 1), max_size=40),
    st.integers(0, 40),
    st.integers(10, 16),
)
@settings(max_examples=200, deadline=None)
def test_holding_finds_exactly_the_keys_wanted(
    keys: list[int], wanted: list[int], shared: int, bits: int
) -> None:
    """Every key equal to a wanted one, in order, whatever the flags' table lets through (few bits:
    most keys share a slot with a wanted one, and the binary search decides)."""
    wanted = wanted + keys[:shared]  # some keys wanted, some twice
    k, w = np.array(keys, dtype=np.uint64), np.array(wanted, dtype=np.uint64)
    expected = np.flatnonzero(np.isin(k, w)).tolist()
    assert table_kernels.holding(k, np.sort(w), bits).tolist() == expected
    assert index.holding(k, w).tolist() == expected


@given(
    MIXED
    | st.text(max_size=200)
    | st.text(alphabet="a\u00e9\u2014\u00a0\ud800\u0301\U0001f600 _", max_size=40)
)
@SETTINGS
def test_token_bytes_make_each_run_of_other_non_ascii_characters_one_space(text: str) -> None:
    """Word characters by the patterns' \\w (letters, digits, marks that are not), a lone surrogate, and
    characters beyond the BMP (there the pattern decides)."""
    assert token_bytes(text) == re.sub(r"[^\x00-\x7f\w]+", " ", text).encode("utf-8")
