"""The command line: exit codes, stderr messages, stdout for data."""

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import COUNCIL, by_path, garble, truncate

from dedup.cli import cli


@pytest.fixture
def corpus(write_tree) -> Path:
    return write_tree(
        {
            "teaser.txt": truncate(COUNCIL, 0.45),
            "garbled.txt": garble(COUNCIL, "The city council member"),
            "empty.txt": "",
        }
    )


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_run_writes_outputs_and_reports_on_stderr(corpus: Path, tmp_path: Path) -> None:
    result = invoke("run", corpus, "--out", tmp_path / "out", "--jobs", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("3 documents: 1 kept, 1 duplicates in 1 clusters, 1 skipped -> ")
    assert by_path(tmp_path / "out")["garbled.txt"]["duplicate_of"] == "teaser.txt"


def test_quiet_prints_nothing(corpus: Path, tmp_path: Path) -> None:
    result = invoke("run", corpus, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


def test_non_empty_out_is_an_error(corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    result = invoke("run", corpus, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: OUT {tmp_path / 'out'} is not empty (use --force to replace dedup's files in it)\n"
    )
    assert invoke("run", corpus, "--out", tmp_path / "out", "--force", "-q").exit_code == 0


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    result = invoke("run", tmp_path / "nope", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'nope'}: no such file or directory\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jaccard", "1.5"], "--jaccard must be in (0, 1], got 1.5"),
        (["--lsh-threshold", "0.9"], "--lsh-threshold 0.9 is above --jaccard/--containment"),
        (["--id-field", "text"], "--id-field and --text-field are both 'text'"),
        (["--jobs", "-1"], "--jobs must be >= 0, got -1"),
        (["--num-perm", "abc"], "'abc' is not a valid integer"),
    ],
)
def test_bad_options_are_usage_errors(corpus: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("run", corpus, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Usage:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_help_has_examples() -> None:
    result = invoke("run", "--help")
    assert result.exit_code == 0 and "Examples:" in result.stdout and "--containment" in result.stdout


def test_explain_shows_the_evidence(corpus: Path, tmp_path: Path) -> None:
    assert invoke("run", corpus, "--out", tmp_path / "out", "-q").exit_code == 0
    result = invoke("explain", "teaser.txt", "garbled.txt", "--in", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    cluster = by_path(tmp_path / "out")["teaser.txt"]["cluster"]
    assert f"A: teaser.txt  cluster {cluster}  canonical" in result.stdout
    assert f"B: garbled.txt  cluster {cluster}  duplicate of teaser.txt" in result.stdout
    assert "verdict: near-duplicates: containment" in result.stdout
    report = orjson.loads(
        invoke("explain", "teaser.txt", "empty.txt", "--in", tmp_path / "out", "--json").stdout
    )
    assert report["verdict"].startswith("not compared: empty.txt was skipped (empty")


def test_explain_unknown_path_is_an_error(corpus: Path, tmp_path: Path) -> None:
    invoke("run", corpus, "--out", tmp_path / "out", "-q")
    result = invoke("explain", "teaser.txt", "nope.txt", "--in", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"Error: nope.txt: not in {tmp_path / 'out' / 'manifest.jsonl'}\n"
