"""hepablate.parallel: the one pool of extraction, simulation and the study."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from hepablate.parallel import run_tasks


def _square(x: int) -> int:
    return x * x


def _worker(_: int) -> tuple[int, str | None, list[int]]:
    """The worker's pid, its OMP_NUM_THREADS and its BLAS libraries' thread counts."""
    threads = [int(lib["num_threads"]) for lib in threadpool_info()]
    return os.getpid(), os.environ.get("OMP_NUM_THREADS"), threads


def _meet(meeting: str) -> int:
    """Leave this process's pid in the folder and wait (up to 60 s) for another process's."""
    folder = Path(meeting)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"task {x} is bad")
    return x


def test_every_task_comes_back_once_with_its_position_and_the_serial_result() -> None:
    tasks = list(range(9))
    serial = dict(run_tasks(_square, tasks, workers=1))
    pooled = list(run_tasks(_square, tasks, workers=2))
    assert sorted(i for i, _ in pooled) == tasks
    assert dict(pooled) == serial == {i: i * i for i in tasks}


def test_the_pool_is_reused_and_its_workers_use_one_thread(tmp_path: Path) -> None:
    calls = []
    for call in range(3):
        meeting = tmp_path / str(call)
        meeting.mkdir()
        calls.append({pid for _, pid in run_tasks(_meet, [str(meeting)] * 2, workers=2)})
    # Each call's two tasks wait for each other, so both workers of the pool take part; a new
    # pool per call would show new processes.
    assert calls[0] == calls[1] == calls[2]
    assert len(calls[0]) == 2 and os.getpid() not in calls[0]
    for _, omp, threads in [r for _, r in run_tasks(_worker, list(range(4)), workers=2)]:
        assert omp == "1"
        assert all(n == 1 for n in threads)


def test_a_failing_task_raises_in_the_caller() -> None:
    with pytest.raises(ValueError, match="task 3 is bad"):
        list(run_tasks(_fail_on_three, list(range(6)), workers=2))
    # the pool still works after the failure
    assert dict(run_tasks(_square, [1, 2], workers=2)) == {0: 1, 1: 4}


def test_no_task_and_one_task_run_here() -> None:
    assert list(run_tasks(_worker, [], workers=2)) == []
    [(position, (pid, _, _))] = list(run_tasks(_worker, [0], workers=2))
    assert position == 0 and pid == os.getpid()
