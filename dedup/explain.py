"""Why documents of a finished run were put together, and why one copy was kept.

``examine`` reads a cluster's texts again (``FinishedRun.text``: the inputs, else
the canonical copies) and attaches to each member the evidence behind every
penalty (``dedup.evidence``). ``explain`` compares two documents under the run's
thresholds; ``show`` lists one cluster. ``format_explain`` and ``format_show``
turn their reports into the text the CLI prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dedup import evidence
from dedup.cluster import Similarity, Thresholds
from dedup.comparison import compared
from dedup.errors import InputError
from dedup.finished import FinishedRun
from dedup.signatures import similarity

# What the similarity figures mean, in plain words.
SIMILARITY_WORDS = {
    "jaccard": "shingles (5-word phrases) in common, over all shingles of the two",
    "containment": "share of the smaller copy's shingles found in the larger",
    "shared": "shingles in common",
}


def examine(run: FinishedRun, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The members of one cluster, each with its text, where it came from, and its penalties' evidence.

    Each member record gains ``evidence``: its penalties, largest first, as
    ``{signal, penalty, meaning, count, examples, note}``; ``text`` is ``None`` when neither the
    input nor a canonical copy still holds the bytes the run read.
    """
    texts = [run.text(r) for r in records]
    readable = [i for i, (text, _) in enumerate(texts) if text is not None]
    found = evidence.cluster_evidence(
        [texts[i][0] or "" for i in readable],
        [(records[i]["signals"] or {}).get("outvoted", 0.0) for i in readable],
        [{k for k, v in (records[i]["penalties"] or {}).items() if v >= 0.005} for i in readable],
    )
    findings: dict[int, dict[str, evidence.Finding]] = dict(zip(readable, found, strict=True))
    members = []
    for i, record in enumerate(records):
        text, where = texts[i]
        paid = []
        for name, value, finding in evidence.describe(findings.get(i, {}), record["penalties"] or {}):
            entry = {"signal": name, "penalty": value, "meaning": evidence.PLAIN.get(name, name)}
            if name == "incomplete":
                share = (record["signals"] or {}).get("completeness", 1.0)
                entry.update(count=0, examples=[], note=f"holds {share:.0%} of the cluster's shingles")
            else:
                entry.update(finding.as_dict(), note="" if i in findings else "text unavailable")
            paid.append(entry)
        members.append({**record, "text": text, "text_from": where, "evidence": paid})
    return members


def why_kept(members: Sequence[dict[str, Any]]) -> str:
    """Why the canonical of an examined cluster won, its own penalties included."""
    kept = next(m for m in members if m["canonical"])
    own = ", ".join(f"{p['signal']} -{p['penalty']:.2f}" for p in kept["evidence"]) or "none"
    others = [m for m in members if not m["canonical"] and m["status"] == "ok"]
    if not others:
        return f"{kept['path']} is the only copy: kept at any score ({kept['score']:.2f}; penalties: {own})"
    lines = [
        f"{kept['path']} scored {kept['score']:.2f} (penalties: {own}); "
        "a penalty counts only above the cluster's lowest value for that signal."
    ]
    best_other = max(m["score"] for m in others)
    if best_other == kept["score"]:
        lines.append(f"tied at {kept['score']:.2f}: the first in manifest order is kept")
    else:
        lines.append(f"it won because every other copy scored lower (best {best_other:.2f}):")
    for m in sorted(others, key=lambda m: -m["score"]):
        worst = ", ".join(f"{p['signal']} -{p['penalty']:.2f}" for p in m["evidence"][:3]) or "no penalty"
        lines.append(f"  {m['path']} {m['score']:.2f} ({worst})")
    return "\n".join(lines)


def show(out: str | Path, *, cluster: str | None = None, path: str | None = None) -> dict[str, Any]:
    """A cluster of the run in ``out`` (given by name, or by one member's manifest path).

    Raises:
        OutputError: OUT holds no finished run.
        InputError: no such cluster or path, or the path was skipped (no cluster).
    """
    run = FinishedRun(out)
    if cluster is None:
        if path is None:
            raise InputError("give a cluster or a path")
        record = run.record(path)
        if record["cluster"] is None:
            raise InputError(
                f"{path}: skipped ({record['status']}: {record['error'] or record['reason']}), in no cluster"
            )
        cluster = record["cluster"]
    members = examine(run, run.cluster(cluster))
    return {"cluster": cluster, "members": members, "why": why_kept(members)}


def explain(out: str | Path, first: str, second: str) -> dict[str, Any]:
    """Recompute the evidence about two manifest paths of the run in ``out``.

    Raises:
        OutputError: OUT holds no finished run.
        InputError: a path is not in the manifest.
    """
    run = FinishedRun(out)
    pair = [run.record(first), run.record(second)]
    report: dict[str, Any] = {"documents": pair, "similarity": None, "verdict": None, "kept": []}
    if any(r["status"] != "ok" for r in pair):
        report["verdict"] = "not compared: " + "; ".join(
            f"{r['path']} was skipped ({r['status']}: {r['error'] or r['reason']})"
            for r in pair
            if r["status"] != "ok"
        )
        return report
    clusters = list(dict.fromkeys(r["cluster"] for r in pair))
    examined = {c: examine(run, run.cluster(c)) for c in clusters}
    by_path = {m["path"]: m for members in examined.values() for m in members}
    report["documents"] = [by_path[first], by_path[second]]
    report["kept"] = [{"cluster": c, "why": why_kept(examined[c])} for c in clusters]
    config = run.config
    thresholds = Thresholds(config.jaccard, config.containment, config.min_shared)
    texts = [m["text"] for m in report["documents"]]
    if any(t is None for t in texts):
        report["verdict"] = "not compared: the text of a document is no longer available"
        return report
    shingles = [compared(t or "", config.shingle_size).shingles for t in texts]
    sim = Similarity(*similarity(*shingles))
    report["similarity"] = sim.as_dict()
    match = "near-duplicates" if thresholds.accepts(sim) else "different documents"
    a, b = pair
    if a["cluster"] == b["cluster"]:
        placed = f"same cluster {a['cluster']}"
    elif thresholds.accepts(sim):
        placed = (
            f"different clusters ({a['cluster']}, {b['cluster']}): a cluster takes a text that matches its "
            "centre unless it shares under 15% with a member already taken, or, both over twice the "
            "centre's size, nothing past the centre; a match between two texts does not chain clusters"
        )
    else:
        placed = f"different clusters ({a['cluster']}, {b['cluster']})"
    report["verdict"] = f"{match}: {thresholds.explain(sim)}; {placed}"
    return report


def _example(example: Sequence[str]) -> str:
    before, found, after, replacement = example
    if replacement and not before and not after:
        return (
            f'"{found}" ({replacement})' if replacement.endswith("times") else f'"{found}" -> "{replacement}"'
        )
    text = f"{'...' + before if before else ''}[{found}]{after + '...' if after else ''}"
    return f"{text}  -> {replacement}" if replacement else text


def format_member(member: dict[str, Any], label: str = "") -> list[str]:
    """A member as text: role, score, reason, and each penalty in plain words with its evidence."""
    head = f"{label}{member['path']}"
    if member["status"] != "ok":
        return [f"{head}  skipped ({member['status']}: {member['error'] or member['reason']})"]
    role = "canonical (kept)" if member["canonical"] else f"duplicate of {member['duplicate_of']}"
    lines = [f"{head}  cluster {member['cluster']}  {role}  score {member['score']:.2f}"]
    if member.get("text_from", "input") != "input":
        lines.append(f"    text: {member['text_from']}")
    lines.append(f"    {member['reason']}")
    for p in member.get("evidence", ()):  # none when not examined: the other document was skipped
        count = f"; {p['count']} found" if p["count"] else ""
        note = f"; {p['note']}" if p.get("note") else ""
        lines.append(f"    {p['signal']} -{p['penalty']:.2f}: {p['meaning']}{count}{note}")
        lines.extend(f"        {_example(e)}" for e in p["examples"][:3])
    return lines


def format_show(report: dict[str, Any]) -> str:
    members = report["members"]
    lines = [f"cluster {report['cluster']}: {len(members)} member{'s' * (len(members) != 1)}"]
    for m in members:
        lines.extend(format_member(m, "  "))
        if m.get("similarity"):
            lines.append(f"    similarity to the kept copy: {_similarity(m['similarity'])}")
    lines.append("why kept: " + report["why"])
    return "\n".join(lines)


def format_explain(report: dict[str, Any]) -> str:
    lines = []
    for label, member in zip("AB", report["documents"], strict=True):
        lines.extend(format_member(member, f"{label}: "))
    for kept in report["kept"]:
        lines.append(f"why kept in {kept['cluster']}: {kept['why']}")
    if report["similarity"]:
        lines.append(f"similarity: {_similarity(report['similarity'])}")
    lines.append(f"verdict: {report['verdict']}")
    return "\n".join(lines)


def _similarity(sim: dict[str, Any]) -> str:
    return (
        f"jaccard {sim['jaccard']:.2f} ({SIMILARITY_WORDS['jaccard']}), "
        f"containment {sim['containment']:.2f} ({SIMILARITY_WORDS['containment']}), "
        f"{sim['shared']} shared shingles"
    )
