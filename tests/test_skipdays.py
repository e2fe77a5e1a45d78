"""Skip days (scheduler/skipdays.py) and how `plan_due` plans them (issue 13, holidays and
blackout dates): dates in the job's zone, stretches of days, the schedule without them, and a
week of a per-second job planned as one range without enumerating it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from scheduler.catchup import plan_due
from scheduler.config import CatchUpPolicy
from scheduler.cron import CronSchedule, parse_schedule
from scheduler.job import SkipOn
from scheduler.lifecycle import Trigger
from scheduler.skipdays import SkipDays, SkippingSchedule
from scheduler.timeexpr import BusinessCalendar

UTC_ZONE = ZoneInfo("UTC")
CHRISTMAS = BusinessCalendar(holidays=frozenset({date(2026, 12, 25), date(2026, 12, 26)}))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def days(
    *dates: tuple[date, date],
    holidays: bool = False,
    zone: str = "UTC",
    calendar: BusinessCalendar = CHRISTMAS,
) -> SkipDays:
    return SkipDays(SkipOn(holidays, dates), ZoneInfo(zone), calendar)


def one(day: date) -> tuple[date, date]:
    return (day, day)


# -- days and stretches ----------------------------------------------------------------------------
def test_a_skip_day_is_a_date_in_the_jobs_zone() -> None:
    tokyo = days(holidays=True, zone="Asia/Tokyo")
    # 15:30 UTC on Christmas Eve is already Christmas in Tokyo (+09:00).
    assert (
        tokyo.reason(utc(2026, 12, 24, 15, 30)) == "skip_on: 2026-12-25 to 2026-12-26 are holidays"
    )
    assert tokyo.reason(utc(2026, 12, 24, 14, 59)) is None
    stretch = tokyo.stretch_at(utc(2026, 12, 25, 12))
    assert stretch is not None
    assert (stretch.start, stretch.end) == (utc(2026, 12, 24, 15), utc(2026, 12, 26, 15))


def test_weekends_are_not_holidays() -> None:
    assert days(holidays=True).reason(utc(2026, 12, 27, 9)) is None  # a Sunday


def test_touching_blackout_ranges_are_one_stretch_and_holidays_inside_them_blackout_dates() -> None:
    skip = days(
        one(date(2026, 12, 24)),
        (date(2026, 12, 25), date(2026, 12, 27)),
        one(date(2026, 12, 28)),
        holidays=True,
    )
    stretch = skip.stretch_at(utc(2026, 12, 26, 9))
    assert stretch is not None
    assert (stretch.first_day, stretch.last_day) == (date(2026, 12, 24), date(2026, 12, 28))
    assert stretch.reason == "skip_on: 2026-12-24 to 2026-12-28 are blackout dates"


def test_a_holiday_next_to_a_blackout_date_is_its_own_stretch() -> None:
    skip = days(one(date(2026, 12, 24)), holidays=True)
    stretches = list(skip.stretches(utc(2026, 12, 20), utc(2026, 12, 31)))
    assert [(s.first_day, s.last_day, s.reason) for s in stretches] == [
        (date(2026, 12, 24), date(2026, 12, 24), "skip_on: 2026-12-24 is a blackout date"),
        (date(2026, 12, 25), date(2026, 12, 26), "skip_on: 2026-12-25 to 2026-12-26 are holidays"),
    ]


def test_a_country_calendars_holidays_are_read_a_year_at_a_time() -> None:
    skip = days(holidays=True, calendar=BusinessCalendar(country="US"))
    found = [s.first_day for s in skip.stretches(utc(2025, 12, 31), utc(2027, 1, 2))]
    assert date(2026, 7, 3) in found  # Independence Day (a Saturday) observed on Friday
    assert date(2026, 12, 25) in found
    assert date(2027, 1, 1) in found
    july = [s.reason for s in skip.stretches(utc(2026, 7, 1), utc(2026, 7, 5))]
    assert july == ["skip_on: 2026-07-03 to 2026-07-04 are holidays"]


# -- the schedule without them ---------------------------------------------------------------------
SCHEDULE = parse_schedule("*/7 * * * *", "Europe/London")
LONDON = days(
    (date(2026, 3, 28), date(2026, 3, 29)),  # across the change to summer time
    one(date(2026, 3, 31)),
    holidays=True,
    zone="Europe/London",
    calendar=BusinessCalendar(holidays=frozenset({date(2026, 3, 30)})),
)


def brute(after: datetime, until: datetime) -> list[datetime]:
    """Every instant of SCHEDULE in (after, until] whose London date is not a skip day."""
    skip = {date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30), date(2026, 3, 31)}
    out = []
    for instant in SCHEDULE.iter_after(after):
        if instant > until:
            return out
        if instant.astimezone(ZoneInfo("Europe/London")).date() not in skip:
            out.append(instant)
    return out


@pytest.mark.parametrize(
    "after",
    [utc(2026, 3, 27, 23, 58), utc(2026, 3, 28, 12), utc(2026, 3, 29, 22, 59), utc(2026, 3, 31)],
)
def test_the_skipping_schedule_answers_as_filtering_every_instant_would(after: datetime) -> None:
    view = SkippingSchedule(SCHEDULE, LONDON)
    until = utc(2026, 4, 2)
    expected = brute(after, until)
    assert list(islice(view.iter_after(after), len(expected))) == expected
    assert view.next_after(after) == expected[0] == utc(2026, 3, 31, 23)  # 00:00 BST, 1 April
    assert view.count_between(after, until) == len(expected)
    assert (
        view.previous_at_or_before(utc(2026, 3, 31, 22, 0))
        == brute(utc(2026, 3, 27), utc(2026, 3, 27, 23, 59))[-1]
    )


def test_a_schedule_that_only_fires_on_holidays_is_not_searched_to_the_end_of_time() -> None:
    christmas_only = SkippingSchedule(
        parse_schedule("0 9 25 12 *", "UTC"),
        days(holidays=True, calendar=BusinessCalendar(holidays=frozenset(
            date(year, 12, 25) for year in range(2026, 2100)
        ))),
    )  # fmt: skip
    assert christmas_only.next_after(utc(2026, 1, 1)) is None
    assert christmas_only.previous_at_or_before(utc(2099, 1, 1)) is None


# -- planning --------------------------------------------------------------------------------------
class Counting:
    """A schedule that counts the instants it hands out one by one (`iter_after`)."""

    def __init__(self, schedule: CronSchedule) -> None:
        self.schedule = schedule
        self.enumerated = 0

    def next_after(self, after: datetime) -> datetime | None:
        self.enumerated += 1
        return self.schedule.next_after(after)

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        self.enumerated += 1
        return self.schedule.previous_at_or_before(at)

    def count_between(self, after: datetime, until: datetime) -> int:
        return self.schedule.count_between(after, until)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        for instant in self.schedule.iter_after(after):
            self.enumerated += 1
            yield instant


def test_a_blackout_week_of_a_per_second_job_is_one_range_counted_not_enumerated() -> None:
    counting = Counting(parse_schedule("* * * * * *", "UTC"))
    week = days((date(2026, 5, 5), date(2026, 5, 11)))
    now = utc(2026, 5, 12, 0, 0, 0, 200000)

    plan = plan_due(
        counting,  # type: ignore[arg-type]  # the protocol's methods, counted
        cursor=utc(2026, 5, 4, 23, 59, 59),
        up_to=now,
        now=now,
        live_since=utc(2026, 5, 4, 9),  # running all along: every instant is live
        policy=CatchUpPolicy.ALL,
        window=timedelta(days=30),
        stall_threshold=timedelta(seconds=5),
        skip_days=week,
    )

    assert plan.fire == ((utc(2026, 5, 12), Trigger.SCHEDULE),)
    [stretch] = plan.skips
    assert (stretch.first, stretch.last, stretch.count, stretch.reason) == (
        utc(2026, 5, 5),
        utc(2026, 5, 11, 23, 59, 59),
        604_800,
        "skip_on: 2026-05-05 to 2026-05-11 are blackout dates",
    )
    assert plan.cursor == now
    assert counting.enumerated < 20


def test_catch_up_latest_fires_the_newest_instant_that_is_not_on_a_skip_day() -> None:
    daily = parse_schedule("0 9 * * *", "UTC")
    plan = plan_due(
        daily,
        cursor=utc(2026, 12, 20, 12),
        up_to=utc(2026, 12, 26, 12),
        now=utc(2026, 12, 26, 12),
        live_since=utc(2026, 12, 26, 12),  # down since the 20th
        policy=CatchUpPolicy.LATEST,
        window=timedelta(days=30),
        stall_threshold=timedelta(seconds=5),
        skip_days=days(holidays=True),
    )
    assert plan.fire == ((utc(2026, 12, 24, 9), Trigger.CATCH_UP),)
    assert [(s.first, s.last, s.count, s.reason) for s in plan.skips] == [
        (
            utc(2026, 12, 25, 9),
            utc(2026, 12, 26, 9),
            2,
            "skip_on: 2026-12-25 to 2026-12-26 are holidays",
        ),
        (
            utc(2026, 12, 21, 9),
            utc(2026, 12, 23, 9),
            3,
            "missed; catch_up = latest fires only the newest",
        ),
    ]


def test_without_skip_on_nothing_is_asked_of_skip_days() -> None:
    daily = parse_schedule("0 9 * * *", "UTC")
    plain = plan_due(
        daily,
        cursor=utc(2026, 12, 24, 12),
        up_to=utc(2026, 12, 25, 9, 0, 0, 100000),
        now=utc(2026, 12, 25, 9, 0, 0, 100000),
        live_since=utc(2026, 12, 24),
        policy=CatchUpPolicy.ALL,
        window=timedelta(days=1),
        stall_threshold=timedelta(seconds=5),
    )
    assert plain.fire == ((utc(2026, 12, 25, 9), Trigger.SCHEDULE),)
    assert plain.skips == ()
