"""Workers for both passes: one stage over many tasks, results in task order.

An ``Engine`` runs the stages: ``Processes`` (the default) forks worker
processes from this one; ``dask_workers.DaskWorkers`` sends the same stages to
a Dask cluster. Either way results come back in task order.

A stage is a picklable callable holding what its tasks need (pass 1: the
config and a signer, its tasks paths and pieces of containers to read; pass 2:
the run's tables). It is handed to each worker once, as it is forked: forked
workers inherit it without pickling, so pass 2's tables are shared, not sent.
The results come back in task order whatever the timing, so outputs do not
depend on ``--jobs``. A worker that dies (a signal, the OOM killer) ends the
run with an ``EngineError``, never a hang.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from multiprocessing import connection, get_context
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dedup.errors import EngineError

if TYPE_CHECKING:
    from dedup.config import Config

T = TypeVar("T")
R = TypeVar("R")
Weight = tuple[Callable[[T], int], int]  # a task's weight, and the most one call holds (``bundles``)

MIN_TASKS = 8  # fewer tasks than this (in a list) are not worth starting processes for

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


def bundles(tasks: Iterable[T], size: int, weight: Weight[T] | None = None) -> Iterator[list[T]]:
    """Consecutive tasks in lists of ``size`` (the last may be shorter): one call each. With a
    ``weight`` (a task's weight, the most a call holds), a list weighs no more than that, or is
    one task.

    Example:
        >>> list(bundles(range(5), 2)), list(bundles([1, 5, 1, 1, 1], 3, (lambda t: t, 2)))
        ([[0, 1], [2, 3], [4]], [[1], [5], [1, 1], [1]])
    """
    bundle: list[T] = []
    load = 0
    for task in tasks:
        if weight is not None:
            heavy = weight[0](task)
            if bundle and load + heavy > weight[1]:
                yield bundle
                bundle, load = [], 0
            load += heavy
        bundle.append(task)
        if len(bundle) == size:
            yield bundle
            bundle, load = [], 0
    if bundle:
        yield bundle


class _Worker:
    """One forked worker with pipes of its own (calls in, replies out), holding the stage.

    Not a ``ProcessPoolExecutor``: its workers share one result pipe, and a
    worker killed while sending a result (the OOM killer picks the largest
    process) left the run blocked for ever on the half-sent message, holding its
    locks. Here a dead worker's reply pipe ends (EOF) and its sentinel fires.
    """

    def __init__(self, ctx: Any, stage: Callable[[Any], Any], parent: int, others: list[_Worker]) -> None:
        calls_there, calls = ctx.Pipe(duplex=False)
        self.replies, replies_there = ctx.Pipe(duplex=False)
        for end in (calls, replies_there):
            _widen(end)
        self.calls = calls
        # The parent's ends, this worker's and the workers' forked before: closed in the child, so
        # that the parent closing them is an end of calls for it (and a broken pipe for its reply).
        theirs = [end for worker in [*others, self] for end in (worker.calls, worker.replies)]
        args = (calls_there, replies_there, stage, parent, theirs)
        self.process = ctx.Process(target=_serve, args=args, name="dedup-worker", daemon=True)
        self.process.start()
        calls_there.close()
        replies_there.close()
        self.waiting: deque[int] = deque()  # the calls sent to it and not answered yet, in order


def _widen(end: Any) -> None:
    """A pipe of 1 MB (Linux; elsewhere as it is): a worker's reply (pass 1: ~400 KB) is written
    at once, and the worker goes on to its next call while the parent is busy with the last one."""
    with contextlib.suppress(ImportError, OSError, AttributeError, ValueError):
        import fcntl  # not on Windows

        fcntl.fcntl(end.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)


def _serve(calls: Any, replies: Any, stage: Callable[[Any], Any], parent: int, theirs: list[Any]) -> None:
    """A worker's loop: calls in, replies out. A thread takes the calls as they come, so that the
    parent's send of the next call never waits on this worker's send of a large reply.

    Ctrl-C is the parent's to handle (it stops the workers): no traceback from each of them.
    """
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in theirs:
        end.close()
    inbox: queue.SimpleQueue[list[Any] | EngineError | None] = queue.SimpleQueue()

    def receive() -> None:
        while True:
            try:
                bundle = calls.recv()
            except (EOFError, OSError):
                break
            except Exception as err:  # a call that does not unpickle here: its reply says so, not a hang
                bundle = EngineError(f"a worker could not read its call: {err!r}")
            if bundle is None:
                break
            inbox.put(bundle)
        inbox.put(None)

    threading.Thread(target=receive, daemon=True).start()
    while (bundle := inbox.get()) is not None:
        try:
            if isinstance(bundle, EngineError):
                raise bundle
            reply: tuple[bool, Any] = (True, [stage(task) for task in bundle])
        except Exception as err:  # raised again in the parent, as the stage raised it
            reply = (False, err)
        try:
            message = ForkingPickler.dumps(reply)
        except Exception as err:
            what = "error" if not reply[0] else "result"
            failed = EngineError(f"a worker's {what} could not be sent: {err!r}")
            message = ForkingPickler.dumps((False, failed))
        try:
            replies.send_bytes(message)
        except OSError:  # the parent has gone, or stopped taking replies
            return
    replies.close()


@contextlib.contextmanager
def _crew(workers: int, stage: Callable[[Any], Any]) -> Iterator[list[_Worker]]:
    """Worker processes, forked with the run's tables, each holding ``stage``; stopped on leaving.

    The garbage collector is frozen while they live: a worker's collection would
    otherwise walk every object it inherited (a cron run's stored rows), writing
    to their pages and so copying them all (measured: +3 s of system time for
    two workers at 110k).
    """
    ctx = get_context("fork") if os.name == "posix" else get_context("spawn")
    _trim_heap()
    gc.freeze()
    crew: list[_Worker] = []
    try:
        for _ in range(workers):
            crew.append(_Worker(ctx, stage, os.getpid(), crew))
        yield crew
    finally:
        for worker in crew:
            if worker.waiting:  # busy with calls whose replies no one will take: stopped now
                worker.process.kill()
            else:  # an end of calls: an idle worker leaves at once
                with contextlib.suppress(OSError):
                    worker.calls.send(None)
            worker.calls.close()
            worker.replies.close()
        for worker in crew:
            worker.process.join(timeout=1)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
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
    stage: Callable[[T], R],
    tasks: Iterable[T],
    *,
    workers: int,
    window_per_worker: int,
    per_call: int = 1,
    weight: Weight[T] | None = None,
) -> Iterator[R]:
    """``stage`` over ``tasks``, results in task order.

    In this process when there is one worker or a short list of tasks; otherwise
    in ``workers`` processes, ``per_call`` tasks to a call, with at most
    ``window_per_worker * workers`` calls in flight (memory stays flat however
    many tasks a stream holds; ``weight``: see ``bundles``).

    Example:
        >>> list(ordered(abs, [-2, 1, -3], workers=1, window_per_worker=4))
        [2, 1, 3]
    """
    if workers == 1 or (isinstance(tasks, Sized) and len(tasks) < MIN_TASKS):
        yield from map(stage, tasks)
        return
    with _crew(workers, stage) as crew:
        yield from _dispatch(crew, bundles(tasks, per_call, weight), window_per_worker * workers)


def _dispatch(crew: list[_Worker], calls: Iterator[list[T]], window: int) -> Iterator[Any]:
    """Calls sent to the workers (two at most in each: one running, one waiting), at most ``window``
    not yet yielded; replies yielded in call order. A worker that dies is an ``EngineError``."""
    replies: dict[int, tuple[bool, Any]] = {}
    sent = taken = 0
    more = True
    by_conn = {worker.replies: worker for worker in crew}
    by_sentinel = {worker.process.sentinel: worker for worker in crew}
    while True:
        while more and sent - taken < window:
            worker = min(crew, key=lambda w: len(w.waiting))
            if len(worker.waiting) >= 2:
                break
            bundle = next(calls, None)
            if bundle is None:
                more = False
                break
            try:
                worker.calls.send(bundle)
            except OSError as err:  # its end is closed: it died
                raise _died(worker) from err
            worker.waiting.append(sent)
            sent += 1
        if taken in replies:
            ok, reply = replies.pop(taken)
            if not ok:  # the first error in call order, whatever the timing: the same message
                raise reply
            yield from reply
            taken += 1
            continue
        if not more and taken == sent:
            return
        for ready in connection.wait([w.replies for w in crew if w.waiting] + list(by_sentinel)):
            if ready in by_conn:
                worker = by_conn[ready]
                try:
                    answer = worker.replies.recv()
                except (EOFError, OSError) as err:
                    raise _died(worker) from err
                except Exception as err:  # a reply that does not unpickle here
                    raise EngineError(f"a worker's reply could not be read: {err!r}") from err
                replies[worker.waiting.popleft()] = answer
            elif not (worker := by_sentinel[ready]).process.is_alive():
                raise _died(worker)


def _died(worker: _Worker) -> EngineError:
    worker.process.join(timeout=1)
    how = f"killed by signal {-code}" if (code := worker.process.exitcode or 0) < 0 else f"exit status {code}"
    return EngineError(
        f"a worker process died before finishing its task ({how}; the system kills the largest "
        "process when memory runs out: try fewer --jobs); nothing was written"
    )


class Engine(Protocol):
    """Runs a stage over tasks and yields the results in task order (never in finishing order).

    ``per_call`` is how many tasks share one call: one message to a worker and back
    (a Dask task costs milliseconds of scheduling, a forked worker's call a
    fraction of one), for stages whose tasks are cheap; ``weight`` ends a call sooner where
    some tasks are much larger than others (``bundles``).
    """

    def ordered(
        self,
        stage: Callable[[T], R],
        tasks: Iterable[T],
        *,
        window_per_worker: int,
        per_call: int = 1,
        weight: Weight[T] | None = None,
    ) -> Iterator[R]: ...


@dataclass(frozen=True, slots=True)
class Processes:
    """The default engine: ``workers`` processes forked from this one (see ``ordered``)."""

    workers: int

    def ordered(
        self,
        stage: Callable[[T], R],
        tasks: Iterable[T],
        *,
        window_per_worker: int,
        per_call: int = 1,
        weight: Weight[T] | None = None,
    ) -> Iterator[R]:
        return ordered(
            stage,
            tasks,
            workers=self.workers,
            window_per_worker=window_per_worker,
            per_call=per_call,
            weight=weight,
        )


def worth_sending(engine: Engine | None, items: int, local_from: int) -> bool:
    """Whether a stage over ``items`` is worth the engine's workers: always on a cluster (the
    driver does no such work there); forked processes from ``local_from`` items (starting them
    costs more than a few items take), and never a single one (the driver idles meanwhile).

    Example:
        >>> worth_sending(Processes(2), 10, local_from=20), worth_sending(Processes(2), 20, local_from=20)
        (False, True)
    """
    if engine is None:
        return False
    if isinstance(engine, Processes):
        return engine.workers > 1 and items >= local_from
    return True


@contextlib.contextmanager
def engine(config: Config) -> Iterator[Engine]:
    """The run's engine, for both passes: started once, stopped when the run ends."""
    if config.engine == "dask":
        from dedup import dask_workers  # only here: dask is an optional extra

        with dask_workers.connect(config) as workers:
            yield workers
    else:
        yield Processes(config.workers)
