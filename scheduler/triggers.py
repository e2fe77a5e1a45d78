"""The APScheduler 3 trigger: a thin adapter over the one schedule engine (scheduler.cron).

APScheduler only decides *when to wake up*; which instants to fire or skip is decided by
`catchup.plan_due` from the store's history. So the trigger never hands APScheduler a long
list of stale instants: after a stall it jumps to the recent past (`late_limit`), and the
planner accounts for everything in between (policy, window, skip ranges with counts).
APScheduler's own misfire handling is disabled (`misfire_grace_time=None`, coalesce on):
lateness is our catch-up's business, never a reason to drop a fire silently.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from scheduler.cron import CronSchedule, jitter_delay


class EngineTrigger(BaseTrigger):  # type: ignore[misc]
    """Next fire time = next scheduled instant + its deterministic jitter."""

    __slots__ = ("schedule", "job_id", "jitter", "not_before", "until", "late_limit")

    def __init__(
        self,
        schedule: CronSchedule,
        *,
        job_id: str,
        jitter: timedelta,
        not_before: datetime,
        until: datetime | None,
        late_limit: timedelta,
    ) -> None:
        self.schedule = schedule
        self.job_id = job_id
        self.jitter = jitter
        self.not_before = not_before  # instants at or before this are already accounted for
        self.until = until
        # Never hand APScheduler instants older than this: after a stall, the planner accounts
        # for them in bulk instead of APScheduler enumerating them one by one.
        self.late_limit = late_limit

    def jitter_of(self, scheduled_for: datetime) -> timedelta:
        return (
            jitter_delay(self.job_id, scheduled_for, self.jitter) if self.jitter else timedelta(0)
        )

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        base = self.not_before
        if previous_fire_time is not None:
            base = max(base, self.scheduled_of(previous_fire_time))
        # A jittered instant up to `jitter` older may still be due later (catchup.plan_due).
        base = max(base, now - self.late_limit - self.jitter)
        scheduled = self.schedule.next_after(base)
        if scheduled is None or (self.until is not None and scheduled > self.until):
            return None
        return scheduled + self.jitter_of(scheduled)

    def scheduled_of(self, fire_time: datetime) -> datetime:
        """The scheduled instant whose jittered fire time is `fire_time` (pure, no state)."""
        if not self.jitter:
            return fire_time
        # Jitter is in [0, jitter), so the instant lies in (fire_time - jitter, fire_time].
        candidate = self.schedule.previous_at_or_before(fire_time)
        while candidate is not None and candidate > fire_time - self.jitter:
            if candidate + self.jitter_of(candidate) == fire_time:
                return candidate
            candidate = self.schedule.previous_at_or_before(candidate - timedelta(microseconds=1))
        return fire_time  # not one of ours (cannot happen); treat it as unjittered

    def __str__(self) -> str:
        return f"engine[{self.schedule.expression} {self.schedule.zone.key}]"

    def __repr__(self) -> str:
        return f"<EngineTrigger {self.schedule.expression!r} {self.schedule.zone.key}>"
