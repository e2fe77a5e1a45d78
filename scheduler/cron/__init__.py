"""The one schedule engine: cron expressions evaluated in a time zone (shared/spec/schedules.md).

STUB: the signatures below are the contract; the implementation is being written.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


class CronSchedule:
    """A validated cron expression bound to a zone; a pure function of (expression, zone, start)."""

    expression: str
    zone: ZoneInfo
    is_interval: bool

    def next_after(self, after: datetime) -> datetime | None:
        """The first instant strictly after `after` (aware), as aware UTC; None if none remains."""
        raise NotImplementedError

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Strictly increasing aware UTC instants strictly after `after`."""
        raise NotImplementedError

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        """The newest instant <= `at`, or None."""
        raise NotImplementedError

    def count_between(self, after: datetime, until: datetime) -> int:
        """How many instants lie in (after, until], without enumerating them one by one."""
        raise NotImplementedError


def parse_schedule(expression: str, zone: ZoneInfo | str, *, job_id: str = "") -> CronSchedule:
    """Validate and compile; ScheduleError naming the field and value, or saying it never fires."""
    raise NotImplementedError


def jitter_delay(job_id: str, scheduled_for: datetime, max_jitter: timedelta) -> timedelta:
    """A delay in [0, max_jitter), a pure function of (job id, scheduled instant)."""
    raise NotImplementedError
