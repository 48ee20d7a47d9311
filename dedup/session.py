"""A run opened: OUT and the ``--state`` checked and locked, and the filter for the run made.

A run without a state gets ``run_filter.Batch`` (nothing stored, OUT written
whole); one with a state gets ``incremental.Incremental`` over it. Whatever a
refused first run made (the state's directory, database, lock) is removed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from dedup import locks, manifest, state, state_checks
from dedup.config import Config
from dedup.errors import ConfigError, OutputError
from dedup.incremental import Incremental
from dedup.run_filter import Batch


@contextlib.contextmanager
def opened(config: Config, out: Path, roots: Sequence[str]) -> Iterator[Batch]:
    """Check and lock what the run writes, and open its state: the filter for the run.

    Raises:
        OutputError: OUT cannot be used (or the state directory overlaps an INPUT).
        StateError: the state is locked, was built with other parameters, or is unusable.
    """
    if config.state is None:
        manifest.prepare_out(out, roots, force=config.force)
        # Overlapping runs into one OUT.
        with locks.locked(out, config.lock_timeout, manifest.OUT_LOCK, what="OUT"):
            yield Batch()
        return
    directory = Path(config.state)
    manifest.check_apart(directory, roots, "--state")
    try:
        manifest.check_apart(directory, [str(out)], "--state")
    except OutputError as err:  # a run would replace or delete the state among its outputs
        raise ConfigError(f"--state {directory} overlaps OUT {out}: keep them apart") from err
    for path, what in ((directory, "--state"), (out, "OUT")):  # before the state is made: nothing half-made
        manifest.check_creatable(path, what)
    ours_to_make = (directory, directory / state.DATABASE, directory / locks.STATE_LOCK)
    made = [p for p in ours_to_make if not p.exists()]
    with locks.locked(directory, config.lock_timeout):
        # The stamp is worked out (and checked) only by a run with work to do: ``Incremental.unchanged``.
        store = state.State(directory, config.stamp, rebuild=config.rebuild)
        try:
            ours = store.last_run() > 0 or config.rebuild  # OUT holds this state's last outputs
            # A state deleted or moved since its last run: say so, and how to start again.
            lost = f"and --state {directory} holds no state: "
            lost += "run with --rebuild to build it and replace them"
            try:
                manifest.prepare_out(out, roots, force=config.force, ours_ok=ours, not_ours=lost)
            except OutputError:
                store.close()
                _remove(made)  # a first run refused for its OUT leaves no state behind
                raise
            # Two cron runs with different states must not write one OUT at once either.
            with locks.locked(out, config.lock_timeout, manifest.OUT_LOCK, what="OUT"):
                cache = Incremental(store, config)
                try:
                    yield cache
                finally:
                    cache.close()
        except sqlite3.Error as err:  # reading a damaged state, or writing to a full disk
            raise state_checks.unusable(store.path, err) from err
        finally:
            store.close()


def _remove(made: list[Path]) -> None:
    for path in reversed(made):
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() else path.unlink()
