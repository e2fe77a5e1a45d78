"""The daemon's history retention (docs/operations.md, "History retention").

Every `PRUNE_EVERY` the pruner thread takes the store's `prune` lease (one daemon at a time on
a shared store; a daemon that dies holding it loses it after `LEASE_TTL`) and deletes the
finished rows older than `[store] history_retention`, `BATCH` at a time, each batch its own
short transaction, pausing `PAUSE` between batches so that fires never wait long for
SQLite's write lock. It renews the lease at every batch and stops as soon as the daemon stops.
What pruning keeps exact (watermarks, `seq`, cursors, `run_from_job`) is the store's
(store/retention.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from scheduler.clock import Clock
from scheduler.config import Settings
from scheduler.errors import StoreError
from scheduler.store import Store

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)
FIRST_PRUNE_AFTER = timedelta(minutes=1)  # not during startup's catch-up
LEASE = "prune"
LEASE_TTL = timedelta(minutes=5)
BATCH = 500
PAUSE = 0.05  # seconds between batches: fires take SQLite's write lock meanwhile


class Pruner:
    """Prunes the history now and then on its own thread (`start`, `stop`); tests call
    `prune_once` directly."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        daemon_id: str,
        settings_of: Callable[[], Settings],
        threaded: bool = True,
        pause: float = PAUSE,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.clock = clock
        self.daemon_id = daemon_id
        self.settings_of = settings_of
        self.pause = pause
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._threaded = threaded

    def start(self) -> None:
        if self._threaded and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="pruner", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def prune_once(self) -> int | None:
        """One pass: the rows deleted, or None when retention is off or another daemon holds
        the lease."""
        retention = self.settings_of().store.history_retention
        if not retention:
            return None
        now = self.clock.now()
        if not self.store.take_lease(LEASE, self.daemon_id, now=now, ttl=LEASE_TTL):
            return None
        try:
            report = self.store.prune_history(
                older_than=now - retention, now=now, batch=self.batch, keep_going=self._next_batch
            )
        finally:
            self.store.release_lease(LEASE, self.daemon_id)
        if report.rows:
            log.info(
                "history pruned rows=%d jobs=%d older_than=%s complete=%s",
                report.rows,
                len(report.by_job),
                retention,
                report.complete,
            )
        return report.rows

    def _next_batch(self) -> bool:
        """Between batches: pause (fires go first), renew the lease; False to stop."""
        if self._stop.wait(self.pause):
            return False
        return self.store.take_lease(LEASE, self.daemon_id, now=self.clock.now(), ttl=LEASE_TTL)

    def _loop(self) -> None:
        wait = FIRST_PRUNE_AFTER.total_seconds()
        while not self._stop.wait(wait):
            wait = PRUNE_EVERY.total_seconds()
            try:
                self.prune_once()
            except StoreError as exc:
                log.error("history pruning failed (tried again later): %s", exc)
