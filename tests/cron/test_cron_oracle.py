"""The engine against an independent brute-force oracle, near real DST transitions.

The oracle shares nothing with the engine: hypothesis builds each field from parts whose
meaning it knows (so it never parses cron text), and the oracle walks every minute (or
second) of UTC in a window, turns it into wall time with zoneinfo, and applies the rules of
docs/schedules.md directly:

- interval job: fire at u when the wall time at u matches;
- fixed-time job: fire at u when the wall time at u matches and u is its first occurrence
  (fold=0 round-trips to u); and fire at u when u is the first instant after a gap and a
  wall time skipped by the gap matches.
"""

from __future__ import annotations

import calendar
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cron import parse_schedule
from scheduler.errors import ScheduleError

# (zone, an instant near which to test): the real transitions listed in test_cron_dst.py,
# plus Samoa skipping 2011-12-30 and Kathmandu moving from +05:30 to +05:45.
ANCHORS = [
    ("America/New_York", "2026-03-08T07:00:00+00:00"),
    ("America/New_York", "2026-11-01T06:00:00+00:00"),
    ("Europe/London", "2026-03-29T01:00:00+00:00"),
    ("Europe/London", "2026-10-25T01:00:00+00:00"),
    ("Europe/Berlin", "2026-03-29T01:00:00+00:00"),
    ("Europe/Berlin", "2026-10-25T01:00:00+00:00"),
    ("Australia/Sydney", "2026-04-04T16:00:00+00:00"),
    ("Australia/Sydney", "2026-10-03T16:00:00+00:00"),
    ("Australia/Lord_Howe", "2026-04-04T15:00:00+00:00"),
    ("Australia/Lord_Howe", "2026-10-03T15:30:00+00:00"),
    ("Pacific/Chatham", "2026-04-04T14:00:00+00:00"),
    ("Pacific/Chatham", "2026-09-26T14:00:00+00:00"),
    ("America/Sao_Paulo", "2018-11-04T03:00:00+00:00"),
    ("America/Sao_Paulo", "2019-02-17T02:00:00+00:00"),
    ("America/Sao_Paulo", "2026-11-01T03:00:00+00:00"),
    ("Asia/Kathmandu", "1985-12-31T18:30:00+00:00"),
    ("Asia/Kolkata", "2026-03-08T00:00:00+00:00"),
    ("Pacific/Apia", "2011-12-30T10:00:00+00:00"),
    ("UTC", "2026-02-28T12:00:00+00:00"),
]


@dataclass(frozen=True)
class Field:
    """A field's text and, separately, what it means."""

    text: str
    values: frozenset[int]


@dataclass(frozen=True)
class Days:
    """Both day fields: their text and meaning (dow numbers 0-6, Sunday = 0)."""

    dom: Field
    last: bool
    dow: Field
    last_weekdays: frozenset[int]
    nth: frozenset[tuple[int, int]]


@st.composite
def numeric_field(draw: st.DrawFn, lo: int, hi: int, favourites: list[int]) -> Field:
    """`*`, `*/S`, `N`, `N-M`, `N-M/S` or a list of values, with their value sets."""
    value = st.sampled_from(favourites) | st.integers(lo, hi)
    kind = draw(st.sampled_from(["star", "star_step", "one", "range", "range_step", "list"]))
    if kind == "star":
        return Field("*", frozenset(range(lo, hi + 1)))
    if kind == "star_step":
        step = draw(st.integers(1, hi - lo))
        return Field(f"*/{step}", frozenset(range(lo, hi + 1, step)))
    if kind == "one":
        v = draw(value)
        return Field(str(v), frozenset({v}))
    if kind in ("range", "range_step"):
        a, b = sorted((draw(value), draw(value)))
        step = draw(st.integers(1, 7)) if kind == "range_step" else 1
        text = f"{a}-{b}/{step}" if kind == "range_step" else f"{a}-{b}"
        return Field(text, frozenset(range(a, b + 1, step)))
    values = draw(st.lists(value, min_size=1, max_size=4, unique=True))
    return Field(",".join(map(str, values)), frozenset(values))


@st.composite
def day_fields(draw: st.DrawFn, favourite_dom: list[int]) -> Days:
    empty: frozenset[int] = frozenset()
    dom_kind = draw(st.sampled_from(["star", "star", "field", "L"]))
    if dom_kind == "star":
        dom, last = Field("*", frozenset(range(1, 32))), False
    elif dom_kind == "L":
        dom, last = Field("L", empty), True
    else:
        dom, last = draw(numeric_field(1, 31, favourite_dom)), False
    dow_kind = draw(st.sampled_from(["star", "star", "field", "name", "last", "nth"]))
    last_weekdays: frozenset[int] = empty
    nth: frozenset[tuple[int, int]] = frozenset()
    if dow_kind == "star":
        dow = Field("*", frozenset(range(7)))
    elif dow_kind == "field":
        raw = draw(numeric_field(0, 7, [0, 6, 7]))
        dow = Field(raw.text, frozenset(v % 7 for v in raw.values))
    elif dow_kind == "name":
        a, b = sorted(draw(st.lists(st.integers(0, 6), min_size=2, max_size=2)))
        names = "SUN MON TUE WED THU FRI SAT".split()
        dow = Field(f"{names[a]}-{names[b]}".lower(), frozenset(range(a, b + 1)))
    elif dow_kind == "last":
        weekday = draw(st.integers(0, 7))
        dow, last_weekdays = Field(f"{weekday}L", empty), frozenset({weekday % 7})
    else:
        weekday, k = draw(st.integers(0, 6)), draw(st.integers(1, 5))
        dow, nth = Field(f"{weekday}#{k}", empty), frozenset({(weekday, k)})
    return Days(dom, last, dow, last_weekdays, nth)


@dataclass(frozen=True)
class Case:
    """One expression with its meaning, a zone and a UTC window [start, end)."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: Days
    months: frozenset[int]
    interval: bool
    zone: ZoneInfo
    start: int
    end: int
    step: int


def _month_field(draw: st.DrawFn, around: datetime) -> Field:
    if draw(st.booleans()):
        return Field("*", frozenset(range(1, 13)))
    months = {around.month, draw(st.integers(1, 12))}
    return Field(",".join(map(str, sorted(months))), frozenset(months))


@st.composite
def cases(draw: st.DrawFn, *, with_seconds: bool) -> Case:
    zone_name, anchor_text = draw(st.sampled_from(ANCHORS))
    zone = ZoneInfo(zone_name)
    anchor = datetime.fromisoformat(anchor_text)
    local = anchor.astimezone(zone)
    # The wall hours on both sides of the transition, where gaps and overlaps are.
    just_before = (anchor - timedelta(seconds=1)).astimezone(zone)
    hours_near = sorted({(h + d) % 24 for h in (local.hour, just_before.hour) for d in (-1, 0, 1)})
    minute = draw(numeric_field(0, 59, [0, 15, 30, 45, 59]))
    hour = draw(
        numeric_field(0, 23, hours_near)
        | st.sampled_from(hours_near).map(lambda h: Field(str(h), frozenset({h})))
    )
    every_day = Days(
        Field("*", frozenset(range(1, 32))),
        False,
        Field("*", frozenset(range(7))),
        frozenset(),
        frozenset(),
    )
    days = draw(st.just(every_day) | day_fields([local.day, local.day - 1 or 1, 29, 30, 31]))
    month = _month_field(draw, local)
    fields = [minute.text, hour.text, days.dom.text, month.text, days.dow.text]
    if with_seconds:
        second = draw(numeric_field(0, 59, [0, 30, 59]).filter(lambda f: len(f.values) <= 4))
        fields.insert(0, second.text)
        seconds = second.values
        step, length = 1, 6 * 3600
    else:
        seconds = frozenset({0})
        step, length = 60, 3 * 86400
    interval = minute.text.startswith("*") or hour.text.startswith("*")
    if with_seconds:
        interval = interval or fields[0].startswith("*")
    # The window always holds the anchor; it may start inside a gap's or overlap's hour.
    start = int(anchor.timestamp()) - draw(st.integers(0, length)) // step * step
    return Case(
        " ".join(fields),
        seconds,
        minute.values,
        hour.values,
        days,
        month.values,
        interval,
        zone,
        start,
        start + length,
        step,
    )


def _matches(case: Case, wall: datetime) -> bool:
    """The cron rules, straight from schedules.md."""
    if wall.second not in case.seconds or wall.minute not in case.minutes:
        return False
    if wall.hour not in case.hours or wall.month not in case.months:
        return False
    d, days = wall.date(), case.days
    length = calendar.monthrange(d.year, d.month)[1]
    weekday = (d.weekday() + 1) % 7
    dom = d.day in days.dom.values or (days.last and d.day == length)
    dow = (
        weekday in days.dow.values
        or (weekday in days.last_weekdays and d.day + 7 > length)
        or (weekday, (d.day - 1) // 7 + 1) in days.nth
    )
    if days.dom.text.startswith("*") or days.dow.text.startswith("*"):
        return dom and dow
    return dom or dow


def oracle(case: Case) -> list[int]:
    """Every instant in [start, end), found by walking UTC one step at a time."""
    fired: list[int] = []
    step = timedelta(seconds=case.step)
    previous_wall = datetime.fromtimestamp(case.start - case.step, case.zone).replace(tzinfo=None)
    for u in range(case.start, case.end, case.step):
        local = datetime.fromtimestamp(u, case.zone)
        wall = local.replace(tzinfo=None)
        fires = _matches(case, wall)
        if not case.interval:
            first = wall.replace(tzinfo=case.zone, fold=0).timestamp() == u
            fires = fires and first
            skipped = previous_wall + step
            while skipped < wall and not fires:  # wall times a gap skipped, if any
                fires = _matches(case, skipped)
                skipped += step
        if fires:
            fired.append(u)
        previous_wall = wall
    return fired


def never_fires(case: Case) -> bool:
    """Only a restricted day-of-month ANDed with a starred day-of-week can be empty."""
    days = case.days
    if days.last or days.dom.text.startswith("*") or not days.dow.text.startswith("*"):
        return False
    longest = max(calendar.monthrange(2028, m)[1] for m in case.months)  # 2028: a leap year
    return min(days.dom.values) > longest


def engine(case: Case) -> list[int]:
    schedule = parse_schedule(case.expression, case.zone, job_id="oracle")
    assert schedule.is_interval == case.interval
    after = datetime.fromtimestamp(case.start - 1, UTC)
    instants = schedule.iter_after(after)
    return [
        int(x.timestamp())
        for x in itertools.takewhile(lambda x: x.timestamp() < case.end, instants)
    ]


def _check_queries(case: Case, expected: list[int], points: list[int]) -> None:
    """previous_at_or_before and count_between agree with the oracle inside the window."""
    schedule = parse_schedule(case.expression, case.zone, job_id="oracle")
    for point in points:
        at = datetime.fromtimestamp(point, UTC)
        previous = schedule.previous_at_or_before(at)
        earlier = [u for u in expected if u <= point]
        if earlier:
            assert previous is not None and int(previous.timestamp()) == earlier[-1]
        else:
            assert previous is None or previous.timestamp() < case.start
    lo, hi = sorted(points[:2])
    count = schedule.count_between(datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC))
    assert count == sum(1 for u in expected if lo < u <= hi)


def _agrees_with_the_oracle(case: Case, data: st.DataObject) -> None:
    """The engine's instants, and its three queries, equal the brute-force oracle's."""
    expected = oracle(case)
    if never_fires(case):
        assert expected == []
        with pytest.raises(ScheduleError, match="never fires"):
            parse_schedule(case.expression, case.zone)
        return
    assert engine(case) == expected, case.expression
    points = data.draw(st.lists(st.integers(case.start, case.end - 1), min_size=2, max_size=4))
    _check_queries(case, expected, points)


@settings(max_examples=250, deadline=None)
@given(case=cases(with_seconds=False), data=st.data())
def test_five_field_schedules_agree_with_the_oracle_near_transitions(
    case: Case, data: st.DataObject
) -> None:
    _agrees_with_the_oracle(case, data)


@settings(max_examples=25, deadline=None)
@given(case=cases(with_seconds=True), data=st.data())
def test_six_field_schedules_agree_with_the_oracle_near_transitions(
    case: Case, data: st.DataObject
) -> None:
    _agrees_with_the_oracle(case, data)


def test_the_oracle_itself_sees_the_new_york_spring_gap() -> None:
    """A check on the checker: `30 2 * * *` fires at 03:00 EDT on 2026-03-08."""
    start = int(datetime(2026, 3, 7, 12, tzinfo=UTC).timestamp())
    case = Case(
        "30 2 * * *",
        frozenset({0}),
        frozenset({30}),
        frozenset({2}),
        Days(
            Field("*", frozenset(range(1, 32))),
            False,
            Field("*", frozenset(range(7))),
            frozenset(),
            frozenset(),
        ),
        frozenset(range(1, 13)),
        False,
        ZoneInfo("America/New_York"),
        start,
        start + 2 * 86400,
        60,
    )
    fired = [datetime.fromtimestamp(u, case.zone).isoformat() for u in oracle(case)]
    assert fired == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    assert date(2026, 3, 8).weekday() == 6  # a Sunday, as the US rule says
