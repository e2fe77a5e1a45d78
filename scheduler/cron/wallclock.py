"""Matching cron fields against local wall-clock time, with no time zone involved.

A wall time is an integer: seconds since 1970-01-01T00:00 *on the local wall clock* (the
zone's offset is applied elsewhere, in `schedule.py`). Day `n` is wall seconds
`[86400 n, 86400 (n + 1))`. Every field is a bitmask, so "the next allowed minute at or
after m" is one shift and one lowest-set-bit, and "how many allowed seconds in a day before
s" is a few popcounts: nothing steps second by second, and whole days are counted, not
walked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

DAY = 86400
_ORDINAL_1970 = date(1970, 1, 1).toordinal()
# The days datetime can represent; the searches stop at these ends.
FIRST_DAY = date.min.toordinal() - _ORDINAL_1970
LAST_DAY = date.max.toordinal() - _ORDINAL_1970
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The Gregorian calendar repeats every 400 years, so a day search that finds nothing in
# 400 years (plus the partial year it started in) never will.
_SEARCH_MONTHS = 12 * 401


def _lowest(x: int) -> int:
    """Index of the lowest set bit of x (x > 0)."""
    return (x & -x).bit_length() - 1


def _bits(mask: int) -> tuple[int, ...]:
    """The set bits of mask, lowest first (one step per set bit, not per bit)."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return tuple(out)


# Which days of a month match depends only on the day fields, the month's length and its first
# weekday. Matchers with the same day fields (every day, MON-FRI, the 1st, ...: far fewer than
# distinct schedules) share one table of those masks, filled as needed: loading 100,000 jobs
# computes each mask a few times instead of a few times per schedule (bench/README.md, figure
# 1). Bounded like the other schedule caches; a matcher keeps the table it was given.
_DayFields = tuple[int, bool, int, int, int, bool]
_DAY_TABLES: dict[_DayFields, dict[int, int]] = {}
_DAY_TABLES_MAX = 4096


class WallMatcher:
    """The cron fields of one schedule, answering questions about wall seconds."""

    __slots__ = (
        "_s",
        "_m",
        "_h",
        "_dom",
        "_last",
        "_months",
        "_dow",
        "_dow_last",
        "_nth",
        "_day_and",
        "_every_day",
        "_n_s",
        "_n_m",
        "_per_hour",
        "_per_day",
        "_first_s",
        "_first_m",
        "_last_s",
        "_last_m",
        "_seconds",
        "_minutes",
        "_hours",
        "_month_masks",
    )

    def __init__(
        self,
        *,
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
    ) -> None:
        self._s, self._m, self._h = seconds, minutes, hours
        self._dom, self._last, self._months = days, last_day, months
        self._dow, self._dow_last, self._nth = weekdays, last_weekdays, nth_weekdays
        self._day_and = day_and
        all_days = (1 << 32) - 2  # bits 1-31
        self._every_day = (
            days == all_days
            and weekdays == 0x7F
            and day_and
            and not last_weekdays
            and not nth_weekdays
        )
        self._n_s = seconds.bit_count()
        self._n_m = minutes.bit_count()
        self._per_hour = self._n_m * self._n_s
        self._per_day = hours.bit_count() * self._per_hour
        self._first_s = _lowest(seconds)
        self._first_m = _lowest(minutes)
        self._last_s = seconds.bit_length() - 1
        self._last_m = minutes.bit_length() - 1
        self._seconds = _bits(seconds)
        self._minutes = _bits(minutes)
        self._hours = _bits(hours)
        # Which days of a month match depends only on its length and its first weekday:
        # at most 4 x 7 masks per set of day fields, computed when first needed, shared.
        day_fields = (days, last_day, weekdays, last_weekdays, nth_weekdays, day_and)
        table = _DAY_TABLES.get(day_fields)
        if table is None:
            if len(_DAY_TABLES) >= _DAY_TABLES_MAX:
                _DAY_TABLES.clear()
            table = _DAY_TABLES.setdefault(day_fields, {})
        self._month_masks = table

    # -- days -------------------------------------------------------------------------------

    def _day_mask(self, first_weekday: int, length: int) -> int:
        """Bit d set when day d of a month of `length` days starting on `first_weekday` matches."""
        key = first_weekday * 32 + length
        mask = self._month_masks.get(key)
        if mask is not None:
            return mask
        mask = 0
        for d in range(1, length + 1):
            dom = bool(self._dom >> d & 1) or (self._last and d == length)
            weekday = (first_weekday + d - 1) % 7
            dow = (
                bool(self._dow >> weekday & 1)
                or (bool(self._dow_last >> weekday & 1) and d + 7 > length)
                or bool(self._nth >> (8 * weekday + (d + 6) // 7) & 1)
            )
            # Vixie/cronie: AND when either field starts with `*`, else OR (schedules.md).
            if (dom and dow) if self._day_and else (dom or dow):
                mask |= 1 << d
        self._month_masks[key] = mask
        return mask

    def _month(self, year: int, month: int) -> tuple[int, int]:
        """(ordinal of day 0 of the month, i.e. the day before the 1st; mask of matching days)."""
        first = date(year, month, 1).toordinal()
        if not self._months >> month & 1:
            return first - 1, 0
        length = _DAYS_IN_MONTH[month]
        if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            length = 29
        if self._every_day:
            return first - 1, (1 << (length + 1)) - 2
        # date.toordinal() % 7 is 0 on Sundays, the cron numbering.
        return first - 1, self._day_mask(first % 7, length)

    def day_matches(self, day: int) -> bool:
        """Whether day number `day` passes the month, day-of-month and day-of-week fields."""
        if not FIRST_DAY <= day <= LAST_DAY:
            return False
        d = date.fromordinal(day + _ORDINAL_1970)
        return bool(self._month(d.year, d.month)[1] >> d.day & 1)

    def next_day(self, day: int) -> int | None:
        """The first matching day number >= `day`, or None."""
        if day > LAST_DAY:
            return None
        d = date.fromordinal(max(day, FIRST_DAY) + _ORDINAL_1970)
        year, month, dom = d.year, d.month, d.day
        for _ in range(_SEARCH_MONTHS):
            base, mask = self._month(year, month)
            rest = mask >> dom
            if rest:
                return base + dom + _lowest(rest) - _ORDINAL_1970
            month, dom = month + 1, 1
            if month == 13:
                month, year = 1, year + 1
                if year > 9999:
                    return None
        return None

    def prev_day(self, day: int) -> int | None:
        """The last matching day number <= `day`, or None."""
        if day < FIRST_DAY:
            return None
        d = date.fromordinal(min(day, LAST_DAY) + _ORDINAL_1970)
        year, month, dom = d.year, d.month, d.day
        for _ in range(_SEARCH_MONTHS):
            base, mask = self._month(year, month)
            rest = mask & ((2 << dom) - 1)
            if rest:
                return base + rest.bit_length() - 1 - _ORDINAL_1970
            month, dom = month - 1, 31
            if month == 0:
                month, year = 12, year - 1
                if year < 1:
                    return None
        return None

    def count_days(self, start: int, end: int) -> int:
        """How many matching day numbers lie in [start, end)."""
        start, end = max(start, FIRST_DAY), min(end, LAST_DAY + 1)
        if start >= end:
            return 0
        first = date.fromordinal(start + _ORDINAL_1970)
        last = date.fromordinal(end - 1 + _ORDINAL_1970)
        year, month = first.year, first.month
        total = 0
        while True:
            _, mask = self._month(year, month)
            if year == first.year and month == first.month:
                mask &= -(1 << first.day)
            if year == last.year and month == last.month:
                total += (mask & ((2 << last.day) - 1)).bit_count()
                return total
            total += mask.bit_count()
            month += 1
            if month == 13:
                month, year = 1, year + 1

    # -- seconds of the day ---------------------------------------------------------------

    def _next_in_day(self, sod: int) -> int:
        """The first matching second of the day >= sod, or -1."""
        h, rest = divmod(sod, 3600)
        m, s = divmod(rest, 60)
        if self._h >> h & 1:
            if self._m >> m & 1:
                x = self._s >> s
                if x:
                    return sod + _lowest(x)
                m += 1
            x = self._m >> m
            if x:
                return h * 3600 + (m + _lowest(x)) * 60 + self._first_s
            h += 1
        x = self._h >> h
        if x:
            return (h + _lowest(x)) * 3600 + self._first_m * 60 + self._first_s
        return -1

    def _prev_in_day(self, sod: int) -> int:
        """The last matching second of the day <= sod, or -1."""
        h, rest = divmod(sod, 3600)
        m, s = divmod(rest, 60)
        if self._h >> h & 1:
            if self._m >> m & 1:
                x = self._s & ((2 << s) - 1)
                if x:
                    return h * 3600 + m * 60 + x.bit_length() - 1
            x = self._m & ((1 << m) - 1)
            if x:
                return h * 3600 + (x.bit_length() - 1) * 60 + self._last_s
        x = self._h & ((1 << h) - 1)
        if x:
            return (x.bit_length() - 1) * 3600 + self._last_m * 60 + self._last_s
        return -1

    def _count_in_day_before(self, sod: int) -> int:
        """How many matching seconds of the day lie in [0, sod) (sod may be 86400)."""
        h, rest = divmod(sod, 3600)
        m, s = divmod(rest, 60)
        total = (self._h & ((1 << h) - 1)).bit_count() * self._per_hour
        if self._h >> h & 1:
            total += (self._m & ((1 << m) - 1)).bit_count() * self._n_s
            if self._m >> m & 1:
                total += (self._s & ((1 << s) - 1)).bit_count()
        return total

    # -- wall seconds -----------------------------------------------------------------------

    def matches(self, wall: int) -> bool:
        """Whether wall second `wall` matches every field."""
        day, sod = divmod(wall, DAY)
        return self._next_in_day(sod) == sod and self.day_matches(day)

    def next(self, wall: int) -> int | None:
        """The first matching wall second >= `wall`, or None (past year 9999)."""
        day, sod = divmod(wall, DAY)
        if day < FIRST_DAY:
            day, sod = FIRST_DAY, 0
        while True:
            found = self.next_day(day)
            if found is None:
                return None
            if found != day:
                day, sod = found, 0
            r = self._next_in_day(sod)
            if r >= 0:
                return day * DAY + r
            day, sod = day + 1, 0

    def prev(self, wall: int) -> int | None:
        """The last matching wall second <= `wall`, or None (before year 1)."""
        day, sod = divmod(wall, DAY)
        if day > LAST_DAY:
            day, sod = LAST_DAY, DAY - 1
        while True:
            found = self.prev_day(day)
            if found is None:
                return None
            if found != day:
                day, sod = found, DAY - 1
            r = self._prev_in_day(sod)
            if r >= 0:
                return day * DAY + r
            day, sod = day - 1, DAY - 1

    def count(self, start: int, end: int) -> int:
        """How many matching wall seconds lie in [start, end), counted per day, not walked."""
        if end <= start:
            return 0
        day0, sod0 = divmod(start, DAY)
        day1, sod1 = divmod(end, DAY)
        if day0 == day1:
            if not self.day_matches(day0):
                return 0
            return self._count_in_day_before(sod1) - self._count_in_day_before(sod0)
        total = self._per_day * self.count_days(day0 + 1, day1)
        if self.day_matches(day0):
            total += self._per_day - self._count_in_day_before(sod0)
        if sod1 and self.day_matches(day1):
            total += self._count_in_day_before(sod1)
        return total

    def iter(self, start: int, end: int) -> Iterator[int]:
        """The matching wall seconds in [start, end), in order."""
        first = self.next(start)
        if first is None or first >= end:
            return
        day, sod = divmod(first, DAY)
        h0, rest = divmod(sod, 3600)
        m0, s0 = divmod(rest, 60)
        hours, minutes, seconds = self._hours, self._minutes, self._seconds
        while True:
            base = day * DAY
            for h in hours:
                if h < h0:
                    continue
                hour_base = base + h * 3600
                if hour_base >= end:
                    return
                for m in minutes:
                    if m < m0:
                        continue
                    minute_base = hour_base + m * 60
                    if minute_base + 59 < end:
                        for s in seconds:
                            if s >= s0:
                                yield minute_base + s
                    else:
                        for s in seconds:
                            if s >= s0:
                                if minute_base + s >= end:
                                    return
                                yield minute_base + s
                    s0 = 0
                m0 = 0
            h0 = 0
            found = self.next_day(day + 1)
            if found is None or found * DAY >= end:
                return
            day = found
