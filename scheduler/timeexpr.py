"""Time expressions (`+2bd@17:00`) and the business-day calendar (shared/spec/jobs.md).

STUB: the signatures below are the contract; the implementation is being written.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from scheduler.config import CalendarSettings


class BusinessCalendar:
    """Which dates are business days: not a weekend day, not a holiday."""

    def __init__(
        self,
        weekend: frozenset[int] = frozenset({5, 6}),
        holidays: frozenset[date] = frozenset(),
        country: str | None = None,
    ) -> None:
        raise NotImplementedError

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> BusinessCalendar:
        raise NotImplementedError

    def is_business_day(self, day: date) -> bool:
        raise NotImplementedError


class TimeExpression:
    """A parsed time expression; `resolve` is a pure function of the scheduled instant."""

    text: str

    def resolve(self, scheduled_for: datetime, zone: ZoneInfo, calendar: BusinessCalendar) -> datetime:
        """The instant this expression names for a fire scheduled at `scheduled_for`, in UTC."""
        raise NotImplementedError


def parse_time_expression(text: str) -> TimeExpression:
    """Parse `+0`, `+3d@17:00`, `+1mo+0bd@09:00`, an ISO instant, ...; TimeExpressionError."""
    raise NotImplementedError
