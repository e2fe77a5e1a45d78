"""Which days fire: the Vixie/cronie OR rule, L, nL and n#k, alone and with a restricted dom.

All in UTC from 2026-01-01 (a Thursday). Calendar for reference:
January 2026: Fridays 2 9 16 23 30, Mondays 5 12 19 26, Sundays 4 11 18 25.
February 2026: Fridays 6 13 20 27, Mondays 2 9 16 23. March 2026: Fridays 6 13 20 27.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from scheduler.cron import parse_schedule

START = datetime(2026, 1, 1, tzinfo=UTC)


def days(expression: str, count: int, start: datetime = START) -> list[str]:
    schedule = parse_schedule(expression, "UTC")
    return [x.date().isoformat() for x in itertools.islice(schedule.iter_after(start), count)]


CASES = [
    # both day fields restricted: a day fires when EITHER matches
    (
        "0 0 13 * FRI",
        ["2026-01-02", "2026-01-09", "2026-01-13", "2026-01-16", "2026-01-23", "2026-01-30"]
        + ["2026-02-06", "2026-02-13", "2026-02-20"],
    ),
    ("0 0 1-3 * MON", ["2026-01-02", "2026-01-03", "2026-01-05", "2026-01-12"]),
    # either field starts with `*` (even `*/2`): a day must match BOTH
    ("0 0 */2 * MON", ["2026-01-05", "2026-01-19", "2026-02-09", "2026-02-23", "2026-03-09"]),
    ("0 0 13 * */2", ["2026-01-13", "2026-06-13", "2026-08-13", "2026-09-13", "2026-10-13"]),
    ("0 0 13 * *", ["2026-01-13", "2026-02-13"]),
    ("0 0 * * FRI", ["2026-01-02", "2026-01-09"]),
    ("0 0 * * */2", ["2026-01-03", "2026-01-04", "2026-01-06", "2026-01-08"]),  # Sun Tue Thu Sat
    # L: the last day of the month
    ("0 0 L * *", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
    ("0 0 L 2 *", ["2026-02-28", "2027-02-28", "2028-02-29"]),
    ("0 0 1,L * *", ["2026-01-31", "2026-02-01", "2026-02-28", "2026-03-01"]),
    ("0 0 L * MON", ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26", "2026-01-31"]),
    ("0 0 L * */2", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]),
    # nL: the last weekday n of the month, alone (AND with `*`) and with a restricted dom (OR)
    ("0 0 * * 5L", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
    ("0 0 * * FRIL", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
    ("0 0 * * 7L", ["2026-01-25", "2026-02-22", "2026-03-29"]),
    ("0 0 * * 0L", ["2026-01-25", "2026-02-22", "2026-03-29"]),
    ("0 0 13 * 5L", ["2026-01-13", "2026-01-30", "2026-02-13", "2026-02-27", "2026-03-13"]),
    ("0 0 */10 * 5L", ["2026-07-31", "2027-12-31", "2028-03-31", "2029-08-31"]),  # AND
    # n#k: the k-th weekday n of the month, alone and with a restricted dom
    ("0 0 * * 5#2", ["2026-01-09", "2026-02-13", "2026-03-13", "2026-04-10"]),
    ("0 0 * * FRI#2", ["2026-01-09", "2026-02-13", "2026-03-13", "2026-04-10"]),
    ("0 0 * * 7#1", ["2026-01-04", "2026-02-01", "2026-03-01"]),
    ("0 0 * * 5#5", ["2026-01-30", "2026-05-29", "2026-07-31", "2026-10-30"]),
    ("0 0 1 * 5#2", ["2026-01-09", "2026-02-01", "2026-02-13", "2026-03-01", "2026-03-13"]),
    ("0 0 20-21 * FRI#3", ["2026-01-16", "2026-01-20", "2026-01-21", "2026-02-20", "2026-02-21"]),
    ("0 0 */2 * 5#2", ["2026-01-09", "2026-02-13", "2026-03-13", "2026-09-11"]),
    ("0 0 * * MON#1,FRI#3", ["2026-01-05", "2026-01-16", "2026-02-02", "2026-02-20"]),
    ("0 0 * * 1,5L", ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26", "2026-01-30"]),
    # months restrict every other rule
    ("0 0 13 FEB FRI", ["2026-02-06", "2026-02-13", "2026-02-20", "2026-02-27", "2027-02-05"]),
]


@pytest.mark.parametrize(("expression", "expected"), CASES, ids=[c[0] for c in CASES])
def test_it_fires_on_exactly_these_days(expression: str, expected: list[str]) -> None:
    assert days(expression, len(expected)) == expected


def test_a_day_fires_once_even_when_both_day_fields_match_it() -> None:
    # 2026-02-13 is a Friday and a 13th.
    start = datetime(2026, 2, 12, tzinfo=UTC)
    assert days("0 0 13 * FRI", 2, start) == ["2026-02-13", "2026-02-20"]


def test_a_fifth_weekday_in_february_needs_a_leap_year_starting_on_that_day() -> None:
    assert days("0 0 * 2 5#5", 2) == ["2036-02-29", "2064-02-29"]
