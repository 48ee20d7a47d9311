"""`dedup --help` answers without loading the heavy libraries a run needs."""

import subprocess
import sys

import pytest

HEAVY = ("numpy", "numba", "datasketch", "scipy", "resiliparse", "ftfy")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["explain", "--help"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from dedup.cli import cli\n"
        f"try:\n    cli({args!r})\nexcept SystemExit as done:\n    assert done.code == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage: " in result.stdout
    assert result.stdout.splitlines()[-1] == "[]"


def test_the_library_entry_points_still_import_from_the_package() -> None:
    from dedup import RunResult, run
    from dedup.pipeline import RunResult as PipelineResult
    from dedup.pipeline import run as pipeline_run

    assert (run, RunResult) == (pipeline_run, PipelineResult)
    with pytest.raises(AttributeError):
        _ = __import__("dedup").no_such_name


@pytest.mark.parametrize("args", [["--version"], ["run", "--no-such-option"]])
def test_the_console_script_leaves_the_last_collection_nothing_to_walk(args: list[str]) -> None:
    """After any command, done or refused: what the run made is frozen for the interpreter's exit."""
    code = (
        "import atexit, gc, sys\n"
        "from dedup.cli import main\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, 'collected', gc.collect()))\n"
        f"sys.argv = ['dedup', *{args!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.splitlines()[-1] == "frozen True collected 0"
