"""Cron expression text + zone -> a validated CronSchedule (docs/schedules.md, "Fields")."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.cron.fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOUR,
    MINUTE,
    MONTH,
    SECOND,
    FieldError,
    ParsedField,
    parse_field,
)
from scheduler.cron.schedule import CronSchedule
from scheduler.cron.wallclock import WallMatcher
from scheduler.errors import Problem, ScheduleError, problem

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS_5 = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)
_FIELDS_6 = (SECOND, *_FIELDS_5)
# The longest each month can be (February in leap years), for the never-fires check.
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Compiled schedules are immutable, so jobs with the same (expression, zone) share one: loading
# 100,000 stored jobs compiles each distinct schedule once (bench/README.md, figure 1). Bounded,
# so a long-lived daemon whose jobs keep changing does not keep every old schedule alive.
_SCHEDULE_CACHE_SIZE = 16_384
_MATCHER_CACHE_SIZE = 16_384


def parse_schedule(expression: str, zone: ZoneInfo | str, *, job_id: str = "") -> CronSchedule:
    """Validate and compile a cron expression for `zone`.

    `job_id` seeds `H`: the same job always gets the same hashed values. Raises
    ScheduleError naming the field and the offending item, saying that the expression
    never fires, or naming an unknown zone; the caller adds the file and key.
    """
    if not isinstance(expression, str) or not isinstance(zone, ZoneInfo | str):
        return _compile(expression, zone, job_id)  # reports the problem
    # Only `H` reads the seed; "H" also occurs in THU (or `h`), which merely costs a cache hit.
    seed = job_id if "H" in expression.upper() else ""
    return _compile_cached(expression, zone, seed)


@lru_cache(maxsize=_SCHEDULE_CACHE_SIZE)
def _compile_cached(expression: str, zone: ZoneInfo | str, seed: str) -> CronSchedule:
    # An error is raised, not cached: a bad expression is parsed again each time (rare).
    if isinstance(zone, ZoneInfo):
        fields = _fields_cached(expression, seed)
        if fields is not None:
            return CronSchedule(expression, zone, *fields)
    return _compile(expression, zone, seed)


@lru_cache(maxsize=_SCHEDULE_CACHE_SIZE)
def _fields_cached(expression: str, seed: str) -> tuple[bool, WallMatcher] | None:
    """What an expression compiles to whatever the zone (one per expression used in several
    zones), or None when it is bad (`_compile` then says why, with the zone's problems)."""
    problems: list[Problem] = []
    parsed = _parse(expression, seed, problems)
    if problems or parsed is None:
        return None
    try:
        return _build(expression, *parsed)
    except ScheduleError:
        return None


def _compile(expression: str, zone: ZoneInfo | str, job_id: str) -> CronSchedule:
    problems: list[Problem] = []
    schedule_zone = _zone(zone, problems)
    parsed = _parse(expression, job_id, problems)
    if problems or parsed is None or schedule_zone is None:
        raise ScheduleError(problems)
    return CronSchedule(expression, schedule_zone, *_build(expression, *parsed))


def _parse(
    expression: str, job_id: str, problems: list[Problem]
) -> tuple[list[str], list[ParsedField]] | None:
    """The six field texts (five get a "0" second) and what they allow; None, or problems
    recorded, when a field is bad."""
    texts = _split(expression, problems)
    if texts is None:
        return None
    parsed: list[ParsedField] = []
    kinds = _FIELDS_6 if len(texts) == 6 else _FIELDS_5
    for kind, text in zip(kinds, texts, strict=True):
        try:
            parsed.append(parse_field(kind, text, job_id))
        except FieldError as exc:
            problems.append(problem(str(exc), value=expression))
    if len(texts) == 5:
        texts = ["0", *texts]
        parsed.insert(0, _ZERO_SECOND)
    return texts, parsed


def _build(
    expression: str, texts: list[str], parsed: list[ParsedField]
) -> tuple[bool, WallMatcher]:
    """(is_interval, matcher) of valid fields; ScheduleError if they never fire."""
    second, minute, hour, dom, month, dow = parsed
    dom_text, month_text, dow_text = texts[3], texts[4], texts[5]
    # Vixie/cronie: a day must match both day fields when either starts with `*`.
    day_and = dom_text.startswith("*") or dow_text.startswith("*")
    if day_and and not dom_text.startswith("*") and not dom.last:
        # Only this combination can be empty: a plain weekday, nL and n#k (k <= 5) each occur
        # in every month in some year, so any other day-of-week side fires eventually.
        if not dom.mask & ((2 << _longest_month(month.mask)) - 1):
            message = (
                f"never fires: day-of-month {dom_text!r} does not occur in month {month_text!r}"
            )
            raise ScheduleError(problem(message, value=expression))

    # cronie's syntactic split between interval and fixed-time jobs (schedules.md): the
    # second (six fields only; five get "0"), minute or hour field starts with `*`.
    is_interval = texts[0].startswith("*") or texts[1].startswith("*") or texts[2].startswith("*")
    wall = _matcher(
        second.mask,
        minute.mask,
        hour.mask,
        dom.mask,
        dom.last,
        month.mask,
        dow.mask,
        dow.last_weekdays,
        dow.nth,
        day_and,
    )
    return is_interval, wall


_ZERO_SECOND = ParsedField(1)  # five fields: second 0


@lru_cache(maxsize=64)
def _longest_month(months: int) -> int:
    """The most days any month of the mask can have (February in leap years)."""
    return max(_MAX_DAYS[m] for m in range(1, 13) if months >> m & 1)


@lru_cache(maxsize=_MATCHER_CACHE_SIZE)
def _matcher(
    seconds: int,
    minutes: int,
    hours: int,
    days: int,
    last_day: bool,
    months: int,
    weekdays: int,
    last_weekdays: int,
    nth_weekdays: int,
    day_and: bool,
) -> WallMatcher:
    """One shared matcher per set of fields (it only memoizes pure answers, so sharing is safe):
    `0 9 * * *` in ten zones, or `H` landing on the same values, is one object."""
    return WallMatcher(
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        days=days,
        last_day=last_day,
        months=months,
        weekdays=weekdays,
        last_weekdays=last_weekdays,
        nth_weekdays=nth_weekdays,
        day_and=day_and,
    )


def _split(expression: str, problems: list[Problem]) -> list[str] | None:
    """The field texts (5 or 6), aliases expanded; None after recording a problem."""
    if not isinstance(expression, str):
        problems.append(problem("a schedule must be a string", value=expression))
        return None
    text = expression.strip()
    if not text:
        problems.append(
            problem("empty schedule: write 5 fields (or 6, seconds first)", value=expression)
        )
        return None
    if text.startswith("@"):
        alias = text.lower()
        if alias == "@reboot":
            problems.append(
                problem("@reboot is not supported: a schedule names times", value=expression)
            )
            return None
        if alias not in ALIASES:
            names = ", ".join(ALIASES)
            problems.append(
                problem(f"unknown alias {text!r}: use one of {names}", value=expression)
            )
            return None
        return ALIASES[alias].split()
    texts = text.split()
    if len(texts) not in (5, 6):
        problems.append(
            problem(
                f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                f"(second first), got {len(texts)}",
                value=expression,
            )
        )
        return None
    return texts


def _zone(zone: ZoneInfo | str, problems: list[Problem]) -> ZoneInfo | None:
    if isinstance(zone, ZoneInfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        problems.append(problem(f"unknown time zone {zone!r}", value=zone))
        return None
