"""Workers for both passes: one stage over many tasks, results in task order.

An ``Engine`` runs the stages: ``Processes`` (the default) forks worker
processes from this one; ``dask_workers.DaskWorkers`` sends the same stages to
a Dask cluster. Either way results come back in task order.

A stage is a picklable callable holding what its tasks need (pass 1: the
config and a signer, its tasks paths and pieces of containers to read; pass 2:
the run's tables). It is handed to each worker
once, by the pool's initialiser: forked workers inherit it without pickling, so
pass 2's tables are shared, not sent. The results come back in task order
whatever the timing, so outputs do not depend on ``--jobs``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from dedup.config import Config

T = TypeVar("T")
R = TypeVar("R")

MIN_TASKS = 8  # fewer tasks than this (in a list) are not worth starting processes for

# The stage of this worker process, set by its initialiser; never set in the parent.
_stage: Callable[[Any], Any] | None = None


def _start(stage: Callable[[Any], Any], parent: int) -> None:
    global _stage
    _die_with(parent)
    _stage = stage


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the run's process dies (Linux).

    Without it a killed run leaves its workers alive under init, blocked on
    their task queue forever. If the parent died before the request was made,
    the worker leaves at once.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _call(bundle: list[Any]) -> list[Any]:
    assert _stage is not None, "a worker without a stage"
    return [_stage(task) for task in bundle]


def bundles(tasks: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive tasks in lists of ``size`` (the last may be shorter): one call each.

    Example:
        >>> list(bundles(range(5), 2))
        [[0, 1], [2, 3], [4]]
    """
    bundle: list[T] = []
    for task in tasks:
        bundle.append(task)
        if len(bundle) == size:
            yield bundle
            bundle = []
    if bundle:
        yield bundle


@contextlib.contextmanager
def pool(workers: int, stage: Callable[[Any], Any]) -> Iterator[ProcessPoolExecutor]:
    """Worker processes, forked with the run's tables, each holding ``stage``.

    The garbage collector is frozen while they live: a worker's collection would
    otherwise walk every object it inherited (a cron run's stored rows), writing
    to their pages and so copying them all (measured: +3 s of system time for
    two workers at 110k).
    """
    ctx = get_context("fork") if os.name == "posix" else get_context("spawn")
    _trim_heap()
    gc.freeze()
    try:
        start = (stage, os.getpid())
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start, initargs=start) as executor:
            yield executor
    finally:
        gc.unfreeze()


def _trim_heap() -> None:
    """Give the heap's free pages back to the system before forking (glibc; elsewhere nothing).

    glibc keeps freed blocks under its mmap threshold (which rises to 32 MB after
    the first large free) in the heap: the index stage's per-band arrays stayed
    resident in the driver through pass 2 (noisy 100k: ~80 MB of its 411 MB).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def ordered(
    stage: Callable[[T], R], tasks: Iterable[T], *, workers: int, window_per_worker: int, per_call: int = 1
) -> Iterator[R]:
    """``stage`` over ``tasks``, results in task order.

    In this process when there is one worker or a short list of tasks; otherwise
    in ``workers`` processes, ``per_call`` tasks to a call, with at most
    ``window_per_worker * workers`` calls in flight (memory stays flat however
    many tasks a stream holds).

    Example:
        >>> list(ordered(abs, [-2, 1, -3], workers=1, window_per_worker=4))
        [2, 1, 3]
    """
    if workers == 1 or (isinstance(tasks, Sized) and len(tasks) < MIN_TASKS):
        yield from map(stage, tasks)
        return
    window = window_per_worker * workers
    with pool(workers, stage) as executor:
        pending: deque[Future[list[R]]] = deque()
        for bundle in bundles(tasks, per_call):
            pending.append(executor.submit(_call, bundle))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


class Engine(Protocol):
    """Runs a stage over tasks and yields the results in task order (never in finishing order).

    ``per_call`` is how many tasks share one call: one message to a worker and back
    (a Dask task costs milliseconds of scheduling, a forked worker's call a
    fraction of one), for stages whose tasks are cheap.
    """

    def ordered(
        self, stage: Callable[[T], R], tasks: Iterable[T], *, window_per_worker: int, per_call: int = 1
    ) -> Iterator[R]: ...


@dataclass(frozen=True, slots=True)
class Processes:
    """The default engine: ``workers`` processes forked from this one (see ``ordered``)."""

    workers: int

    def ordered(
        self, stage: Callable[[T], R], tasks: Iterable[T], *, window_per_worker: int, per_call: int = 1
    ) -> Iterator[R]:
        return ordered(
            stage, tasks, workers=self.workers, window_per_worker=window_per_worker, per_call=per_call
        )


@contextlib.contextmanager
def engine(config: Config) -> Iterator[Engine]:
    """The run's engine, for both passes: started once, stopped when the run ends."""
    if config.engine == "dask":
        from dedup import dask_workers  # only here: dask is an optional extra

        with dask_workers.connect(config) as workers:
            yield workers
    else:
        yield Processes(config.workers)
