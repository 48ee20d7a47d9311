"""Worker processes: each holds the stage it was given, and results come back in task order."""

import os
import time

import pytest

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
