"""The ``dedup`` command: parse options, call the library, report.

Messages go to stderr, data (``explain``'s report) to stdout. ``_Group.invoke`` is
the one place that turns library errors into exit codes: 0 done, 1 error
(``Error: ...``), 2 usage error (bad or conflicting options), 3 another run holds
the lock on the state or on OUT.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import fields
from typing import Any, ClassVar

import click
import orjson

from dedup import __version__
from dedup.config import MAX_JOBS, Config
from dedup.errors import ConfigError, DedupError, StateLockedError

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Config)}
# Before numpy loads: dedup's parallelism is its own processes, and OpenBLAS's threads (which numba's
# kernels load with scipy) spun for ever allocating their buffers under a low `ulimit -v`.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class _Group(click.Group):
    """Turns library errors into click's: ``Error: ...`` and exit 1, or a usage error and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as err:
            raise click.UsageError(str(err), ctx) from err
        except StateLockedError as err:
            raise _Locked(str(err)) from err
        except DedupError as err:
            raise click.ClickException(str(err)) from err
        except MemoryError as err:  # a low `ulimit -v`, or a machine out of memory: a line, not a traceback
            raise click.ClickException(f"out of memory{f': {err}' if str(err) else ''}") from err


class _Progress:
    """One progress bar per stage on stderr (tqdm): count, total, rate and ETA; off when not a terminal."""

    _UNITS: ClassVar[dict[str, str]] = {
        "read": " docs", "verify": " groups", "write": " docs", "copy": " copies", "report": " clusters",
    }  # fmt: skip

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        if stage != self._stage:
            from tqdm import tqdm

            self.close()
            self._stage = stage
            self._bar = tqdm(
                total=total,
                desc=stage,
                unit=self._UNITS.get(stage, " items"),
                file=sys.stderr,
                dynamic_ncols=True,
            )
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar, self._stage = None, ""

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Locked(click.ClickException):
    """Another run holds the state: exit 3, so cron wrappers can tell "busy" from "broken"."""

    exit_code = 3


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dedup")
def cli() -> None:
    """Find near-duplicate articles in scraped corpora and keep the cleanest copy."""


@cli.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--force", is_flag=True, help="Allow a non-empty OUT; dedup's own files there are replaced.")
@click.option(
    "--glob",
    "globs",
    multiple=True,
    metavar="PATTERN",
    help=f"File names to read from directories (repeatable). [default: {' '.join(_DEFAULTS['globs'])}]",
)
@click.option(
    "--id-field", default=_DEFAULTS["id_field"], show_default=True, help="JSONL id field (dotted: meta.id)."
)
@click.option(
    "--text-field", default=_DEFAULTS["text_field"], show_default=True, help="JSONL text field (dotted)."
)
@click.option(
    "--shingle-size",
    type=int,
    default=_DEFAULTS["shingle_size"],
    show_default=True,
    help="Words per shingle.",
)
@click.option(
    "--num-perm", type=int, default=_DEFAULTS["num_perm"], show_default=True, help="MinHash permutations."
)
@click.option("--seed", type=int, default=_DEFAULTS["seed"], show_default=True, help="MinHash seed.")
@click.option(
    "--lsh-threshold",
    type=float,
    default=_DEFAULTS["lsh_threshold"],
    show_default=True,
    help="Jaccard level the LSH index proposes candidates at (recall-weighted).",
)
@click.option(
    "--jaccard",
    type=float,
    default=_DEFAULTS["jaccard"],
    show_default=True,
    help="A verified pair needs this shingle Jaccard...",
)
@click.option(
    "--containment",
    type=float,
    default=_DEFAULTS["containment"],
    show_default=True,
    help="...or this share of the smaller document inside the larger.",
)
@click.option(
    "--min-shared",
    type=int,
    default=_DEFAULTS["min_shared"],
    show_default=True,
    help="Shared shingles needed before containment counts.",
)
@click.option(
    "--max-bytes",
    type=int,
    default=_DEFAULTS["max_bytes"],
    show_default=True,
    help="Larger files are recorded as too_large and skipped.",
)
@click.option(
    "--follow-links",
    is_flag=True,
    help="Read files behind symbolic links that lead out of their INPUT directory (recorded as outside).",
)
@click.option(
    "--jobs",
    "-j",
    type=int,
    default=_DEFAULTS["jobs"],
    show_default=True,
    help="Worker processes; 0 = one per core. Results are the same for any value.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default=_DEFAULTS["engine"],
    show_default=True,
    help="Where the passes run: forked processes, or a Dask cluster (pip install 'dedup[dask]').",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="A running Dask scheduler (tcp://host:8786) for --engine dask; default: a local cluster of --jobs.",
)
@click.option(
    "--state",
    type=click.Path(file_okay=False),
    default=None,
    help="State directory for incremental (cron) runs: only new or changed files are signed.",
)
@click.option(
    "--lock-timeout",
    type=float,
    default=_DEFAULTS["lock_timeout"],
    show_default=True,
    help="Seconds to wait for another run holding --state (then exit 3).",
)
@click.option(
    "--rebuild", is_flag=True, help="Discard --state and build it anew (after changing parameters)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary line.")
def run(inputs: tuple[str, ...], out: str, quiet: bool, globs: tuple[str, ...], **options: Any) -> None:
    """Cluster near-duplicates in INPUT... and write OUT/manifest.jsonl, OUT/canonical/, OUT/summary.json.

    INPUT is a directory (walked recursively), a text or HTML file, a JSON Lines
    file (one article per line) or a WARC file (one per HTML or text response),
    plain or compressed (.gz, .zst, .bz2, .xz); `-` reads JSON Lines from stdin.

    \b
    Examples:
      dedup run corpora/sample --out /tmp/sample-out
      dedup run scrape/ extra.jsonl.gz crawl.warc.gz --out clean/ --force --jobs 4
      zcat feed.jsonl.gz | dedup run - --out clean/ --text-field body.text
      dedup run scrape/ --out clean/ --glob '*.txt' --containment 0.6
      dedup run scrape/ --out clean/ --state state/ --lock-timeout 600   # nightly, from cron
    """
    from dedup.pipeline import run as run_pipeline  # here, not on top: --help stays fast (numpy, numba)

    config = Config(globs=globs or _DEFAULTS["globs"], **options)
    bar = _Progress(enabled=not quiet and sys.stderr.isatty())
    with bar:
        result = run_pipeline(inputs, out, config, progress=bar if bar.enabled else None)
    if (warning := _skipped_warning(result.counts)) is not None:
        click.echo(warning, err=True)
    if not quiet:
        c = result.counts
        line = (
            f"{c['documents']:,} documents: {c['clusters']:,} kept, {c['duplicates']:,} duplicates "
            f"in {c['clusters_with_duplicates']:,} clusters, {c['skipped']:,} skipped -> {result.out}"
        )
        if result.summary["run"] is not None:
            line = (
                f"run {result.summary['run']}: {c['new']:,} new, {c['changed']:,} changed, "
                f"{c['superseded']:,} superseded, {c['gone']:,} gone; {line}"
            )
        click.echo(line, err=True)


def _skipped_warning(counts: dict[str, int]) -> str | None:
    """A line for stderr when more than half the documents were skipped (often a wrong option)."""
    skipped, total = counts["skipped"], counts["documents"]
    if 2 * skipped <= total:
        return None
    reasons = sorted(
        ((n, key.removeprefix("skipped_")) for key, n in counts.items() if key.startswith("skipped_")),
        reverse=True,
    )
    top = ", ".join(f"{status} {n:,}" for n, status in reasons[:3])
    return f"Warning: {skipped:,} of {total:,} documents were skipped ({top}); see the manifest's error field"


_IN = click.option(
    "--in",
    "out",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="OUT directory of a finished run.",
)


def _json(report: Any) -> None:
    """A report as JSON on stdout, without the full texts (they are in the inputs)."""

    def drop_text(member: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in member.items() if k != "text"}

    if "members" in report:
        report = {**report, "members": [drop_text(m) for m in report["members"]]}
    if "documents" in report:
        report = {**report, "documents": [drop_text(m) for m in report["documents"]]}
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


@cli.command()
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@_IN
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def explain(first: str, second: str, out: str, as_json: bool) -> None:
    """Show why manifest paths A and B were or were not clustered, who was kept, and why.

    Each penalty is given in plain words (its manifest field name first) with
    snippets of the text it counted; the kept copy's own penalties are listed
    with why it still won. Texts are read again from the inputs, or from
    OUT/canonical/ when an input changed or vanished since the run.

    \b
    Example (after: dedup run corpora/sample --out /tmp/dedup-sample --force):
      dedup explain docs/91/b7d472ce.txt docs/b5/3c42077e.txt --in /tmp/dedup-sample
    """
    from dedup.explain import explain as explain_pair  # here, not on top: --help stays fast
    from dedup.explain import format_explain

    report = explain_pair(out, first, second)
    if as_json:
        _json(report)
    else:
        click.echo(format_explain(report))


@cli.command()
@click.argument("cluster", required=False)
@_IN
@click.option("--path", "path", metavar="P", help="Show the cluster of manifest path P instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def show(cluster: str | None, out: str, path: str | None, as_json: bool) -> None:
    """List the members of CLUSTER: who was kept and why, each penalty with its evidence.

    \b
    Examples (after: dedup run corpora/sample --out /tmp/dedup-sample --force):
      dedup show c3ac55ca92acc --in /tmp/dedup-sample
      dedup show --path docs/91/b7d472ce.txt --in /tmp/dedup-sample
    """
    from dedup.explain import format_show
    from dedup.explain import show as show_cluster

    if (cluster is None) == (path is None):
        raise click.UsageError("give either CLUSTER or --path P")
    report = show_cluster(out, cluster=cluster, path=path)
    if as_json:
        _json(report)
    else:
        click.echo(format_show(report))


@cli.command()
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--texts",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Clusters shown with their texts side by side (half the largest, half the weakest).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=0, max=MAX_JOBS),
    default=0,
    show_default=True,
    help="Processes reading texts again; 0 = one per core. The page is the same for any value.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary line.")
def report(out: str, texts: int, jobs: int, quiet: bool) -> None:
    """Write OUT/report.html: one self-contained page to browse a finished run.

    Counts and histograms, every cluster with duplicates (sortable, filterable),
    the kept copy and each duplicate side by side with their differences marked,
    each penalty with the text it counted, skipped inputs, and in cron mode the
    last run's changes. Open it in any browser; it needs no network.

    \b
    Example (after: dedup run corpora/sample --out /tmp/dedup-sample --force):
      dedup report /tmp/dedup-sample && xdg-open /tmp/dedup-sample/report.html
    """
    from dedup.report import write_report

    bar = _Progress(enabled=not quiet and sys.stderr.isatty())
    with bar:
        written = write_report(out, texts=texts, jobs=jobs, progress=bar)
    if not quiet:
        click.echo(
            f"report of {written.clusters:,} clusters ({written.detailed:,} with texts) -> {written.path}",
            err=True,
        )


def main() -> None:
    """The console script: ``cli``, then the process ends.

    The interpreter's last collection would walk every object the run made, numba's
    compiled kernels among them: ~0.2 s a run that loaded them. Frozen, they are left to
    the operating system (files are closed by then: the library closes what it opens).
    """
    try:
        cli()
    finally:
        gc.freeze()
