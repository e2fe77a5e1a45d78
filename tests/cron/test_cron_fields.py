"""The cron dialect: every accepted form, every rejection, aliases, H, six fields (schedules.md)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler.cron import parse_schedule
from scheduler.cron.fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOUR,
    MINUTE,
    MONTH,
    SECOND,
    FieldKind,
    parse_field,
)
from scheduler.errors import ScheduleError

START = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def values(kind: FieldKind, text: str, seed: str = "") -> set[int]:
    mask = parse_field(kind, text, seed).mask
    return {v for v in range(64) if mask >> v & 1}


def upcoming(expression: str, count: int, *, zone: str = "UTC", job_id: str = "") -> list[str]:
    schedule = parse_schedule(expression, zone, job_id=job_id)
    return [x.isoformat() for x in itertools.islice(schedule.iter_after(START), count)]


# -- accepted forms ---------------------------------------------------------------------------

FORMS = [
    (MINUTE, "*", set(range(60))),
    (MINUTE, "*/15", {0, 15, 30, 45}),
    (MINUTE, "*/25", {0, 25, 50}),
    (MINUTE, "5", {5}),
    (MINUTE, "05", {5}),
    (MINUTE, "1,15,59", {1, 15, 59}),
    (MINUTE, "1-5", {1, 2, 3, 4, 5}),
    (MINUTE, "5-5", {5}),
    (MINUTE, "5-59/20", {5, 25, 45}),
    (MINUTE, "1-5/2", {1, 3, 5}),
    (MINUTE, "0-10/5,30", {0, 5, 10, 30}),
    (MINUTE, "*/60", {0}),
    (SECOND, "*/20", {0, 20, 40}),
    (HOUR, "9-17", set(range(9, 18))),
    (HOUR, "*/6", {0, 6, 12, 18}),
    (DAY_OF_MONTH, "*/2", set(range(1, 32, 2))),
    (DAY_OF_MONTH, "1,15", {1, 15}),
    (DAY_OF_MONTH, "31", {31}),
    (MONTH, "JAN-MAR", {1, 2, 3}),
    (MONTH, "jan,Jul,DEC", {1, 7, 12}),
    (MONTH, "*/3", {1, 4, 7, 10}),
    (MONTH, "FEB-DEC/5", {2, 7, 12}),
    (DAY_OF_WEEK, "MON-FRI", {1, 2, 3, 4, 5}),
    (DAY_OF_WEEK, "mon-fri", {1, 2, 3, 4, 5}),
    (DAY_OF_WEEK, "sun,SAT", {0, 6}),
    (DAY_OF_WEEK, "0", {0}),
    (DAY_OF_WEEK, "7", {0}),
    (DAY_OF_WEEK, "5-7", {5, 6, 0}),
    (DAY_OF_WEEK, "0-7", set(range(7))),
    (DAY_OF_WEEK, "*", set(range(7))),
    (DAY_OF_WEEK, "*/2", {0, 2, 4, 6}),
    (DAY_OF_WEEK, "1-7/3", {1, 4, 0}),
]


@pytest.mark.parametrize(
    ("kind", "text", "expected"), FORMS, ids=[f"{k.name}:{t}" for k, t, _ in FORMS]
)
def test_it_parses_each_form_to_its_values(kind: FieldKind, text: str, expected: set[int]) -> None:
    assert values(kind, text) == expected


def test_it_parses_day_of_month_l_and_day_of_week_last_and_nth_forms() -> None:
    assert parse_field(DAY_OF_MONTH, "L").last
    assert parse_field(DAY_OF_MONTH, "1,L").last and values(DAY_OF_MONTH, "1,L") == {1}
    assert parse_field(DAY_OF_WEEK, "5L").last_weekdays == 1 << 5
    assert parse_field(DAY_OF_WEEK, "fril").last_weekdays == 1 << 5
    assert parse_field(DAY_OF_WEEK, "7L").last_weekdays == 1 << 0
    assert parse_field(DAY_OF_WEEK, "5#2").nth == 1 << (8 * 5 + 2)
    assert parse_field(DAY_OF_WEEK, "FRI#2").nth == 1 << (8 * 5 + 2)
    assert parse_field(DAY_OF_WEEK, "7#1").nth == 1 << (8 * 0 + 1)


# -- rejected expressions: the message names the field and the offending token ----------------

FIELD_ERRORS = [
    ("60 * * * *", "minute", "60", "out of range 0-59"),
    ("* 24 * * *", "hour", "24", "out of range 0-23"),
    ("* * 32 * *", "day-of-month", "32", "out of range 1-31"),
    ("* * 0 * *", "day-of-month", "0", "out of range 1-31"),
    ("* * * 13 *", "month", "13", "out of range 1-12"),
    ("* * * 0 *", "month", "0", "out of range 1-12"),
    ("* * * * 8", "day-of-week", "8", "out of range 0-7"),
    ("*/0 * * * *", "minute", "*/0", "step must be at least 1"),
    ("0-30/0 * * * *", "minute", "0-30/0", "step must be at least 1"),
    ("30-10 * * * *", "minute", "30-10", "reversed"),
    ("* * * DEC-JAN *", "month", "DEC-JAN", "reversed"),
    ("* * * * FRI-MON", "day-of-week", "FRI-MON", "reversed"),
    ("5/15 * * * *", "minute", "5/15", "a step needs a range or *"),
    ("* * * FOO *", "month", "FOO", "unknown name 'FOO'"),
    ("* * * * FRX", "day-of-week", "FRX", "unknown name 'FRX'"),
    ("* * * * MON-FOO", "day-of-week", "MON-FOO", "unknown name 'FOO'"),
    ("MON * * * *", "minute", "MON", "'MON' is not a number"),
    ("* * * * L", "day-of-week", "L", "unknown name 'L'"),
    ("* * * L *", "month", "L", "unknown name 'L'"),
    ("* * L-2 * *", "day-of-month", "L-2", "only a bare L"),
    ("* * 15W * *", "day-of-month", "15W", "not a number"),
    ("* * * * 5#6", "day-of-week", "5#6", "must be 1-5"),
    ("* * * * 5#0", "day-of-week", "5#0", "must be 1-5"),
    ("* * * * 8#1", "day-of-week", "8#1", "out of range 0-7"),
    ("* * * * 8L", "day-of-week", "8L", "out of range 0-7"),
    ("1,,2 * * * *", "minute", "", "empty list item"),
    ("? * * * *", "minute", "?", "not a value"),
    ("-1 * * * *", "minute", "-1", "not a value"),
    ("1.5 * * * *", "minute", "1.5", "not a value"),
    ("1-2-3 * * * *", "minute", "1-2-3", "not a value"),
    ("*/-1 * * * *", "minute", "*/-1", "not a value"),
    ("\u0663 * * * *", "minute", "\u0663", "not a value"),
    ("H(30-10) * * * *", "minute", "H(30-10)", "reversed"),
    ("H(0-60) * * * *", "minute", "H(0-60)", "out of range 0-59"),
    ("H/0 * * * *", "minute", "H/0", "step must be at least 1"),
    ("60 0 0 * * *", "second", "60", "out of range 0-59"),
    ("0 0 0 * * 8", "day-of-week", "8", "out of range 0-7"),
]


@pytest.mark.parametrize(
    ("expression", "field", "token", "reason"),
    FIELD_ERRORS,
    ids=[e[0] for e in FIELD_ERRORS],
)
def test_it_rejects_a_bad_field_naming_the_field_and_token(
    expression: str, field: str, token: str, reason: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression, "UTC")
    (problem,) = caught.value.problems
    assert problem.message.startswith(f"{field} field {token!r}: ")
    assert reason in problem.message
    assert problem.value == expression


EXPRESSION_ERRORS = [
    ("", "empty schedule"),
    ("   ", "empty schedule"),
    ("@reboot", "@reboot is not supported"),
    ("@REBOOT", "@reboot is not supported"),
    ("@fortnightly", "unknown alias '@fortnightly'"),
    ("@daily extra", "unknown alias"),
    ("* * * *", "got 4"),
    ("0 0 1 1 * 2026 *", "got 7"),
    ("garbage", "got 1"),
]


@pytest.mark.parametrize(
    ("expression", "message"), EXPRESSION_ERRORS, ids=[repr(e[0]) for e in EXPRESSION_ERRORS]
)
def test_it_rejects_a_malformed_expression(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as caught:
        parse_schedule(expression, "UTC")
    assert caught.value.problems[0].value == expression


def test_it_reports_every_bad_field_at_once() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("60 24 * * *", "UTC")
    messages = [p.message for p in caught.value.problems]
    assert [m.split(" field")[0] for m in messages] == ["minute", "hour"]


def test_the_caller_can_add_the_file_and_key() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("60 * * * *", "UTC")
    located = caught.value.located(file="jobs/report.toml", key="schedule")
    assert str(located) == (
        "jobs/report.toml: schedule = '60 * * * *': minute field '60': 60 is out of range 0-59"
    )


NEVER_FIRES = ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 30,31 FEB *", "0 0 30 2 */2"]


@pytest.mark.parametrize("expression", NEVER_FIRES, ids=NEVER_FIRES)
def test_it_rejects_an_expression_that_never_fires(expression: str) -> None:
    with pytest.raises(ScheduleError, match="never fires") as caught:
        parse_schedule(expression, "UTC")
    assert caught.value.problems[0].value == expression


FIRES_EVENTUALLY = [
    ("0 0 29 2 *", "2028-02-29T00:00:00+00:00"),  # leap years only
    ("0 0 L 2 *", "2026-02-28T00:00:00+00:00"),
    ("0 0 * 2 5#5", "2036-02-29T00:00:00+00:00"),  # a fifth Friday in February
    ("0 0 30 2 MON", "2026-02-02T00:00:00+00:00"),  # both restricted: OR, so every Monday
    ("0 0 31 * *", "2026-01-31T00:00:00+00:00"),
    ("0 0 31 2,3 *", "2026-03-31T00:00:00+00:00"),
]


@pytest.mark.parametrize(
    ("expression", "first"), FIRES_EVENTUALLY, ids=[e for e, _ in FIRES_EVENTUALLY]
)
def test_it_accepts_rare_but_possible_days(expression: str, first: str) -> None:
    assert upcoming(expression, 1) == [first]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd", "America"])
def test_it_rejects_an_unknown_zone_naming_it(zone: str) -> None:
    with pytest.raises(ScheduleError, match=f"unknown time zone {zone!r}"):
        parse_schedule("0 9 * * *", zone)


def test_it_reports_a_bad_expression_and_a_bad_zone_together() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("60 * * * *", "Nowhere/Town")
    assert len(caught.value.problems) == 2


def test_it_accepts_a_zone_object_or_its_name() -> None:
    london = ZoneInfo("Europe/London")
    assert parse_schedule("0 9 * * *", london).zone is london
    assert parse_schedule("0 9 * * *", "Europe/London").zone == london


def test_it_keeps_the_expression_as_written() -> None:
    assert parse_schedule(" @Daily ", "UTC").expression == " @Daily "


# -- aliases ----------------------------------------------------------------------------------

ALIASES = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("@DAILY", "0 0 * * *"),
    ("@Hourly", "0 * * * *"),
]


@pytest.mark.parametrize(("alias", "spelled"), ALIASES, ids=[a for a, _ in ALIASES])
def test_an_alias_fires_like_its_spelled_out_expression(alias: str, spelled: str) -> None:
    assert upcoming(alias, 3, zone="America/New_York") == upcoming(
        spelled, 3, zone="America/New_York"
    )
    assert parse_schedule(alias, "UTC").is_interval == parse_schedule(spelled, "UTC").is_interval


def test_weekly_fires_on_sundays_at_midnight() -> None:
    assert upcoming("@weekly", 2) == ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]


# -- cronie's interval / fixed-time split -------------------------------------------------------

KINDS = [
    ("30 2 * * *", False),
    ("0 9 * * MON-FRI", False),
    ("0 1,2,3 * * *", False),
    ("0-59 0-23 * * *", False),  # matches every minute, but the rule is syntactic
    ("H 9 * * *", False),
    ("@daily", False),
    ("@weekly", False),
    ("*/15 * * * *", True),
    ("0 * * * *", True),
    ("@hourly", True),
    ("*/10 2 * * *", True),
    ("* 2 * * *", True),
    ("H * * * *", True),
    ("0 0 9 * * *", False),
    ("*/5 0 9 * * *", True),  # six fields: the second field counts too
    ("0 */5 9 * * *", True),
    ("0 0 */2 * * *", True),
]


@pytest.mark.parametrize(("expression", "interval"), KINDS, ids=[k for k, _ in KINDS])
def test_it_tells_interval_jobs_from_fixed_time_jobs(expression: str, interval: bool) -> None:
    assert parse_schedule(expression, "UTC").is_interval is interval


# -- six fields, seconds first ----------------------------------------------------------------


def test_six_fields_put_the_seconds_first() -> None:
    assert upcoming("30 * * * * *", 2) == [
        "2026-01-01T00:00:30+00:00",
        "2026-01-01T00:01:30+00:00",
    ]
    assert upcoming("*/20 0 9 * * *", 4) == [
        "2026-01-01T09:00:00+00:00",
        "2026-01-01T09:00:20+00:00",
        "2026-01-01T09:00:40+00:00",
        "2026-01-02T09:00:00+00:00",
    ]


def test_five_fields_fire_at_second_zero() -> None:
    assert upcoming("* * * * *", 2) == ["2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00"]


def test_names_and_sunday_numbers_fire_on_the_right_days() -> None:
    sundays = ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]
    assert upcoming("0 0 * * 0", 2) == sundays
    assert upcoming("0 0 * * 7", 2) == sundays
    assert upcoming("0 0 * * sun", 2) == sundays
    assert upcoming("0 0 * * 5-7", 4) == [
        "2026-01-02T00:00:00+00:00",
        "2026-01-03T00:00:00+00:00",
        "2026-01-04T00:00:00+00:00",
        "2026-01-09T00:00:00+00:00",
    ]
    assert upcoming("0 0 1 jun-aug *", 3) == [
        "2026-06-01T00:00:00+00:00",
        "2026-07-01T00:00:00+00:00",
        "2026-08-01T00:00:00+00:00",
    ]


# -- H: hashed from the job id ------------------------------------------------------------------


def test_h_is_the_same_for_the_same_job_and_pinned_across_versions() -> None:
    # Golden values: sha256-derived, so they must never change (a change moves every job).
    assert upcoming("H 9 * * *", 1, job_id="weekly-report") == ["2026-01-01T09:42:00+00:00"]
    assert upcoming("0 H * * *", 1, job_id="weekly-report") == ["2026-01-01T16:00:00+00:00"]
    assert upcoming("H(0-29) * * * *", 1, job_id="weekly-report") == ["2026-01-01T00:12:00+00:00"]
    assert upcoming("H 9 * * *", 2, job_id="weekly-report") == upcoming(
        "H 9 * * *", 2, job_id="weekly-report"
    )


def test_h_does_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "from datetime import UTC, datetime\n"
        "from scheduler.cron import parse_schedule\n"
        "s = parse_schedule('H H * * *', 'UTC', job_id='weekly-report')\n"
        "print(s.next_after(datetime(2026, 1, 1, tzinfo=UTC)).isoformat())\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout.strip())
    assert outputs == {upcoming("H H * * *", 1, job_id="weekly-report")[0]}


H_RANGES = [
    (SECOND, "H", range(0, 60)),
    (MINUTE, "H", range(0, 60)),
    (MINUTE, "H(0-29)", range(0, 30)),
    (MINUTE, "H(45-59)", range(45, 60)),
    (HOUR, "H", range(0, 24)),
    (HOUR, "H(9-17)", range(9, 18)),
    (DAY_OF_MONTH, "H", range(1, 29)),  # 1-28: fires in every month
    (MONTH, "H", range(1, 13)),
    (DAY_OF_WEEK, "H", range(0, 7)),
    (DAY_OF_WEEK, "H(MON-FRI)", range(1, 6)),
]


@pytest.mark.parametrize(
    ("kind", "text", "allowed"), H_RANGES, ids=[f"{k.name}:{t}" for k, t, _ in H_RANGES]
)
def test_h_stays_in_range_and_spreads_jobs_over_it(
    kind: FieldKind, text: str, allowed: range
) -> None:
    picked = [values(kind, text, f"job-{i}") for i in range(400)]
    assert all(len(p) == 1 and p <= set(allowed) for p in picked)
    spread = set().union(*picked)
    assert len(spread) == len(allowed)  # 400 jobs reach every value of a range of <= 60


def test_h_with_a_step_picks_a_phase_and_keeps_the_step() -> None:
    phases = set()
    for i in range(200):
        minutes = values(MINUTE, "H/15", f"job-{i}")
        phase = min(minutes)
        assert minutes == {phase, phase + 15, phase + 30, phase + 45}
        phases.add(phase)
    assert phases == set(range(15))
    assert values(MINUTE, "H(0-29)/10", "weekly-report") <= set(range(30))
    assert len(values(MINUTE, "H(0-29)/10", "weekly-report")) == 3


def test_h_differs_between_jobs() -> None:
    assert len({upcoming("H H * * *", 1, job_id=f"job-{i}")[0] for i in range(20)}) > 15
