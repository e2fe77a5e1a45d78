"""Daylight-saving time, zone by zone (docs/schedules.md; cronie's rules; cronsim style).

The real transitions these tables rely on (IANA tz database):

America/New_York     2026-03-08 02:00 EST -05:00 -> 03:00 EDT -04:00   (07:00Z, gap 1 h)
                     2026-11-01 02:00 EDT -04:00 -> 01:00 EST -05:00   (06:00Z, overlap 1 h)
Europe/London        2026-03-29 01:00 GMT +00:00 -> 02:00 BST +01:00   (01:00Z, gap)
                     2026-10-25 02:00 BST +01:00 -> 01:00 GMT +00:00   (01:00Z, overlap)
Europe/Berlin        2026-03-29 02:00 CET +01:00 -> 03:00 CEST +02:00  (01:00Z, gap)
                     2026-10-25 03:00 CEST +02:00 -> 02:00 CET +01:00  (01:00Z, overlap)
Australia/Sydney     2026-04-05 03:00 AEDT +11:00 -> 02:00 AEST +10:00 (04-04 16:00Z, overlap)
                     2026-10-04 02:00 AEST +10:00 -> 03:00 AEDT +11:00 (10-03 16:00Z, gap)
Australia/Lord_Howe  2026-04-05 02:00 +11:00 -> 01:30 +10:30           (04-04 15:00Z, overlap 30m)
                     2026-10-04 02:00 +10:30 -> 02:30 +11:00           (10-03 15:30Z, gap 30m)
Pacific/Chatham      2026-04-05 03:45 +13:45 -> 02:45 +12:45           (04-04 14:00Z, overlap)
                     2026-09-27 02:45 +12:45 -> 03:45 +13:45           (09-26 14:00Z, gap)
America/Sao_Paulo    2018-11-04 00:00 -03:00 -> 01:00 -02:00           (03:00Z, gap at midnight)
                     2019-02-17 00:00 -02:00 -> 02-16 23:00 -03:00     (02:00Z, overlap)
                     no DST since 2019: -03:00 all year
Asia/Kathmandu       1986-01-01 00:00 +05:30 -> 00:15 +05:45           (1985-12-31 18:30Z, gap 15m)
Pacific/Apia         2011-12-30 00:00 -10:00 -> 12-31 00:00 +14:00     (10:00Z, a whole day skipped)
Asia/Kolkata         +05:30, no transitions;  UTC: none
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.cron import parse_schedule

NY = "America/New_York"

# (expression, zone, after, the instants that follow, written in the zone's local time)
TABLE = [
    # -- New York, spring forward: 02:00-02:59 does not exist on 2026-03-08 ----------------
    (
        "30 2 * * *",
        NY,
        "2026-03-07T12:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "0 2 * * *",
        NY,
        "2026-03-07T12:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
    ),
    (
        "0 3 * * *",
        NY,
        "2026-03-07T12:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T03:00:00-04:00"],
    ),
    # several fixed times land on the same instant: it fires once
    (
        "0 1,2,3 * * *",
        NY,
        "2026-03-08T00:00:00-05:00",
        [
            "2026-03-08T01:00:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T01:00:00-04:00",
            "2026-03-09T02:00:00-04:00",
            "2026-03-09T03:00:00-04:00",
        ],
    ),
    (
        "15,45 2 * * *",
        NY,
        "2026-03-08T00:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00"],
    ),
    (
        "30 30 2 * * *",
        NY,
        "2026-03-08T00:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:30-04:00"],
    ),
    # interval jobs: nothing in the missing hour
    (
        "*/30 * * * *",
        NY,
        "2026-03-08T01:00:00-05:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    (
        "*/30 2 * * *",
        NY,
        "2026-03-07T12:00:00-05:00",
        ["2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "0 * * * *",
        NY,
        "2026-03-08T00:30:00-05:00",
        ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
    ),
    (
        "0 */20 2 * * *",
        NY,
        "2026-03-07T12:00:00-05:00",
        ["2026-03-09T02:00:00-04:00", "2026-03-09T02:20:00-04:00"],
    ),
    # -- New York, fall back: 01:00-01:59 happens twice on 2026-11-01 ------------------------
    (
        "30 1 * * *",
        NY,
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "0 1 * * *",
        NY,
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-02T01:00:00-05:00"],
    ),
    (
        "30 2 * * *",
        NY,
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"],
    ),
    (
        "*/30 1 * * *",
        NY,
        "2026-11-01T00:00:00-04:00",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-02T01:00:00-05:00",
        ],
    ),
    (
        "@hourly",
        NY,
        "2026-11-01T00:30:00-04:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
    ),
    # starting inside the repeated hour: the fixed-time job already fired at 01:30 EDT
    (
        "30 1 * * *",
        NY,
        "2026-11-01T01:10:00-05:00",
        ["2026-11-02T01:30:00-05:00"],
    ),
    (
        "*/30 1 * * *",
        NY,
        "2026-11-01T01:10:00-05:00",
        ["2026-11-01T01:30:00-05:00", "2026-11-02T01:00:00-05:00"],
    ),
    (
        "@daily",
        NY,
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"],
    ),
    # -- London -------------------------------------------------------------------------------
    (
        "30 1 * * *",
        "Europe/London",
        "2026-03-28T12:00:00+00:00",
        ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
    ),
    (
        "30 1 * * *",
        "Europe/London",
        "2026-10-24T12:00:00+01:00",
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
    ),
    (
        "*/30 1 * * *",
        "Europe/London",
        "2026-10-25T00:00:00+01:00",
        [
            "2026-10-25T01:00:00+01:00",
            "2026-10-25T01:30:00+01:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T01:30:00+00:00",
        ],
    ),
    # -- Berlin -------------------------------------------------------------------------------
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (
        "0,30 2 * * *",
        "Europe/Berlin",
        "2026-10-25T00:00:00+02:00",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:00:00+01:00"],
    ),
    (
        "*/30 2 * * *",
        "Europe/Berlin",
        "2026-10-25T00:00:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
        ],
    ),
    # -- Sydney (southern hemisphere: overlap in April, gap in October) ------------------------
    (
        "30 2 * * *",
        "Australia/Sydney",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"],
    ),
    (
        "*/30 2 * * *",
        "Australia/Sydney",
        "2026-04-05T00:00:00+11:00",
        [
            "2026-04-05T02:00:00+11:00",
            "2026-04-05T02:30:00+11:00",
            "2026-04-05T02:00:00+10:00",
            "2026-04-05T02:30:00+10:00",
        ],
    ),
    (
        "30 2 * * *",
        "Australia/Sydney",
        "2026-10-03T12:00:00+10:00",
        ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"],
    ),
    # -- Lord Howe: 30-minute shifts ------------------------------------------------------------
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    (
        "*/15 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-05T00:50:00+11:00",
        [
            "2026-04-05T01:00:00+11:00",
            "2026-04-05T01:15:00+11:00",
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-06T01:00:00+10:30",
        ],
    ),
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        "*/15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-04T01:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00", "2026-10-05T02:00:00+11:00"],
    ),
    # -- Chatham: 45-minute offsets -------------------------------------------------------------
    (
        "0 3 * * *",
        "Pacific/Chatham",
        "2026-04-04T12:00:00+13:45",
        ["2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"],
    ),
    (
        "*/30 3 * * *",
        "Pacific/Chatham",
        "2026-04-05T00:00:00+13:45",
        [
            "2026-04-05T03:00:00+13:45",
            "2026-04-05T03:30:00+13:45",
            "2026-04-05T03:00:00+12:45",
            "2026-04-05T03:30:00+12:45",
        ],
    ),
    (
        "0 3 * * *",
        "Pacific/Chatham",
        "2026-09-26T12:00:00+12:45",
        ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"],
    ),
    (
        "*/30 3 * * *",
        "Pacific/Chatham",
        "2026-09-26T12:00:00+12:45",
        ["2026-09-28T03:00:00+13:45"],
    ),
    # -- Sao Paulo: a historical midnight gap and overlap, then no DST at all -------------------
    (
        "0 0 * * *",
        "America/Sao_Paulo",
        "2018-11-03T12:00:00-03:00",
        ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"],
    ),
    (
        "30 23 * * *",
        "America/Sao_Paulo",
        "2019-02-16T12:00:00-02:00",
        ["2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"],
    ),
    (
        "0 0 * * *",
        "America/Sao_Paulo",
        "2019-02-16T12:00:00-02:00",
        ["2019-02-17T00:00:00-03:00", "2019-02-18T00:00:00-03:00"],
    ),
    (
        "*/30 23 * * *",
        "America/Sao_Paulo",
        "2019-02-16T12:00:00-02:00",
        [
            "2019-02-16T23:00:00-02:00",
            "2019-02-16T23:30:00-02:00",
            "2019-02-16T23:00:00-03:00",
            "2019-02-16T23:30:00-03:00",
        ],
    ),
    (
        "0 0 * * *",
        "America/Sao_Paulo",
        "2026-10-31T12:00:00-03:00",
        ["2026-11-01T00:00:00-03:00", "2026-11-02T00:00:00-03:00", "2026-11-03T00:00:00-03:00"],
    ),
    # -- Kathmandu: +05:30 -> +05:45 ------------------------------------------------------------
    (
        "0 0 * * *",
        "Asia/Kathmandu",
        "1985-12-31T12:00:00+05:30",
        ["1986-01-01T00:15:00+05:45", "1986-01-02T00:00:00+05:45"],
    ),
    (
        "*/10 0 * * *",
        "Asia/Kathmandu",
        "1985-12-31T23:45:00+05:30",
        ["1986-01-01T00:20:00+05:45", "1986-01-01T00:30:00+05:45"],
    ),
    (
        "45 23 * * *",
        "Asia/Kathmandu",
        "2026-03-07T12:00:00+05:45",
        ["2026-03-07T23:45:00+05:45", "2026-03-08T23:45:00+05:45"],
    ),
    # -- Samoa skipped 2011-12-30 entirely ------------------------------------------------------
    (
        "0 12 * * *",
        "Pacific/Apia",
        "2011-12-29T00:00:00-10:00",
        ["2011-12-29T12:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"],
    ),
    (
        "0 * 30 12 *",
        "Pacific/Apia",
        "2011-12-29T00:00:00-10:00",
        ["2012-12-30T00:00:00+14:00"],  # Samoa kept DST in December until 2021
    ),
    # -- no transitions ---------------------------------------------------------------------------
    (
        "30 2 * * *",
        "Asia/Kolkata",
        "2026-03-07T12:00:00+05:30",
        ["2026-03-08T02:30:00+05:30", "2026-03-09T02:30:00+05:30"],
    ),
    (
        "30 2 * * *",
        "UTC",
        "2026-03-07T12:00:00+00:00",
        ["2026-03-08T02:30:00+00:00", "2026-03-09T02:30:00+00:00"],
    ),
]


def _local(instants: list[datetime], zone: str) -> list[str]:
    return [x.astimezone(ZoneInfo(zone)).isoformat() for x in instants]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    TABLE,
    ids=[f"{z}:{e}:{a[:10]}" for e, z, a, _ in TABLE],
)
def test_it_fires_at_these_instants(
    expression: str, zone: str, after: str, expected: list[str]
) -> None:
    schedule = parse_schedule(expression, zone)
    start = datetime.fromisoformat(after)
    instants = list(itertools.islice(schedule.iter_after(start), len(expected)))
    assert _local(instants, zone) == expected
    # one at a time, next_after says the same
    chained: list[datetime] = []
    cursor = start
    for _ in expected:
        found = schedule.next_after(cursor)
        assert found is not None
        chained.append(found)
        cursor = found
    assert chained == instants
    # and previous_at_or_before walks the same instants backwards
    for earlier, later in itertools.pairwise(instants):
        assert schedule.previous_at_or_before(later) == later
        assert schedule.previous_at_or_before(later - timedelta(microseconds=1)) == earlier


def test_the_new_york_example_from_the_spec() -> None:
    schedule = parse_schedule("30 2 * * *", NY)
    found = schedule.next_after(datetime.fromisoformat("2026-03-07T12:00:00-05:00"))
    assert found is not None and found.isoformat() == "2026-03-08T07:00:00+00:00"


# (expression, zone, after, until, how many instants lie in (after, until])
COUNTS = [
    ("30 1 * * *", NY, "2026-10-31T00:00:00-04:00", "2026-11-03T00:00:00-05:00", 3),
    ("*/30 1 * * *", NY, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 4),
    ("0 1,2,3 * * *", NY, "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", 2),
    ("* * * * *", NY, "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", 23 * 60),
    ("* * * * *", NY, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 25 * 60),
    ("0 * * * *", NY, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 25),
    ("0-59 * * * *", NY, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 25 * 60),
    ("0-59 0-23 * * *", NY, "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 24 * 60),
    ("0-59 0-23 * * *", NY, "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", 23 * 60),
    ("*/15 1 * * *", "Australia/Lord_Howe", "2026-04-05T00:00+11:00", "2026-04-05T03:00+10:30", 6),
    ("0 3 * * *", "Pacific/Chatham", "2026-09-26T12:00+12:45", "2026-09-28T12:00+13:45", 2),
    ("0 12 * * *", "Pacific/Apia", "2011-12-29T00:00-10:00", "2012-01-01T00:00+14:00", 3),
]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "until", "expected"),
    COUNTS,
    ids=[f"{c[1]}:{c[0]}:{c[2][:10]}" for c in COUNTS],
)
def test_it_counts_instants_across_transitions(
    expression: str, zone: str, after: str, until: str, expected: int
) -> None:
    schedule = parse_schedule(expression, zone)
    start, end = datetime.fromisoformat(after), datetime.fromisoformat(until)
    assert schedule.count_between(start, end) == expected
    listed = itertools.takewhile(lambda x: x <= end, schedule.iter_after(start))
    assert sum(1 for _ in listed) == expected


def test_previous_inside_the_repeated_hour_is_the_first_occurrence() -> None:
    schedule = parse_schedule("30 1 * * *", NY)
    found = schedule.previous_at_or_before(datetime.fromisoformat("2026-11-01T01:45:00-05:00"))
    assert found is not None
    assert found.astimezone(ZoneInfo(NY)).isoformat() == "2026-11-01T01:30:00-04:00"


def test_previous_at_the_end_of_a_gap_is_the_gap_instant() -> None:
    schedule = parse_schedule("30 2 * * *", NY)
    at = datetime.fromisoformat("2026-03-08T03:00:00-04:00")
    assert schedule.previous_at_or_before(at) == at
    before = schedule.previous_at_or_before(at - timedelta(seconds=1))
    assert before is not None
    assert before.astimezone(ZoneInfo(NY)).isoformat() == "2026-03-07T02:30:00-05:00"
