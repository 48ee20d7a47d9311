"""The compiled kernels give exactly what the numpy/regex reference gives (dedup/kernels.py)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ARTICLES, boilerplate, coref, html, join_paragraphs, mojibake, ocr, treebank
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup import kernels, quality_kernels
from dedup.normalize import comparison_text, repair, skeleton_bytes, token_bytes
from dedup.quality import intrinsic
from dedup.signatures import Signer, fingerprint, hash_token_bytes, shingles_of

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
    "\u00e2\u20ac\u2122", "\ud800", "x\u00e91", "1\u00e9a",
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
    shingles = kernels.shingles(folded, 2, mult)
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
    comparison = comparison_text(repaired)
    assert intrinsic(text, repaired, comparison) == intrinsic(text, repaired, comparison, compiled=False)


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
