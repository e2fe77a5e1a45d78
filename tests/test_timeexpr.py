"""Time expressions and the business-day calendar (docs/jobs.md, "Time expressions").

Real transitions used below (IANA tz database):

- America/New_York 2026: spring forward Sun 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC),
  02:00-02:59 does not exist; fall back Sun 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC),
  01:00-01:59 happens twice (first at -04:00, then at -05:00).
- Europe/London 2026: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT.
- Asia/Kathmandu: +05:45 all year.
- Pacific/Chatham 2026: 2026-09-27 02:45 +12:45 -> 03:45 +13:45 (gap);
  2026-04-05 03:45 +13:45 -> 02:45 +12:45 (02:45-03:44 twice).
- Australia/Lord_Howe 2026: 2026-10-04 02:00 +10:30 -> 02:30 +11:00 (a 30-minute gap);
  2026-04-05 02:00 +11:00 -> 01:30 +10:30 (01:30-01:59 twice).
- Pacific/Apia: 2011-12-30 was skipped entirely (29th 23:59 -10:00 -> 31st 00:00 +14:00).

Calendar facts: 2026-11-20 is a Friday; 2026-11-26 is Thanksgiving (US); 2026-07-03 (Fri) is
the observed Independence Day (US); 2021-12-31 (Fri) is the observed New Year's Day 2022 (US).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.config import CalendarSettings
from scheduler.errors import ConfigError, TimeExpressionError
from scheduler.timeexpr import (
    MAX_MAGNITUDE,
    MAX_TERMS,
    BusinessCalendar,
    TimeExpression,
    localize,
    parse_time_expression,
)

NY = "America/New_York"
LONDON = "Europe/London"
PLAIN = BusinessCalendar()  # Sat/Sun weekend, no holidays
US = BusinessCalendar(country="US")


def resolve(expr: str, scheduled: str, zone: str, calendar: BusinessCalendar = PLAIN) -> str:
    """Resolve and show the result in the zone, as an ISO string with its offset."""
    tz = ZoneInfo(zone)
    result = parse_time_expression(expr).resolve(datetime.fromisoformat(scheduled), tz, calendar)
    assert result.tzinfo is UTC
    return result.astimezone(tz).isoformat()


# -- wall-clock and elapsed terms across DST ---------------------------------------------------

DST_CASES = [
    # (expression, scheduled instant, zone, expected instant)
    ("+0", "2026-03-08T09:00:00-04:00", NY, "2026-03-08T09:00:00-04:00"),
    ("+1d", "2026-03-07T09:00:00-05:00", NY, "2026-03-08T09:00:00-04:00"),  # 23 h later
    ("+1d", "2026-10-31T09:00:00-04:00", NY, "2026-11-01T09:00:00-05:00"),  # 25 h later
    ("+24h", "2026-03-07T09:00:00-05:00", NY, "2026-03-08T10:00:00-04:00"),  # elapsed time
    ("+24h", "2026-10-31T09:00:00-04:00", NY, "2026-11-01T08:00:00-05:00"),
    ("+0@02:30", "2026-03-08T00:00:00-05:00", NY, "2026-03-08T03:00:00-04:00"),  # gap
    ("+1d", "2026-03-07T02:30:00-05:00", NY, "2026-03-08T03:00:00-04:00"),  # lands in the gap
    ("+1d+1d", "2026-03-07T02:30:00-05:00", NY, "2026-03-09T02:30:00-04:00"),  # wall kept
    ("+0@01:30", "2026-11-01T09:00:00-05:00", NY, "2026-11-01T01:30:00-04:00"),  # overlap
    ("+1d", "2026-10-31T01:30:00-04:00", NY, "2026-11-01T01:30:00-04:00"),  # first occurrence
    ("+0", "2026-11-01T01:30:00-05:00", NY, "2026-11-01T01:30:00-05:00"),  # second stays
    ("+0d", "2026-11-01T01:30:00-05:00", NY, "2026-11-01T01:30:00-05:00"),  # no-op keeps it
    ("+90m", "2026-11-01T00:45:00-04:00", NY, "2026-11-01T01:15:00-05:00"),
    ("+30m", "2026-11-01T01:45:00-04:00", NY, "2026-11-01T01:15:00-05:00"),
    ("+1d+90m", "2026-03-07T01:00:00-05:00", NY, "2026-03-08T03:30:00-04:00"),
    ("-1d@12:00", "2026-03-09T09:00:00-04:00", NY, "2026-03-08T12:00:00-04:00"),
    ("+3d@17:00", "2026-03-06T09:00:00-05:00", NY, "2026-03-09T17:00:00-04:00"),
    ("+1w", "2026-10-28T09:00:00-04:00", NY, "2026-11-04T09:00:00-05:00"),
    ("-2h", "2026-03-08T03:30:00-04:00", NY, "2026-03-08T00:30:00-05:00"),
    ("+1d", "2026-03-28T09:00:00+00:00", LONDON, "2026-03-29T09:00:00+01:00"),
    ("+0@01:30", "2026-03-29T00:10:00+00:00", LONDON, "2026-03-29T02:00:00+01:00"),
    ("+0@01:30", "2026-10-25T09:00:00+00:00", LONDON, "2026-10-25T01:30:00+01:00"),
    ("+1w", "2026-10-20T09:00:00+01:00", LONDON, "2026-10-27T09:00:00+00:00"),
    ("+1d@09:00", "2026-06-01T23:00:00+05:45", "Asia/Kathmandu", "2026-06-02T09:00:00+05:45"),
    ("+90m", "2026-06-01T23:00:00+05:45", "Asia/Kathmandu", "2026-06-02T00:30:00+05:45"),
    ("+0@03:00", "2026-09-27T00:00:00+12:45", "Pacific/Chatham", "2026-09-27T03:45:00+13:45"),
    ("+0@03:00", "2026-04-05T00:00:00+13:45", "Pacific/Chatham", "2026-04-05T03:00:00+13:45"),
    ("+0@02:15", "2026-10-04T00:00:00+10:30", "Australia/Lord_Howe", "2026-10-04T02:30:00+11:00"),
    ("+0@01:45", "2026-04-05T00:00:00+11:00", "Australia/Lord_Howe", "2026-04-05T01:45:00+11:00"),
    ("+1d", "2011-12-29T12:00:00-10:00", "Pacific/Apia", "2011-12-31T00:00:00+14:00"),
]


@pytest.mark.parametrize(
    ("expr", "scheduled", "zone", "expected"),
    DST_CASES,
    ids=[f"{e}-{z}-{s}" for e, s, z, _ in DST_CASES],
)
def test_it_resolves_wall_clock_and_elapsed_terms_across_dst(
    expr: str, scheduled: str, zone: str, expected: str
) -> None:
    assert resolve(expr, scheduled, zone) == expected


@pytest.mark.parametrize(
    ("scheduled", "hours"),
    [("2026-03-07T09:00:00-05:00", 23), ("2026-10-31T09:00:00-04:00", 25)],
    ids=["spring-forward", "fall-back"],
)
def test_one_calendar_day_across_a_dst_change_is_23_or_25_hours(scheduled: str, hours: int) -> None:
    start = datetime.fromisoformat(scheduled)
    end = parse_time_expression("+1d").resolve(start, ZoneInfo(NY), PLAIN)
    assert end - start == timedelta(hours=hours)


# -- months ------------------------------------------------------------------------------------

MONTH_CASES = [
    ("+1mo", "2026-01-31T09:00:00+00:00", "2026-02-28T09:00:00+00:00"),
    ("+1mo", "2028-01-31T09:00:00+00:00", "2028-02-29T09:00:00+00:00"),  # leap year
    ("+1mo", "2026-03-31T09:00:00+00:00", "2026-04-30T09:00:00+00:00"),
    ("+2mo", "2026-01-31T09:00:00+00:00", "2026-03-31T09:00:00+00:00"),  # one term: no clamp
    ("+1mo+1mo", "2026-01-31T09:00:00+00:00", "2026-03-28T09:00:00+00:00"),  # left to right
    ("+1mo", "2026-12-15T09:00:00+00:00", "2027-01-15T09:00:00+00:00"),
    ("-1mo", "2026-03-31T09:00:00+00:00", "2026-02-28T09:00:00+00:00"),
    ("-13mo", "2026-01-15T09:00:00+00:00", "2024-12-15T09:00:00+00:00"),
    ("+12mo", "2028-02-29T09:00:00+00:00", "2029-02-28T09:00:00+00:00"),
    ("+120mo", "2026-01-31T09:00:00+00:00", "2036-01-31T09:00:00+00:00"),
]


@pytest.mark.parametrize(
    ("expr", "scheduled", "expected"), MONTH_CASES, ids=[f"{e}-{s[:10]}" for e, s, _ in MONTH_CASES]
)
def test_it_adds_calendar_months_clamped_to_the_last_day(
    expr: str, scheduled: str, expected: str
) -> None:
    assert resolve(expr, scheduled, "UTC") == expected


def test_a_month_across_dst_keeps_the_wall_clock_time() -> None:
    assert resolve("+1mo", "2026-02-15T09:00:00-05:00", NY) == "2026-03-15T09:00:00-04:00"


# -- business days -----------------------------------------------------------------------------

FRI_SAT = BusinessCalendar(weekend=frozenset({4, 5}))
XMAS = BusinessCalendar(holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25)}))

BD_CASES = [
    # (calendar, day, n, expected)                             2026-11-20 is a Friday
    (PLAIN, date(2026, 11, 20), 0, date(2026, 11, 20)),  # Fri +0 -> Fri
    (PLAIN, date(2026, 11, 21), 0, date(2026, 11, 23)),  # Sat +0 -> Mon
    (PLAIN, date(2026, 11, 22), 0, date(2026, 11, 23)),  # Sun +0 -> Mon
    (PLAIN, date(2026, 11, 20), 1, date(2026, 11, 23)),  # Fri +1 -> Mon
    (PLAIN, date(2026, 11, 21), 1, date(2026, 11, 23)),  # Sat +1 -> Mon
    (PLAIN, date(2026, 11, 21), 2, date(2026, 11, 24)),  # Sat +2 -> Tue
    (PLAIN, date(2026, 11, 18), 5, date(2026, 11, 25)),  # Wed +5 -> next Wed
    (PLAIN, date(2026, 11, 23), -1, date(2026, 11, 20)),  # Mon -1 -> Fri
    (PLAIN, date(2026, 11, 22), -1, date(2026, 11, 20)),  # Sun -1 -> Fri
    (PLAIN, date(2026, 11, 25), -3, date(2026, 11, 20)),  # Wed -3 -> Fri
    (XMAS, date(2026, 12, 23), 1, date(2026, 12, 28)),  # Wed +1 -> Mon (Thu, Fri holidays)
    (XMAS, date(2026, 12, 24), 0, date(2026, 12, 28)),
    (XMAS, date(2026, 12, 28), -1, date(2026, 12, 23)),
    (US, date(2026, 11, 25), 1, date(2026, 11, 27)),  # Thanksgiving Thu skipped
    (US, date(2026, 11, 26), 0, date(2026, 11, 27)),
    (US, date(2026, 11, 27), -1, date(2026, 11, 25)),
    (US, date(2026, 11, 25), 2, date(2026, 11, 30)),
    (US, date(2026, 7, 2), 1, date(2026, 7, 6)),  # observed Independence Day Fri 07-03
    (US, date(2021, 12, 30), 1, date(2022, 1, 3)),  # New Year 2022 observed on Fri 2021-12-31
    (FRI_SAT, date(2026, 11, 19), 1, date(2026, 11, 22)),  # Thu +1 -> Sun
    (FRI_SAT, date(2026, 11, 20), 0, date(2026, 11, 22)),  # Fri +0 -> Sun
    (FRI_SAT, date(2026, 11, 22), -1, date(2026, 11, 19)),  # Sun -1 -> Thu
    (FRI_SAT, date(2026, 11, 21), 0, date(2026, 11, 22)),  # Sat +0 -> Sun
]
_CAL_NAMES = {id(PLAIN): "sat-sun", id(XMAS): "xmas", id(US): "us", id(FRI_SAT): "fri-sat"}


@pytest.mark.parametrize(
    ("calendar", "day", "n", "expected"),
    BD_CASES,
    ids=[f"{_CAL_NAMES[id(c)]}-{d}-{n:+d}" for c, d, n, _ in BD_CASES],
)
def test_it_counts_business_days(
    calendar: BusinessCalendar, day: date, n: int, expected: date
) -> None:
    assert calendar.add_business_days(day, n) == expected


@pytest.mark.parametrize(
    ("calendar", "day", "expected"),
    [
        (PLAIN, date(2026, 11, 26), True),
        (US, date(2026, 11, 26), False),
        (US, date(2026, 11, 27), True),
        (PLAIN, date(2026, 11, 21), False),
        (FRI_SAT, date(2026, 11, 20), False),
        (FRI_SAT, date(2026, 11, 22), True),
        (XMAS, date(2026, 12, 24), False),
        (XMAS, date(2027, 12, 24), True),  # configured holidays are dates, not anniversaries
    ],
    ids=[
        "thanksgiving-plain",
        "thanksgiving-us",
        "day-after-thanksgiving-us",
        "saturday",
        "friday-fri-sat",
        "sunday-fri-sat",
        "configured-holiday",
        "next-years-date",
    ],
)
def test_it_knows_business_days(calendar: BusinessCalendar, day: date, expected: bool) -> None:
    assert calendar.is_business_day(day) is expected


BD_EXPR_CASES = [
    ("+2bd@09:30", "2026-11-25T09:00:00-05:00", US, "2026-11-30T09:30:00-05:00"),
    ("+2bd@17:00", "2026-11-20T09:00:00-05:00", PLAIN, "2026-11-24T17:00:00-05:00"),
    ("+0bd", "2026-11-21T10:15:00-05:00", PLAIN, "2026-11-23T10:15:00-05:00"),  # time kept
    ("-1bd", "2026-11-23T08:00:00-05:00", PLAIN, "2026-11-20T08:00:00-05:00"),
    ("+1bd", "2026-03-06T09:00:00-05:00", PLAIN, "2026-03-09T09:00:00-04:00"),  # across DST
    ("+1mo+0bd@09:00", "2026-04-30T08:00:00-04:00", PLAIN, "2026-06-01T09:00:00-04:00"),
    ("+0bd+1mo@09:00", "2026-04-30T08:00:00-04:00", PLAIN, "2026-05-30T09:00:00-04:00"),
    ("+1mo+0bd@09:00", "2026-01-31T08:00:00-05:00", PLAIN, "2026-03-02T09:00:00-05:00"),
    ("+0bd", "2026-11-01T01:30:00-05:00", PLAIN, "2026-11-02T01:30:00-05:00"),  # Sun -> Mon
    ("+1bd", "2026-11-19T09:00:00-05:00", FRI_SAT, "2026-11-22T09:00:00-05:00"),
]


@pytest.mark.parametrize(
    ("expr", "scheduled", "calendar", "expected"),
    BD_EXPR_CASES,
    ids=[f"{e}-{_CAL_NAMES[id(c)]}-{s[:10]}" for e, s, c, _ in BD_EXPR_CASES],
)
def test_it_resolves_business_day_terms_left_to_right(
    expr: str, scheduled: str, calendar: BusinessCalendar, expected: str
) -> None:
    assert resolve(expr, scheduled, NY, calendar) == expected


def test_it_builds_the_calendar_from_settings() -> None:
    settings = CalendarSettings(
        weekend=frozenset({4, 5}), holidays_country="US", holidays=frozenset({date(2026, 12, 24)})
    )
    calendar = BusinessCalendar.from_settings(settings)
    assert calendar.weekend == frozenset({4, 5})
    assert calendar.country == "US"
    assert not calendar.is_business_day(date(2026, 11, 26))  # Thanksgiving, a Thursday
    assert not calendar.is_business_day(date(2026, 12, 24))
    assert not calendar.is_business_day(date(2026, 11, 27))  # Friday: weekend here
    assert calendar.is_business_day(date(2026, 11, 29))  # Sunday: a working day here


def test_it_accepts_a_lower_case_country() -> None:
    assert BusinessCalendar(country="us").country == "US"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weekend": frozenset(range(7))},
        {"weekend": frozenset({5, 7})},
        {"country": "XX"},
    ],
    ids=["every-day-a-weekend", "weekday-out-of-range", "unknown-country"],
)
def test_it_rejects_a_calendar_that_cannot_work(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        BusinessCalendar(**kwargs)


def test_country_holidays_are_right_under_concurrent_first_use() -> None:
    import holidays

    calendar = BusinessCalendar(country="GB")
    days = [date(2040, 1, 1) + timedelta(days=i) for i in range(0, 366 * 3, 3)]
    expected = {d: d.weekday() < 5 and d not in holidays.country_holidays("GB") for d in days}
    results: list[dict[date, bool]] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append({d: calendar.is_business_day(d) for d in days})

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8
    assert all(r == expected for r in results)


# -- fixed instants ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-08T09:00:00-05:00", "2026-03-08T14:00:00+00:00"),
        ("2026-03-08T14:00:00Z", "2026-03-08T14:00:00+00:00"),
        ("  2026-03-08T14:00:00+00:00 ", "2026-03-08T14:00:00+00:00"),
    ],
    ids=["offset", "zulu", "surrounding-space"],
)
def test_an_iso_instant_with_an_offset_is_a_fixed_time(text: str, expected: str) -> None:
    expr = parse_time_expression(text)
    for scheduled in ("2026-01-01T00:00:00+00:00", "2030-06-01T12:00:00+02:00"):
        got = expr.resolve(datetime.fromisoformat(scheduled), ZoneInfo(NY), PLAIN)
        assert got.isoformat() == expected


# -- parse once, resolve many ------------------------------------------------------------------


def test_a_parsed_expression_is_a_value_that_resolves_many_instants() -> None:
    expr = parse_time_expression("+2bd@17:00")
    assert isinstance(expr, TimeExpression)
    assert expr.text == "+2bd@17:00"
    assert expr == parse_time_expression("+2bd@17:00")
    assert hash(expr) == hash(parse_time_expression("+2bd@17:00"))
    zone = ZoneInfo(NY)
    start = datetime(2026, 11, 16, 14, 0, tzinfo=UTC)  # a Monday, 09:00 EST
    got = [expr.resolve(start + timedelta(days=i), zone, PLAIN).isoformat() for i in range(5)]
    assert got == [
        "2026-11-18T22:00:00+00:00",
        "2026-11-19T22:00:00+00:00",
        "2026-11-20T22:00:00+00:00",
        "2026-11-23T22:00:00+00:00",
        "2026-11-24T22:00:00+00:00",
    ]


def test_it_refuses_a_naive_scheduled_instant() -> None:
    with pytest.raises(ValueError, match="naive"):
        parse_time_expression("+1d").resolve(datetime(2026, 1, 1), ZoneInfo(NY), PLAIN)


# -- rejections --------------------------------------------------------------------------------

REJECTED = [
    ("", "empty"),
    ("   ", "empty"),
    ("+", "unexpected"),
    ("+5", "needs a unit"),
    ("-3", "needs a unit"),
    ("+2x", "unknown unit 'x'"),
    ("+1M", "unknown unit 'M'"),
    ("+1D", "unknown unit 'D'"),
    ("+2bdx", "unknown unit 'bdx'"),
    ("+1y", "unknown unit 'y'"),
    ("+1.5h", "unexpected '.5h'"),
    ("1d", "not a time expression"),
    ("garbage", "not a time expression"),
    ("+1d +2h", "unexpected ' +2h'"),
    ("+1d,+2h", "unexpected ',+2h'"),
    ("+1d@25:00", "'@25:00' is not a time"),
    ("+0@24:00", "'@24:00' is not a time"),
    ("+0@09:60", "'@09:60' is not a time"),
    ("+0@9:5", "'@9:5' is not a time"),
    ("+0@0930", "'@0930' is not a time"),
    ("+1d@", "'@' is not a time"),
    ("+1d@17:00@18:00", "'@17:00@18:00' is not a time"),
    ("@17:00", "needs a term before the time"),
    ("+3661d", "too far"),
    ("+523w", "too far"),
    ("+121mo", "too far"),
    ("+2611bd", "too far"),
    ("+87841h", "too far"),
    ("-5270401m", "too far"),
    ("+99999999999999999999999d", "too far"),
    ("+1d" * (MAX_TERMS + 1), "too many terms"),
    ("2026-03-08T09:00:00", "needs a UTC offset"),
    ("2026-03-08", "needs a UTC offset"),
    ("2026-13-08T09:00:00Z", "not a time expression"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTED, ids=[repr(t) for t, _ in REJECTED])
def test_it_rejects_with_a_message_naming_the_value(text: str, reason: str) -> None:
    with pytest.raises(TimeExpressionError) as caught:
        parse_time_expression(text)
    (only,) = caught.value.problems
    assert only.value == text
    assert repr(text) in str(caught.value)
    assert reason in only.message


@pytest.mark.parametrize(
    "text",
    [f"+{cap}{unit}" for unit, cap in MAX_MAGNITUDE.items()]
    + [f"-{cap}{unit}" for unit, cap in MAX_MAGNITUDE.items()]
    + ["+1d" * MAX_TERMS, "-0", "-0bd", "+0@00:00", "+0@23:59", "+007d"],
)
def test_it_accepts_the_limits(text: str) -> None:
    expr = parse_time_expression(text)
    start = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    result = expr.resolve(start, ZoneInfo(NY), FRI_SAT)
    assert abs(result - start) < timedelta(days=366 * 16)


@pytest.mark.parametrize(
    ("expr", "scheduled"),
    [("+120mo", "9995-06-01T00:00:00+00:00"), ("-1d", "0001-01-01T00:00:00+00:00")],
    ids=["past-9999", "before-year-1"],
)
def test_resolving_out_of_the_representable_range_is_an_error_naming_the_value(
    expr: str, scheduled: str
) -> None:
    with pytest.raises(TimeExpressionError, match=re.escape(repr(expr))):
        parse_time_expression(expr).resolve(datetime.fromisoformat(scheduled), ZoneInfo(NY), PLAIN)


# -- localize ----------------------------------------------------------------------------------

LOCALIZE_CASES = [
    (datetime(2026, 3, 8, 2, 30), NY, "2026-03-08T07:00:00+00:00"),  # gap -> 03:00 EDT
    (datetime(2026, 3, 8, 2, 30, 0, 500_000), NY, "2026-03-08T07:00:00+00:00"),
    (datetime(2026, 3, 8, 2, 0), NY, "2026-03-08T07:00:00+00:00"),
    (datetime(2026, 3, 8, 3, 0), NY, "2026-03-08T07:00:00+00:00"),
    (datetime(2026, 3, 8, 1, 59), NY, "2026-03-08T06:59:00+00:00"),
    (datetime(2026, 11, 1, 1, 30), NY, "2026-11-01T05:30:00+00:00"),  # overlap -> EDT
    (datetime(2026, 11, 1, 1, 30, fold=1), NY, "2026-11-01T05:30:00+00:00"),  # fold ignored
    (datetime(2026, 3, 29, 1, 30), LONDON, "2026-03-29T01:00:00+00:00"),
    (datetime(2026, 10, 4, 2, 15), "Australia/Lord_Howe", "2026-10-03T15:30:00+00:00"),
    (datetime(2011, 12, 30, 12, 0), "Pacific/Apia", "2011-12-30T10:00:00+00:00"),
]


@pytest.mark.parametrize(
    ("naive", "zone", "expected"),
    LOCALIZE_CASES,
    ids=[f"{z}-{n.isoformat()}-fold{n.fold}" for n, z, _ in LOCALIZE_CASES],
)
def test_localize_moves_gaps_forward_and_takes_the_first_of_an_overlap(
    naive: datetime, zone: str, expected: str
) -> None:
    assert localize(naive, ZoneInfo(zone)).isoformat() == expected


ZONES = [NY, LONDON, "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kathmandu", "Pacific/Apia"]


@settings(max_examples=300, deadline=None)
@given(
    naive=st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2030, 12, 31)),
    zone=st.sampled_from(ZONES),
)
def test_localize_is_the_wall_time_or_the_end_of_the_gap_holding_it(
    naive: datetime, zone: str
) -> None:
    tz = ZoneInfo(zone)
    got = localize(naive, tz)
    wall = got.astimezone(tz).replace(tzinfo=None)
    if wall == naive:
        # It exists; if it happens twice, the other reading is not earlier.
        assert got <= naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    else:
        # In a gap: the result is a transition instant, and the wall time lies inside the gap.
        just_before = (got - timedelta(seconds=1)).astimezone(tz)
        assert just_before.utcoffset() != got.astimezone(tz).utcoffset()
        assert just_before.replace(tzinfo=None) < naive < wall
