"""Do two versions of dedup write the same outputs? Runs both on the same inputs and diffs everything.

    python benchmarks/equivalence.py [--base 81e5894] [--head .] [--size 10000] [--jobs 1,2]
                                     [--scenarios sample,inputs,scale,cron] [--cache DIR] [--keep]

BASE and HEAD are git revisions of this repository (extracted with ``git archive``
into a temporary directory) or ``.``, this checkout as it is on disk. Both run
with this interpreter (``python -m dedup run`` with ``PYTHONPATH`` set to their
source tree), on the same inputs at the same absolute paths:

- ``sample``: ``corpora/sample`` with each ``--jobs`` value (and BASE's jobs 1
  against HEAD's every jobs value, so that jobs 1 vs 2 is checked as well);
- ``inputs``: the sample's files dealt round-robin into seven directories, given as
  seven INPUTs to one run (documents numbered per INPUT meet in one pass-1 batch);
- ``scale``: the scale corpus of SIZE articles (``corpora/scale.py``, generated
  or reused from the cache ``benchmarks/throughput.py`` uses), with the largest
  ``--jobs`` value;
- ``cron``: three ``--state`` runs over a directory and a JSONL file built from the
  sample: run 1 holds most of it, run 2 adds files (clean copies of canonicals held
  back, so canonicals are superseded), deletes files (canonicals among them), edits
  files and JSONL lines and shifts the JSONL's lines, run 3 brings a deleted file
  back and makes more of each change, run 4 changes nothing. Inputs are restored from snapshots (mtimes
  kept) before each side's run, so both sides see the same files.

Compared byte for byte: ``manifest.jsonl``, every file under ``canonical/`` and
``runs/``, ``summary.json`` without its timings, and the state's rows (documents,
supersessions, blobs, meta, and runs without their clock times; the token
frequency counters as counters, whatever compression stored them). Prints one
line per comparison and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpora.scale import corpus_path, generate_scale  # noqa: E402
from corpora.sources import DEFAULT_CACHE  # noqa: E402


def checkout(rev: str, into: Path) -> Path:
    """The source tree of ``rev`` (``.``: this checkout, used in place)."""
    if rev == ".":
        return REPO
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def dedup(src: Path, inputs: list[Path], out: Path, *options: str) -> None:
    """One ``dedup run`` from the source tree ``src``."""
    cmd = [sys.executable, "-m", "dedup", "run", *map(str, inputs), "--out", str(out), "-q", *options]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dedup from {src} failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")


def outputs(out: Path) -> dict[str, bytes]:
    """Every output file, by path; summary.json without its timings."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    summary = orjson.loads(files.pop("summary.json"))
    summary.pop("timings_s")
    files["summary.json (no timings)"] = orjson.dumps(summary, option=orjson.OPT_SORT_KEYS)
    files.pop(".lock", None)
    return files


def state_rows(state: Path) -> dict[str, bytes]:
    """The state database's rows, table by table (the runs' clock times left out)."""
    db = sqlite3.connect(state / "state.sqlite")
    try:
        queries = {
            "state documents": "SELECT * FROM documents ORDER BY key",
            "state supersessions": "SELECT * FROM supersessions ORDER BY rowid",
            "state runs": "SELECT run, inputs, counts FROM runs ORDER BY run",
            "state blobs": "SELECT * FROM blobs ORDER BY key",
            "state meta": "SELECT * FROM meta ORDER BY key",
        }
        rows = {name: db.execute(sql).fetchall() for name, sql in queries.items()}
        blobs = rows["state blobs"]
        rows["state blobs"] = [(k, _counters(v) if k == "token_frequency" else v) for k, v in blobs]
        return {name: repr(got).encode() for name, got in rows.items()}
    finally:
        db.close()


def _counters(blob: bytes) -> bytes:
    """The token frequency table a stored blob holds, whichever compression stored it (zlib or zstd)."""
    from dedup.frequency import TokenFrequency

    table = TokenFrequency()
    table.loads(blob)
    return table.table.tobytes()


def diff(label: str, a: dict[str, bytes], b: dict[str, bytes]) -> bool:
    """Print one line: same, or what differs."""
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    files = sum(1 for k in a if k.startswith("canonical/"))
    if not differ:
        print(f"{label:<62} identical ({len(a)} files/tables, {files} canonical copies)")
        return True
    shown = ", ".join(differ[:5]) + (f" ... ({len(differ)} in all)" if len(differ) > 5 else "")
    print(f"{label:<62} DIFFERENT: {shown}")
    return False


def dealt(sample: Path, into: Path, ways: int) -> list[Path]:
    """The sample's files dealt round-robin (in path order, mtimes kept) into ``ways`` directories."""
    dirs = [into / f"part{k}" for k in range(ways)]
    for k, path in enumerate(sorted(p for p in sample.rglob("*") if p.is_file())):
        target = dirs[k % ways] / path.relative_to(sample)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dirs


def snapshot(root: Path, into: Path) -> None:
    """Copy a tree with its mtimes (cron mode trusts size and mtime)."""
    shutil.copytree(root, into, copy_function=shutil.copy2)


def restore(snap: Path, root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    snapshot(snap, root)


def cron_stages(sample: Path, manifest: list[dict[str, Any]], work: Path) -> list[Path]:
    """Three snapshots of a cron input: a directory ``docs`` and a JSONL ``feed.jsonl``."""
    by_cluster: dict[str, list[dict[str, Any]]] = {}
    for r in manifest:
        by_cluster.setdefault(r["cluster"], []).append(r)
    multi = sorted(c for c, members in by_cluster.items() if len(members) > 1)
    canon = {c: next(r["path"] for r in by_cluster[c] if r["canonical"]) for c in multi}
    held = [canon[c] for c in multi[0:24:3]]  # clean copies arriving later: canonicals superseded
    deleted2 = [canon[c] for c in multi[1:24:4]] + [r["path"] for r in manifest[5:200:40]]  # gone
    edited2 = [r["path"] for r in manifest[7:260:30]]
    deleted3 = [canon[c] for c in multi[2:30:5]] + [r["path"] for r in manifest[11:260:50]]
    edited3 = [r["path"] for r in manifest[13:260:37]]
    back3 = deleted2[:2]  # deleted in run 2, back in run 3

    texts = {r["path"]: (sample / r["path"]).read_text(encoding="utf-8") for r in manifest}
    names = sorted(texts)
    feed_ids = names[::9]

    def write(stage: Path, present: list[str], edits: dict[str, str], feed: list[tuple[str, str]]) -> None:
        for path in present:
            target = stage / "docs" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path in edits:
                target.write_text(edits[path], encoding="utf-8")
            else:
                shutil.copy2(sample / path, target)
        with open(stage / "feed.jsonl", "wb") as fh:
            for key, text in feed:
                fh.write(orjson.dumps({"id": key, "text": text}) + b"\n")

    stages = [work / f"stage{k}" for k in (1, 2, 3)]
    first = [p for p in names if p not in held]
    write(stages[0], first, {}, [(k, texts[k]) for k in feed_ids])
    second = [p for p in names if p not in deleted2]
    edits2 = {p: texts[p] + "\n\nUpdated: the story was revised this morning.\n" for p in edited2}
    feed2 = [("new-1", texts[names[3]]), *[(k, texts[k]) for k in feed_ids[1:]]]  # lines shift, one goes
    feed2[4] = (feed2[4][0], feed2[4][1][: len(feed2[4][1]) // 2])  # a line edited: truncated
    write(stages[1], second, edits2, feed2)
    third = [p for p in names if p not in deleted3 and (p not in deleted2 or p in back3)]
    edits3 = {**edits2, **{p: texts[p].replace(" the ", " tbe ", 3) for p in edited3}}
    write(stages[2], third, edits3, [*feed2[2:], ("new-2", texts[names[40]])])
    return stages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--base", default="81e5894", help="revision to compare against (default: before the split)"
    )
    ap.add_argument("--head", default=".", help="revision to check ('.': this checkout as it is)")
    ap.add_argument("--size", type=int, default=10_000, help="scale corpus size")
    ap.add_argument("--jobs", default="1,2", help="comma-separated --jobs values")
    ap.add_argument("--scenarios", default="sample,inputs,scale,cron")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="as benchmarks/throughput.py")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    jobs = [int(j) for j in args.jobs.split(",")]
    scenarios = args.scenarios.split(",")
    work = Path(tempfile.mkdtemp(prefix="equivalence-"))
    ok = True
    try:
        base = checkout(args.base, work / "base-src")
        head = checkout(args.head, work / "head-src")
        print(f"base {args.base} ({base}) against head {args.head} ({head})")
        sample = REPO / "corpora" / "sample"
        if "sample" in scenarios or "cron" in scenarios:
            runs: dict[tuple[str, int], dict[str, bytes]] = {}
            for side, src in (("base", base), ("head", head)):
                for j in jobs:
                    out = work / f"sample-{side}-j{j}"
                    dedup(src, [sample], out, "--jobs", str(j))
                    runs[side, j] = outputs(out)
            if "sample" in scenarios:
                for j in jobs:
                    ok &= diff(f"sample, jobs {j}: base vs head", runs["base", j], runs["head", j])
                    if j != jobs[0]:
                        ok &= diff(f"sample: base jobs {jobs[0]} vs head jobs {j}", runs["base", jobs[0]],
                                   runs["head", j])  # fmt: skip
        if "inputs" in scenarios:
            dirs = dealt(sample, work / "inputs", 7)
            got = {}
            for side, src in (("base", base), ("head", head)):
                out = work / f"inputs-{side}"
                dedup(src, dirs, out, "--jobs", str(max(jobs)))
                got[side] = outputs(out)
            label = f"sample as {len(dirs)} INPUTs, jobs {max(jobs)}: base vs head"
            ok &= diff(label, got["base"], got["head"])
        if "scale" in scenarios:
            cdir = args.cache / "scale" / f"n{args.size}-dir-s1"
            generate_scale(args.size, cdir, fmt="dir", seed=1, cache_dir=args.cache, progress=True)
            corpus = corpus_path(cdir, "dir")
            found = {}
            for side, src in (("base", base), ("head", head)):
                out = work / f"scale-{side}"
                dedup(src, [corpus], out, "--jobs", str(max(jobs)))
                found[side] = outputs(out)
                shutil.rmtree(out)
            ok &= diff(f"scale {args.size:,}, jobs {max(jobs)}: base vs head", found["base"], found["head"])
        if "cron" in scenarios:
            manifest = [
                orjson.loads(x) for x in (work / f"sample-base-j{jobs[0]}" / "manifest.jsonl").open("rb")
            ]
            stages = cron_stages(sample, manifest, work / "snapshots")
            root = work / "cron-input"
            seen: dict[str, list[dict[str, bytes]]] = {"base": [], "head": []}
            for side, src in (("base", base), ("head", head)):
                for stage in stages:
                    restore(stage, root)
                    out, state = work / f"cron-{side}-out", work / f"cron-{side}-state"
                    dedup(src, [root / "docs", root / "feed.jsonl"], out, "--state", str(state), "--jobs",
                          str(max(jobs)))  # fmt: skip
                    seen[side].append({**outputs(out), **state_rows(state)})
                # A fourth run with no change (inputs, OUT and options as the third left them).
                dedup(src, [root / "docs", root / "feed.jsonl"], out, "--state", str(state), "--jobs",
                      str(min(jobs)))  # fmt: skip
                seen[side].append({**outputs(out), **state_rows(state)})
            for k, (a, b) in enumerate(zip(seen["base"], seen["head"], strict=True), start=1):
                c = orjson.loads(a["summary.json (no timings)"])["counts"]
                what = (
                    f"{c['new']} new, {c['changed']} changed, {c['superseded']} superseded, {c['gone']} gone"
                )
                ok &= diff(f"cron run {k} ({what})", a, b)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("all identical" if ok else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
