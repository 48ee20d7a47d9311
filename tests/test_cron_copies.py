"""Cron mode's canonical copies: new texts of their own copied while pass 2 runs, put in place after
the commit (``copies.Early``), exactly as a full run copies them."""

import os
from pathlib import Path

import pytest
from conftest import STORM, scrape_files

from dedup import Config, copies, run
from dedup.errors import InputChangedError


def _story(k: int) -> str:
    return " ".join(f"a story of its own number {k} with the word w{k}x{j} in it" for j in range(40))


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_new_texts_of_their_own_are_copied_in_place_as_a_full_run_copies_them(
    write_tree, tmp_path, monkeypatch
) -> None:
    inputs = write_tree(scrape_files("day1/"))
    config = Config(jobs=2, state=str(tmp_path / "state"))
    run([inputs], tmp_path / "out", config)
    write_tree({"day1/alone.txt": _story(1), "day2/deep/alone.txt": _story(2), "day2/storm-again.txt": STORM})
    os.chmod(inputs / "day2" / "deep" / "alone.txt", 0o600)
    early: list[set[int]] = []
    made = copies.Early.made
    monkeypatch.setattr(copies.Early, "made", lambda self: early.append(made(self)) or early[-1])
    counts = run([inputs], tmp_path / "out", config).counts
    assert counts["new"] == 3
    assert len(early) == 1 and len(early[0]) == 2  # the two texts of their own, copied while pass 2 ran
    run([inputs], tmp_path / "full", Config(jobs=2))
    ours, full = _tree(tmp_path / "out" / "canonical"), _tree(tmp_path / "full" / "canonical")
    assert ours == full and {"day1/alone.txt", "day2/deep/alone.txt"} <= set(ours)
    assert ours["day2/deep/alone.txt"][1] == 0o600
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".lock") == [
        "canonical",
        "manifest.jsonl",
        "runs",
        "summary.json",
    ]


@pytest.mark.parametrize("when", ["pass1", "committed"])  # before its early copy is made, or after
def test_a_new_file_edited_during_the_run_is_reported_and_copied_by_the_next(write_tree, tmp_path, when):
    inputs = write_tree(scrape_files("day1/"))
    config = Config(jobs=1, state=str(tmp_path / "state"))
    run([inputs], tmp_path / "out", config)
    new = inputs / "day2" / "alone.txt"
    write_tree({"day2/alone.txt": _story(3)})

    def edit(point: str) -> None:
        if point == when:
            new.write_text(_story(3) + " and a line added while the run went on")

    with pytest.raises(InputChangedError, match="changed while dedup was running"):
        run([inputs], tmp_path / "out", config, checkpoint=edit)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".canonical")]
    assert not (tmp_path / "out" / "canonical" / "day2" / "alone.txt").exists()
    run([inputs], tmp_path / "out", config)
    assert (tmp_path / "out" / "canonical" / "day2" / "alone.txt").read_bytes() == new.read_bytes()
