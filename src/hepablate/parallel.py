"""Run one function over many independent tasks: in this process, in a local process pool, or on
a Dask distributed cluster, with the same results. The one parallel mechanism of hepablate:
extraction (patients), simulation (patients) and the study (outer splits) all go through it.

Results come back as they finish (not in task order), each with its task's position, so that
the caller can save each one at once: a run that is killed keeps what was done. The function and
its tasks must be picklable (module-level function, plain data), which both pools need anyway.

The local pool is loky's reusable executor (the one joblib uses): started once and kept for the
next call of this process, so that a second study or extraction does not pay the start of new
workers, and robust to a worker that dies (loky raises instead of hanging). Each worker uses one
thread for numpy's BLAS, ITK and torch, so two workers use two cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, as_completed
from typing import TypeVar

__all__ = ["SchedulerError", "run_tasks"]

T = TypeVar("T")
R = TypeVar("R")


class SchedulerError(Exception):
    """The Dask scheduler named by ``--scheduler`` cannot be reached or used."""


def run_tasks(
    function: Callable[[T], R],
    tasks: Sequence[T],
    *,
    workers: int = 1,
    scheduler: str | None = None,
) -> Iterator[tuple[int, R]]:
    """Yield ``(position, function(tasks[position]))`` for every task, in order of completion.

    ``scheduler`` is a Dask scheduler address (``tcp://host:port``); then the cluster's workers
    run the tasks and ``workers`` is ignored. Otherwise ``workers > 1`` runs them in a local
    process pool (each process limited to one thread for numpy/ITK/torch). Stopped early (an
    error, Ctrl-C, the caller leaving the loop), the tasks not yet started are cancelled.
    """
    if not tasks:
        return
    if scheduler is not None:
        yield from _on_dask(function, tasks, scheduler)
    elif workers > 1 and len(tasks) > 1:
        from joblib.externals.loky import get_reusable_executor

        # Idle workers are kept 5 minutes (loky's default is 10 s): a study calls the pool
        # again after each step, and on a loaded machine a worker leaving as new tasks come
        # in made loky warn ("A worker stopped while some jobs were given to the executor"),
        # a warning that reached metrics.json.
        pool = get_reusable_executor(
            max_workers=min(workers, len(tasks)), initializer=_one_thread, timeout=_IDLE_SECONDS
        )
        futures: dict[Future[R], int] = {}
        try:
            for i, task in enumerate(tasks):
                futures[pool.submit(function, task)] = i
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:  # stopped early: do not start the tasks still queued
            for future in futures:
                future.cancel()
    else:
        for i, task in enumerate(tasks):
            yield i, function(task)


_IDLE_SECONDS = 300


def _one_thread() -> None:
    """Pool workers each use one core: numpy's BLAS, ITK and torch would otherwise oversubscribe."""
    # Read by libraries loaded later in the worker (torch takes its thread count from it).
    for name in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    import SimpleITK as sitk
    from threadpoolctl import threadpool_limits

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    threadpool_limits(1)


def _on_dask(
    function: Callable[[T], R], tasks: Sequence[T], scheduler: str
) -> Iterator[tuple[int, R]]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    try:
        futures = client.map(function, list(tasks), pure=False)
        positions = {future.key: i for i, future in enumerate(futures)}
        for future in dask_completed(futures):
            yield positions[future.key], future.result()
    finally:
        client.close()
