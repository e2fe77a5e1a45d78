"""What the send workers do with a fire: the send pool's handler.

A freshly claimed fire goes the grouped way: `start` prepares each fire (its look-ups; a fire
put off there goes no further), takes the group's rate-limit slots and marks the group
`sending` in one transaction, `run` sends one fire and leaves its outcome to
be recorded with others (one transaction per batch: at most `RECORD_BATCH` outcomes, written
at the latest `RECORD_AFTER` seconds after the first, or as soon as a worker runs out of work).
Its job may go on only once its outcome is written (the pool's `done`), so a job's next fire
always sees the last one's outcome (`seq`, run links). Any other fire (a retry, a read-back, a
fire of a removed job) is carried alone through `Runner.resume` / `Runner.abandon`.

A store failure leaves the fires concerned open (`pending` or `sending`); they are reported to
the planner (`on_stranded`), which resumes them once the store answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from scheduler.client import ApiRequest
from scheduler.daemon.planner import Carry
from scheduler.errors import StoreError
from scheduler.job import Overlap
from scheduler.runner import Attempt, Runner
from scheduler.store import Fire

log = logging.getLogger(__name__)

# The most fires marked `sending` in one transaction (and so the most a group holds).
MAX_GROUP = 32
# A group takes its rate-limit slots before it is marked `sending`: never more slots than the
# limiter grants in this long (seconds), so no fire of a group waits long in `sending`.
GROUP_WINDOW = 0.05
# Outcomes written in one transaction, at most; and at the latest this long after the first.
RECORD_BATCH = 32
RECORD_AFTER = 0.05


def group_size(max_requests_per_minute: int) -> int:
    """Fires started together: as many as the rate limit lets through in GROUP_WINDOW (one at
    the default 100/min, MAX_GROUP without an effective limit); the same path either way."""
    return max(1, min(MAX_GROUP, int(max_requests_per_minute / 60 * GROUP_WINDOW)))


class Sender:
    """The send pool's handler (see `SendPool`); `on_stranded(ids)` reports fires whose
    carrying failed on the store."""

    def __init__(self, runner: Runner, *, on_stranded: Callable[[Sequence[int]], None]) -> None:
        self.runner = runner
        self._on_stranded = on_stranded
        self._lock = threading.Lock()  # guards `_waiting` and `_first_at`
        self._waiting: list[tuple[Attempt, Callable[[], None]]] = []
        self._first_at = 0.0  # monotonic time the oldest waiting outcome arrived
        self._writing = threading.Lock()  # held by the one thread writing outcomes

    @staticmethod
    def groupable(carry: Carry) -> bool:
        """Fresh claims are started in groups; the others are carried alone, and so are the
        fires of a job with an `overlap` policy (each asks first whether it may go, after the
        one before it has its outcome)."""
        return carry.fresh and carry.job is not None and carry.job.overlap is Overlap.ALLOW

    def start(self, group: Sequence[Carry]) -> list[Carry | None]:
        """Prepare each fire, take a slot for each one that may go, then mark those `sending`
        together; each started one carries its request."""
        runner = self.runner
        ready: list[tuple[int, Carry, ApiRequest]] = []
        for index, carry in enumerate(group):
            assert carry.job is not None  # groupable
            if runner.stop is not None and runner.stop.is_set():
                break  # stopping: the rest stay `pending` (the next start sends them)
            try:
                prepared = runner.prepare(carry.job, carry.fire)
            except StoreError as exc:
                self._stranded([carry.fire.id], exc)
                continue
            if not isinstance(prepared, Fire):  # else put off: nothing more to do now
                ready.append((index, carry, prepared))
        slots = 0
        for _ready in ready:
            if not runner.client.take_slot(runner.stop):
                break  # stopping: the rest stay `pending`, never sent (the next start sends them)
            slots += 1
        chosen = ready[:slots]
        result: list[Carry | None] = [None] * len(group)
        try:
            started = runner.start([carry.fire for _index, carry, _request in chosen])
        except StoreError as exc:
            self._stranded([carry.fire.id for _index, carry, _request in chosen], exc)
            return result
        for (index, carry, request), fire in zip(chosen, started, strict=True):
            if fire is not None:
                result[index] = Carry(carry.job, fire, fresh=True, request=request)
        return result

    def run(self, carry: Carry, done: Callable[[], None]) -> None:
        if carry.request is not None:
            assert carry.job is not None
            self._record_later(self.runner.send(carry.job, carry.fire, carry.request), done)
            return
        fire = carry.fire
        try:
            if carry.job is None:
                # Its job was removed before this daemon loaded it: nothing can rebuild the
                # request or read it back. Settle it as failed, saying why; never leave it open.
                self.runner.abandon(fire, "the job was removed; this fire can no longer be sent")
            elif carry.fresh:
                self.runner.attempt(carry.job, fire)
            else:
                # `resume` reads the fire again and acts on its current state: a queued snapshot
                # may be stale (a retry since become uncertain must be read back, not resent).
                self.runner.resume(carry.job, fire)
        except StoreError as exc:
            self._stranded([fire.id], exc)
        finally:
            done()

    def idle(self) -> None:
        """Write every outcome waiting (a worker has nothing else to do)."""
        self.flush()

    def flush(self) -> None:
        """Write the outcomes waiting, in batches, unless another thread is writing them."""
        if not self._writing.acquire(blocking=False):
            return  # the writer takes what arrives while it writes
        try:
            while True:
                with self._lock:
                    batch = self._waiting[:RECORD_BATCH]
                    del self._waiting[:RECORD_BATCH]
                    self._first_at = self.runner.clock.monotonic()
                if not batch:
                    return
                try:
                    self.runner.record([attempt for attempt, _done in batch])
                except StoreError as exc:
                    self._stranded([attempt.fire.id for attempt, _done in batch], exc)
                finally:
                    for _attempt, done in batch:
                        done()
        finally:
            self._writing.release()

    def _record_later(self, attempt: Attempt, done: Callable[[], None]) -> None:
        with self._lock:
            if not self._waiting:
                self._first_at = self.runner.clock.monotonic()
            self._waiting.append((attempt, done))
            due = (
                len(self._waiting) >= RECORD_BATCH
                or self.runner.clock.monotonic() - self._first_at >= RECORD_AFTER
            )
        if due:
            self.flush()

    def _stranded(self, fire_ids: list[int], exc: StoreError) -> None:
        # Resumed at the first pass that reaches the store again (the planner's pulse).
        self._on_stranded(fire_ids)
        log.error(
            "store failed while carrying %d fires (first job=%s): %s; they stay open and are "
            "resumed",
            len(fire_ids),
            fire_ids[0] if fire_ids else "-",
            exc,
        )
