"""Delivering the outbox: claim due messages, send each, record each, back off on failure.

Runs on its own thread (`Courier.run`), never the planner's or a send worker's, so a receiver
that is down or slow delays no fire. Each message is claimed (a conditional UPDATE: one daemon
holds it), sent, and its outcome recorded at once, so only a crash between a send and its
record can send it twice (its claim's lease runs out and another claim sends it again: at
least once). A failed send is tried again after `first_backoff`, doubling up to
`max_backoff`, until `DELIVERY_GIVE_UP` (a day) after it was queued; then it is dropped,
logged. Messages and incidents older than `OUTBOX_KEEPS` (30 days) are pruned hourly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from scheduler.alerts.targets import Targets
from scheduler.alertstate import DELIVERY_GIVE_UP, OUTBOX_KEEPS, NotifyType, OutboxStatus
from scheduler.clock import Clock
from scheduler.errors import StoreError
from scheduler.store import Delivery, Notification, Store

log = logging.getLogger(__name__)

FIRST_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(hours=1)
CLAIM_BATCH = 20
POLL_EVERY = 1.0  # seconds: messages another daemon queued are found within this
PRUNE_EVERY = 3600.0  # seconds


def backoff(
    attempts: int, first: timedelta = FIRST_BACKOFF, cap: timedelta = MAX_BACKOFF
) -> timedelta:
    """The wait after the `attempts`-th failed send: `first`, doubling, at most `cap`."""
    step: timedelta = first * (2 ** max(0, min(attempts - 1, 30)))
    return min(cap, step)


class Courier:
    """Sends the outbox's messages through `targets` (module docstring); `on_sent` is told
    the notify type of each message a receiver took (the daemon's metrics count them)."""

    def __init__(
        self,
        store: Store,
        targets: Targets,
        *,
        clock: Clock,
        daemon_id: str,
        first_backoff: timedelta = FIRST_BACKOFF,
        on_sent: Callable[[NotifyType], None] | None = None,
    ) -> None:
        self.store = store
        self.on_sent = on_sent
        self.targets = targets
        self.clock = clock
        self.daemon_id = daemon_id
        self.first_backoff = first_backoff
        self.wake = threading.Event()  # set when messages were queued: look now
        self._last_prune = -1e18

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set (the thread's body); never raises."""
        while not stop.is_set():
            try:
                self.pass_once()
            except Exception:
                log.exception("unexpected error delivering alerts; trying again")
            self.wake.clear()
            self.clock.wait(self.wake, POLL_EVERY)
            if stop.is_set():
                return

    def pass_once(self) -> int:
        """Deliver every message due now; prune once an hour. How many were handled."""
        handled = 0
        try:
            while True:
                batch = self.store.claim_notifications(
                    now=self.clock.now(), daemon_id=self.daemon_id, limit=CLAIM_BATCH
                )
                for message in batch:
                    self._deliver(message)
                handled += len(batch)
                if len(batch) < CLAIM_BATCH:
                    break
            mono = self.clock.monotonic()
            if mono - self._last_prune >= PRUNE_EVERY:
                self._last_prune = mono
                pruned = self.store.prune_alerts(before=self.clock.now() - OUTBOX_KEEPS)
                if pruned:
                    log.info("alerts: pruned %d messages older than %s", pruned, OUTBOX_KEEPS)
        except StoreError as exc:
            # The monitor tells of a store that stays down (the `store` incident).
            log.debug("alerts: store unavailable for the outbox: %s", exc)
        return handled

    def _deliver(self, message: Notification) -> None:
        result = self.targets.send(
            message.target,
            message.url_index,
            title=message.title,
            body=message.body,
            notify_type=message.notify_type,
        )
        now = self.clock.now()
        if result.ok:
            delivery = Delivery(message.id, OutboxStatus.SENT)
            said = f"alert sent {result.label} message={message.id} type={message.notify_type}"
        elif not self.targets.count(message.target) or now - message.created_at >= DELIVERY_GIVE_UP:
            why = "no URLs configured" if not self.targets.count(message.target) else "a day"
            delivery = Delivery(message.id, OutboxStatus.DROPPED, error=f"{result.reason}; {why}")
            said = (
                f"alert dropped {result.label} message={message.id} after {message.attempts} "
                f"attempts: {result.reason} ({why})"
            )
        else:
            wait = backoff(message.attempts, self.first_backoff)
            delivery = Delivery(
                message.id, OutboxStatus.PENDING, next_attempt_at=now + wait, error=result.reason
            )
            said = (
                f"alert not delivered {result.label} message={message.id} "
                f"attempt={message.attempts}: {result.reason}; again in {wait}"
            )
        # Recorded at once, then said: only a crash between the send and this record sends
        # a message twice (its claim's lease runs out).
        (recorded,) = self.store.finish_notifications([delivery], now=now, daemon_id=self.daemon_id)
        level = logging.INFO if result.ok else logging.WARNING
        log.log(logging.ERROR if delivery.status is OutboxStatus.DROPPED else level, "%s", said)
        if recorded is None:
            log.warning("alert message %d was taken over by another daemon", message.id)
        if result.ok and self.on_sent is not None:
            self.on_sent(message.notify_type)
