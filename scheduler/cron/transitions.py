"""When a zone's UTC offset changes: found with zoneinfo, cached per zone.

zoneinfo answers "what is the offset at instant u" but does not list its transitions.
We find them by asking for the offset once a day and bisecting to the second wherever two
answers differ. That finds every transition because no two offset changes in the IANA
database are less than a day apart (the closest pair we measured: Africa/Freetown in
1939, 3.99 days; then several zones with 6.96 days). Offsets between *probes* that are
a day apart can therefore differ by at most one transition.

Instants are integer seconds since the Unix epoch (UTC). Results are cached in blocks of
32 days per zone, so the daily probing is paid once per zone and period, not per query.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# One transition: (instant it takes effect, offset before, offset from then on), in seconds.
Transition = tuple[int, int, int]

PROBE = 86400
_BLOCK = 32 * PROBE
# The instants whose local time datetime can represent in any zone (offsets stay < 1 day).
FIRST_INSTANT = int(datetime(1, 1, 2, tzinfo=UTC).timestamp())
LAST_INSTANT = int(datetime(9999, 12, 30, tzinfo=UTC).timestamp())
# Plenty for every zone and period a daemon looks at; cleared (not evicted) when full.
_CACHE_LIMIT = 200_000
_cache: dict[tuple[ZoneInfo, int], tuple[Transition, ...]] = {}


def offset_at(zone: ZoneInfo, instant: int) -> int:
    """The zone's UTC offset, in seconds, at `instant` (clamped to the representable range)."""
    instant = min(max(instant, FIRST_INSTANT), LAST_INSTANT)
    offset = datetime.fromtimestamp(instant, zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset.days * 86400 + offset.seconds


def _bisect(zone: ZoneInfo, lo: int, hi: int, before: int) -> int:
    """The instant in (lo, hi] where the offset stops being `before` (one change in between)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset_at(zone, mid) == before:
            lo = mid
        else:
            hi = mid
    return hi


def _block(zone: ZoneInfo, index: int) -> tuple[Transition, ...]:
    """The transitions in (index * block, (index + 1) * block]."""
    key = (zone, index)
    found = _cache.get(key)
    if found is not None:
        return found
    start = index * _BLOCK
    changes: list[Transition] = []
    prev_at = start
    prev = offset_at(zone, start)
    for at in range(start + PROBE, start + _BLOCK + 1, PROBE):
        offset = offset_at(zone, at)
        if offset != prev:
            changes.append((_bisect(zone, prev_at, at, prev), prev, offset))
        prev_at, prev = at, offset
    found = tuple(changes)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[key] = found
    return found


def next_transition(zone: ZoneInfo, after: int, until: int) -> Transition | None:
    """The first transition taking effect in (after, until], or None."""
    until = min(until, LAST_INSTANT)
    index = max(after, FIRST_INSTANT) // _BLOCK
    while index * _BLOCK < until:
        for change in _block(zone, index):
            if after < change[0] <= until:
                return change
        index += 1
    return None


def prev_transition(zone: ZoneInfo, at: int, after: int) -> Transition | None:
    """The last transition taking effect in (after, at], or None."""
    after = max(after, FIRST_INSTANT)
    index = (min(at, LAST_INSTANT) - 1) // _BLOCK
    while (index + 1) * _BLOCK > after:
        for change in reversed(_block(zone, index)):
            if after < change[0] <= at:
                return change
        index -= 1
    return None
