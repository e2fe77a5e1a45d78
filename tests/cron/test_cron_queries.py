"""The four questions agree with each other, take aware datetimes, and answer in UTC."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cron import CronSchedule, parse_schedule

NAIVE = datetime(2026, 3, 8, 2, 30)
AWARE = datetime(2026, 3, 8, 2, 30, tzinfo=UTC)

CALLS: list[tuple[str, Callable[[CronSchedule], Any]]] = [
    ("next_after", lambda s: s.next_after(NAIVE)),
    ("iter_after", lambda s: s.iter_after(NAIVE)),
    ("previous_at_or_before", lambda s: s.previous_at_or_before(NAIVE)),
    ("count_between after", lambda s: s.count_between(NAIVE, AWARE)),
    ("count_between until", lambda s: s.count_between(AWARE, NAIVE)),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
def test_it_refuses_naive_datetimes(call: Callable[[CronSchedule], Any]) -> None:
    with pytest.raises(ValueError, match="naive"):
        call(parse_schedule("30 2 * * *", "America/New_York"))


def test_next_after_is_strictly_after_and_previous_is_at_or_before() -> None:
    schedule = parse_schedule("30 2 * * *", "UTC")
    assert schedule.next_after(AWARE) == AWARE + timedelta(days=1)
    assert schedule.previous_at_or_before(AWARE) == AWARE
    assert schedule.next_after(AWARE - timedelta(microseconds=1)) == AWARE
    assert schedule.next_after(AWARE + timedelta(microseconds=1)) == AWARE + timedelta(days=1)
    assert schedule.previous_at_or_before(AWARE - timedelta(microseconds=1)) == AWARE - timedelta(
        days=1
    )


def test_answers_are_utc_whatever_the_input_offset() -> None:
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    tokyo = timezone(timedelta(hours=9))
    found = schedule.next_after(datetime(2026, 6, 1, 12, tzinfo=tokyo))
    assert found is not None and found.tzinfo is UTC
    assert found.isoformat() == "2026-06-02T00:30:00+00:00"  # 02:30 CEST
    previous = schedule.previous_at_or_before(datetime(2026, 6, 1, 12, tzinfo=tokyo))
    assert previous is not None and previous.isoformat() == "2026-06-01T00:30:00+00:00"
    assert all(x.tzinfo is UTC for x in itertools.islice(schedule.iter_after(found), 3))


def test_iter_after_is_lazy_and_strictly_increasing() -> None:
    schedule = parse_schedule("* * * * * *", "America/New_York")
    start = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # an hour before the fall-back transition
    instants = list(itertools.islice(schedule.iter_after(start), 3 * 3600))
    assert instants[0] == start + timedelta(seconds=1)
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(instants))


def test_count_between_is_zero_for_an_empty_or_reversed_range() -> None:
    schedule = parse_schedule("* * * * *", "UTC")
    assert schedule.count_between(AWARE, AWARE) == 0
    assert schedule.count_between(AWARE, AWARE - timedelta(days=1)) == 0


def test_the_ends_of_the_calendar_end_the_sequence() -> None:
    schedule = parse_schedule("0 0 1 1 *", "Pacific/Kiritimati")
    late = datetime(9999, 6, 1, tzinfo=UTC)
    assert schedule.next_after(late) is None
    assert list(schedule.iter_after(late)) == []
    early = datetime(1, 1, 2, tzinfo=UTC)
    assert schedule.previous_at_or_before(early) is None
    assert schedule.previous_at_or_before(datetime(2, 6, 1, tzinfo=UTC)) is not None


def test_far_dates_are_answered_without_walking_from_the_epoch() -> None:
    schedule = parse_schedule("0 0 29 2 *", "Europe/London")
    found = schedule.previous_at_or_before(datetime(9000, 3, 1, tzinfo=UTC))
    assert found is not None and found.isoformat() == "8996-02-29T00:00:00+00:00"
    found = schedule.next_after(datetime(1700, 1, 1, tzinfo=UTC))
    assert found is not None and found.date().isoformat() == "1704-02-29"


def test_every_second_counts_every_utc_second_across_a_dst_year() -> None:
    # An interval job matching every wall second fires at every instant, gap or overlap.
    schedule = parse_schedule("* * * * * *", "America/New_York")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    assert schedule.count_between(start, end) == 365 * 86400


def test_a_fixed_time_job_matching_every_second_skips_only_the_repeated_hour() -> None:
    # Syntactically fixed-time: the repeated hour fires once; the missing hour loses nothing.
    schedule = parse_schedule("0-59 0-59 0-23 * * *", "America/New_York")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    assert schedule.count_between(start, end) == 365 * 86400 - 3600


def test_a_week_of_seconds_and_a_year_of_minutes_are_counted_exactly() -> None:
    start = datetime(2026, 3, 5, tzinfo=UTC)
    week = parse_schedule("* * * * * *", "Australia/Lord_Howe")
    assert week.count_between(start, start + timedelta(days=7)) == 7 * 86400
    year = parse_schedule("* * * * *", "Pacific/Chatham")
    assert year.count_between(start, start + timedelta(days=365)) == 365 * 1440


# -- properties: the four questions agree -----------------------------------------------------

EXPRESSIONS = [
    "30 2 * * *",
    "0 1,2,3 * * *",
    "*/30 1 * * *",
    "*/7 * * * *",
    "0 * * * *",
    "15 */3 * * MON-FRI",
    "0 0 L * *",
    "0 0 13 * FRI",
    "0 0 * * 5#2",
    "45 1 * * *",
    "*/20 2 * * * *",
    "0 0,30 0-3 * * SUN",
]
ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "UTC",
]
# Instants spread over 2018-2027, so many draws land within days of a transition.
instants = st.integers(
    int(datetime(2018, 1, 1, tzinfo=UTC).timestamp()),
    int(datetime(2027, 1, 1, tzinfo=UTC).timestamp()),
).map(lambda s: datetime.fromtimestamp(s, UTC))


@settings(max_examples=150, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from(ZONES),
    at=instants,
    micros=st.integers(0, 999_999),
)
def test_previous_next_and_iter_agree(
    expression: str, zone: str, at: datetime, micros: int
) -> None:
    schedule = parse_schedule(expression, zone)
    at = at + timedelta(microseconds=micros)
    previous = schedule.previous_at_or_before(at)
    assert previous is not None and previous <= at
    # nothing lies between the previous instant and `at`, and iter_after resumes after it
    following = list(itertools.islice(schedule.iter_after(previous), 3))
    assert following[0] > at
    assert following[0] == schedule.next_after(at)
    assert following == sorted(set(following))
    assert schedule.previous_at_or_before(previous - timedelta(microseconds=1)) != previous


@settings(max_examples=150, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from(ZONES),
    after=instants,
    hours=st.integers(0, 24 * 10),
)
def test_count_between_agrees_with_iter_after(
    expression: str, zone: str, after: datetime, hours: int
) -> None:
    schedule = parse_schedule(expression, zone)
    until = after + timedelta(hours=hours, seconds=17)
    listed = list(itertools.takewhile(lambda x: x <= until, schedule.iter_after(after)))
    assert schedule.count_between(after, until) == len(listed)
    if listed:
        assert schedule.previous_at_or_before(until) == listed[-1]


@settings(max_examples=150, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from(ZONES),
    at=instants,
    offsets=st.lists(st.integers(-3 * 86400, 3 * 86400), min_size=1, max_size=6),
)
def test_next_after_asked_again_answers_as_asked_afresh(
    expression: str, zone: str, at: datetime, offsets: list[int]
) -> None:
    # `next_after` remembers its last answer (a later question inside the gap it spans gets
    # it for free): a run of questions on one schedule, near each other, must still get the
    # answers of a schedule asked once (`iter_after` does not use that memory).
    schedule = parse_schedule(expression, zone)
    for offset in offsets:
        after = at + timedelta(seconds=offset)
        assert schedule.next_after(after) == next(schedule.iter_after(after), None)
