"""Pass 2's records wait on disk for the write stage (dedup/record_spill.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dedup import Config, run
from dedup.record_spill import SpilledRecords

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def test_records_read_back_as_written_across_flushes_and_rewrites(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    expected: dict[int, bytes] = {}
    with SpilledRecords.beside(tmp_path, 5000) as records:
        for step in range(4000):  # ~3 MB: several flushes, reads between them
            doc = int(rng.integers(0, 5000))
            record = bytes(rng.integers(32, 127, size=int(rng.integers(1, 1500)), dtype=np.uint8))
            if step % 3:
                records.update([(doc, record)])
            else:
                records[doc] = record
            expected[doc] = record
            if step % 97 == 0:
                probe = int(rng.integers(0, 5000))
                assert records.get(probe) == expected.get(probe)
        assert len(records) == len(expected)
        assert all(records.get(d) == r for d, r in expected.items())
        assert all((d in records) == (d in expected) for d in range(5000))
        assert all((np.int64(d) in records) == (d in expected) for d in range(0, 5000, 7))  # numpy's too
        path = records.path
        assert path.parent == tmp_path and path.name.startswith(".records.")
    assert not path.exists()


def test_a_runs_records_are_on_disk_until_the_manifest_is_written_and_gone_after(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".records.killed.tmp").write_bytes(b"{}")  # what a killed run leaves
    sizes: list[list[int]] = []

    def checkpoint(name: str) -> None:
        if name == "committed":  # the manifest is being written
            sizes.append([p.stat().st_size for p in out.iterdir() if p.name.startswith(".records.")])

    result = run([str(SAMPLE)], out, Config(jobs=1, force=True), checkpoint=checkpoint)
    # One file, this run's (the killed run's removed first), holding the grouped documents' records.
    assert result.counts["clusters_with_duplicates"] > 0
    assert len(sizes) == 1 and len(sizes[0]) == 1 and sizes[0][0] > 1000
    assert not [p for p in out.iterdir() if p.name.startswith(".records.")]


@pytest.mark.parametrize("cron", [False, True])
def test_a_run_killed_before_its_manifest_does_not_lock_the_next_one_out(tmp_path: Path, cron: bool) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # What a first run killed in pass 2 leaves: its lock, its records and a spill.
    (out / ".lock").write_bytes(b"")
    (out / ".records.killed.tmp").write_bytes(b'{"path": "x"}')
    (out / ".signatures.killed.tmp").mkdir()
    config = Config(jobs=1, state=str(tmp_path / "state")) if cron else Config(jobs=1)
    result = run([str(SAMPLE)], out, config)  # without --force
    assert result.counts["documents"] > 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]
