"""Group commit: calls from many threads to one batch function, run as few batches.

The daemon's send workers each mark a fire `sending` before its request and record its outcome
after it: two store transactions per fire if each went alone. A `Coalescer` lets the calls
that arrive while a batch is being written ride in the next batch: the first caller to find
no batch running writes every call queued so far (it is the *leader*); the others wait for the
leader to hand them their result. Nobody waits for a batch to fill: a lone caller writes a
batch of one at once, and under load batches grow by themselves to about the number of
workers. (Leader/follower group commit, as databases do for their log writes.)

A batch that raises gives the same exception to every caller in it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Call(Generic[T, R]):
    __slots__ = ("item", "result", "error", "done")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False


class Coalescer(Generic[T, R]):
    """`call(item)` returns `batch([..., item, ...])`'s answer for `item`.

    `batch` takes the items of one batch, in arrival order, and returns one result per item in
    the same order. It runs on the caller's thread, one batch at a time.
    """

    def __init__(self, batch: Callable[[Sequence[T]], Sequence[R]]) -> None:
        self._batch = batch
        self._queue_lock = threading.Lock()  # guards `_queue`
        self._queue: list[_Call[T, R]] = []
        self._writing = threading.Lock()  # held by the leader while its batch runs

    def call(self, item: T) -> R:
        mine: _Call[T, R] = _Call(item)
        with self._queue_lock:
            self._queue.append(mine)
        with self._writing:
            if not mine.done:
                with self._queue_lock:
                    calls, self._queue = self._queue, []
                self._run(calls)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _run(self, calls: list[_Call[T, R]]) -> None:
        try:
            results = self._batch([c.item for c in calls])
            if len(results) != len(calls):
                raise RuntimeError(f"batch answered {len(results)} of {len(calls)} calls")
        except BaseException as exc:  # every caller of the batch learns of it
            for c in calls:
                c.error, c.done = exc, True
            return
        for c, result in zip(calls, results, strict=True):
            c.result, c.done = result, True
