"""A cron schedule in a zone: wall-clock matches -> absolute instants, by cronie's DST rules.

The UTC timeline splits into *segments* between the zone's offset transitions; within a
segment of offset `o`, wall time `w` is the instant `w - o`, so the wall-clock matcher
answers every question there. At a transition at instant T from offset `b` (before) to
`a` (after), docs/schedules.md ("Time zones and daylight-saving time") decides:

- interval jobs follow the clock as it happens: the segment after T starts at wall T + a.
  After a gap (a > b) the wall times [T + b, T + a) never occur, so nothing fires there;
  after an overlap (a < b) the wall times [T + a, T + b) occur a second time and fire again.
- fixed-time jobs fire each wall time once: the segment after T starts at wall
  T + max(a, b). In an overlap the repeated wall times [T + a, T + b) belong to the first
  occurrence (before T); in a gap the missing wall times [T + b, T + a) fire once, at T,
  the first instant after the gap.

Both maps are non-decreasing in wall time, so instants come out strictly increasing once
equal ones (several gap times landing on T) are merged. All arithmetic is on integer
seconds: instants since the Unix epoch, wall times since 1970-01-01T00:00 local.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.clock import to_utc
from scheduler.cron.transitions import (
    FIRST_INSTANT,
    LAST_INSTANT,
    PROBE,
    next_transition,
    offset_at,
    prev_transition,
)
from scheduler.cron.wallclock import WallMatcher

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
# Longer than any overlap in the tz database (the longest are 24 h, from date-line moves such
# as Alaska's in 1867), shorter than the shortest time between two transitions (3.99 days, see
# transitions.py): a fixed-time search looks this far back for the transition it starts after.
_LOOK_BACK = 2 * PROBE
# How far iter_after streams ahead of the next instant before looking for transitions again.
_STREAM = PROBE


# The last answer of `next_after`, as (schedule, start, first instant >= start): no instant
# lies in [start, found), so any later question starting in [start, found] has the same answer.
# The daemon asks twice in a row per job while loading (the catch-up plan from the cursor, then
# APScheduler's first run time from now): the second answer is free. One entry for all
# schedules (a per-schedule one would cost ~100 bytes per job), replaced by one assignment, so
# threads sharing it only lose hits, never get a wrong answer.
_last_first: tuple[CronSchedule, int, int] | None = None


def _seconds(instant: datetime) -> int:
    """Whole seconds since the epoch, rounded down; ValueError on a naive datetime."""
    return (to_utc(instant) - _EPOCH) // _SECOND


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class CronSchedule:
    """A validated cron expression bound to a zone; a pure function of (expression, zone, start).

    Build it with `parse_schedule`. Every method takes an aware datetime (ValueError on a
    naive one) and returns aware UTC datetimes. Instants are whole seconds.

    Attributes:
        expression: the expression as the user wrote it.
        zone: the zone whose wall clock the fields describe.
        is_interval: cronie's syntactic rule: the minute or hour field (or, with six fields,
            the second field) starts with `*`. Decides how DST gaps and overlaps are handled.
    """

    __slots__ = ("expression", "zone", "is_interval", "_wall")

    expression: str
    zone: ZoneInfo
    is_interval: bool

    def __init__(self, expression: str, zone: ZoneInfo, is_interval: bool, wall: WallMatcher):
        self.expression = expression
        self.zone = zone
        self.is_interval = is_interval
        self._wall = wall

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.zone.key!r})"

    # -- the public questions ---------------------------------------------------------------

    def next_after(self, after: datetime) -> datetime | None:
        """The first instant strictly after `after` (aware), as aware UTC; None if none remains."""
        global _last_first
        start = _seconds(after) + 1
        last = _last_first
        if last is not None and last[0] is self and last[1] <= start <= last[2]:
            return _instant(last[2])
        found = self._first_from(start)
        if found is None:
            return None
        _last_first = (self, start, found)
        return _instant(found)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Strictly increasing aware UTC instants strictly after `after`, computed lazily."""
        start = _seconds(after) + 1
        return self._iter_from(start)

    def previous_at_or_before(self, at: datetime) -> datetime | None:
        """The newest instant <= `at`, or None."""
        found = self._last_until(_seconds(at))
        return None if found is None else _instant(found)

    def count_between(self, after: datetime, until: datetime) -> int:
        """How many instants lie in (after, until], counted per day rather than enumerated."""
        start = _seconds(after) + 1
        end = _seconds(until)
        if end < start:
            return 0
        return self._count(start, end)

    # -- segments ---------------------------------------------------------------------------

    def _gap_fires_at_end(self, at: int, before: int, after: int) -> bool:
        """Fixed-time only: whether the gap starting at instant `at` adds an instant there.

        It does when some wall time in the gap matches and wall time `at + after` (which
        maps to the same instant anyway) does not.
        """
        found = self._wall.next(at + before)
        return found is not None and found < at + after and not self._wall.matches(at + after)

    def _after_transition(self, at: int, before: int, after: int) -> tuple[int, bool]:
        """The first wall time of the segment starting at a transition, and whether the
        transition instant itself fires as the end of a gap (fixed-time jobs)."""
        if self.is_interval:
            return at + after, False
        if after > before:
            return at + after, self._gap_fires_at_end(at, before, after)
        return at + before, False

    def _enter(self, start: int) -> tuple[int, int, bool]:
        """(offset, first wall time, whether `start` itself fires as a gap's end) for a
        search that begins at instant `start` (inclusive)."""
        offset = offset_at(self.zone, start)
        if self.is_interval:
            return offset, start + offset, False
        change = prev_transition(self.zone, start, start - _LOOK_BACK)
        if change is None:
            return offset, start + offset, False
        at, before, after = change
        first_wall, gap_end = self._after_transition(at, before, after)
        return offset, max(first_wall, start + offset), gap_end and at == start

    def _first_from(self, start: int) -> int | None:
        """The first instant >= start."""
        if start > LAST_INSTANT:
            return None
        start = max(start, FIRST_INSTANT)
        offset, wall_from, gap_end = self._enter(start)
        if gap_end:
            return start
        at = start
        while True:
            wall = self._wall.next(wall_from)
            if wall is None:
                return None
            candidate = wall - offset
            change = next_transition(self.zone, at, candidate)
            if change is None:
                return candidate if candidate <= LAST_INSTANT else None
            at, before, offset = change
            wall_from, gap_end = self._after_transition(at, before, offset)
            if gap_end:
                return at

    def _last_until(self, end: int) -> int | None:
        """The last instant <= end."""
        if end < FIRST_INSTANT:
            return None
        end = min(end, LAST_INSTANT)
        offset = offset_at(self.zone, end)
        while True:
            wall = self._wall.prev(end + offset)
            if wall is None:
                return None
            candidate = wall - offset
            if self.is_interval:
                change = prev_transition(self.zone, end, candidate)
                if change is None:
                    return candidate if candidate >= FIRST_INSTANT else None
                at, before, _ = change
                end, offset = at - 1, before
                continue
            # Fixed-time: also look just behind the candidate, for an overlap whose repeated
            # wall times belong to the segment before it.
            change = prev_transition(self.zone, end, candidate - _LOOK_BACK)
            if change is None:
                return candidate if candidate >= FIRST_INSTANT else None
            at, before, after = change
            first_wall, gap_end = self._after_transition(at, before, after)
            if at <= candidate and wall >= first_wall:
                return candidate
            if at > candidate and gap_end:
                return at
            end, offset = at - 1, before

    def _count(self, start: int, end: int) -> int:
        """How many instants lie in [start, end]: one wall-clock count per segment."""
        start = max(start, FIRST_INSTANT)
        end = min(end, LAST_INSTANT)
        if end < start:
            return 0
        offset, wall_from, gap_end = self._enter(start)
        total = int(gap_end)
        at = start
        while True:
            change = next_transition(self.zone, at, end)
            stop = end + 1 if change is None else change[0]
            total += self._wall.count(wall_from, stop + offset)
            if change is None:
                return total
            at, before, offset = change
            wall_from, gap_end = self._after_transition(at, before, offset)
            total += gap_end

    def _iter_from(self, start: int) -> Iterator[datetime]:
        """The instants >= start, streamed a segment (at most about a day ahead) at a time."""
        if start > LAST_INSTANT:
            return
        start = max(start, FIRST_INSTANT)
        offset, wall_from, gap_end = self._enter(start)
        if gap_end:
            yield _instant(start)
        at = start
        wall_of = self._wall
        while True:
            wall = wall_of.next(wall_from)
            if wall is None:
                return
            horizon = min(max(wall - offset, at) + _STREAM, LAST_INSTANT)
            change = next_transition(self.zone, at, horizon)
            stop = horizon + 1 if change is None else change[0]
            for w in wall_of.iter(wall, stop + offset):
                yield datetime.fromtimestamp(w - offset, UTC)
            if change is None:
                if horizon >= LAST_INSTANT:
                    return
                # The offset at `horizon` is still `offset`; carry on from the next second.
                at = horizon
                wall_from = max(wall_from, horizon + 1 + offset)
                continue
            at, before, offset = change
            wall_from, gap_end = self._after_transition(at, before, offset)
            if gap_end:
                yield _instant(at)
