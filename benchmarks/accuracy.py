"""Accuracy benchmark: dedup against a labelled corpus of damaged real news, next to simple baselines.

    python benchmarks/accuracy.py [--cache DIR] [--seed N] [--work DIR] [--jobs N]
                                  [--skip-dedup] [--show-errors] [--json FILE]
    python benchmarks/accuracy.py --corpus corpora/sample    # score the committed sample instead
    python benchmarks/accuracy.py --scrape   # HTML pages in site templates, other encodings, Chinese

Builds (or reuses from the cache) the labelled news corpus (corpora/generate.py), runs
`python -m dedup run CORPUS --out OUT --force --quiet` exactly as a user would, reads
OUT/manifest.jsonl and scores it against the ground truth: pairwise precision/recall/F1 over all
unordered pairs of files, adjusted Rand index, and canonical accuracy (is the kept copy an
acceptable one). Baselines show what the task costs without dedup: exact SHA-256 grouping, and
MinHash LSH at 0.8 (misses heavily damaged copies) and at 0.3 with chaining (over-merges: the
`chained` pattern's bridge pages link unrelated articles). The per-pattern table shows dedup and
both LSH baselines. With --scrape the corpus is corpora/scrape.py's (html_site, encoding, cjk
patterns), and the HTML extractor's cost per page and dedup's HTML throughput are printed too.
Exits 1 when dedup is below the thresholds below.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpora.generate import (  # noqa: E402
    GENERATOR_VERSION,
    NEWS_N_BASE,
    Truth,
    default_truth_path,
    load_truth,
    news_corpus,
)
from corpora.scrape import SCRAPE_VERSION, scrape_corpus  # noqa: E402
from corpora.sources import DEFAULT_CACHE  # noqa: E402

MIN_PAIR_PRECISION = 0.99
MIN_PAIR_RECALL = 0.99
MIN_CANONICAL_ACCURACY = 0.95

Prediction = dict[str, tuple[str, bool]]
"""path -> (predicted cluster id, is canonical)."""


@dataclass
class Scores:
    """Metrics of one method on one corpus."""

    method: str
    precision: float
    recall: float
    f1: float
    ari: float
    canonical: float
    files: int
    wall: float
    per_pattern: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- metrics


def _pairs(n: int) -> int:
    return math.comb(n, 2)


def pair_counts(truth: Mapping[str, str], pred: Mapping[str, str]) -> tuple[int, int, int]:
    """(true positives, true pairs, predicted pairs) over all unordered pairs of files."""
    cells = Counter((truth[p], pred[p]) for p in truth)
    tp = sum(_pairs(n) for n in cells.values())
    true_pairs = sum(_pairs(n) for n in Counter(truth.values()).values())
    pred_pairs = sum(_pairs(n) for n in Counter(pred[p] for p in truth).values())
    return tp, true_pairs, pred_pairs


def adjusted_rand_index(truth: Mapping[str, str], pred: Mapping[str, str]) -> float:
    """Hubert-Arabie adjusted Rand index, computed from the contingency table."""
    tp, a, b = pair_counts(truth, pred)
    total = _pairs(len(truth))
    if total == 0:
        return 1.0
    expected = a * b / total
    best = (a + b) / 2
    return 1.0 if best == expected else (tp - expected) / (best - expected)


def _ratio(num: float, den: float, empty: float = 1.0) -> float:
    return num / den if den else empty


def canonical_choices(truth: Truth, pred: Prediction) -> dict[str, str | None]:
    """For each true cluster with >= 2 members: the canonical of the predicted cluster holding most of it.

    Ties go to the predicted cluster that holds the smallest member path.
    """
    canon: dict[str, str] = {}
    for path in sorted(pred):
        cid, is_canon = pred[path]
        if is_canon and cid not in canon:
            canon[cid] = path
    out: dict[str, str | None] = {}
    for tcid, cl in truth["clusters"].items():
        members = sorted(cl["members"])
        if len(members) < 2:
            continue
        counts = Counter(pred[m][0] for m in members)
        first: dict[str, str] = {}
        for m in members:
            first.setdefault(pred[m][0], m)
        best = min(counts, key=lambda c: (-counts[c], first[c]))
        out[tcid] = canon.get(best)
    return out


def score(method: str, truth: Truth, pred: Prediction, wall: float, notes: Iterable[str] = ()) -> Scores:
    """All metrics for one method, overall and per pattern."""
    files = truth["files"]
    t_lab = {p: f["cluster"] for p, f in files.items()}
    p_lab = {p: pred[p][0] for p in files}
    tp, true_pairs, pred_pairs = pair_counts(t_lab, p_lab)
    precision = _ratio(tp, pred_pairs)
    recall = _ratio(tp, true_pairs)
    f1 = _ratio(2 * precision * recall, precision + recall, 0.0)
    chosen = canonical_choices(truth, pred)
    ok = {c: chosen[c] in truth["clusters"][c]["acceptable"] for c in chosen}
    per: dict[str, dict[str, Any]] = {}
    pred_members: dict[str, list[str]] = defaultdict(list)
    for p in files:
        pred_members[p_lab[p]].append(p)
    patterns = sorted({c["pattern"] for c in truth["clusters"].values()})
    for pat in patterns:
        cids = [c for c, cl in truth["clusters"].items() if cl["pattern"] == pat]
        in_pat = {p for c in cids for p in truth["clusters"][c]["members"]}
        cells = Counter((t_lab[p], p_lab[p]) for p in in_pat)
        tp_p = sum(_pairs(n) for n in cells.values())
        true_p = sum(_pairs(len(truth["clusters"][c]["members"])) for c in cids)
        touching = 0
        for members in pred_members.values():
            k = sum(1 for m in members if m in in_pat)
            if k:
                touching += _pairs(len(members)) - _pairs(len(members) - k)
        multi = [c for c in cids if c in ok]
        per[pat] = {
            "clusters": len(cids),
            "files": len(in_pat),
            "pair_recall": _ratio(tp_p, true_p, float("nan")),
            "pair_precision": _ratio(tp_p, touching, float("nan")),
            "true_pairs": true_p,
            "pred_pairs_touching": touching,
            "canonical": _ratio(sum(ok[c] for c in multi), len(multi), float("nan")),
            "canonical_clusters": len(multi),
        }
    return Scores(
        method=method,
        precision=precision,
        recall=recall,
        f1=f1,
        ari=adjusted_rand_index(t_lab, p_lab),
        canonical=_ratio(sum(ok.values()), len(ok)),
        files=len(files),
        wall=wall,
        per_pattern=per,
        notes=list(notes),
    )


# ---------------------------------------------------------------- baselines


class UnionFind:
    """Disjoint sets over 0..n-1, for chaining LSH candidate pairs into clusters."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def keep_first(groups: Mapping[str, list[str]]) -> Prediction:
    """Predicted clusters with the first path in sorted order as canonical (the naive policy)."""
    pred: Prediction = {}
    for cid, members in groups.items():
        first = min(members)
        for m in members:
            pred[m] = (cid, m == first)
    return pred


def exact_sha256(corpus: Path, paths: Sequence[str]) -> Prediction:
    """Group byte-identical files."""
    groups: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        groups[hashlib.sha256((corpus / p).read_bytes()).hexdigest()].append(p)
    return keep_first(groups)


def word_shingles(text: str, k: int = 5) -> list[bytes]:
    """Lower-case whitespace word k-grams, UTF-8 encoded (the whole text if it has fewer than k words)."""
    toks = text.lower().split()
    if len(toks) < k:
        return [" ".join(toks).encode("utf-8")]
    return sorted({" ".join(toks[i : i + k]).encode("utf-8") for i in range(len(toks) - k + 1)})


def minhashes(corpus: Path, paths: Sequence[str], num_perm: int = 128) -> list[Any]:
    """One datasketch MinHash per file over its word 5-grams."""
    from datasketch import MinHash

    out = []
    for p in paths:
        m = MinHash(num_perm=num_perm)
        m.update_batch(word_shingles((corpus / p).read_text(encoding="utf-8", errors="replace")))
        out.append(m)
    return out


def lsh_clusters(
    paths: Sequence[str], hashes: Sequence[Any], threshold: float, num_perm: int = 128
) -> Prediction:
    """MinHashLSH at a threshold, union-find over every query result (so candidates chain)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, m in enumerate(hashes):
        lsh.insert(i, m)
    uf = UnionFind(len(paths))
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            uf.union(i, j)
    groups: dict[str, list[str]] = defaultdict(list)
    for i, p in enumerate(paths):
        groups[f"c{uf.find(i)}"].append(p)
    return keep_first(groups)


# ---------------------------------------------------------------- dedup


class DedupFailed(RuntimeError):
    """dedup exited non-zero or wrote an unusable manifest."""


def _rel(path: str, corpus: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(corpus.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    s = p.as_posix()
    prefix = corpus.as_posix().rstrip("/") + "/"
    return s[len(prefix) :] if s.startswith(prefix) else s


def run_dedup(corpus: Path, out: Path, jobs: int | None) -> tuple[float, list[dict[str, Any]]]:
    """Run dedup as a user would and return its wall time and manifest records."""
    cmd = [sys.executable, "-m", "dedup", "run", str(corpus), "--out", str(out), "--force", "--quiet"]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise DedupFailed(
            f"`{' '.join(cmd)}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    manifest = out / "manifest.jsonl"
    if not manifest.exists():
        raise DedupFailed(f"dedup exited 0 but wrote no {manifest}")
    records = [orjson.loads(line) for line in manifest.read_bytes().splitlines() if line.strip()]
    return wall, records


def dedup_prediction(
    records: list[dict[str, Any]], corpus: Path, paths: Sequence[str]
) -> tuple[Prediction, list[str]]:
    """Turn manifest records into a prediction; files missing or not "ok" become singletons."""
    notes: list[str] = []
    pred: Prediction = {}
    bad_status: Counter[str] = Counter()
    for r in records:
        rel = _rel(str(r.get("path", "")), corpus)
        if r.get("status", "ok") != "ok" or r.get("cluster") is None:
            bad_status[str(r.get("status"))] += 1
            continue
        pred[rel] = (f"d:{r['cluster']}", bool(r.get("canonical")))
    wanted = set(paths)
    extra = sorted(set(pred) - wanted)
    if extra:
        notes.append(f"{len(extra)} manifest paths not in the corpus, e.g. {extra[:3]}")
    missing = [p for p in paths if p not in pred]
    if bad_status:
        notes.append(f"files not ok: {dict(bad_status)}")
    if missing:
        notes.append(
            f"{len(missing)} corpus files without an ok record (scored as singletons), e.g. {missing[:3]}"
        )
    for p in missing:
        pred[p] = (f"missing:{p}", True)
    n_canon = Counter(cid for p, (cid, c) in pred.items() if c and p in wanted)
    clusters = {cid for p, (cid, _) in pred.items() if p in wanted}
    wrong = [c for c in clusters if n_canon[c] != 1]
    if wrong:
        notes.append(f"{len(wrong)} predicted clusters without exactly one canonical")
    return {p: pred[p] for p in paths}, notes


# ---------------------------------------------------------------- errors


def _describe(truth: Truth, path: str) -> str:
    f = truth["files"][path]
    role = f"bridge:{f['bridge']}" if "bridge" in f else f["role"]
    return f"{path} [{f['cluster']} {f['pattern']} {role} {'+'.join(f['damage']) or 'clean'}]"


def _round_robin(items: list[tuple[str, Any]], limit: int) -> list[Any]:
    """Up to limit items, taking one per key in turn, so every pattern shows up."""
    by: dict[str, list[Any]] = defaultdict(list)
    for k, v in items:
        by[k].append(v)
    out: list[Any] = []
    while len(out) < limit and any(by.values()):
        for k in sorted(by):
            if by[k] and len(out) < limit:
                out.append(by[k].pop(0))
    return out


def error_report(truth: Truth, pred: Prediction, limit: int = 15) -> dict[str, Any]:
    """False-negative and false-positive pairs and wrong canonicals, with paths, pattern and damage."""
    fn: list[tuple[str, tuple[str, str]]] = []
    for cid in sorted(truth["clusters"]):
        cl = truth["clusters"][cid]
        ms = cl["members"]
        for i in range(len(ms)):
            for j in range(i + 1, len(ms)):
                if pred[ms[i]][0] != pred[ms[j]][0]:
                    fn.append((cl["pattern"], (ms[i], ms[j])))
    fp: list[tuple[str, tuple[str, str]]] = []
    groups: dict[str, list[str]] = defaultdict(list)
    for p in sorted(pred):
        groups[pred[p][0]].append(p)
    for members in groups.values():
        by_truth: dict[str, list[str]] = defaultdict(list)
        for m in members:
            by_truth[truth["files"][m]["cluster"]].append(m)
        if len(by_truth) < 2:
            continue
        keys = sorted(by_truth)
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                x, y = by_truth[keys[a]][0], by_truth[keys[b]][0]
                fp.append((truth["files"][x]["pattern"], (x, y)))
                if len(fp) > 5000:
                    break
    chosen = canonical_choices(truth, pred)
    wrong = [
        (truth["clusters"][c]["pattern"], (c, chosen[c]))
        for c in sorted(chosen)
        if chosen[c] not in truth["clusters"][c]["acceptable"]
    ]
    damage_fn: Counter[str] = Counter()
    for _, (x, y) in fn:
        for p in (x, y):
            damage_fn["+".join(truth["files"][p]["damage"]) or "clean"] += 1
    kept_wrong: Counter[str] = Counter()
    for _, (_, path) in wrong:
        if path is not None:
            f = truth["files"][path]
            kept_wrong[f"{f['role']}:{'+'.join(f['damage']) or 'clean'}"] += 1
    return {
        "false_negative_pairs": len(fn),
        "false_positive_pairs": len(fp),
        "wrong_canonicals": len(wrong),
        "fn_damage": dict(damage_fn.most_common(12)),
        "wrong_kept": dict(kept_wrong.most_common(12)),
        "fn": [[_describe(truth, a), _describe(truth, b)] for a, b in _round_robin(fn, limit)],
        "fp": [[_describe(truth, a), _describe(truth, b)] for a, b in _round_robin(fp, limit)],
        "canonical": [
            {
                "cluster": c,
                "kept": _describe(truth, k) if k else None,
                "acceptable": [_describe(truth, a) for a in truth["clusters"][c]["acceptable"]],
            }
            for c, k in _round_robin(wrong, limit)
        ],
    }


def print_errors(rep: dict[str, Any]) -> None:
    """Human-readable error listing for tuning dedup."""
    print(
        f"\ndedup errors: {rep['false_negative_pairs']} false-negative pairs, "
        f"{rep['false_positive_pairs']} false-positive pairs, {rep['wrong_canonicals']} wrong canonicals"
    )
    if rep["fn_damage"]:
        print("  damage of files in false-negative pairs:", rep["fn_damage"])
    if rep["wrong_kept"]:
        print("  wrongly kept (role:damage):", rep["wrong_kept"])
    for title, key in (
        ("false negatives (same article, not merged)", "fn"),
        ("false positives (merged)", "fp"),
    ):
        if rep[key]:
            print(f"\n{title}:")
            for a, b in rep[key]:
                print(f"  {a}\n    ~ {b}")
    if rep["canonical"]:
        print("\nwrong canonicals:")
        for w in rep["canonical"]:
            print(f"  {w['cluster']}: kept {w['kept']}")
            for a in w["acceptable"]:
                print(f"      acceptable {a}")


# ---------------------------------------------------------------- report


def _f(x: float) -> str:
    return "    -" if x != x else f"{x:.3f}"


def print_tables(results: list[Scores], per_pattern_for: Sequence[str]) -> None:
    """The main table (one row per method) and the per-pattern table."""
    head = f"{'method':<30} | {'pairs P':>7} | {'R':>5} | {'F1':>5} | {'ARI':>5} | {'canon acc':>9} | "
    head += f"{'files':>5} | {'wall s':>6}"
    print(head)
    print("-" * len(head))
    for s in results:
        print(
            f"{s.method:<30} | {_f(s.precision):>7} | {_f(s.recall):>5} | {_f(s.f1):>5} | {_f(s.ari):>5} | "
            f"{_f(s.canonical):>9} | {s.files:>5} | {s.wall:>6.1f}"
        )
    for s in results:
        for n in s.notes:
            print(f"  note ({s.method}): {n}")
    rows = [s for s in results if s.method in per_pattern_for]
    if not rows:
        return
    print()
    head = f"{'pattern':<22} | {'clusters':>8} | " + " | ".join(
        f"{_short(s.method) + ' pair R':>16} | {'P':>5} | {'canon':>5}" for s in rows
    )
    print(head)
    print("-" * len(head))
    for pat in rows[0].per_pattern:
        pp = rows[0].per_pattern[pat]
        cells = " | ".join(
            f"{_f(s.per_pattern[pat]['pair_recall']):>16} | {_f(s.per_pattern[pat]['pair_precision']):>5} | "
            f"{_f(s.per_pattern[pat]['canonical']):>5}"
            for s in rows
        )
        print(f"{pat:<22} | {pp['clusters']:>8} | {cells}")


def html_cost(corpus: Path, work: Path, jobs: int | None) -> None:
    """The extractor's cost per page (in this process) and dedup's end-to-end rate on the pages alone."""
    from benchmarks.html_extract import load_pages, measure

    pages = load_pages(corpus)
    name, us, leaked, lost = measure(pages, only_dedup=True)[0]
    wall, records = run_dedup(corpus / "pages", work / "pages-out", jobs)
    print(
        f"\nHTML: {name} {us:,.0f} us/page ({leaked} of {len(pages)} pages leaked template text, {lost} lost "
        f"their last paragraph); dedup on the {len(records)} pages alone: {wall:.1f} s, "
        f"{len(records) / wall:,.0f} pages/s end to end (process start included)"
    )


def _short(method: str) -> str:
    return method.split(" ")[0].replace("minhash-", "")


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str] | None = None) -> int:
    """Build or reuse the corpus, run every method, print the tables, exit 1 if dedup misses a threshold."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloads and generated corpora")
    ap.add_argument("--seed", type=int, default=1, help="corpus generator seed")
    ap.add_argument("--n-base", type=int, default=NEWS_N_BASE, help="base articles in the corpus")
    ap.add_argument(
        "--corpus", type=Path, default=None, help="score this labelled corpus instead (with --truth)"
    )
    ap.add_argument(
        "--truth", type=Path, default=None, help="truth file of --corpus (default CORPUS_truth.json)"
    )
    ap.add_argument(
        "--scrape", action="store_true", help="score the scrape corpus (HTML, encodings, Chinese)"
    )
    ap.add_argument("--work", type=Path, default=None, help="dedup output goes to WORK/out")
    ap.add_argument("--jobs", type=int, default=None, help="passed to dedup as --jobs")
    ap.add_argument("--skip-dedup", action="store_true", help="only score the baselines")
    ap.add_argument("--no-chain", action="store_true", help="skip the minhash-lsh-0.3 + chain baseline")
    ap.add_argument("--show-errors", action="store_true", help="list dedup's misclassified groups")
    ap.add_argument("--json", type=Path, default=None, help="also write all metrics to this JSON file")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    if args.corpus is not None:
        corpus, truth_path = args.corpus, args.truth or default_truth_path(args.corpus)
    elif args.scrape:
        corpus, truth_path = scrape_corpus(args.cache, args.seed)
    else:
        corpus, truth_path = news_corpus(args.cache, args.seed, args.n_base)
    truth = load_truth(truth_path)
    t_corpus = time.perf_counter() - t0
    paths = sorted(truth["files"])
    name = (
        corpus.name
        if args.corpus is not None
        else f"scrape-s{args.seed}-v{SCRAPE_VERSION}"
        if args.scrape
        else f"news-s{args.seed}-v{GENERATOR_VERSION}"
    )
    work = args.work or args.cache / "work" / name
    n_multi = sum(len(c["members"]) for c in truth["clusters"].values() if len(c["members"]) > 1)
    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    machine = f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} cpus"
    print(f"machine: {machine}, Python {platform.python_version()}")
    print(f"datasketch {_version('datasketch')}, generator v{truth.get('generator')}, seed {truth['seed']}")
    print(
        f"corpus: {corpus} ({len(paths)} files, {len(truth['clusters'])} true clusters, "
        f"{n_multi} files in multi-member clusters; ready in {t_corpus:.1f} s)\n"
    )

    results: list[Scores] = []
    failures: list[str] = []
    report: dict[str, Any] | None = None
    dedup_error: str | None = None
    if not args.skip_dedup:
        try:
            wall, records = run_dedup(corpus, work / "out", args.jobs)
            pred, notes = dedup_prediction(records, corpus, paths)
            results.append(score("dedup", truth, pred, wall, notes))
            if args.show_errors or args.json:
                report = error_report(truth, pred)
        except DedupFailed as err:
            dedup_error = str(err)
            failures.append("dedup did not run")

    t0 = time.perf_counter()
    results.append(
        score("exact-sha256 + keep-first", truth, exact_sha256(corpus, paths), time.perf_counter() - t0)
    )
    t0 = time.perf_counter()
    hashes = minhashes(corpus, paths)
    t_hash = time.perf_counter() - t0
    thresholds = [(0.8, "keep-first")] + ([] if args.no_chain else [(0.3, "chain")])
    for thr, label in thresholds:
        t0 = time.perf_counter()
        pred = lsh_clusters(paths, hashes, thr)
        results.append(score(f"minhash-lsh-{thr} + {label}", truth, pred, t_hash + time.perf_counter() - t0))

    print_tables(results, ["dedup", "minhash-lsh-0.8 + keep-first", "minhash-lsh-0.3 + chain"])
    if dedup_error:
        print(f"\ndedup failed:\n{dedup_error}")
    dedup = next((s for s in results if s.method == "dedup"), None)
    if dedup is not None:
        for name, got, need in (
            ("pair precision", dedup.precision, MIN_PAIR_PRECISION),
            ("pair recall", dedup.recall, MIN_PAIR_RECALL),
            ("canonical accuracy", dedup.canonical, MIN_CANONICAL_ACCURACY),
        ):
            if got < need:
                failures.append(f"{name} {got:.4f} < {need}")
    if report is not None and args.show_errors:
        print_errors(report)
    if args.scrape and not args.skip_dedup:
        html_cost(corpus, work, args.jobs)
    if args.json:
        doc = {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "datasketch": _version("datasketch"),
            "generator": truth.get("generator"),
            "seed": truth["seed"],
            "corpus": {"path": str(corpus), "files": len(paths), "clusters": len(truth["clusters"])},
            "thresholds": {
                "pair_precision": MIN_PAIR_PRECISION,
                "pair_recall": MIN_PAIR_RECALL,
                "canonical_accuracy": MIN_CANONICAL_ACCURACY,
            },
            "methods": {s.method: {k: v for k, v in vars(s).items() if k != "method"} for s in results},
            "dedup_error": dedup_error,
            "dedup_errors": report,
            "failures": failures,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if failures:
        print("\nFAILED: " + "; ".join(failures))
        return 1
    if dedup is not None:
        print("\nOK: dedup meets every threshold")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
