"""The whole run through the library: clusters, canonicals, records for bad input, outputs."""

import hashlib
import os
import shutil
import stat
from pathlib import Path

import orjson
import pytest
from conftest import COUNCIL, MUSEUM, NOISE, STORM, STORM_OTHER, by_path, garble, read_manifest, truncate

from dedup import Config, run
from dedup.errors import InputError, OutputError

ONE_JOB = Config(jobs=1)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "link"
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


@pytest.fixture
def corpus(write_tree):
    return write_tree(
        {
            "a/council-garbled-1.txt": garble(COUNCIL, "The city council member"),
            "a/council-garbled-2.txt": garble(COUNCIL, "Mayor Ellen Brandt"),
            "b/council-teaser.txt": truncate(COUNCIL, 0.45),
            "storm.txt": STORM,
            "storm-html.html": NOISE["html"](STORM),
            "storm-boiler.md": NOISE["boilerplate"](STORM),
            "storm-schools.txt": STORM_OTHER,
            "museum.txt": MUSEUM,
            "museum-copy.txt": MUSEUM,
            "notes.csv": "not matched by the default globs",
        }
    )


def test_clusters_and_canonicals(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run([corpus], out, ONE_JOB)
    m = by_path(out)
    council = {
        m[p]["cluster"]
        for p in ("a/council-garbled-1.txt", "a/council-garbled-2.txt", "b/council-teaser.txt")
    }
    assert len(council) == 1
    assert m["b/council-teaser.txt"]["canonical"] is True
    assert m["a/council-garbled-1.txt"]["duplicate_of"] == "b/council-teaser.txt"
    # An HTML page is judged on its main text: markup is how a page is written, not damage,
    # so the page ties with the plain copy and, first in manifest order, is kept.
    assert m["storm.txt"]["cluster"] == m["storm-html.html"]["cluster"]
    assert m["storm-html.html"]["canonical"] and not any(m["storm-html.html"]["penalties"].values())
    assert m["storm-boiler.md"]["duplicate_of"] == "storm-html.html"
    # Same event, different article: stays apart.
    assert m["storm-schools.txt"]["cluster"] != m["storm.txt"]["cluster"]
    assert m["museum.txt"]["duplicate_of"] == "museum-copy.txt"  # a tie: first in manifest order wins
    assert "notes.csv" not in m
    assert result.counts == {**result.counts, "documents": 9, "ok": 9, "clusters": 4, "duplicates": 5}


def test_manifest_records_evidence(corpus: Path, tmp_path: Path) -> None:
    run([corpus], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    garbled = m["a/council-garbled-1.txt"]
    assert garbled["similarity"]["containment"] >= 0.5 > garbled["similarity"]["jaccard"]
    assert garbled["score"] < m["b/council-teaser.txt"]["score"]
    assert garbled["penalties"]["treebank"] > 0 and "treebank" in garbled["reason"]
    assert m["b/council-teaser.txt"]["similarity"] is None
    assert "cleanest of 3" in m["b/council-teaser.txt"]["reason"]
    assert m["museum.txt"]["sha256"] == hashlib.sha256(MUSEUM.encode()).hexdigest()


def test_canonical_copies_are_byte_identical_and_inputs_untouched(corpus: Path, tmp_path: Path) -> None:
    before = tree_digest(corpus)
    out = tmp_path / "out"
    run([corpus], out, ONE_JOB)
    assert tree_digest(corpus) == before
    kept = {r["path"] for r in read_manifest(out) if r["canonical"]}
    assert {
        str(p.relative_to(out / "canonical")) for p in (out / "canonical").rglob("*") if p.is_file()
    } == kept
    for path in kept:
        assert (out / "canonical" / path).read_bytes() == (corpus / path).read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    for made in (out / "manifest.jsonl", out / "summary.json", out / "canonical"):
        assert made.stat().st_mode & 0o666 == 0o666 & ~umask, made  # not mkstemp's private 0600
    summary = orjson.loads((out / "summary.json").read_bytes())

    assert summary["minhash"]["scheme"] == "affine32" and summary["datasketch"].startswith("2.")
    assert set(summary["timings_s"]) == {"read_sign", "index", "verify_cluster_score", "write"}


def test_bad_inputs_get_records_and_nothing_vanishes(write_tree, tmp_path: Path) -> None:
    root = write_tree(
        {
            "good.txt": MUSEUM,
            "empty.txt": "",
            "blank.txt": "  \n\t\n",
            "binary.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            "latin1.txt": "caf\u00e9 ".encode("latin-1") * 10,
            "garbage.txt": bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 20,  # neither UTF-8 nor a legacy code page
            "only-markup.html": "<div><p></p></div>",
            "big.txt": "word " * 400,
        }
    )
    os.symlink(root / "missing-target.txt", root / "dangling.txt")
    before = tree_digest(root)
    run([root], tmp_path / "out", Config(jobs=1, max_bytes=1000))
    m = by_path(tmp_path / "out")
    expected = {
        "good.txt": "ok",
        "empty.txt": "empty",
        "blank.txt": "empty",
        "binary.txt": "binary",
        "latin1.txt": "ok",
        "garbage.txt": "undecodable",
        "only-markup.html": "empty",
        "big.txt": "too_large",
        "dangling.txt": "unreadable",
    }
    assert {p: r["status"] for p, r in m.items()} == expected
    for path, status in expected.items():
        if status != "ok":
            assert m[path]["error"] and m[path]["cluster"] is None and not m[path]["canonical"]
    assert "UTF-8" in m["garbage.txt"]["error"] and "max-bytes" in m["big.txt"]["error"]
    assert m["latin1.txt"]["encoding"] != "utf-8" and "encoding" not in m["good.txt"]
    assert tree_digest(root) == before


def test_jsonl_input(tmp_path: Path) -> None:
    lines = [
        orjson.dumps({"id": "a", "text": COUNCIL}),
        orjson.dumps({"id": "b", "text": garble(COUNCIL, "The city council member"), "site": "x"}),
        b"{not json",
        orjson.dumps({"id": "c", "body": "no text field"}),
        b"",
        orjson.dumps({"id": "a", "text": MUSEUM}),
        orjson.dumps(["a list"]),
        orjson.dumps({"text": STORM}),
    ]
    src = tmp_path / "articles.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    run([src], out, ONE_JOB)
    records = read_manifest(out)
    assert [(r["path"], r["status"], r["line"]) for r in records] == [
        ("a", "ok", 1),
        ("b", "ok", 2),
        ("line-3", "malformed", 3),
        ("c", "malformed", 4),
        ("a#L6", "ok", 6),
        ("line-7", "malformed", 7),
        ("line-8", "ok", 8),
    ]
    m = {r["path"]: r for r in records}
    assert m["b"]["duplicate_of"] == "a" and "repeats" in m["a#L6"]["warning"]
    assert "invalid JSON" in m["line-3"]["error"] and "'text' is missing" in m["c"]["error"]
    kept = (out / "canonical" / "articles.jsonl").read_bytes().splitlines()
    assert kept == [lines[0], lines[5], lines[7]]


def test_several_inputs_are_labelled(write_tree, tmp_path: Path) -> None:
    first = write_tree({"x.txt": MUSEUM})
    second = tmp_path / "other" / "in"
    second.mkdir(parents=True)
    (second / "x.txt").write_text(MUSEUM)
    run([first, second], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert m["in-2/x.txt"]["duplicate_of"] == "in/x.txt"
    assert (tmp_path / "out" / "canonical" / "in" / "x.txt").exists()


def test_same_manifest_for_any_number_of_workers_and_runs(corpus: Path, tmp_path: Path) -> None:
    manifests = []
    for i, jobs in enumerate([1, 2, 1]):
        run([corpus], tmp_path / f"out{i}", Config(jobs=jobs))
        manifests.append((tmp_path / f"out{i}" / "manifest.jsonl").read_bytes())
    assert manifests[0] == manifests[1] == manifests[2]


def test_out_must_be_empty_unless_forced(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        run([corpus], out, ONE_JOB)
    run([corpus], out, Config(jobs=1, force=True))
    assert (out / "keep.txt").read_text() == "mine" and (out / "manifest.jsonl").exists()


def test_a_forced_run_replaces_canonical_and_follows_no_link_out_of_it(corpus: Path, tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    run([corpus], out, ONE_JOB)
    kept = tree_digest(out / "canonical")
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "keep.txt").write_text("mine")
    (out / "canonical" / "x" / "y").mkdir(parents=True)  # the old tree is removed a directory a thread
    (out / "canonical" / "x" / "y" / "z.txt").write_text("old")
    (out / "canonical" / "x" / "link").symlink_to(outside / "deep", target_is_directory=True)
    (out / "canonical" / "link").symlink_to(outside, target_is_directory=True)
    run([corpus], out, Config(jobs=1, force=True))
    assert tree_digest(out / "canonical") == kept
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]
    assert (outside / "deep" / "keep.txt").read_text() == "mine"


def test_a_forced_rerun_keeps_the_copies_still_right_and_makes_the_others_again(
    corpus: Path, tmp_path: Path
) -> None:
    """Still right: the input's bytes, a copy's permissions, no other name. Kept ones keep their
    inode (linked, not copied again); the rest are copied afresh; a user's other name is left alone."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    run([corpus], out, ONE_JOB)
    canonical = out / "canonical"
    kept = tree_digest(canonical)
    edited, private, shared, *same = sorted(kept)
    assert same
    text = (canonical / edited).read_bytes()
    (canonical / edited).write_bytes(text[:-1] + (b"?" if text[-1:] != b"?" else b"!"))  # same size
    (canonical / private).chmod(0o600)
    elsewhere.mkdir()
    os.link(canonical / shared, elsewhere / "shared.txt")
    inodes = {path: (canonical / path).stat().st_ino for path in kept}
    run([corpus], out, Config(jobs=1, force=True))
    assert tree_digest(canonical) == kept
    assert [path for path in sorted(kept) if (canonical / path).stat().st_ino == inodes[path]] == same
    assert {(canonical / path).stat().st_nlink for path in kept} == {1}
    assert (elsewhere / "shared.txt").read_bytes() == (corpus / shared).read_bytes()
    assert (elsewhere / "shared.txt").stat().st_nlink == 1
    modes = {stat.S_IMODE((canonical / path).stat().st_mode) for path in kept}
    assert modes == {stat.S_IMODE((corpus / same[0]).stat().st_mode) & ~0o111}


def test_a_forced_rerun_links_nothing_from_a_canonical_that_is_a_link(corpus: Path, tmp_path: Path) -> None:
    out, mine = tmp_path / "out", tmp_path / "mine"
    run([corpus], out, ONE_JOB)
    os.rename(out / "canonical", mine)  # the user's directory, with right copies in it
    (out / "canonical").symlink_to(mine, target_is_directory=True)
    run([corpus], out, Config(jobs=1, force=True))
    files = [p for p in mine.rglob("*") if p.is_file()]
    assert files and {p.stat().st_nlink for p in files} == {1}
    assert tree_digest(out / "canonical") == tree_digest(mine)


def test_a_forced_rerun_links_nothing_through_a_linked_directory_inside_canonical(
    corpus: Path, tmp_path: Path
) -> None:
    out, mine = tmp_path / "out", tmp_path / "mine"
    run([corpus], out, ONE_JOB)
    inner = next(p for p in (out / "canonical").iterdir() if p.is_dir())  # a kept file's directory
    shutil.copytree(inner, mine, copy_function=shutil.copy2)  # right copies, the user's
    shutil.rmtree(inner)
    inner.symlink_to(mine, target_is_directory=True)
    run([corpus], out, Config(jobs=1, force=True))
    files = [p for p in mine.rglob("*") if p.is_file()]
    assert files and {p.stat().st_nlink for p in files} == {1}
    assert {p.name for p in (out / "canonical" / inner.name).iterdir()} == {p.name for p in files}


def test_overlapping_runs_into_one_out_are_refused(corpus: Path, tmp_path: Path) -> None:
    from dedup.errors import StateLockedError
    from dedup.locks import locked

    (tmp_path / "out").mkdir()
    with (
        locked(tmp_path / "out", 0, ".lock"),
        pytest.raises(StateLockedError, match=r"OUT .* is locked by pid"),
    ):
        run([corpus], tmp_path / "out", Config(jobs=1, force=True, lock_timeout=0.2))
    run([corpus], tmp_path / "out", Config(jobs=1, force=True))  # released: runs


def test_out_inside_input_is_refused(corpus: Path) -> None:
    with pytest.raises(OutputError, match="overlaps INPUT"):
        run([corpus], corpus / "out", ONE_JOB)


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        run([tmp_path / "nope"], tmp_path / "out", ONE_JOB)


def test_canonical_copies_without_copy_file_range(corpus, tmp_path, monkeypatch):
    """A file system that cannot copy in the kernel still gets byte-identical copies."""

    def refuse(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    out = tmp_path / "out"
    run([corpus], out, ONE_JOB)
    kept = [r["path"] for r in read_manifest(out) if r["canonical"]]
    assert kept
    for path in kept:
        assert (out / "canonical" / path).read_bytes() == (corpus / path).read_bytes()


def _document(path: Path):
    from dedup.document import Document, Source

    info = path.stat()
    source = Source("dir", str(path.parent), "")
    return Document(0, path.name, source, str(path), size=info.st_size, mtime_ns=info.st_mtime_ns)


def test_copy_refuses_an_input_changed_since_it_was_read(tmp_path):
    from dedup import manifest
    from dedup.errors import InputChangedError

    src = tmp_path / "a.txt"
    src.write_text("first version")
    doc = _document(src)
    target = tmp_path / "out.txt"
    target.write_text("previous canonical")
    src.write_text("second, longer version")
    with pytest.raises(InputChangedError, match="changed while dedup was running"):
        manifest.copy_document(doc, str(target), atomic=True)
    assert target.read_text() == "previous canonical"  # an in-place update is all or nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "out.txt"]  # no partial copy left
    src.unlink()
    with pytest.raises(InputChangedError, match="cannot be read again"):
        manifest.copy_document(doc, str(target), atomic=True)


def test_sample_corpus_same_outputs_with_one_or_two_workers(tmp_path: Path) -> None:
    """Enough groups (37 clusters) that pass 2 also runs in the worker pool, not only pass 1."""
    sample = Path(__file__).resolve().parents[1] / "corpora" / "sample"
    one, two = tmp_path / "one", tmp_path / "two"
    run([sample], one, Config(jobs=1))
    run([sample], two, Config(jobs=2))
    assert (one / "manifest.jsonl").read_bytes() == (two / "manifest.jsonl").read_bytes()
    assert tree_digest(one / "canonical") == tree_digest(two / "canonical")


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_reports_every_stage_with_totals(write_tree, tmp_path: Path, jobs: int) -> None:
    root = write_tree({"a.txt": COUNCIL, "b.txt": garble(COUNCIL, "The mayor"), "c.txt": STORM, "d.txt": ""})
    calls: list[tuple[str, int, int | None]] = []
    run([root], tmp_path / "out", Config(jobs=jobs), progress=lambda *call: calls.append(call))
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages == ["read", "verify", "write", "copy"]
    last = {stage: (done, total) for stage, done, total in calls}
    assert last == {"read": (4, None), "verify": (1, 1), "write": (4, 4), "copy": (2, 2)}
    for stage in stages:  # counts only go up
        done = [d for s, d, _ in calls if s == stage]
        assert done == sorted(done)


def test_a_run_collects_garbage_rarely_and_puts_the_collector_back(corpus: Path, tmp_path: Path) -> None:
    import gc

    seen: dict[str, tuple[int, int, int]] = {}
    before = gc.get_threshold()
    try:
        gc.set_threshold(123, 4, 5)
        with pytest.raises(OutputError):  # a run that fails puts it back too
            run([corpus], corpus / "out", Config(jobs=1))  # OUT inside an INPUT
        run(
            [corpus],
            tmp_path / "out",
            Config(jobs=1),
            checkpoint=lambda n: seen.setdefault(n, gc.get_threshold()),
        )
        assert seen["pass1"][0] > 10_000 and gc.get_threshold() == (123, 4, 5)
    finally:
        gc.set_threshold(*before)
