"""The command line: exit codes, stderr messages, stdout for data."""

import re
import shlex
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import COUNCIL, by_path, garble, mojibake, truncate

from dedup import evidence
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
        (["--jobs", "-1"], "--jobs must be 0..1024, got -1"),
        (["--jobs", "100000"], "--jobs must be 0..1024, got 100000"),  # forked until the machine gave out
        (["--num-perm", "abc"], "'abc' is not a valid integer"),
        # Each ran the whole job, then ended in a traceback (summary.json; numpy's seed), or waited for ever.
        (["--max-bytes", str(1 << 64)], f"--max-bytes must be 1..{(1 << 63) - 1}, got {1 << 64}"),
        (["--seed", "-1"], "--seed must be 0..4294967295, got -1"),
        (["--seed", str(1 << 32)], "--seed must be 0..4294967295"),
        (["--lock-timeout", "nan"], "--lock-timeout must be >= 0, got nan"),
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
    as_text = invoke("explain", "teaser.txt", "empty.txt", "--in", tmp_path / "out")  # was a KeyError
    assert as_text.exit_code == 0, as_text.stderr
    assert "A: teaser.txt  cluster c" in as_text.stdout and "B: empty.txt  skipped (empty" in as_text.stdout
    assert "verdict: not compared: empty.txt was skipped" in as_text.stdout


def test_report_jobs_are_bounded_as_runs_are(corpus: Path, tmp_path: Path) -> None:
    assert invoke("run", corpus, "--out", tmp_path / "out", "-q").exit_code == 0
    result = invoke("report", tmp_path / "out", "-q", "--jobs", "99999999999")  # forked until killed
    assert result.exit_code == 2 and "0<=x<=1024" in result.stderr
    assert not (tmp_path / "out" / "report.html").exists()


def test_running_out_of_memory_is_one_error_line(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    from dedup import pipeline

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(pipeline, "run", exhausted)
    result = invoke("run", corpus, "--out", tmp_path / "out")
    assert result.exit_code == 1 and result.stderr == "Error: out of memory\n"


def test_explain_gives_the_kept_copys_own_penalties_and_snippets(write_tree, tmp_path: Path) -> None:
    root = write_tree({"clean.txt": COUNCIL + "\nAdvertisement", "mangled.txt": mojibake(COUNCIL)})
    assert invoke("run", root, "--out", tmp_path / "out", "-q").exit_code == 0
    result = invoke("explain", "clean.txt", "mangled.txt", "--in", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "A: clean.txt  cluster c" in out and "canonical (kept)" in out
    assert f"    boilerplate -0.25: {evidence.PLAIN['boilerplate']}; 1 found" in out  # the kept copy's own
    assert "        [Advertisement]\n" in out
    assert "    mojibake -1.00: garbled characters" in out
    assert re.search(
        r"        \.\.\..*\[\S*\u00e2\u20ac\S*\].*  -> \S*\u2019", out
    )  # the garbled word and its repair
    assert "it won because every other copy scored lower" in out


def test_explain_falls_back_to_the_canonical_copy(write_tree, tmp_path: Path) -> None:
    root = write_tree({"clean.txt": COUNCIL, "mangled.txt": mojibake(COUNCIL)})
    assert invoke("run", root, "--out", tmp_path / "out", "-q").exit_code == 0
    (root / "clean.txt").write_text("rewritten since the run")
    result = invoke("explain", "clean.txt", "mangled.txt", "--in", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert "    text: canonical copy (the input changed or vanished since the run)" in result.stdout
    assert "verdict: near-duplicates" in result.stdout
    (root / "mangled.txt").unlink()
    result = invoke("explain", "clean.txt", "mangled.txt", "--in", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert "    text: unavailable: " in result.stdout
    assert "verdict: not compared: the text of a document is no longer available" in result.stdout


def test_show_lists_a_cluster_by_name_or_by_path(corpus: Path, tmp_path: Path) -> None:
    assert invoke("run", corpus, "--out", tmp_path / "out", "-q").exit_code == 0
    cluster = by_path(tmp_path / "out")["teaser.txt"]["cluster"]
    by_name = invoke("show", cluster, "--in", tmp_path / "out")
    assert by_name.exit_code == 0, by_name.stderr
    assert by_name.stdout.startswith(
        f"cluster {cluster}: 2 members\n  teaser.txt  cluster {cluster}  canonical"
    )
    assert f"  garbled.txt  cluster {cluster}  duplicate of teaser.txt" in by_name.stdout
    assert "    similarity to the kept copy: jaccard " in by_name.stdout
    assert invoke("show", "--path", "garbled.txt", "--in", tmp_path / "out").stdout == by_name.stdout
    report = orjson.loads(invoke("show", cluster, "--in", tmp_path / "out", "--json").stdout)
    assert [m["path"] for m in report["members"]] == ["teaser.txt", "garbled.txt"]
    assert {p["signal"] for p in report["members"][1]["evidence"]} >= {"treebank", "repetition"}
    assert report["members"][1]["penalties"] == by_path(tmp_path / "out")["garbled.txt"]["penalties"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Error: give either CLUSTER or --path P"),
        (("c0", "--path", "x"), "Error: give either CLUSTER or --path P"),
        (("c000000000000",), "Error: c000000000000: no such cluster in {out}/manifest.jsonl"),
        (("--path", "empty.txt"), "Error: empty.txt: skipped (empty: {error}), in no cluster"),
    ],
)
def test_show_errors(corpus: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    out = tmp_path / "out"
    invoke("run", corpus, "--out", out, "-q")
    result = invoke("show", *args, "--in", out)
    error = by_path(out)["empty.txt"]["error"]
    assert result.exit_code == (2 if "either" in message else 1)
    assert result.stderr.splitlines()[-1] == message.format(out=out, error=error)


@pytest.mark.parametrize("command", ["explain", "show", "report"])
def test_help_examples_work_on_the_sample(command: str, tmp_path: Path) -> None:
    """The --help examples, as written, on the run the README makes (its OUT moved into tmp_path)."""
    out = tmp_path / "dedup-sample"
    assert invoke("run", "corpora/sample", "--out", out, "-q").exit_code == 0
    help_text = invoke(command, "--help").stdout
    examples = [
        line.split("dedup ", 1)[1] for line in help_text.splitlines() if line.startswith("    dedup ")
    ]
    assert examples
    for example in examples:
        args = shlex.split(example.split("&&")[0].replace("/tmp/dedup-sample", str(out)))
        result = invoke(*args)
        assert result.exit_code == 0, (example, result.stderr)
        assert result.stdout or (out / "report.html").exists()


def test_explain_unknown_path_is_an_error(corpus: Path, tmp_path: Path) -> None:
    invoke("run", corpus, "--out", tmp_path / "out", "-q")
    result = invoke("explain", "teaser.txt", "nope.txt", "--in", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"Error: nope.txt: not in {tmp_path / 'out' / 'manifest.jsonl'}\n"


def test_report_needs_a_finished_run(tmp_path: Path) -> None:
    result = invoke("report", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no readable summary.json in {tmp_path}: ")


def test_report_says_what_it_wrote(corpus: Path, tmp_path: Path) -> None:
    invoke("run", corpus, "--out", tmp_path / "out", "-q")
    result = invoke("report", tmp_path / "out", "--jobs", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"report of 1 clusters (1 with texts) -> {tmp_path / 'out' / 'report.html'}\n"
    assert invoke("report", tmp_path / "out", "-q").stderr == ""
