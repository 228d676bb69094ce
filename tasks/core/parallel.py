"""Thread-pool helpers: map a function over items on every core, in order, with a bound on the items
read ahead; nested calls run inline, so a worker never waits on its own pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
WORKER_THREAD_PREFIX = "driftgate-profiling"


def _in_worker_thread() -> bool:
    import threading

    return threading.current_thread().name.startswith(WORKER_THREAD_PREFIX)


def parallel_map(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``list(map(function, items))`` on a thread per core: polars sorts and numpy's array loops release the GIL.

    Called from inside another parallel map (a chunk's columns while chunks run in parallel) it runs
    serially: the outer level already keeps every core busy.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1 or _in_worker_thread():
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=WORKER_THREAD_PREFIX) as pool:
        return list(pool.map(function, items))


def ordered_parallel_map(function: Callable[[T], R], items: Iterator[T], in_flight: int) -> Iterator[R]:
    """``map(function, items)`` in order, with at most ``in_flight`` items taken from ``items`` and not yet done.

    ``items`` is read lazily in the calling thread: the next item is only read once fewer than
    ``in_flight`` are being worked on, so at most ``in_flight`` items are alive at a time.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    if in_flight <= 1 or _in_worker_thread():
        yield from map(function, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=WORKER_THREAD_PREFIX) as pool:
        try:
            while True:
                while len(pending) >= in_flight:
                    yield pending.popleft().result()
                item = next(items, None)
                if item is None:
                    break
                pending.append(pool.submit(function, item))
                del item  # the worker holds it now; dropped as soon as it is done
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
