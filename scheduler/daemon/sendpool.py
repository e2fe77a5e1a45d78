"""The send pool: worker threads that send fires, at most one of each job at a time.

Items (fires to send, or to carry forward) are queued per job. A job with an item under way
is not handed to a second worker: its later items wait behind it, in order, while every other
job's go to the other workers. So a job whose requests hang (a server that trickles its answer)
ties up one worker, never the others, never the planner, and never has two requests in flight.
Jobs take turns: after each item, a job with more queued goes to the back of the line.

Throughput comes from doing the store's work for many fires at once without tying their
requests together. A worker that finds nothing started takes a *group*: the next item of up to
`group_size` jobs (`Handler.start` marks them `sending` in one transaction). It sends the first
itself and leaves the rest on a shared list of started items, which every worker takes from
before it takes a new group: one hanging request holds back no other fire of its group. An
item is *done* (its job may go on) when the handler calls the `done` it was given: at once, or
once its outcome is recorded (`Handler.idle` records what waits, whenever a worker runs out
of work).

Nothing is queued twice: an id already queued or under way is refused (`submit` -> False),
which lets the main loop offer the same open fire again on each pass. All of the pool's state
is guarded by its one lock; the handler is called outside it. Without threads (`workers=0`,
tests), items run on the thread that submits them, after any already running there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Handler(Protocol[T]):
    """What the pool does with its items (called on the worker threads, never under the lock)."""

    def start(self, group: Sequence[T]) -> Sequence[T | None]:
        """Prepare items taken together (each of another job): for each, the item to run
        (possibly an updated copy), or None when it is done without running."""
        ...

    def run(self, item: T, done: Callable[[], None]) -> None:
        """Run one item; call `done()` once it is finished: at once, or later (once its
        outcome is recorded). If `run` raises, the pool calls it."""
        ...

    def idle(self) -> None:
        """A worker found nothing to do (it waits next): finish what can be finished."""
        ...


@dataclass(frozen=True, slots=True)
class Queued(Generic[T]):
    """An item with its job (`key`) and unique id."""

    key: str
    id: int
    item: T


class SendPool(Generic[T]):
    """Runs items through `handler`, one item of a key at a time (module docstring).

    `groupable(item)` says whether an item may be started in a group with others (fresh
    fires); `group_size` caps a group. `workers` threads are started by `start`.
    """

    def __init__(
        self,
        handler: Handler[T],
        *,
        workers: int,
        group_size: int = 1,
        groupable: Callable[[T], bool] = lambda _item: False,
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._group_size = max(1, group_size)
        self._groupable = groupable
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queues: dict[str, deque[Queued[T]]] = {}  # key -> items not taken yet
        self._ready: deque[str] = deque()  # keys with queued items and none under way
        self._taken: dict[str, int] = {}  # key -> id of its item under way
        self._started: deque[Queued[T]] = deque()  # started in a group, not yet run
        self._ids: set[int] = set()  # ids queued or under way
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._inline_running = False

    def start(self) -> None:
        """Start the worker threads (none when `workers` is 0)."""
        for index in range(self._workers):
            thread = threading.Thread(target=self._work_loop, name=f"send-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def set_group_size(self, size: int) -> None:
        """Start at most `size` items together from now on (the rate limit changed)."""
        with self._lock:
            self._group_size = max(1, size)

    def submit(self, key: str, item_id: int, item: T) -> bool:
        """Queue `item` behind the other items of `key`; False if `item_id` is queued or
        under way already, or the pool is stopping."""
        with self._lock:
            if self._stopping or item_id in self._ids:
                return False
            self._ids.add(item_id)
            waiting = self._queues.get(key)
            if waiting is None:
                waiting = self._queues[key] = deque()
                if key not in self._taken:
                    self._ready.append(key)
                    self._work.notify()
            waiting.append(Queued(key, item_id, item))
        if not self._workers:
            self._run_inline()
        return True

    def pending(self) -> int:
        """Items queued or under way."""
        with self._lock:
            return len(self._ids)

    def stop(self, grace: float) -> int:
        """Drop what is queued; wait up to `grace` seconds for what is under way (started
        items are sent: their rate-limit slots are taken and they are marked `sending`).
        Returns the number of items still under way then (their threads are abandoned)."""
        with self._lock:
            self._stopping = True
            dropped = sum(len(q) for q in self._queues.values())
            self._queues.clear()
            self._ready.clear()
            self._ids = set(self._taken.values())
            self._work.notify_all()
        if dropped:
            log.info("%d queued fires not sent: the next start sends them", dropped)
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not any(thread.is_alive() for thread in self._threads):
            self._handler.idle()  # outcomes still waiting to be recorded
        with self._lock:
            return len(self._taken)

    # -- internals (the caller holds the lock unless said otherwise) ---------------------------
    def _take(self) -> tuple[Queued[T] | None, list[Queued[T]]]:
        """An item to run (started, or one that goes alone), or a new group to start; neither
        when there is nothing to do."""
        if self._started:
            return self._started.popleft(), []
        if self._stopping or not self._ready:
            return None, []
        if not self._groupable(self._queues[self._ready[0]][0].item):
            return self._pop(self._ready.popleft()), []
        group: list[Queued[T]] = []
        while self._ready and len(group) < self._group_size:
            if not self._groupable(self._queues[self._ready[0]][0].item):
                break  # goes alone, to the next worker
            group.append(self._pop(self._ready.popleft()))
        return None, group

    def _pop(self, key: str) -> Queued[T]:
        waiting = self._queues[key]
        queued = waiting.popleft()
        if not waiting:
            del self._queues[key]
        self._taken[key] = queued.id
        return queued

    def _release(self, key: str, item_id: int) -> None:
        if self._taken.get(key) != item_id:
            return  # already released (a late `done`)
        del self._taken[key]
        self._ids.discard(item_id)
        if key in self._queues:
            self._ready.append(key)
            self._work.notify()

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                item, group = self._take()
                if item is None and not group:
                    if self._stopping:
                        return
                    idle = True
                else:
                    idle = False
            if idle:
                self._handler.idle()  # may release jobs: look again before waiting
                with self._lock:
                    if not (self._started or self._ready or self._stopping):
                        self._work.wait()
                continue
            self._step(item, group)

    def _step(self, item: Queued[T] | None, group: list[Queued[T]]) -> None:
        """Start a group (keeping its first item) or run one started item (no lock held)."""
        if group:
            kept = self._start(group)
            if not kept:
                return
            item = kept[0]
            with self._lock:
                self._started.extend(kept[1:])
                self._work.notify(len(kept) - 1)
        assert item is not None
        done = self._done_callback(item.key, item.id)
        try:
            self._handler.run(item.item, done)
        except Exception:  # a worker must never die silently
            log.exception("unexpected error in a send worker")
            done()

    def _done_callback(self, key: str, item_id: int) -> Callable[[], None]:
        def done() -> None:
            with self._lock:
                self._release(key, item_id)
            if not self._workers:
                self._run_inline()

        return done

    def _start(self, group: list[Queued[T]]) -> list[Queued[T]]:
        try:
            results: Sequence[T | None] = self._handler.start([q.item for q in group])
        except Exception:
            log.exception("unexpected error starting %d fires", len(group))
            results = [None] * len(group)
        kept = []
        with self._lock:
            for queued, result in zip(group, results, strict=True):
                if result is None:
                    self._release(queued.key, queued.id)
                else:
                    kept.append(Queued(queued.key, queued.id, result))
        return kept

    def _run_inline(self) -> None:
        if self._inline_running:
            return  # submitted while an item runs here: the loop below takes it
        self._inline_running = True
        try:
            while True:
                with self._lock:
                    item, group = self._take()
                if item is None and not group:
                    self._handler.idle()
                    with self._lock:
                        if not (self._started or self._ready):
                            return
                    continue
                self._step(item, group)
        finally:
            self._inline_running = False
