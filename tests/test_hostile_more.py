"""Hostile input and faults, continued (issue #11): leftovers, half-made paths, in-place edits, ids."""

import gzip
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from conftest import COUNCIL, MUSEUM, STORM, read_manifest, truncate

from dedup import Config, readers
from dedup.cli import cli

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["run", *map(str, args), "-j1", "-q"])


def _cron(inputs: Path, tmp_path: Path, *more: str) -> Result:
    return _invoke(inputs, "--out", tmp_path / "out", "--state", tmp_path / "state", *more)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


# ------------------------------------------------------------ JSONL ids --


def test_repeated_ids_get_unique_paths_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    feed = _jsonl(
        tmp_path / "feed.jsonl",
        [{"id": "a#L3", "text": MUSEUM}, {"id": "a", "text": COUNCIL}, {"id": "a", "text": STORM}],
    )
    assert _cron(feed, tmp_path, "--id-field", "id").exit_code == 0
    records = read_manifest(tmp_path / "out")
    paths = [r["path"] for r in records]
    assert len(set(paths)) == 3 and paths[:2] == ["a#L3", "a"]
    assert len({r["cluster"] for r in records}) == 3
    manifest = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    again = _cron(feed, tmp_path, "--id-field", "id")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == manifest
    assert (tmp_path / "out" / "runs" / "run-000002.jsonl").read_bytes() == b""


@pytest.mark.parametrize("max_bytes", range(100, 124))  # the first read ends at every byte of the escapes
def test_a_line_over_max_bytes_keeps_its_id(tmp_path: Path, max_bytes: int) -> None:
    text = "x" * 90 + '\\"\\\\' * 12 + "y" * 5000  # escaped quotes and backslashes across the cut
    raw = orjson.dumps({"text": text, "meta": {"id": 'q"1\\'}})  # the id after the long text
    assert orjson.loads(raw)["text"] == text
    (tmp_path / "feed.jsonl").write_bytes(orjson.dumps({"id": "x", "text": "short"}) + b"\n" + raw + b"\n")
    gz = tmp_path / "feed.jsonl.gz"
    gz.write_bytes(gzip.compress((tmp_path / "feed.jsonl").read_bytes()))
    config = Config(jobs=1, id_field="meta.id", max_bytes=max_bytes)
    for path in (tmp_path / "feed.jsonl", gz):
        docs = list(readers.iter_documents(readers.discover([path]), config))
        assert [(d.path, d.status.value) for d in docs] == [("line-1", "ok"), ('q"1\\', "too_large")]


def test_a_too_large_line_keeps_its_id_in_the_manifest(tmp_path: Path) -> None:
    feed = _jsonl(
        tmp_path / "feed.jsonl",
        [{"id": "m", "text": MUSEUM}, {"text": STORM * 3, "id": "big"}, {"id": "big", "text": COUNCIL}],
    )
    assert _invoke(feed, "--out", tmp_path / "out", "--max-bytes", "2000").exit_code == 0
    records = read_manifest(tmp_path / "out")
    assert [(r["path"], r["status"]) for r in records] == [
        ("m", "ok"),
        ("big", "too_large"),
        ("big#L3", "ok"),
    ]
    assert "over --max-bytes" in records[1]["error"]


# ------------------------------------------------------ in-place edits --


@pytest.mark.parametrize("edited", ["a.txt", "b.txt"])  # the copy pass 2 reads, and the one it does not
def test_an_exact_copy_edited_in_place_with_its_mtime_kept_is_read_again(
    tmp_path: Path, write_tree, edited: str
) -> None:
    scrape = write_tree({"a.txt": MUSEUM, "b.txt": MUSEUM, "storm.txt": STORM})  # a and b: one text
    assert _cron(scrape, tmp_path).exit_code == 0
    before = (scrape / edited).stat()
    (scrape / edited).write_bytes((COUNCIL.encode() * 2)[: before.st_size])  # other words, same size ...
    os.utime(scrape / edited, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and the same mtime
    (scrape / "museum-copy.txt").write_text(truncate(MUSEUM, 0.7))  # the group is judged again
    result = _cron(scrape, tmp_path)
    assert result.exit_code == 0, result.output
    reference = _invoke(scrape, "--out", tmp_path / "reference")
    assert reference.exit_code == 0, reference.output
    keys = ("path", "status", "sha256", "cluster", "canonical", "duplicate_of", "score")
    ours = [[r.get(k) for k in keys] for r in read_manifest(tmp_path / "out")]
    assert ours == [[r.get(k) for k in keys] for r in read_manifest(tmp_path / "reference")]
    assert (tmp_path / "out" / "canonical" / edited).read_bytes() == (scrape / edited).read_bytes()
