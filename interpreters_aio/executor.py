"""``InterpreterPoolExecutor``: a ``concurrent.futures`` executor whose workers
run tasks in subinterpreters, in parallel (CPython 3.14 semantics).

Each worker thread owns one interpreter, created when the thread starts and
reused for every task it runs, and closed when the pool shuts down. A task
that raises re-raises the original exception (rebuilt here when it can be
pickled) with :class:`ExecutionFailed` as its ``__cause__``; if it cannot be
rebuilt, ``ExecutionFailed`` itself is raised. A failing ``initializer`` breaks
the pool with :class:`BrokenInterpreterPool`.

Beyond 3.14: ``warm=True`` creates every worker and its interpreter up front,
so the first result does not pay for interpreter creation;
``shutdown(cancel_futures=True)`` works as on ``ThreadPoolExecutor``.

Tiny tasks are batched: a worker takes its share of what is queued (the
queue's length divided by the number of workers, at most 1024 tasks) and runs
it in one trip into its interpreter, since a trip costs more than a tiny task.
A task taken into a batch counts as running: ``cancel()`` returns False for
it, as for a task a worker has started. A trip stops starting tasks after
about 2 ms, so results of finished tasks are not held back by slow ones
behind them, and a worker whose tasks take that long takes one at a time
until they are quick again.

It is a plain ``Executor``, so ``loop.run_in_executor(pool, f, *args)`` and
``loop.set_default_executor(pool)`` work.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, _base
from concurrent.futures import thread as _thread_pool
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

from . import _core, _shutdown
from ._errors import ExecutionFailed
from ._interpreter import Interpreter, create

__all__ = ["BrokenInterpreterPool", "InterpreterPoolExecutor"]

_BATCH_LIMIT = 1024
"""Most tasks one worker takes into one batch."""
_BATCH_BUDGET = 0.002
"""Seconds after which a batch starts no more tasks (the rest go in the next trip)."""

_RAISED = 1
"""_core.call_many's kind of failure for a call that raised in the interpreter."""


class BrokenInterpreterPool(BrokenThreadPool):
    """A worker's initializer failed: the pool accepts no more work."""


def _default_workers() -> int:
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


class _TaskFuture(Future):
    """The future of a submitted call, carrying the call (``fn``, ``args``,
    ``kwargs``) until a worker takes it: one object per task, not a future and
    a work item, since a tiny task's cost is mostly allocations. (Plain
    attributes, not ``__slots__``: on 3.13 slots on a subclass of a class with
    a ``__dict__`` cost a fifth more per task, callgrind says.)"""

    fn: Callable[..., Any] | None
    args: tuple | None
    kwargs: dict | None


_TaskFuture.__name__ = _TaskFuture.__qualname__ = "Future"  # as it shows in reprs


class _LocalTaskFuture(_TaskFuture):
    """A call run in the worker thread itself, in this interpreter."""


_LocalTaskFuture.__name__ = _LocalTaskFuture.__qualname__ = "Future"


class InterpreterPoolExecutor(ThreadPoolExecutor):
    """Runs each task in a subinterpreter owned by the worker thread that runs it.

    ``fn``, its arguments and its result cross between interpreters like
    ``Interpreter.call``'s (natively, or by pickle; functions from
    ``__main__`` and lambdas by their code; closures and classes defined in
    ``__main__`` by value when cloudpickle is installed).

    Args:
        max_workers: worker threads, each with its own interpreter (default:
            the number of CPUs this process may use).
        thread_name_prefix: names the worker threads.
        initializer: called as ``initializer(*initargs)`` in each worker's
            interpreter when it starts; if it raises, the pool is broken.
        warm: create every worker and its interpreter now, not on first use.

    Raises:
        BrokenInterpreterPool: with ``warm=True``, a worker's initializer failed.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        warm: bool = False,
    ) -> None:
        if max_workers is None:
            max_workers = _default_workers()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._interp_local = threading.local()
        self._interps: list[Interpreter] = []
        self._interps_lock = threading.Lock()
        self._worker_initializer = initializer
        self._worker_initargs = initargs
        self._workers_started = threading.Semaphore(0)
        super().__init__(max_workers, thread_name_prefix or "InterpreterPoolExecutor")
        if warm:
            self._warm_up()

    def _start_worker(self) -> Interpreter:
        interp = create()
        _shutdown.pooled(interp.id)
        with self._interps_lock:
            self._interps.append(interp)
        self._interp_local.interp = interp
        if self._worker_initializer is not None:
            interp.call(self._worker_initializer, *self._worker_initargs)
        return interp

    def _initializer_failed(self) -> None:
        # Same as ThreadPoolExecutor's, with this pool's exception type.
        with self._shutdown_lock:
            self._broken = (
                "A worker's initializer failed: the interpreter pool is not usable anymore"
            )
            for task in self._drain_queue():
                task.set_exception(BrokenInterpreterPool(self._broken))

    def _drain_queue(self) -> Iterator[_TaskFuture]:
        """Takes every task still queued (skipping shutdown wake-ups)."""
        while True:
            try:
                task = self._work_queue.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                yield task

    def _warm_up(self) -> None:
        with self._shutdown_lock:
            while len(self._threads) < self._max_workers:
                self._spawn_worker()
        for _ in range(self._max_workers):
            self._workers_started.acquire()
        if self._broken:
            broken = self._broken
            self.shutdown(wait=True)
            raise BrokenInterpreterPool(broken)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)`` in a worker's interpreter.

        Raises:
            BrokenInterpreterPool: a worker's initializer failed.
            RuntimeError: the pool was shut down.
        """
        task = _TaskFuture()
        task.fn, task.args, task.kwargs = fn, args, kwargs
        return self._enqueue(task)

    def _submit_here(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)`` in a worker thread, in this
        interpreter (the thread's interpreter is ``self._interp_local.interp``)."""
        task = _LocalTaskFuture()
        task.fn, task.args, task.kwargs = fn, args, kwargs
        return self._enqueue(task)

    def _enqueue(self, task: _TaskFuture) -> Future:
        with self._shutdown_lock, _thread_pool._global_shutdown_lock:
            if self._broken:
                raise BrokenInterpreterPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _thread_pool._shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            self._work_queue.put(task)
            # Once every worker exists there is nothing to adjust (the idle
            # count only decides whether to start one more).
            if len(self._threads) < self._max_workers:
                self._adjust_thread_count()
        return task

    def _adjust_thread_count(self) -> None:
        if self._idle_semaphore.acquire(timeout=0):
            return
        self._spawn_worker()

    def _spawn_worker(self) -> None:
        # As ThreadPoolExecutor's: the worker holds the pool weakly, and the
        # pool's collection wakes it; interpreter exit joins it.
        def wake_on_collect(_: object, work_queue: queue.SimpleQueue = self._work_queue) -> None:
            work_queue.put(None)

        count = len(self._threads)
        if count >= self._max_workers:
            return
        worker = threading.Thread(
            name=f"{self._thread_name_prefix or self}_{count}",
            target=_worker,
            args=(weakref.ref(self, wake_on_collect), self._work_queue),
        )
        worker.start()
        self._threads.add(worker)
        _thread_pool._threads_queues[worker] = self._work_queue

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``wait``, finish the running tasks and
        close the workers' interpreters (otherwise they are closed at exit).

        With ``cancel_futures``, tasks no worker has taken yet are cancelled."""
        # ThreadPoolExecutor.shutdown's, for a queue of futures.
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                for task in self._drain_queue():
                    task.cancel()
            self._work_queue.put(None)  # wakes a waiting worker, which wakes the next
        if wait:
            for worker in self._threads:
                worker.join()
            with self._interps_lock:
                interps, self._interps = self._interps, []
            for interp in interps:
                interp.close()
                _shutdown.unpooled(interp.id)


def _worker(pool_ref: weakref.ref, work_queue: queue.SimpleQueue) -> None:
    """A worker thread: start the interpreter, then run tasks until shutdown."""
    pool = pool_ref()
    if pool is None:
        return
    try:
        interp = pool._start_worker()
    except BaseException:
        _base.LOGGER.critical("Exception in initializer:", exc_info=True)
        pool._initializer_failed()
        return
    finally:
        pool._workers_started.release()
    workers = pool._max_workers
    del pool
    task: _TaskFuture | None = None
    limit = _BATCH_LIMIT
    try:
        while True:
            if task is None:
                task = _next_task(pool_ref, work_queue)
            if task is None:
                pool = pool_ref()
                if _thread_pool._shutdown or pool is None or pool._shutdown:
                    if pool is not None:
                        pool._shutdown = True
                    work_queue.put(None)  # for the next worker
                    return
                del pool
                continue
            if type(task) is _LocalTaskFuture:
                _run_here(task)
                task = None
                continue
            batch, task = _take_batch(task, work_queue, workers, limit)
            quick = _run_batch(interp.id, batch)
            limit = min(limit * 2, _BATCH_LIMIT) if quick else 1
            del batch
    except BaseException:
        _base.LOGGER.critical("Exception in worker", exc_info=True)


def _next_task(pool_ref: weakref.ref, work_queue: queue.SimpleQueue) -> _TaskFuture | None:
    try:
        return work_queue.get_nowait()
    except queue.Empty:
        pool = pool_ref()
        if pool is not None:
            pool._idle_semaphore.release()
        del pool
        return work_queue.get(block=True)


def _take_batch(
    first: _TaskFuture, work_queue: queue.SimpleQueue, workers: int, limit: int
) -> tuple[list[_TaskFuture], _TaskFuture | None]:
    """``first`` and this worker's share of what is queued (so other workers
    find work too), up to ``limit`` tasks; and the task that ended the batch
    without joining it (one to run here), if any."""
    batch = [first]
    share = min(limit - 1, work_queue.qsize() // workers)
    while share > 0:
        try:
            task = work_queue.get_nowait()
        except queue.Empty:
            break
        if task is None:
            # A shutdown wake-up: back in the queue, for this worker's next
            # get or another's. Returned, it read as "nothing left over" and
            # was lost, and a worker waiting for it never woke (a hang in
            # shutdown(cancel_futures=True), seen on 3.14t).
            work_queue.put(None)
            return batch, None
        if type(task) is _LocalTaskFuture:
            return batch, task
        batch.append(task)
        share -= 1
    return batch, None


def _run_here(task: _TaskFuture) -> None:
    # As ThreadPoolExecutor's work items.
    fn, args, kwargs = task.fn, task.args, task.kwargs
    task.fn = task.args = task.kwargs = None  # a done future holds no inputs
    if not task.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        task.set_exception(exc)
        del task, exc  # break the reference cycle through the traceback
    else:
        task.set_result(result)


def _run_batch(interp_id: int, batch: list[_TaskFuture]) -> bool:
    """Runs the batch's tasks that were not cancelled in the interpreter, in
    as few trips as the time budget allows, and settles their futures.
    Returns whether the tasks were quick: every trip ran all its tasks well
    within the budget."""
    tasks = [task for task in batch if task.set_running_or_notify_cancel()]
    quick = True
    while tasks:
        try:
            results, failures, seconds = _core.call_many(interp_id, tasks, _BATCH_BUDGET)
        except BaseException as exc:  # the interpreter is gone, or no memory
            for task in tasks:
                task.fn = task.args = task.kwargs = None
                task.set_exception(exc)
            return False
        done = len(results)
        quick = quick and done == len(tasks) and seconds < _BATCH_BUDGET / 2
        for index, kind, payload in failures:
            task = tasks[index]
            tasks[index] = None  # settled
            task.fn = task.args = task.kwargs = None
            task.set_exception(_task_error(payload) if kind == _RAISED else payload)
        for task, result in zip(tasks, results, strict=False):
            if task is not None:
                task.fn = task.args = task.kwargs = None
                task.set_result(result)
        del tasks[:done]
    return quick


def _task_error(excinfo: tuple) -> BaseException:
    """The task's own exception, rebuilt here, with ``ExecutionFailed`` (which
    shows the remote traceback) as its ``__cause__``, as 3.14's executor
    raises it; ``ExecutionFailed`` itself when it cannot be rebuilt."""
    failed = ExecutionFailed._from_raw(excinfo)
    original = failed.excinfo.rebuild()
    if original is None:
        return failed
    original.__cause__ = failed
    return original
