"""Skip days (`skip_on`): which of a job's instants fall on a holiday or a blackout date.

A job's `skip_on` names calendar holidays (`"holidays"`: the `[calendar]` holidays, configured
or the country's, not weekends) and/or blackout dates and ranges. An instant is skipped when
its date **in the job's zone** is one of them: it is recorded as skipped with the reason, never
fired (docs/jobs.md, "Skip days").

Days are grouped into *stretches*: consecutive skip days of one kind (holidays, or blackout
dates), each one span of UTC instants [start, end) with one reason. The planner records one
skip row per stretch (counted with the cron engine's `count_between`, never by enumerating
the instants), and plans everything else on a `SkippingSchedule`: the job's schedule without
the instants on skip days, so the catch-up policies, jitter and the timer see only instants
that can fire. A job without `skip_on` never reaches this module.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from scheduler.cron import CronSchedule
from scheduler.job import Job, SkipOn
from scheduler.timeexpr import BusinessCalendar, localize

ONE_DAY = timedelta(days=1)
ONE_MICROSECOND = timedelta(microseconds=1)
# How far a search for the next (or previous) instant that is not on a skip day goes before
# giving up: about ten years, like a time expression's terms. A schedule that only ever fires
# on holidays (`0 9 25 12 *` with Christmas a holiday) would otherwise be searched to 9999.
MAX_SKIP_SEARCH = timedelta(days=3660)
HOLIDAY = "holiday"
BLACKOUT = "blackout date"
_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class Instants(Protocol):
    """What the planner asks of a schedule: a `CronSchedule`, or a `SkippingSchedule`."""

    def next_after(self, after: datetime) -> datetime | None: ...
    def iter_after(self, after: datetime) -> Iterator[datetime]: ...
    def previous_at_or_before(self, at: datetime) -> datetime | None: ...
    def count_between(self, after: datetime, until: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class Stretch:
    """Consecutive skip days of one kind, `first_day` to `last_day`: the instants in
    [start, end) (UTC; midnight to midnight in the job's zone) are skipped with `reason`."""

    first_day: date
    last_day: date
    start: datetime
    end: datetime
    reason: str


def _reason(kind: str, first: date, last: date) -> str:
    if first == last:
        return f"skip_on: {first} is a {kind}"
    return f"skip_on: {first} to {last} are {kind}s"


def _merged(ranges: Sequence[tuple[date, date]]) -> list[tuple[date, date]]:
    """Ranges sorted, overlapping and adjacent ones merged: disjoint, with a gap between."""
    out: list[tuple[date, date]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + ONE_DAY:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


class SkipDays:
    """A job's skip days, with the business calendar and the job's zone.

    Cheap to build (the planner makes one when it plans such a job); treat it as immutable.
    """

    __slots__ = ("_firsts", "blackouts", "calendar", "holidays", "zone")

    def __init__(self, skip_on: SkipOn, zone: ZoneInfo, calendar: BusinessCalendar) -> None:
        self.holidays = skip_on.holidays
        self.blackouts = _merged(skip_on.dates)
        self._firsts = [first for first, _last in self.blackouts]
        self.zone = zone
        self.calendar = calendar

    def _blackout(self, day: date) -> tuple[date, date] | None:
        """The merged blackout range holding `day`, if one does."""
        index = bisect_right(self._firsts, day) - 1
        if index >= 0 and day <= self.blackouts[index][1]:
            return self.blackouts[index]
        return None

    def kind(self, day: date) -> str | None:
        """BLACKOUT, HOLIDAY or None. A day that is both counts as a blackout date (the job
        names it; the calendar is shared)."""
        if self.blackouts and self._blackout(day) is not None:
            return BLACKOUT
        if self.holidays and self.calendar.is_holiday(day):
            return HOLIDAY
        return None

    def stretch_at(self, instant: datetime) -> Stretch | None:
        """The stretch holding `instant`'s date in the job's zone, or None (a day that fires)."""
        day = instant.astimezone(self.zone).date()
        kind = self.kind(day)
        if kind is None:
            return None
        return self._stretch_of(day, kind)

    def reason(self, instant: datetime) -> str | None:
        """Why `instant` is skipped, or None when it fires (`next`, `preview`)."""
        stretch = self.stretch_at(instant)
        return None if stretch is None else stretch.reason

    def _stretch_of(self, day: date, kind: str) -> Stretch:
        if kind == BLACKOUT:
            blackout = self._blackout(day)
            assert blackout is not None
            first, last = blackout
        else:
            # Holidays come one to a few in a row; ten years of them in a row is a calendar
            # configured by mistake, and the walk stops there.
            first = last = day
            for _ in range(MAX_SKIP_SEARCH.days):
                if first == date.min or self.kind(first - ONE_DAY) != HOLIDAY:
                    break
                first -= ONE_DAY
            for _ in range(MAX_SKIP_SEARCH.days):
                if last == date.max or self.kind(last + ONE_DAY) != HOLIDAY:
                    break
                last += ONE_DAY
        return Stretch(
            first, last, self._midnight(first), self.day_end(last), _reason(kind, first, last)
        )

    def _midnight(self, day: date) -> datetime:
        """The first instant of `day` in the zone (after a gap, when midnight does not exist)."""
        return localize(datetime.combine(day, time()), self.zone)

    def day_end(self, day: date) -> datetime:
        """The first instant after `day` in the zone."""
        return _LATEST if day == date.max else self._midnight(day + ONE_DAY)

    def stretches(self, after: datetime, until: datetime) -> Iterator[Stretch]:
        """The stretches holding a date of an instant in (after, until], oldest first.

        Reads the blackout ranges and the holidays of the span (each year's public holidays
        once), never each day of it: ten years cost a few hundred date comparisons.
        """
        if until <= after:
            return
        first_day = after.astimezone(self.zone).date()
        last_day = until.astimezone(self.zone).date()
        starts: list[tuple[date, str]] = []
        for first, last in self.blackouts:
            if first <= last_day and last >= first_day:
                starts.append((max(first, first_day), BLACKOUT))
        if self.holidays:
            starts += [
                (day, HOLIDAY)
                for day in self.calendar.holidays_between(first_day, last_day)
                if self.kind(day) == HOLIDAY
            ]
        covered: date | None = None  # the last day of the stretch yielded last
        for day, kind in sorted(starts):
            if covered is not None and day <= covered:
                continue  # a later day of a stretch already yielded
            stretch = self._stretch_of(day, kind)
            covered = stretch.last_day
            yield stretch


class SkippingSchedule:
    """A schedule's instants without those on skip days; what `catchup.plan_due` and the
    planner's timer see for a job with `skip_on`. Each search jumps a whole stretch at a time."""

    __slots__ = ("days", "schedule")

    def __init__(self, schedule: Instants, days: SkipDays) -> None:
        self.schedule = schedule
        self.days = days

    def next_after(self, after: datetime) -> datetime | None:
        """The first instant strictly after `after` not on a skip day; None when there is
        none within MAX_SKIP_SEARCH (or at all)."""
        limit = _shifted(after, MAX_SKIP_SEARCH)
        instant = self.schedule.next_after(after)
        while instant is not None:
            stretch = self.days.stretch_at(instant)
            if stretch is None:
                return instant
            if instant > limit or stretch.end == _LATEST:
                return None
            instant = self.schedule.next_after(stretch.end - ONE_MICROSECOND)
        return None

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        """The last instant at or before `at` not on a skip day (searched as far back as
        MAX_SKIP_SEARCH)."""
        limit = _shifted(at, -MAX_SKIP_SEARCH)
        instant = self.schedule.previous_at_or_before(at)
        while instant is not None:
            stretch = self.days.stretch_at(instant)
            if stretch is None:
                return instant
            if instant < limit:
                return None
            instant = self.schedule.previous_at_or_before(stretch.start - ONE_MICROSECOND)
        return None

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """The instants strictly after `after` not on a skip day, in order.

        Streams the schedule's own iterator and looks at each local day once: a per-second
        job's day costs one check, not 86,400.
        """
        instants = self.schedule.iter_after(after)
        day_end = _EARLIEST  # instants before it are on a day already found to fire
        while True:
            instant = next(instants, None)
            if instant is None:
                return
            if instant >= day_end:
                stretch = self.days.stretch_at(instant)
                if stretch is not None:
                    if stretch.end == _LATEST:
                        return
                    instants = self.schedule.iter_after(stretch.end - ONE_MICROSECOND)
                    continue
                local = instant.astimezone(self.days.zone).date()
                day_end = self.days.day_end(local)
            yield instant

    def count_between(self, after: datetime, until: datetime) -> int:
        """The instants in (after, until] not on a skip day: the schedule's count, less each
        stretch's (the engine's arithmetic, never enumerating)."""
        count = self.schedule.count_between(after, until)
        for stretch in self.days.stretches(after, until):
            low = max(after, stretch.start - ONE_MICROSECOND)
            high = min(until, stretch.end - ONE_MICROSECOND)
            if high > low:
                count -= self.schedule.count_between(low, high)
        return count


def _shifted(instant: datetime, delta: timedelta) -> datetime:
    try:
        return instant + delta
    except OverflowError:
        return _LATEST if delta > timedelta(0) else _EARLIEST


# -- for the rest of the code: a Job and the calendar ----------------------------------------------


def skip_days_of(job: Job, calendar: BusinessCalendar) -> SkipDays | None:
    """The job's skip days, or None for a job without `skip_on` (most jobs)."""
    if job.skip_on is None:
        return None
    return SkipDays(job.skip_on, job.zone, calendar)


def firing_schedule(job: Job, calendar: BusinessCalendar) -> CronSchedule | SkippingSchedule:
    """The instants of the job that can fire: its schedule, less its skip days if it has any."""
    days = skip_days_of(job, calendar)
    return job.cron if days is None else SkippingSchedule(job.cron, days)


def next_firing(
    job: Job, after: datetime, calendar: BusinessCalendar, *, fires_so_far: int = 0
) -> datetime | None:
    """Like `Job.next_fire`, passing over instants on skip days: the next instant that fires."""
    if job.skip_on is None:
        return job.next_fire(after, fires_so_far=fires_so_far)
    if job.max_fires is not None and fires_so_far >= job.max_fires:
        return None
    if job.start_at is not None and job.start_at - ONE_MICROSECOND > after:
        after = job.start_at - ONE_MICROSECOND
    instant = firing_schedule(job, calendar).next_after(after)
    if instant is None or (job.end_at is not None and instant > job.end_at):
        return None
    return instant
