"""A bounded, in-order map over a thread pool: the shape of counting and encoding.

Both read blocks of text in order, hand each to a thread (the Numba kernels
release the GIL) and need the results back in reading order: counting to
fold line edges into exact sentence counts, encoding to write token IDs in
corpus order. At most ``depth`` tasks are pending, so memory stays a few
blocks however fast the reader is.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(pool: Executor | None, fn: Callable[[Item], Result], items: Iterable[Item],
                depth: int) -> Iterator[Result]:
    """``fn(item)`` for each item, in order, with at most ``depth`` calls pending.

    ``pool`` None runs every call in the calling thread. When the consumer
    stops early (an error, a closed generator), calls not started are
    cancelled and running ones are waited for: they may hold state (a word
    table) that the caller reuses.
    """
    if pool is None:
        for item in items:
            yield fn(item)
        return
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                future.exception()  # waits for it to finish
