"""The send pool: worker threads that send and read back fires, one request per job at a time.

Fires are queued per job. A job with a task running is not handed to a second worker: its
later fires wait behind it, in order (they stay claimed, and go out once it returns), while
every other job's fires go to the other workers. So a job whose requests hang (a server that
trickles its answer) ties up one worker, never the others, never the planner, and never has
two requests in flight. Jobs take turns: after each task, a job with more queued goes to the
back of the line, so one job's long catch-up does not starve the rest.

Nothing is queued twice: a fire already queued or in flight is refused (`submit` -> False),
which is what lets the main loop offer the same open fire again on each pass.

All of the pool's state is guarded by its one lock. Without threads (`workers=0`: tests), a
task runs at once on the thread that submits it, after any task already running there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class SendPool(Generic[T]):
    """Runs `handle(item)` for each submitted item, one item of a key at a time.

    `workers` threads (started by `start`); 0 runs each item on the submitting thread.
    """

    def __init__(self, handle: Callable[[T], None], *, workers: int) -> None:
        self._handle = handle
        self._workers = workers
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queues: dict[str, deque[tuple[int, T]]] = {}  # key -> items not started
        self._ready: deque[str] = deque()  # keys with queued items and none running
        self._running: dict[str, int] = {}  # key -> id of the item running
        self._ids: set[int] = set()  # ids queued or running
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._draining = False  # workers=0: an item runs on the submitting thread

    def start(self) -> None:
        """Start the worker threads (none when `workers` is 0)."""
        for index in range(self._workers):
            thread = threading.Thread(target=self._work_loop, name=f"send-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, key: str, item_id: int, item: T) -> bool:
        """Queue `item` behind the other items of `key`; False if `item_id` is queued or
        running already, or the pool is stopping."""
        with self._lock:
            if self._stopping or item_id in self._ids:
                return False
            self._ids.add(item_id)
            waiting = self._queues.get(key)
            if waiting is None:
                waiting = self._queues[key] = deque()
                if key not in self._running:
                    self._ready.append(key)
                    self._work.notify()
            waiting.append((item_id, item))
        if not self._workers:
            self._run_inline()
        return True

    def in_flight(self, key: str) -> bool:
        """True while an item of `key` is running."""
        with self._lock:
            return key in self._running

    def pending(self) -> int:
        """Items queued or running."""
        with self._lock:
            return len(self._ids)

    def stop(self, grace: float) -> int:
        """Drop what is queued, wait up to `grace` seconds for the items running; the number
        still running then (their threads are left behind: they are daemon threads)."""
        with self._lock:
            self._stopping = True
            dropped = sum(len(q) for q in self._queues.values())
            self._queues.clear()
            self._ready.clear()
            self._ids = set(self._running.values())
            self._work.notify_all()
        if dropped:
            log.info("%d queued fires not sent: the next start sends them", dropped)
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return len(self._running)

    # -- internals --------------------------------------------------------------------------------
    def _next(self) -> tuple[str, int, T] | None:
        """Take the next item of the first ready key (caller holds the lock); None if none."""
        if not self._ready:
            return None
        key = self._ready.popleft()
        waiting = self._queues[key]
        item_id, item = waiting.popleft()
        if not waiting:
            del self._queues[key]
        self._running[key] = item_id
        return key, item_id, item

    def _done(self, key: str, item_id: int) -> None:
        """An item finished (caller holds the lock): its key may go again, at the back."""
        del self._running[key]
        self._ids.discard(item_id)
        if key in self._queues:
            self._ready.append(key)
            self._work.notify()

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                taken = self._next()
                while taken is None:
                    if self._stopping:
                        return
                    self._work.wait()
                    taken = self._next()
            key, item_id, item = taken
            self._run(item)
            with self._lock:
                self._done(key, item_id)

    def _run_inline(self) -> None:
        if self._draining:
            return  # submitted by a running item: the loop below runs it next
        self._draining = True
        try:
            while True:
                with self._lock:
                    taken = None if self._stopping else self._next()
                if taken is None:
                    return
                key, item_id, item = taken
                try:
                    self._run(item)
                finally:
                    with self._lock:
                        self._done(key, item_id)
        finally:
            self._draining = False

    def _run(self, item: T) -> None:
        try:
            self._handle(item)
        except Exception:  # a worker must never die silently
            log.exception("unexpected error in a send worker")
