"""The workers on a Dask cluster (``--engine dask``): the same stages, in the same order, elsewhere.

Both passes are maps of a stage over tasks (pass 1: batches of whole files by
path, and containers by piece: a byte range of a plain JSONL file, or a whole
compressed shard or WARC, ``readers.plan``; pass 2: connected groups of
candidates). This engine sends those tasks to a Dask cluster instead of forked
processes. The stage (pass 1's signer, pass 2's run tables) is scattered to
every worker once; each task carries only its paths, piece or group. Results
are taken in task order, never in finishing order, so the manifest and
``canonical/`` are byte-identical to a ``--engine local`` run with any number
of workers.

What is shared: a worker reads files and containers by their path, and pass 2
reads compressed records from a spool in OUT, so the INPUTs and OUT must be on
storage every worker sees (a shared file system), under the same paths.

What stays in this process: discovery (a listing and a stat per container,
never a read), appending to the document and feature tables (files in OUT,
which the workers map: ``columns``), the grouping of candidates,
writing the manifest's parts in order and the canonical copies, as in a local
run; banding and the prefilter (``index_workers``) and the manifest's records
(``manifest_workers``) are tasks too. A worker that dies
takes its tasks with it; Dask gives them to another worker, and a task lost
with ``distributed.scheduler.allowed-failures`` workers in turn ends the run
with an ``EngineError`` before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from typing import Any, TypeVar

from dedup import __version__, parallel
from dedup.config import Config
from dedup.errors import ConfigError, EngineError

T = TypeVar("T")
R = TypeVar("R")

WORKERLESS_S = 120  # a run whose cluster has had no worker (or no scheduler) this long ends: no hang
POLL_S = 1.0


def worker_stamp() -> dict[str, Any]:
    """What must be equal on the driver and every worker for their results to be the same."""
    from dedup import normalize, quality

    return {
        "dedup": __version__,
        "normalization": normalize.NORMALIZATION_VERSION,
        "scoring": quality.SCORING_VERSION,
        "python": list(sys.version_info[:2]),
    }


def check_stamps(stamps: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    """Refuse workers that run other code: their signatures or verdicts would differ.

    Example:
        >>> ok = worker_stamp()
        >>> check_stamps({"tcp://a:1": ok}, ok)
        >>> check_stamps({}, ok)
        Traceback (most recent call last):
        dedup.errors.EngineError: the Dask cluster has no workers
    """
    if not stamps:
        raise EngineError("the Dask cluster has no workers")
    for address, stamp in sorted(stamps.items()):
        if stamp != expected:
            raise EngineError(
                f"Dask worker {address} runs {stamp}, this process {expected}: install the same dedup there"
            )


def _apply(stage: Callable[[T], R], tasks: list[T]) -> list[R]:
    return [stage(task) for task in tasks]


class DaskWorkers:
    """An engine (``parallel.Engine``) over a connected ``distributed.Client``."""

    def __init__(self, client: Any, *, workerless_s: float = WORKERLESS_S, poll_s: float = POLL_S) -> None:
        self.client = client
        self.workerless_s = workerless_s
        self.poll_s = poll_s

    def threads(self) -> int:
        """Task slots over all workers now: the window of tasks in flight is a few per slot."""
        return max(1, sum(self.client.nthreads().values()))

    def ordered(
        self,
        stage: Callable[[T], R],
        tasks: Iterable[T],
        *,
        window_per_worker: int,
        per_call: int = 1,
        weight: parallel.Weight[T] | None = None,
    ) -> Iterator[R]:
        """``stage`` over ``tasks`` on the cluster, ``per_call`` tasks to a Dask task, at most
        ``window_per_worker`` Dask tasks per slot in flight."""
        held = self.client.scatter(stage, broadcast=True, hash=False)
        window = window_per_worker * self.threads()
        pending: deque[Any] = deque()
        try:
            for bundle in parallel.bundles(tasks, per_call, weight):
                pending.append(self.client.submit(_apply, held, bundle, pure=False))
                if len(pending) >= window:
                    yield from self._result(pending.popleft())
            while pending:
                yield from self._result(pending.popleft())
        finally:
            for future in pending:
                future.cancel()
            held.release()

    def _result(self, future: Any) -> Any:
        """The task's result; an ``EngineError`` once the cluster has been without workers too long.

        Dask waits for ever for a worker to run a task on; a nightly run must not.
        The result is fetched only once the task is done: a fetch cut short by a
        poll's timeout starts again from nothing, and a result that takes longer
        than a poll to send (a 25k-article shard) was sent again and again, forever.
        """
        from distributed import KilledWorker, wait

        workerless_since: float | None = None
        while True:
            try:
                wait(future, timeout=self.poll_s)
                return future.result(timeout=self.workerless_s)
            except KilledWorker as err:
                raise EngineError(f"a task was lost with every Dask worker it was given to: {err}") from err
            except CancelledError as err:
                raise EngineError(
                    "a task was cancelled by Dask: the workers holding its inputs, or the scheduler, "
                    f"went away ({err})"
                ) from err
            except TimeoutError:
                pass
            if self._has_workers():
                workerless_since = None
                continue
            workerless_since = workerless_since or time.monotonic()
            if time.monotonic() - workerless_since > self.workerless_s:
                raise EngineError(
                    f"no Dask worker (or no scheduler) for {self.workerless_s:.0f} s; nothing was written"
                )

    def _has_workers(self) -> bool:
        try:
            return self.client.status == "running" and bool(self.client.nthreads())
        except (OSError, TimeoutError, CancelledError):
            return False


@contextlib.contextmanager
def connect(config: Config) -> Iterator[DaskWorkers]:
    """The cluster at ``config.scheduler``, or a local one of ``config.workers`` processes on loopback."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ConfigError("--engine dask needs Dask: pip install 'dedup[dask]'") from err
    with contextlib.ExitStack() as stack:
        # The client's link to the scheduler keeps its last 1,000 batches of messages for
        # debugging (``BatchedSend.recent_message_log``): pass 1's tasks with their pickled
        # batches of paths, ~35 MB of the driver's heap in a long run.
        stack.enter_context(dask.config.set({"distributed.admin.low-level-log-length": 0}))
        try:
            if config.scheduler:
                # Dask's connect timeout (distributed.comm.timeouts.connect, 30 s unless set): then one error.
                client = stack.enter_context(Client(config.scheduler))
            else:
                cluster = LocalCluster(
                    n_workers=config.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",  # its HTTP server on any free loopback port
                    scheduler_kwargs={"dashboard": False},
                    silence_logs=logging.ERROR,
                )
                stack.enter_context(cluster)
                client = stack.enter_context(Client(cluster))
        except (OSError, TimeoutError) as err:
            where = config.scheduler or "a local cluster"
            raise EngineError(f"cannot start or reach the Dask scheduler ({where}): {err}") from err
        check_stamps(client.run(worker_stamp), worker_stamp())
        yield DaskWorkers(client)
