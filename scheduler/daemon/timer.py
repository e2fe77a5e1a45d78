"""The daemon's alarm clock: APScheduler 3 wakes the planner when the next fire time comes.

This is the only module that imports APScheduler, and it uses APScheduler's documented surface
only: a `BackgroundScheduler` with its memory job store, the `DebugExecutor` (runs a job on the
scheduler's own thread), one job added with `add_job` and moved with `modify_job`, and a custom
trigger (a `BaseTrigger` subclass, APScheduler's extension point for "when does this run").

There is **one** APScheduler job, not one per stored job. The planner keeps every job's next
fire time in a heap of its own and asks for one wake-up, at the earliest (`wake_at`); when it
comes, APScheduler calls `on_wake` on its thread, which only posts a message to the planner.
Why one job (docs/design.md, "The timer"): a `Job` per stored job costs ~30 us to add through
`add_job` and ~1 KB to hold, so 100,000 jobs took 3.2 s and ~90 MB before READY, where a heap
entry costs 0.3 us and ~100 bytes; and APScheduler would recompute every job's next run time
and re-sort its store on every dispatch, work the planner does anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.executors.debug import DebugExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

log = logging.getLogger(__name__)

WAKE_JOB = "wake"
# The trigger's answer when no wake-up is wanted: APScheduler removes a job whose trigger
# returns None, so "not until asked again" is a date no schedule reaches.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
# APScheduler logs every job run at INFO: one line per wake-up would flood the journal.
ENGINE_LOGGER = "apscheduler"


class _WakeTrigger(BaseTrigger):  # type: ignore[misc]
    """The wake-up the planner asked for, if it is still to come; else none until asked."""

    def __init__(self, timer: Timer) -> None:
        self._timer = timer

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        when = self._timer.requested
        if when is None or (previous_fire_time is not None and when <= previous_fire_time):
            # Already served: the planner asks again (`wake_at`) once it has planned.
            return NEVER
        return when

    def __str__(self) -> str:
        return "planner wake-up"


class Timer:
    """Calls `on_wake()` on APScheduler's thread when the time set with `wake_at` comes.

    `on_wake` must return at once (it posts a message). A wake-up in the past is served at
    once; `wake_at(None)` asks for none. Before `start` and after `shutdown` nothing is called.
    """

    def __init__(self, on_wake: Callable[[], None]) -> None:
        logging.getLogger(ENGINE_LOGGER).setLevel(logging.WARNING)
        self._on_wake = on_wake
        # Written by the planner's thread, read by APScheduler's (one reference: atomic).
        self.requested: datetime | None = None
        self._scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": DebugExecutor()},
            # Lateness is the planner's business (catch-up rules), never a reason to skip.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    @property
    def alive(self) -> bool:
        """True while APScheduler runs (fed to the systemd watchdog)."""
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()
        self._scheduler.add_job(
            self._on_wake,
            trigger=_WakeTrigger(self),
            id=WAKE_JOB,
            name=WAKE_JOB,
            next_run_time=self.requested or NEVER,
        )

    def wake_at(self, when: datetime | None) -> None:
        """Ask for one wake-up at `when` (replacing the one asked before)."""
        self.requested = when
        if self._scheduler.running:
            self._scheduler.modify_job(WAKE_JOB, next_run_time=when or NEVER)

    def look_again(self) -> None:
        """Make APScheduler read the clock again now. It sleeps for `wake-up - now` measured
        before a clock step: after a step back it would sleep for as long as the clock went
        back, firing nothing."""
        if self._scheduler.running:
            self._scheduler.wakeup()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
