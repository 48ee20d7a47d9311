"""Why two documents of a finished run were, or were not, put together.

Reads OUT's manifest and summary, reads the two documents again from their inputs,
and recomputes what the run saw: their similarity, the verification verdict under
the run's thresholds, and each one's cleanliness score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from dedup.cluster import Similarity, Thresholds
from dedup.config import Config
from dedup.document import Source
from dedup.errors import InputError, OutputError
from dedup.manifest import SUMMARY, read_manifest
from dedup.pass2 import compared
from dedup.readers import locate, reload_text
from dedup.signatures import similarity


def explain(out: str | Path, first: str, second: str) -> dict[str, Any]:
    """Recompute the evidence about two manifest paths of the run in ``out``.

    Raises:
        OutputError: OUT holds no finished run.
        InputError: a path is not in the manifest, or its input changed since the run.
    """
    out = Path(out)
    records = {r["path"]: r for r in read_manifest(out)}
    try:
        summary = orjson.loads((out / SUMMARY).read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise OutputError(f"no readable {SUMMARY} in {out}: {err}") from err
    options = dict(summary["config"])
    options["globs"] = tuple(options["globs"])
    config = Config(**options)
    sources = [Source(kind=s["kind"], root=s["path"], label=s["label"]) for s in summary["inputs"]]
    pair = []
    for path in (first, second):
        if path not in records:
            raise InputError(f"{path}: not in {out / 'manifest.jsonl'}")
        pair.append(records[path])
    report: dict[str, Any] = {"documents": pair, "similarity": None, "verdict": None}
    if any(r["status"] != "ok" for r in pair):
        report["verdict"] = "not compared: " + "; ".join(
            f"{r['path']} was skipped ({r['status']}: {r['error'] or r['reason']})"
            for r in pair
            if r["status"] != "ok"
        )
        return report
    shingles = []
    for record in pair:
        doc = locate(record["path"], sources, config)
        doc.sha256 = record["sha256"] or ""  # what the run read: a changed input is an error
        text = reload_text(doc, config)
        shingles.append(compared(text, config.shingle_size)[1])  # as pass 2 compared them
    sim = Similarity(*similarity(*shingles))
    thresholds = Thresholds(config.jaccard, config.containment, config.min_shared)
    a, b = pair
    report["similarity"] = sim.as_dict()
    match = "near-duplicates" if thresholds.accepts(sim) else "different documents"
    if a["cluster"] == b["cluster"]:
        placed = f"same cluster {a['cluster']}"
    elif thresholds.accepts(sim):
        placed = (
            f"different clusters ({a['cluster']}, {b['cluster']}): each member must match its own "
            "cluster's centre, so a match between two members does not chain their clusters"
        )
    else:
        placed = f"different clusters ({a['cluster']}, {b['cluster']})"
    report["verdict"] = f"{match}: {thresholds.explain(sim)}; {placed}"
    return report
