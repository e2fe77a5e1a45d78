"""A differential test against croniter 7.0.0 (pinned, test-only) in UTC, where croniter is right.

croniter needs `implement_cron_bug=True` for cronie's star rule on the day fields and
`second_at_beginning=True` for our seconds-first six-field form. The forms where it
differs from cronie (and from us) are pinned in the last test, as the reasons we do not
use it at run time (scheduler/cron/__init__.py).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cron import parse_schedule


@st.composite
def field(draw: st.DrawFn, lo: int, hi: int) -> str:
    """Forms both engines read the same way: no `N-N`, no reversed range, no L or #."""
    value = st.integers(lo, hi)
    kind = draw(st.sampled_from(["*", "*/S", "N", "N-M", "N-M/S", "list"]))
    if kind == "*":
        return "*"
    if kind == "*/S":
        return f"*/{draw(st.integers(1, hi - lo))}"
    if kind == "N":
        return str(draw(value))
    if kind == "list":
        return ",".join(map(str, draw(st.lists(value, min_size=2, max_size=4, unique=True))))
    a, b = sorted(draw(st.lists(value, min_size=2, max_size=2, unique=True)))
    return f"{a}-{b}/{draw(st.integers(1, 5))}" if kind == "N-M/S" else f"{a}-{b}"


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, bool]:
    fields = [
        draw(field(0, 59)),
        draw(field(0, 23)),
        draw(field(1, 28)),
        draw(field(1, 12)),
        draw(field(0, 6) | st.sampled_from(["MON-FRI", "SAT,SUN", "1-5/2"])),
    ]
    with_seconds = draw(st.booleans())
    if with_seconds:
        fields.insert(0, draw(field(0, 59)))
    return " ".join(fields), with_seconds


@settings(max_examples=150, deadline=None)
@given(
    case=expressions(),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
)
def test_it_agrees_with_croniter_in_utc(case: tuple[str, bool], start: datetime) -> None:
    expression, with_seconds = case
    start = start.replace(microsecond=0)
    ours = list(itertools.islice(parse_schedule(expression, "UTC").iter_after(start), 8))
    theirs_iter = croniter(
        expression,
        start,
        ret_type=datetime,
        implement_cron_bug=True,
        second_at_beginning=with_seconds,
        max_years_between_matches=30,
    )
    theirs = []
    for _ in ours:
        try:
            theirs.append(theirs_iter.get_next(datetime))
        except CroniterBadDateError:  # croniter gives up after 30 years; we search further
            break
    assert ours[: len(theirs)] == theirs


NEW_YORK = ZoneInfo("America/New_York")
# (what croniter 7.0.0 does, expression, croniter's arguments, what it gives, what we give)
TRAPS: list[tuple[str, str, dict[str, Any], list[str] | type[Exception], list[str]]] = [
    (
        "fires a fixed-time job twice in an overlap",
        "30 1 * * *",
        {"start": datetime(2026, 10, 31, 12, tzinfo=NEW_YORK)},
        ["2026-11-01T05:30:00+00:00", "2026-11-01T06:30:00+00:00"],
        ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"],
    ),
    (
        "fails when n#k meets a restricted day-of-month",
        "0 0 1 * 5#2",
        {},
        CroniterBadDateError,
        ["2026-01-09T00:00:00+00:00", "2026-02-01T00:00:00+00:00"],
    ),
    (
        "drops the day-of-month when it meets n#k",
        "0 0 20-21 * FRI#3",
        {},
        ["2026-01-16T00:00:00+00:00", "2026-02-20T00:00:00+00:00"],
        ["2026-01-16T00:00:00+00:00", "2026-01-20T00:00:00+00:00"],
    ),
    (
        "reads 1-1 as the whole range",
        "0 0 1-1 * *",
        {},
        ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"],
        ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"],
    ),
    (
        "ORs the day fields when one starts with * unless told implement_cron_bug",
        "0 0 */2 * MON",
        {},
        ["2026-01-03T00:00:00+00:00", "2026-01-05T00:00:00+00:00"],
        ["2026-01-05T00:00:00+00:00", "2026-01-19T00:00:00+00:00"],
    ),
]


@pytest.mark.parametrize(
    ("trap", "expression", "kwargs", "croniter_gives", "we_give"), TRAPS, ids=[t[0] for t in TRAPS]
)
def test_where_croniter_differs_we_follow_cronie(
    trap: str,
    expression: str,
    kwargs: dict[str, Any],
    croniter_gives: list[str] | type[Exception],
    we_give: list[str],
) -> None:
    options = dict(kwargs)
    start = options.pop("start", datetime(2026, 1, 1, tzinfo=UTC))
    zone = start.tzinfo if isinstance(start.tzinfo, ZoneInfo) else "UTC"
    schedule = parse_schedule(expression, zone)
    ours = [x.isoformat() for x in itertools.islice(schedule.iter_after(start), 2)]
    assert ours == we_give
    theirs = croniter(expression, start, ret_type=datetime, **options)
    if isinstance(croniter_gives, list):
        got = [theirs.get_next(datetime).astimezone(UTC).isoformat() for _ in range(2)]
        assert got == croniter_gives
    else:
        with pytest.raises(croniter_gives):
            theirs.get_next(datetime)


def test_croniter_rejects_5l_and_spells_last_friday_l5() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        croniter("0 0 * * 5L", start)
    theirs = croniter("0 0 * * L5", start, ret_type=datetime).get_next(datetime)
    assert theirs == parse_schedule("0 0 * * 5L", "UTC").next_after(start)
