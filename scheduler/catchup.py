"""Which scheduled instants to fire and which to record as skipped: one pure planner.

Live firing, catch-up at startup and catch-up after a stall all go through `plan_due`: given
where a job's history stands (`cursor`: every instant at or before it is accounted for) and how
far to go (`up_to`), it sorts each instant in between into "fire" or "skip", by the rules of
docs/guarantees.md ("Catch-up"):

* an instant is **live** when it came due while the daemon was running normally: its
  (jittered) fire time at or after `live_since`, and reached no later than `stall_threshold`
  after it (plus `max_jitter`: a job's instants are dispatched in order, so one may wait for an
  earlier one whose jitter was longer);
* a jittered instant whose fire time is still to come is not planned at all: the plan stops
  just before it, whatever comes after (it is fired when its time comes);
* every other instant was **missed**; missed instants older than `now - window` are skipped
  ("outside catch-up window"); those inside the window follow the job's policy:
  `all` fires each (oldest first), `latest` fires the newest and skips the rest, `none` skips all.

Large skipped stretches become one `SkipRange` with a count, computed with the engine's
`count_between`, so a week of a per-second job is planned without enumerating 604,800 instants.
Only instants that will actually be fired are enumerated.

A job with `skip_on` (`skip_days`): instants on its skip days are neither live nor missed. Each
stretch of skip days in the planned span is one `SkipRange` with its reason, listed first (the
planner records it first, and cuts the policy's ranges around it); the rules above apply to the
other instants only, as if the skipped ones did not exist (`skipdays.SkippingSchedule`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from scheduler.config import CatchUpPolicy
from scheduler.lifecycle import Trigger, reopenable
from scheduler.skipdays import Instants, SkipDays, SkippingSchedule
from scheduler.store import Fire

ONE_MICROSECOND = timedelta(microseconds=1)

REASON_OUTSIDE_WINDOW = "outside catch-up window"
REASON_POLICY_LATEST = "missed; catch_up = latest fires only the newest"
REASON_POLICY_NONE = "missed; catch_up = none"


@dataclass(frozen=True)
class SkipRange:
    """Instants `first`..`last` (inclusive, `count` of them) recorded as skipped with `reason`."""

    first: datetime
    last: datetime
    count: int
    reason: str


@dataclass(frozen=True)
class Plan:
    """The outcome of planning: instants to fire (oldest first), ranges to skip, the new cursor."""

    fire: tuple[tuple[datetime, Trigger], ...] = ()
    skips: tuple[SkipRange, ...] = ()
    cursor: datetime | None = None

    @property
    def empty(self) -> bool:
        return not self.fire and not self.skips


def plan_due(
    schedule: Instants,
    *,
    cursor: datetime,
    up_to: datetime,
    now: datetime,
    live_since: datetime,
    policy: CatchUpPolicy,
    window: timedelta,
    stall_threshold: timedelta,
    jitter_of: Callable[[datetime], timedelta] | None = None,
    max_jitter: timedelta = timedelta(0),
    until: datetime | None = None,
    skip_days: SkipDays | None = None,
) -> Plan:
    """Plan every instant in (cursor, min(up_to, until)]; see the module docstring for the rules."""
    if skip_days is not None:
        plan = plan_due(
            SkippingSchedule(schedule, skip_days),
            cursor=cursor,
            up_to=up_to,
            now=now,
            live_since=live_since,
            policy=policy,
            window=window,
            stall_threshold=stall_threshold,
            jitter_of=jitter_of,
            max_jitter=max_jitter,
            until=until,
        )
        return _with_skip_days(plan, schedule, skip_days, cursor, until)
    hi = up_to if until is None else min(up_to, until)
    first = schedule.next_after(cursor) if hi > cursor else None
    if first is None or first > hi:
        # Nothing in (cursor, hi]: most jobs at startup and after a stall; answer at once.
        return Plan(cursor=max(cursor, up_to))
    jitter = jitter_of or (lambda _s: timedelta(0))
    end_cursor = max(cursor, up_to)

    # A jittered instant comes due at `s + jitter(s)`, up to `max_jitter` after `s`: one whose
    # time is still to come is neither missed nor due. It waits (and every later instant with
    # it, since a job's instants are dispatched in order); the cursor stops just before it.
    if max_jitter > timedelta(0):
        for s in schedule.iter_after(max(cursor, now - max_jitter)):
            if s > hi:
                break
            if s + jitter(s) > now:
                end_cursor = s - ONE_MICROSECOND
                hi = end_cursor
                break
        if hi <= cursor:
            return Plan(cursor=cursor)

    # Instants before `bulk_end` are certainly missed (they came due before the daemon was live,
    # or earlier than any live instant can be); the few after it are examined one by one.
    bulk_end = min(max(live_since, now - stall_threshold) - max_jitter, hi + ONE_MICROSECOND)
    window_start = now - window

    live: list[datetime] = []
    recent_missed: list[datetime] = []
    if bulk_end <= hi:
        start = max(cursor, bulk_end - ONE_MICROSECOND)
        # `first` is the first instant after `start` too when it lies beyond it (a live fire):
        # no need to compute it again.
        if first > start:
            instants: Iterable[datetime] = chain((first,), schedule.iter_after(first))
        else:
            instants = schedule.iter_after(start)
        for s in instants:
            if s > hi:
                break
            due = s + jitter(s)
            # Dispatched in order, an instant may wait for an earlier one whose jitter was
            # longer (jitter wider than the gap between instants): up to `max_jitter` more.
            if due >= live_since and now - due <= stall_threshold + max_jitter:
                live.append(s)
            else:
                recent_missed.append(s)
            if s == hi:
                break  # the next instant is later still: not worth computing (a year, yearly)

    skips: list[SkipRange] = []
    fire: list[tuple[datetime, Trigger]] = []

    # Steps 1 and 2 look at (cursor, bulk_end): nothing there when the first instant after the
    # cursor is already past it (every live fire), and searching backwards from `bulk_end` for
    # a yearly schedule would walk a year of days to find that out.
    bulk_missed = first < bulk_end
    # 1. Missed and older than the window: one range.
    old_end = min(window_start, bulk_end)
    if bulk_missed and old_end > cursor:
        old = _range(schedule, cursor, old_end, REASON_OUTSIDE_WINDOW)
        if old:
            skips.append(old)
    # 2. Missed, inside the window, in the bulk region: by policy.
    inside_after = max(cursor, window_start - ONE_MICROSECOND)
    recent_inside = [s for s in recent_missed if s >= window_start]
    recent_outside = [s for s in recent_missed if s < window_start]
    skips.extend(SkipRange(s, s, 1, REASON_OUTSIDE_WINDOW) for s in recent_outside)
    if bulk_missed and bulk_end > inside_after:
        if policy is CatchUpPolicy.ALL:
            for s in schedule.iter_after(inside_after):
                if s >= bulk_end:
                    break
                fire.append((s, Trigger.CATCH_UP))
        else:
            newest = schedule.previous_at_or_before(bulk_end - ONE_MICROSECOND)
            if newest is not None and newest > inside_after:
                if policy is CatchUpPolicy.LATEST and not recent_inside:
                    rest_end = newest
                    fire.append((newest, Trigger.CATCH_UP))
                else:
                    rest_end = newest + ONE_MICROSECOND
                reason = (
                    REASON_POLICY_LATEST if policy is CatchUpPolicy.LATEST else REASON_POLICY_NONE
                )
                rest = _range(schedule, inside_after, rest_end, reason)
                if rest:
                    skips.append(rest)
    # 3. Missed recently (a stall not yet detected, or jitter): by policy, newest last.
    if recent_inside:
        if policy is CatchUpPolicy.ALL:
            fire.extend((s, Trigger.CATCH_UP) for s in recent_inside)
        elif policy is CatchUpPolicy.LATEST:
            newest_recent = recent_inside[-1]
            skips.extend(SkipRange(s, s, 1, REASON_POLICY_LATEST) for s in recent_inside[:-1])
            fire.append((newest_recent, Trigger.CATCH_UP))
        else:
            skips.extend(SkipRange(s, s, 1, REASON_POLICY_NONE) for s in recent_inside)
    fire.extend((s, Trigger.SCHEDULE) for s in live)
    fire.sort(key=lambda item: item[0])
    return Plan(fire=tuple(fire), skips=tuple(skips), cursor=end_cursor)


def _with_skip_days(
    plan: Plan,
    schedule: Instants,
    skip_days: SkipDays,
    cursor: datetime,
    until: datetime | None,
) -> Plan:
    """`plan`, with a range for each stretch of skip days up to where it accounts (its
    cursor), first: one row per stretch, however many instants it holds."""
    assert plan.cursor is not None
    hi = plan.cursor if until is None else min(plan.cursor, until)
    ranges = []
    for stretch in skip_days.stretches(cursor, hi):
        low = max(cursor, stretch.start - ONE_MICROSECOND)
        high = min(hi, stretch.end - ONE_MICROSECOND)
        found = _range(schedule, low, high + ONE_MICROSECOND, stretch.reason)
        if found:
            ranges.append(found)
    if not ranges:
        return plan
    return Plan(fire=plan.fire, skips=(*ranges, *plan.skips), cursor=plan.cursor)


def _range(schedule: Instants, after: datetime, before: datetime, reason: str) -> SkipRange | None:
    """The instants in (after, before) as one range, or None when there are none."""
    first = schedule.next_after(after)
    if first is None or first >= before:
        return None
    last = schedule.previous_at_or_before(before - ONE_MICROSECOND)
    if last is None or last < first:
        return None
    count = schedule.count_between(after, last)
    return SkipRange(first, last, count, reason)


@dataclass(frozen=True)
class BackfillStep:
    """One instant of a backfill: `existing` is its history row, if it has one of its own;
    `skipped` says why it falls on one of the job's skip days (`skip_on`), if it does."""

    instant: datetime
    existing: Fire | None
    skipped: str | None = None

    @property
    def to_fire(self) -> bool:
        """True unless history already holds it as sent (or on its way), or it is on a skip
        day (never fired by the schedule; `fire --at` sends one by hand)."""
        if self.skipped is not None:
            return False
        return self.existing is None or self.reopenable

    @property
    def reopenable(self) -> bool:
        """A failed fire, or a single skipped instant: never sent, so it may be sent now."""
        fire = self.existing
        return fire is not None and reopenable(fire.status, fire.skipped_count)


def plan_backfill(
    instants: Iterable[datetime],
    held: Mapping[datetime, Fire],
    skip_days: SkipDays | None = None,
) -> list[BackfillStep]:
    """`backfill`: every scheduled instant in the range, with what history holds for it and,
    for a job with `skip_on`, whether it falls on a skip day."""
    if skip_days is None:
        return [BackfillStep(instant, held.get(instant)) for instant in instants]
    return [
        BackfillStep(instant, held.get(instant), skip_days.reason(instant)) for instant in instants
    ]
