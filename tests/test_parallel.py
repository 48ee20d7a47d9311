"""Worker processes: each holds the stage it was given, and results come back in task order."""

import multiprocessing
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dedup import run
from dedup.config import Config
from dedup.errors import EngineError
from dedup.parallel import MIN_TASKS, ordered


class Stage:
    """A stage with state of its own (as pass 2's holds the run's tables), slow on some tasks."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __call__(self, task: int) -> tuple[int, int]:
        if task % 3 == 0:
            time.sleep(0.01)  # early tasks finish late: order must not follow completion
        return task + self.offset, os.getpid()


@pytest.mark.parametrize("workers", [1, 2])
def test_results_are_in_task_order_and_made_by_the_given_stage(workers: int) -> None:
    tasks = list(range(4 * MIN_TASKS))
    results = list(ordered(Stage(1000), tasks, workers=workers, window_per_worker=2))
    assert [r for r, _ in results] == [t + 1000 for t in tasks]
    pids = {pid for _, pid in results}
    assert (pids == {os.getpid()}) is (workers == 1)  # a pool only when asked for


def test_a_short_list_of_tasks_stays_in_this_process() -> None:
    results = list(ordered(Stage(0), list(range(MIN_TASKS - 1)), workers=2, window_per_worker=2))
    assert {pid for _, pid in results} == {os.getpid()}


def test_a_stream_of_tasks_is_consumed_as_results_are_taken() -> None:
    taken: list[int] = []

    def stream():
        for t in range(100):
            taken.append(t)
            yield t

    results = ordered(Stage(0), stream(), workers=2, window_per_worker=2)
    next(results)
    assert len(taken) <= 2 * 2 + 1  # at most the window in flight, not the whole stream
    assert [r for r, _ in results] == list(range(1, 100))


class DiesOn:
    """A stage whose worker is killed (as the OOM killer kills) on one task."""

    def __init__(self, task: int) -> None:
        self.task = task

    def __call__(self, task: int) -> int:
        if task == self.task:
            os.kill(os.getpid(), signal.SIGKILL)
        return task


def test_a_worker_killed_mid_task_is_one_engine_error() -> None:
    with pytest.raises(EngineError, match="a worker process died"):
        list(ordered(DiesOn(5), list(range(4 * MIN_TASKS)), workers=2, window_per_worker=2))


def test_a_run_whose_worker_is_killed_ends_with_one_error_and_writes_nothing(tmp_path: Path) -> None:
    def kill_a_worker(name: str) -> None:
        if name == "pass1" and (workers := multiprocessing.active_children()):
            os.kill(workers[0].pid, signal.SIGKILL)

    out = tmp_path / "out"
    with pytest.raises(EngineError):
        run(["corpora/sample"], out, Config(jobs=2), checkpoint=kill_a_worker, batch_size=4)
    assert not (out / "manifest.jsonl").exists() and not (out / "summary.json").exists()
    assert not multiprocessing.active_children()  # the pool's other worker went with it


KILLED_WHILE_SENDING = """
import os, signal, sys, threading, time
from dedup.errors import EngineError
from dedup.parallel import MIN_TASKS, ordered

class Dies:
    def __reduce__(self):  # pickled when sent: the worker is killed while its reply is on its way
        threading.Timer(float(sys.argv[1]), os.kill, (os.getpid(), signal.SIGKILL)).start()
        return bytes, (b"x" * 64_000_000,)

def stage(task):
    if task == 3:
        return Dies()
    time.sleep(0.05)  # the run still going when the kill lands, whenever it lands
    return task

try:
    for _ in ordered(stage, list(range(2 * MIN_TASKS)), workers=2, window_per_worker=2):
        pass
except EngineError as err:
    print("EngineError:", err)
"""


@pytest.mark.parametrize("delay", [0.005, 0.05, 0.1, 0.15])
def test_a_worker_killed_while_sending_its_reply_never_hangs_the_run(delay: float) -> None:
    """A process pool's shared result pipe blocked for ever on a half-sent reply: the run hung,
    holding its locks, and cron runs after it were locked out."""
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_SENDING, str(delay)], capture_output=True, text=True, timeout=60
    )
    assert "EngineError: a worker process died" in done.stdout, done.stderr


class FailsTwice:
    """Call 2 fails late, call 3 at once: with two workers call 3's error comes back first."""

    def __call__(self, task: int) -> int:
        if task == 2:
            time.sleep(0.3)
            raise ValueError("the first failing task")
        if task == 3:
            raise ValueError("a later one")
        return task


def test_the_error_raised_is_the_first_failing_task_s_whatever_the_timing() -> None:
    for workers in (1, 2):
        with pytest.raises(ValueError, match="the first failing task"):
            list(ordered(FailsTwice(), list(range(4 * MIN_TASKS)), workers=workers, window_per_worker=2))


def big(task: int) -> bytes:
    return bytes(4_000_000)  # larger than a pipe: a worker is mid-send when the consumer stops


def test_a_consumer_that_stops_early_does_not_wait_on_busy_workers() -> None:
    """Each worker held the parent's end of its pipe, so one mid-send never saw the parent go:
    it was waited for (5 s) and killed, worker after worker, with the run's locks held."""
    clock = time.monotonic()
    for _ in ordered(big, list(range(4 * MIN_TASKS)), workers=2, window_per_worker=2):
        break
    assert time.monotonic() - clock < 4  # a stall, not a speed: 10 s before
    assert not multiprocessing.active_children()


LEFT_OPEN = """
from dedup.parallel import MIN_TASKS, ordered
results = ordered(abs, list(range(4 * MIN_TASKS)), workers=2, window_per_worker=2)
print(next(results))  # never closed: the interpreter exits with the workers alive
"""

INTERRUPTED = """
import signal, time
from dedup.parallel import MIN_TASKS, ordered
# As from a terminal: a test run started in the background (``cmd &``) ignores SIGINT, and so
# would this child, which then never sees the Ctrl-C.
signal.signal(signal.SIGINT, signal.default_int_handler)
def slow(task):
    time.sleep(0.2)
    return task
try:
    for i, _ in enumerate(ordered(slow, list(range(8 * MIN_TASKS)), workers=2, window_per_worker=2)):
        if i == 0:
            print("busy", flush=True)  # the workers started: a result came back
except KeyboardInterrupt:
    print("interrupted")
"""


def test_an_unclosed_run_lets_the_interpreter_exit() -> None:
    done = subprocess.run([sys.executable, "-c", LEFT_OPEN], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "0")


def test_ctrl_c_is_the_parent_s_no_traceback_from_each_worker() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # A worker's result back, not a fixed sleep: the workers have started.
    assert child.stdout is not None and select.select([child.stdout], [], [], 60)[0]
    assert child.stdout.readline().strip() == "busy"
    os.killpg(child.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    out, err = child.communicate(timeout=60)
    assert out.strip() == "interrupted"
    assert "Traceback" not in err


UNREADABLE_CALL = """
import os
from dedup.errors import EngineError
from dedup.parallel import ordered
PARENT = os.getpid()

def rebuilt(x):
    if os.getpid() != PARENT:
        raise ValueError("cannot be rebuilt in a worker")
    return x

class Task:
    def __reduce__(self):
        return rebuilt, (1,)

try:
    list(ordered(abs, [Task() for _ in range(20)], workers=2, window_per_worker=2))
except EngineError as err:
    print("EngineError:", err)
"""


def test_a_call_a_worker_cannot_read_is_an_error_not_a_hang() -> None:
    """The worker's reading thread died on it and the worker waited for calls for ever."""
    done = subprocess.run([sys.executable, "-c", UNREADABLE_CALL], capture_output=True, text=True, timeout=60)
    assert "EngineError: a worker could not read its call" in done.stdout, done.stderr


class Unpicklable:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise ValueError("no pickling for this")


def unpicklable(task: int) -> Unpicklable:
    return Unpicklable()


def test_a_result_that_cannot_be_sent_is_said_so_not_a_dead_worker() -> None:
    with pytest.raises(EngineError, match="a worker's result could not be sent: ValueError"):
        list(ordered(unpicklable, list(range(4 * MIN_TASKS)), workers=2, window_per_worker=2))
