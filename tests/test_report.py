"""OUT/report.html: the data it embeds, and the page as Chromium draws it."""

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from conftest import COUNCIL, STORM, by_path, html, mojibake, read_manifest, treebank

from dedup import Config, parallel, run
from dedup.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def embedded(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="data">') + len(
        '<script type="application/json" id="data">'
    )
    return orjson.loads(text[start : text.index("</script>", start)])


@pytest.fixture
def finished(write_tree, tmp_path: Path) -> Path:
    root = write_tree(
        {
            "a/clean.txt": COUNCIL,
            "a/tree.txt": treebank(COUNCIL),
            "b/moji.txt": mojibake(COUNCIL),
            "b/html.txt": html(COUNCIL) + "\n<script>alert(1)</script></script><!--",
            "storm.txt": STORM,
            "empty.txt": "",
            "binary.txt": b"\x00\x01\x02" * 50,
        }
    )
    return run([root], tmp_path / "out", Config(jobs=1)).out


def test_report_lists_every_cluster_with_duplicates_and_skipped_inputs(finished: Path) -> None:
    written = write_report(finished)
    data = embedded(written.path)
    records = read_manifest(finished)
    with_duplicates = {r["cluster"] for r in records if r["duplicate_of"]}
    assert [c[0] for c in data["clusters"]] == sorted(with_duplicates) and written.clusters == 1
    cluster = data["clusters"][0]
    assert cluster[1] == 4 and sorted(m[0] for m in cluster[5]) == [
        "a/clean.txt",
        "a/tree.txt",
        "b/html.txt",
        "b/moji.txt",
    ]
    assert [m[0] for m in cluster[5] if m[2]] == ["a/clean.txt"]
    assert cluster[2] == min(
        max(r["similarity"]["jaccard"], r["similarity"]["containment"]) for r in records if r["duplicate_of"]
    )
    assert sorted(s[:2] for s in data["skipped"]) == [["binary.txt", "binary"], ["empty.txt", "empty"]]
    assert sum(data["histograms"][2]["counts"]) == sum(r["status"] == "ok" for r in records)
    assert sum(data["histograms"][0]["counts"]) == sum(r["duplicate_of"] is not None for r in records) == 3


def test_report_details_mark_differences_and_carry_the_evidence(finished: Path) -> None:
    data = embedded(write_report(finished).path)
    cluster = data["clusters"][0]
    detail = data["details"][cluster[0]]
    paths = [m[0] for m in cluster[5]]
    kept = paths.index("a/clean.txt")
    text = [detail["texts"][k] for k in detail["text_of"]]
    assert text[kept] == COUNCIL and detail["from"] == ["input"] * 4
    assert detail["spans"][kept] is None
    moji = paths.index("b/moji.txt")
    kept_spans, moji_spans = detail["spans"][moji]
    assert moji_spans and all("\u00e2" in text[moji][s:e] for s, e in moji_spans)
    assert all("\u2019" in COUNCIL[s:e] or '"' in COUNCIL[s:e] for s, e in kept_spans)
    signals = {p["signal"]: p for p in detail["penalties"][moji]}
    assert signals["mojibake"]["count"] > 0 and signals["mojibake"]["examples"][0][3]
    assert {p["signal"] for p in detail["penalties"][paths.index("b/html.txt")]} >= {"markup"}


def test_embedded_texts_cannot_end_the_script(finished: Path) -> None:
    path = write_report(finished).path
    page = path.read_text(encoding="utf-8")
    data_part = page[page.index('id="data">') : page.rindex("</script>")]
    assert data_part.count("</script") == 1 and "<!--" not in data_part  # only the data block's own end
    texts = [t for d in embedded(path)["details"].values() for t in d["texts"]]
    assert any("<script>alert(1)</script></script><!--" in t for t in texts)  # and the text is intact


def test_texts_limit_keeps_the_list_whole(finished: Path) -> None:
    written = write_report(finished, texts=0)
    data = embedded(written.path)
    assert written.detailed == 0 and data["details"] == {} and len(data["clusters"]) == 1


def test_cron_report_shows_the_last_runs_changes(write_tree, tmp_path: Path) -> None:
    root = write_tree({"clean.txt": treebank(COUNCIL), "storm.txt": STORM})
    config = Config(jobs=1, state=str(tmp_path / "state"))
    run([root], tmp_path / "out", config)
    (root / "cleaner.txt").write_text(COUNCIL)
    (root / "storm.txt").unlink()
    run([root], tmp_path / "out", config)
    changes = embedded(write_report(tmp_path / "out").path)["changes"]
    assert changes["run"] == 2
    assert changes["counts"] == {"new": 1, "changed": 0, "superseded": 1, "gone": 1}
    assert sorted(r[:2] for r in changes["rows"]) == [
        ["gone", "storm.txt"],
        ["new", "cleaner.txt"],
        ["superseded", "cleaner.txt"],
    ]
    assert by_path(tmp_path / "out")["cleaner.txt"]["canonical"]


class _Dom(HTMLParser):
    """The elements of a dumped DOM: (tag, attributes, text inside) for the classes the test looks for."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text: list[str] = []
        self.elements.append((tag, {k: v or "" for k, v in attrs}, text))
        if tag in ("mark", "li", "div", "tr", "span", "td"):
            self._open.append(text)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("mark", "li", "div", "tr", "span", "td") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for text in self._open:
            text.append(data)

    def having(self, cls: str) -> list[tuple[str, dict[str, str], list[str]]]:
        return [e for e in self.elements if cls in e[1].get("class", "").split()]


def chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True, env={**os.environ}
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it with apt-get)")
def test_chromium_draws_every_cluster_side_by_side_with_evidence(tmp_path: Path) -> None:
    out = run(["corpora/sample"], tmp_path / "out", Config(jobs=1)).out
    page = write_report(out).path
    records = read_manifest(out)
    with_duplicates = {r["cluster"] for r in records if r["duplicate_of"]}
    duplicates = [r for r in records if r["duplicate_of"]]

    dom = _Dom()
    dom.feed(chromium("--dump-dom", f"{page.as_uri()}#expand", tmp_path=tmp_path).stdout)
    rows = dom.having("cluster")
    assert {e[1]["data-cluster"] for e in rows} == with_duplicates
    assert all("open" in e[1]["class"] for e in rows)  # #expand opened every one (they fit on one page)
    pairs = dom.having("side-by-side")
    assert len(pairs) == len(duplicates)
    dup_boxes = [e[1]["data-path"] for e in dom.having("copy") if "dup" in e[1]["class"]]
    assert sorted(dup_boxes) == sorted(r["path"] for r in duplicates)
    assert any(dom.having("diff")), "differing spans are marked"
    # every penalty a duplicate paid is listed under it, with evidence where the signal has text behind it
    listed = [e for e in dom.having("penalty")]
    assert {e[1]["data-signal"] for e in listed} >= {
        "mojibake",
        "treebank",
        "markup",
        "boilerplate",
        "outvoted",
    }
    mojibake = [e for e in listed if e[1]["data-signal"] == "mojibake"]
    assert mojibake and all("found" in "".join(e[2]) and "\u2192" in "".join(e[2]) for e in mojibake)
    assert len(dom.having("skip")) == sum(r["status"] not in ("ok", "gone") for r in records)

    shot = tmp_path / "report.png"
    chromium(
        "--window-size=1200,900",
        f"--screenshot={shot}",
        f"{page.as_uri()}#cluster=c3ac55ca92acc",
        tmp_path=tmp_path,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_is_the_same_for_any_number_of_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(["corpora/sample"], tmp_path / "out", Config(jobs=1)).out
    one = write_report(out, jobs=1).path.read_bytes()
    assert write_report(out, jobs=2).path.read_bytes() == one  # 37 clusters: shared among processes
    forked = []
    ordered = parallel.ordered

    def counted(*args: object, workers: int, **kwargs: object) -> object:
        forked.append(workers)
        return ordered(*args, workers=workers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(parallel, "ordered", counted)
    assert write_report(out, jobs=500).path.read_bytes() == one
    assert forked == [5]  # no more processes than calls of 8 clusters (500 were forked)


def test_exact_copies_are_embedded_once(write_tree, tmp_path: Path) -> None:
    root = write_tree({f"copy{k}.txt": COUNCIL for k in range(6)} | {"tree.txt": treebank(COUNCIL)})
    out = run([root], tmp_path / "out", Config(jobs=1)).out
    (detail,) = embedded(write_report(out).path)["details"].values()
    assert len(detail["texts"]) == 2 and detail["text_of"] == [0, 0, 0, 0, 0, 0, 1]
    assert detail["spans"][1:6] == [[[], []]] * 5 and detail["spans"][6][1]
    treebank_found = [p for p in detail["penalties"][6] if p["signal"] == "treebank"]
    assert treebank_found and treebank_found[0]["count"] > 0
