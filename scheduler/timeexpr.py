"""Time expressions (`+2bd@17:00`) and the business-day calendar (docs/jobs.md).

A time expression names an instant relative to a fire's **scheduled instant**, in the job's
zone. It is parsed once (`parse_time_expression`, when a job is applied) and resolved many
times (`TimeExpression.resolve`, once per fire), so resolving does no parsing.

Grammar (surrounding whitespace is ignored; nothing else may appear)::

    expression := fixed | relative
    fixed      := an ISO 8601 instant with a UTC offset or Z     2026-03-08T09:00:00-05:00
    relative   := term+ [ "@" HH ":" MM ]                        +1mo+0bd@09:00
    term       := sign digits unit | sign "0"                    +3d  -90m  +0
    sign       := "+" | "-"
    unit       := "m" | "h" | "d" | "w" | "mo" | "bd"             lower case only
    HH         := two digits, 00-23;  MM := two digits, 00-59

Only a zero may stand without a unit (`+0`, `-0`: the scheduled instant). At most
`MAX_TERMS` terms, and each term at most about ten years (`MAX_MAGNITUDE`), so resolving a
valid expression cannot run away or overflow for any realistic scheduled instant.

Meaning, applied left to right from the scheduled instant:

- `m`, `h`: elapsed minutes and hours (arithmetic in UTC: `+2h` is always 7200 s).
- `d`, `w`: calendar days and weeks at the same wall-clock time in the zone (across a DST
  change `+1d` is 23 or 25 hours).
- `mo`: calendar months, clamped to the month's last day (Jan 31 `+1mo` = Feb 28 or 29).
- `bd`: business days of the `BusinessCalendar`. `+0bd` is the same day if it is a business
  day, else the next one; `+2bd` is the second business day after the day; `-1bd` the last
  business day before it. `-0bd` means the same as `+0bd`.
- `@HH:MM` sets the wall-clock time on the day reached.

Wall-clock terms work on the naive local time; the result is turned back into an instant by
`localize` (a time inside a DST gap becomes the first instant after the gap; a time that
happens twice takes its first occurrence). A wall-clock term that leaves the local time
unchanged (`+0d`, `+0bd` on a business day) keeps the exact instant, so `+0bd` of a fire in
the second occurrence of a repeated hour is that fire's instant, not the first occurrence.
"""

from __future__ import annotations

import re
import threading
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from scheduler.clock import parse_instant, to_utc
from scheduler.config import CalendarSettings
from scheduler.errors import ConfigError, TimeExpressionError, problem

UNITS = ("m", "h", "d", "w", "mo", "bd")
MAX_TERMS = 8
# About ten years per term, in each unit (bd: 261 business days in a Mon-Fri year).
MAX_MAGNITUDE = {"m": 5_270_400, "h": 87_840, "d": 3_660, "w": 522, "mo": 120, "bd": 2_610}
_MAX_DIGITS = 9  # refuse to even convert longer numbers; every cap above has fewer digits

_TERM = re.compile(r"([+-])(\d+)([A-Za-z]*)")
_AT = re.compile(r"(\d{2}):(\d{2})")
_UNIT_LIST = ", ".join(UNITS)
_EXAMPLES = "'+0', '+3d@17:00', '+2bd@09:30', '+90m', '+1mo+0bd@09:00'"


# -- the business-day calendar -----------------------------------------------------------------

# Country holidays by (country, year), shared by every calendar in the process: the daemon
# builds a new calendar on each reload, and loading a country's rules costs ~70 ms once.
_COUNTRY_CACHE: dict[tuple[str, int], frozenset[date]] = {}
_COUNTRY_LOCK = threading.Lock()


def _country_holidays(country: str, year: int) -> frozenset[date]:
    """The public holidays (observed days included) of `country` in `year`, cached."""
    key = (country, year)
    cached = _COUNTRY_CACHE.get(key)  # a dict read is atomic; the lock guards the fill
    if cached is not None:
        return cached
    with _COUNTRY_LOCK:
        cached = _COUNTRY_CACHE.get(key)
        if cached is None:
            import holidays as holidays_lib  # ~60 ms to import: only when a country is set

            cached = frozenset(holidays_lib.country_holidays(country, years=year).keys())
            _COUNTRY_CACHE[key] = cached
    return cached


class BusinessCalendar:
    """Which dates are business days: not a weekend day, not a configured or public holiday.

    `weekend` holds `date.weekday()` numbers (0 = Monday, 5, 6 = Saturday, Sunday);
    `holidays` are extra dates; `country` is an ISO code the `holidays` package knows
    (`"US"`, `"GB"`), whose public holidays are loaded lazily, one year at a time, and
    cached for the whole process (thread-safe). Treat it as immutable once built.
    """

    __slots__ = ("weekend", "holidays", "country")

    def __init__(
        self,
        weekend: frozenset[int] = frozenset({5, 6}),
        holidays: frozenset[date] = frozenset(),
        country: str | None = None,
    ) -> None:
        weekend = frozenset(weekend)
        if not weekend <= frozenset(range(7)):
            raise ConfigError(
                problem(
                    "weekend days are date.weekday() numbers 0-6",
                    key="calendar.weekend",
                    value=sorted(weekend),
                )
            )
        if len(weekend) == 7:
            # Every search for a business day would run forever.
            raise ConfigError(
                problem(
                    "every day is a weekend: no business days remain",
                    key="calendar.weekend",
                    value=sorted(weekend),
                )
            )
        if country is not None:
            import holidays as holidays_lib

            country = country.upper()
            if country not in holidays_lib.list_supported_countries():
                raise ConfigError(
                    problem(
                        "not a country code the 'holidays' package knows (e.g. 'US', 'GB')",
                        key="calendar.holidays_country",
                        value=country,
                    )
                )
        self.weekend: frozenset[int] = weekend
        self.holidays: frozenset[date] = frozenset(holidays)
        self.country: str | None = country

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> BusinessCalendar:
        """The calendar the `[calendar]` config section describes."""
        return cls(
            weekend=settings.weekend,
            holidays=settings.holidays,
            country=settings.holidays_country,
        )

    def __repr__(self) -> str:
        return (
            f"BusinessCalendar(weekend={sorted(self.weekend)}, "
            f"holidays={len(self.holidays)} dates, country={self.country!r})"
        )

    def is_business_day(self, day: date) -> bool:
        """False on weekend days, configured holidays and the country's public holidays."""
        if day.weekday() in self.weekend or day in self.holidays:
            return False
        return self.country is None or day not in _country_holidays(self.country, day.year)

    def is_holiday(self, day: date) -> bool:
        """A configured holiday or one of the country's public holidays (weekends are not)."""
        if day in self.holidays:
            return True
        return self.country is not None and day in _country_holidays(self.country, day.year)

    def holidays_between(self, first: date, last: date) -> list[date]:
        """Every holiday from `first` to `last` (inclusive), sorted; reads the configured set
        and each year's public holidays once, never each day of the span."""
        found = {day for day in self.holidays if first <= day <= last}
        if self.country is not None:
            for year in range(first.year, last.year + 1):
                found.update(d for d in _country_holidays(self.country, year) if first <= d <= last)
        return sorted(found)

    def add_business_days(self, day: date, n: int) -> date:
        """`n` business days after `day` (before it when negative).

        `n == 0` gives `day` itself if it is a business day, else the next business day.
        `day` need not be a business day: Saturday `+1` is the first business day after it.
        Ends because at least one weekday is not a weekend and holidays are finite per year.
        """
        one = timedelta(days=1)
        if n == 0:
            while not self.is_business_day(day):
                day += one
            return day
        step = one if n > 0 else -one
        remaining = abs(n)
        while remaining:
            day += step
            if self.is_business_day(day):
                remaining -= 1
        return day


# -- wall-clock helpers ------------------------------------------------------------------------


def localize(naive: datetime, zone: tzinfo) -> datetime:
    """The instant (aware UTC) at which the wall clock of `zone` shows `naive`.

    A wall time inside a DST gap does not exist: it becomes the first instant after the gap
    (the transition itself, e.g. 02:30 on a New York spring-forward day -> 03:00 EDT). A
    wall time that happens twice takes its first occurrence (fold=0, the earlier offset).
    These are the same rules the cron engine follows (docs/schedules.md).
    """
    naive = naive.replace(tzinfo=None, fold=0)
    first = naive.replace(tzinfo=zone)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == naive:
        return utc  # exists; fold=0 already picked the first occurrence of an overlap
    # In a gap (PEP 495): fold=0 reads the wall time with the offset before the transition,
    # fold=1 with the offset after it, so the transition lies in (naive - after, naive - before].
    before = first.utcoffset()
    after = naive.replace(tzinfo=zone, fold=1).utcoffset()
    assert before is not None and after is not None  # a ZoneInfo always has an offset
    low = (naive - after).replace(tzinfo=UTC, microsecond=0)  # still before the transition
    # tz offsets are whole seconds; +1 covers the microseconds `low` dropped.
    high_s = int((after - before).total_seconds()) + 1
    # Binary search for the first whole second with the new offset: tz transitions fall on
    # whole seconds, and a gap is at most a day (Pacific/Apia skipped 2011-12-30), ~17 steps.
    lo_s = 0
    while high_s - lo_s > 1:
        mid = (lo_s + high_s) // 2
        if (low + timedelta(seconds=mid)).astimezone(zone).utcoffset() == before:
            lo_s = mid
        else:
            high_s = mid
    return low + timedelta(seconds=high_s)


def _add_months(wall: datetime, n: int) -> datetime:
    """`wall` moved by `n` calendar months, the day clamped to the target month's length."""
    year, month0 = divmod(wall.year * 12 + wall.month - 1 + n, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("date value out of range")
    day = min(wall.day, monthrange(year, month0 + 1)[1])
    return wall.replace(year=year, month=month0 + 1, day=day)


# -- expressions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Term:
    """One `+N<unit>`; `elapsed` is set for `m` and `h` (precomputed for the hot path)."""

    n: int
    unit: str
    elapsed: timedelta | None

    def shift(self, wall: datetime, calendar: BusinessCalendar) -> datetime:
        """Apply a wall-clock term (`d`, `w`, `mo`, `bd`) to a naive local time."""
        if self.unit == "d":
            return wall + timedelta(days=self.n)
        if self.unit == "w":
            return wall + timedelta(weeks=self.n)
        if self.unit == "mo":
            return _add_months(wall, self.n)
        day = calendar.add_business_days(wall.date(), self.n)
        return datetime.combine(day, wall.time())


@dataclass(frozen=True, slots=True)
class TimeExpression:
    """A parsed time expression; `resolve` is a pure function of the scheduled instant.

    Build it with `parse_time_expression`; `text` is the expression as written.
    """

    text: str
    _fixed: datetime | None = None
    _terms: tuple[_Term, ...] = ()
    _at: time | None = None

    def __repr__(self) -> str:
        return f"TimeExpression({self.text!r})"

    def resolve(
        self, scheduled_for: datetime, zone: ZoneInfo, calendar: BusinessCalendar
    ) -> datetime:
        """The instant this expression names for a fire scheduled at `scheduled_for`, in UTC.

        `scheduled_for` must be aware (ValueError otherwise). TimeExpressionError if the
        result falls outside the dates Python can represent (years 1-9999).
        """
        if self._fixed is not None:
            return self._fixed
        start = to_utc(scheduled_for)
        try:
            return self._walk(start, zone, calendar)
        except OverflowError:
            raise TimeExpressionError(
                problem(
                    f"from {start.isoformat()} this lands outside the years 1-9999",
                    value=self.text,
                )
            ) from None

    def _walk(self, start: datetime, zone: ZoneInfo, calendar: BusinessCalendar) -> datetime:
        # `instant` is the exact result so far, or None once a wall-clock term has moved the
        # local time and only `wall` (naive local) is known; it is localized when needed.
        instant: datetime | None = start
        wall = start.astimezone(zone).replace(tzinfo=None)
        for term in self._terms:
            if term.elapsed is not None:
                base = instant if instant is not None else localize(wall, zone)
                instant = base + term.elapsed  # both UTC: elapsed time, not wall time
                wall = instant.astimezone(zone).replace(tzinfo=None)
            else:
                moved = term.shift(wall, calendar)
                if moved != wall:
                    wall, instant = moved, None
        if self._at is not None:
            wall, instant = datetime.combine(wall.date(), self._at), None
        return instant if instant is not None else localize(wall, zone)


def _error(text: str, message: str) -> TimeExpressionError:
    return TimeExpressionError(problem(message, value=text))


def parse_time_expression(text: str) -> TimeExpression:
    """Parse `+0`, `+3d@17:00`, `+1mo+0bd@09:00`, an ISO instant, ...; TimeExpressionError.

    The grammar and the meaning are in this module's docstring. Every error names the value.
    """
    if not isinstance(text, str):
        raise _error(text, "must be a string such as " + _EXAMPLES)
    s = text.strip()
    if not s:
        raise _error(text, "empty time expression: write e.g. " + _EXAMPLES)
    if s[0] == "@":
        raise _error(text, f"'{s}' needs a term before the time, e.g. '+0{s}'")
    if s[0] not in "+-":
        return TimeExpression(text, _fixed=_parse_fixed(text, s))

    body, sep, at_text = s.partition("@")
    at: time | None = None
    if sep:
        at = _parse_at(text, at_text)

    terms: list[_Term] = []
    pos = 0
    while pos < len(body):
        match = _TERM.match(body, pos)
        if match is None:
            after = f" after '{body[:pos]}'" if pos else ""
            raise _error(
                text,
                f"unexpected '{body[pos:]}'{after}: write terms such as '+3d', '-90m', '+2bd', "
                "then optionally '@HH:MM'",
            )
        pos = match.end()
        if not match[3] and pos < len(body) and body[pos] not in "+-":
            raise _error(text, f"unexpected '{body[pos:]}' after '{body[:pos]}'")
        terms.append(_parse_term(text, match))
        if len(terms) > MAX_TERMS:
            raise _error(text, f"too many terms (at most {MAX_TERMS})")
    return TimeExpression(text, _terms=tuple(terms), _at=at)


def _parse_fixed(text: str, s: str) -> datetime:
    try:
        return parse_instant(s)
    except ValueError as exc:
        reason = str(exc)
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        raise _error(
            text,
            "not a time expression: write terms such as "
            + _EXAMPLES
            + ", or an ISO 8601 instant with a UTC offset",
        ) from None
    if parsed.tzinfo is not None:  # an instant with an offset that UTC cannot hold
        raise _error(text, reason)
    raise _error(text, "an ISO instant needs a UTC offset, e.g. '2026-03-08T09:00:00-05:00'")


def _parse_at(text: str, at_text: str) -> time:
    match = _AT.fullmatch(at_text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise _error(
            text, f"'@{at_text}' is not a time: write @HH:MM with two digits each, 00:00 to 23:59"
        )
    return time(int(match[1]), int(match[2]))


def _parse_term(text: str, match: re.Match[str]) -> _Term:
    sign, digits, unit = match[1], match[2], match[3]
    raw = match[0]
    if unit and unit not in MAX_MAGNITUDE:
        raise _error(text, f"unknown unit '{unit}' in '{raw}' (units: {_UNIT_LIST})")
    if len(digits) > _MAX_DIGITS or (unit and int(digits) > MAX_MAGNITUDE[unit]):
        cap = MAX_MAGNITUDE[unit or "m"]
        raise _error(text, f"'{raw}' is too far: at most {cap}{unit or 'm'} (about 10 years)")
    n = int(digits)
    if not unit:
        if n:
            raise _error(text, f"'{raw}' needs a unit ({_UNIT_LIST}); only '+0' may stand alone")
        return _Term(0, "m", timedelta(0))
    if sign == "-":
        n = -n
    elapsed = None
    if unit == "m":
        elapsed = timedelta(minutes=n)
    elif unit == "h":
        elapsed = timedelta(hours=n)
    return _Term(n, unit, elapsed)
