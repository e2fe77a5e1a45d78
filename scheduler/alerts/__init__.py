"""Alerts: incidents, not messages (docs/design.md, "Alerts"; docs/operations.md).

One module per concept:

- `targets.py`: the secrets that hold Apprise URLs -> something that sends (the one module
  that imports Apprise);
- `incidents.py`: when an incident opens and clears (pure rules);
- `messages.py`: the texts (pure);
- `monitor.py`: the evaluation: reads the ledger, applies the rules, opens and clears
  incidents in the store (`store/incidents.py`: exactly once, across daemons);
- `outbox.py`: delivery of the queued messages, with backoff;
- `heartbeat.py`: the outbound ping while the daemon is healthy.

`Alerts` puts them together for the daemon. Its threads are its own (the monitor's, the
courier's, the heartbeat's): none of them is the planner or a send worker, and the main loop
only hands the heartbeat its pings, so alerting never delays a fire. Without any target that
has a URL, alerts are off (no thread, no query); the heartbeat runs on its own setting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from scheduler.alerts.heartbeat import Heartbeat
from scheduler.alerts.monitor import Monitor
from scheduler.alerts.outbox import Courier
from scheduler.alerts.targets import Targets
from scheduler.alertstate import NotifyType
from scheduler.clock import Clock
from scheduler.config import Settings
from scheduler.errors import SchedulerError, StoreError
from scheduler.store import Store

__all__ = ["PASS_EVERY", "Alerts", "check_templates_of"]

log = logging.getLogger(__name__)

PASS_EVERY = 2.0  # seconds between two evaluations of the ledger
JOIN_TIMEOUT = 2.0  # at shutdown: a send in progress is not waited for longer (at least once)


def check_templates_of(
    settings: Settings, jobs: Sequence[tuple[str, Mapping[str, Any]]], now: datetime
) -> Mapping[str, list[str]] | None:
    """What `jobs validate --online` says of each stored job (job id -> problems), with a
    client of its own (its own rate limit: the check never takes a fire's slot); None when
    the API could not be asked."""
    from scheduler.client import TallyfyClient
    from scheduler.templatecheck import Target, check_templates

    try:
        client = TallyfyClient.from_settings(settings.tallyfy)
    except SchedulerError as exc:
        log.warning("template check skipped: %s", exc)
        return None
    labels = {f"<stored job {job_id}>": job_id for job_id, _doc in jobs}
    targets = [
        Target(job_id, doc["action"], file=f"<stored job {job_id}>")
        for job_id, doc in jobs
        if isinstance(doc.get("action"), Mapping)
    ]
    try:
        found = check_templates(targets, client, now=now)
    finally:
        client.close()
    problems: dict[str, list[str]] = {}
    for problem in found:
        job_id = labels.get(problem.file or "")
        if job_id is None:
            log.warning("template check could not run: %s", problem)
            return None
        problems.setdefault(job_id, []).append(str(problem))
    return problems


class Alerts:
    """The daemon's alerting (module docstring). `settings_of` gives the daemon's current
    settings (they change on SIGHUP: the token, the thresholds); `on_sent` is told the notify
    type of every message a receiver took, from the outbox or from memory (any thread)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        daemon_id: str,
        settings_of: Callable[[], Settings],
        threaded: bool = True,
        on_sent: Callable[[NotifyType], None] | None = None,
    ) -> None:
        self.clock = clock
        self.threaded = threaded
        self.targets = Targets.from_settings(settings.alerts)
        self.enabled = bool(self.targets)
        self.courier = Courier(
            store, self.targets, clock=clock, daemon_id=daemon_id, on_sent=on_sent
        )
        self.monitor = Monitor(
            store,
            self.targets,
            clock=clock,
            daemon_id=daemon_id,
            settings_of=settings_of,
            wake_courier=self.courier.wake.set,
            template_check=check_templates_of,
            on_sent=on_sent,
        )
        heartbeat = settings.alerts.heartbeat
        self.heartbeat = (
            Heartbeat(heartbeat, settings.alerts.heartbeat_every, clock=clock, threaded=threaded)
            if heartbeat is not None
            else None
        )
        self.pass_every = PASS_EVERY
        self._last_pass = -1e18
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def prepare(self) -> None:
        """Before the daemon plans its catch-up: where the ledger's skips are read from."""
        if not self.enabled:
            return
        try:
            self.monitor.prepare()
        except StoreError as exc:
            log.error("alerts: store unavailable at start: %s", exc)

    def start(self) -> None:
        """The alert threads (threaded daemons only)."""
        if self.heartbeat is not None:
            self.heartbeat.start()
        if not (self.enabled and self.threaded):
            return
        for name, body in (("alerts-monitor", self._monitor), ("alerts-courier", self._courier)):
            thread = threading.Thread(target=body, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("alerts on: targets %s", ", ".join(self.targets.names))

    def pulse(self, mono: float, healthy: Callable[[], bool]) -> None:
        """The main loop's pass: the heartbeat's ping if due; without threads (tests), the
        evaluation and the delivery too, on this thread."""
        if self.heartbeat is not None:
            self.heartbeat.due(mono, healthy)
        if self.enabled and not self.threaded:
            if mono - self._last_pass >= self.pass_every:
                self._last_pass = mono
                self.monitor.pass_once()
            self.courier.pass_once()

    def note_quarantined(self, job_id: str, reason: str) -> None:
        """The loader quarantined a job (any thread)."""
        if self.enabled:
            self.monitor.note_quarantined(job_id, reason)

    def stop(self) -> None:
        """End the threads; a send in progress is not waited for (its claim's lease runs out
        and another pass sends it: at least once)."""
        self._stop.set()
        self.courier.wake.set()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def _monitor(self) -> None:
        while not self._stop.is_set():
            try:
                self.monitor.pass_once()
            except Exception:
                log.exception("unexpected error evaluating alerts; trying again")
            self.clock.wait(self._stop, self.pass_every)

    def _courier(self) -> None:
        self.courier.run(self._stop)
