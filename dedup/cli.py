"""The ``dedup`` command: parse options, call the library, report.

Messages go to stderr, data (``explain``'s report) to stdout. ``_Group.invoke`` is
the one place that turns library errors into exit codes: 0 done, 1 error
(``Error: ...``), 2 usage error (bad or conflicting options).
"""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any

import click
import orjson

from dedup import __version__
from dedup.config import Config
from dedup.errors import ConfigError, DedupError, StateLockedError

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Config)}


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
    show = not quiet and sys.stderr.isatty()

    def progress(stage: str, done: int) -> None:
        click.echo(f"\r{stage}: {done:,} documents", nl=False, err=True)

    result = run_pipeline(inputs, out, config, progress=progress if show else None)
    if show:
        click.echo("", err=True)
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


@cli.command()
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option(
    "--in",
    "out",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="OUT directory of a finished run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def explain(first: str, second: str, out: str, as_json: bool) -> None:
    """Show why manifest paths A and B were or were not clustered, and who was kept.

    \b
    Example:
      dedup explain docs/3f/9c01ab27.txt docs/a0/77e1c2d4.txt --in /tmp/sample-out
    """
    from dedup.explain import explain as explain_pair  # here, not on top: --help stays fast

    report = explain_pair(out, first, second)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    for label, r in zip("AB", report["documents"], strict=True):
        if r["status"] != "ok":
            click.echo(f"{label}: {r['path']}  skipped ({r['status']}: {r['error'] or r['reason']})")
            continue
        role = "canonical" if r["canonical"] else f"duplicate of {r['duplicate_of']}"
        click.echo(f"{label}: {r['path']}  cluster {r['cluster']}  {role}  score {r['score']:.2f}")
        click.echo(f"   {r['reason']}")
    if report["similarity"]:
        s = report["similarity"]
        click.echo(
            f"similarity: jaccard {s['jaccard']:.2f}, containment {s['containment']:.2f}, "
            f"{s['shared']} shared shingles"
        )
    click.echo(f"verdict: {report['verdict']}")


main = cli
