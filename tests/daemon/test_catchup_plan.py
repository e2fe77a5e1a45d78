"""The planner decides, per instant, fire or skip: guarantees.md "Catch-up" as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.catchup import (
    REASON_OUTSIDE_WINDOW,
    REASON_POLICY_LATEST,
    REASON_POLICY_NONE,
    SkipRange,
    plan_due,
)
from scheduler.config import CatchUpPolicy
from scheduler.cron import jitter_delay, parse_schedule
from scheduler.lifecycle import Trigger

EVERY_MINUTE = parse_schedule("* * * * *", "UTC")
EVERY_SECOND = parse_schedule("* * * * * *", "UTC")
THRESHOLD = timedelta(seconds=5)


def t(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-05-04T{text}+00:00").astimezone(UTC)


def plan(
    policy: CatchUpPolicy,
    *,
    cursor: str,
    now: str,
    window: timedelta = timedelta(days=1),
    live_since: str | None = None,
    schedule=EVERY_MINUTE,
    until: datetime | None = None,
):
    return plan_due(
        schedule,
        cursor=t(cursor),
        up_to=t(now),
        now=t(now),
        live_since=t(live_since or now),
        policy=policy,
        window=window,
        stall_threshold=THRESHOLD,
        until=until,
    )


def test_it_fires_the_instant_that_just_came_due_as_a_live_fire() -> None:
    p = plan_due(
        EVERY_MINUTE,
        cursor=t("10:04:00"),
        up_to=t("10:05:00"),
        now=t("10:05:00.200000"),
        live_since=t("09:00:00"),
        policy=CatchUpPolicy.NONE,
        window=timedelta(days=1),
        stall_threshold=THRESHOLD,
    )
    assert p.fire == ((t("10:05:00"), Trigger.SCHEDULE),)
    assert p.skips == ()
    assert p.cursor == t("10:05:00")


def test_policy_all_fires_every_missed_instant_oldest_first() -> None:
    p = plan(CatchUpPolicy.ALL, cursor="09:00:00", now="10:00:30")
    assert [s for s, _ in p.fire] == [t("09:00:00") + timedelta(minutes=i) for i in range(1, 61)]
    assert {trigger for _, trigger in p.fire} == {Trigger.CATCH_UP}
    assert p.skips == ()


def test_policy_latest_fires_the_newest_and_records_the_rest_as_one_range() -> None:
    p = plan(CatchUpPolicy.LATEST, cursor="09:00:00", now="10:00:30")
    assert p.fire == ((t("10:00:00"), Trigger.CATCH_UP),)
    assert p.skips == (SkipRange(t("09:01:00"), t("09:59:00"), 59, REASON_POLICY_LATEST),)


def test_policy_none_records_every_missed_instant_as_skipped() -> None:
    p = plan(CatchUpPolicy.NONE, cursor="09:00:00", now="10:00:30")
    assert p.fire == ()
    assert p.skips == (SkipRange(t("09:01:00"), t("10:00:00"), 60, REASON_POLICY_NONE),)


def test_instants_older_than_the_window_are_skipped_whatever_the_policy() -> None:
    p = plan(CatchUpPolicy.ALL, cursor="09:00:00", now="10:00:30", window=timedelta(minutes=30))
    assert p.skips == (SkipRange(t("09:01:00"), t("09:30:00"), 30, REASON_OUTSIDE_WINDOW),)
    assert [s for s, _ in p.fire] == [t("09:31:00") + timedelta(minutes=i) for i in range(30)]


def test_latest_outside_the_window_fires_nothing() -> None:
    p = plan(CatchUpPolicy.LATEST, cursor="09:00:00", now="10:00:30", window=timedelta(seconds=10))
    assert p.fire == ()
    assert p.skips == (SkipRange(t("09:01:00"), t("10:00:00"), 60, REASON_OUTSIDE_WINDOW),)


def test_a_week_of_a_per_second_job_is_one_skip_row_with_an_exact_count() -> None:
    week_ago = datetime(2026, 4, 27, 10, 0, tzinfo=UTC)
    now = datetime(2026, 5, 4, 10, 0, 0, 500000, tzinfo=UTC)
    p = plan_due(
        EVERY_SECOND,
        cursor=week_ago,
        up_to=now,
        now=now,
        live_since=now,
        policy=CatchUpPolicy.NONE,
        window=timedelta(days=1),
        stall_threshold=THRESHOLD,
    )
    assert p.fire == ()
    assert sum(s.count for s in p.skips) == 7 * 86400
    assert len(p.skips) == 2  # outside the window, and inside it under `none`
    assert p.skips[0].reason == REASON_OUTSIDE_WINDOW
    assert p.skips[0].count == 6 * 86400
    assert p.skips[1].last == datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def test_it_plans_nothing_past_the_jobs_end() -> None:
    p = plan(CatchUpPolicy.ALL, cursor="09:00:00", now="10:00:30", until=t("09:03:00"))
    assert [s for s, _ in p.fire] == [t("09:01:00"), t("09:02:00"), t("09:03:00")]
    assert p.cursor == t("10:00:30")


def test_an_instant_reached_after_a_stall_follows_the_policy_not_the_live_path() -> None:
    # The daemon has been live since 09:00, but this instant is handled 40 s late: a stall.
    p = plan_due(
        EVERY_MINUTE,
        cursor=t("09:58:00"),
        up_to=t("10:00:40"),
        now=t("10:00:40"),
        live_since=t("09:00:00"),
        policy=CatchUpPolicy.NONE,
        window=timedelta(days=1),
        stall_threshold=THRESHOLD,
    )
    assert p.fire == ()
    assert sum(s.count for s in p.skips) == 2


def test_jittered_instants_are_live_until_their_jittered_time_is_past_the_threshold() -> None:
    schedule = parse_schedule("*/10 * * * * *", "UTC")
    jitter = timedelta(seconds=8)
    scheduled = t("10:00:10")
    delay = jitter_delay("j", scheduled, jitter)
    p = plan_due(
        schedule,
        cursor=t("10:00:00"),
        up_to=scheduled,
        now=scheduled + delay + timedelta(seconds=1),
        live_since=t("09:00:00"),
        policy=CatchUpPolicy.NONE,
        window=timedelta(days=1),
        stall_threshold=THRESHOLD,
        jitter_of=lambda s: jitter_delay("j", s, jitter),
        max_jitter=jitter,
    )
    assert p.fire == ((scheduled, Trigger.SCHEDULE),)


@pytest.mark.parametrize("policy", list(CatchUpPolicy), ids=str)
def test_every_missed_instant_is_fired_or_skipped_exactly_once(policy: CatchUpPolicy) -> None:
    p = plan(policy, cursor="08:00:00", now="10:00:30", window=timedelta(minutes=45))
    fired = [s for s, _ in p.fire]
    skipped = sum(s.count for s in p.skips)
    assert len(fired) + skipped == 120
    assert len(set(fired)) == len(fired)
    for skip in p.skips:
        assert all(not (skip.first <= s <= skip.last) for s in fired)


# -- jitter: an instant comes due at its jittered time ----------------------------------------
EVERY_TEN = parse_schedule("*/10 * * * * *", "UTC")


def jittered(job: str, jitter: timedelta, accept) -> tuple[datetime, timedelta]:
    """The first */10 s instant from 10:00 whose delay satisfies `accept` (jitter is pure)."""
    s = t("10:00:00")
    while not accept(jitter_delay(job, s, jitter)):
        s += timedelta(seconds=10)
    return s, jitter_delay(job, s, jitter)


@pytest.mark.parametrize("policy", list(CatchUpPolicy), ids=str)
def test_an_instant_whose_jittered_time_is_still_to_come_is_not_planned(
    policy: CatchUpPolicy,
) -> None:
    # The daemon starts two seconds after the instant, before its jittered time: not missed.
    jitter = timedelta(seconds=8)
    s, delay = jittered("j", jitter, lambda d: d > timedelta(seconds=3))
    now = s + timedelta(seconds=2)
    p = plan_due(
        EVERY_TEN,
        cursor=s - timedelta(seconds=10),
        up_to=now,
        now=now,
        live_since=now,
        policy=policy,
        window=timedelta(days=1),
        stall_threshold=THRESHOLD,
        jitter_of=lambda i: jitter_delay("j", i, jitter),
        max_jitter=jitter,
    )
    assert (p.fire, p.skips) == ((), ())
    assert p.cursor is not None and p.cursor < s


def test_an_instant_scheduled_before_a_stall_but_due_after_it_is_live() -> None:
    jitter = timedelta(seconds=8)
    s, delay = jittered("j", jitter, lambda d: d > timedelta(seconds=4))
    resumed = s + timedelta(seconds=3)  # the stall was noticed here: live_since
    p = plan_due(
        EVERY_TEN,
        cursor=s - timedelta(seconds=10),
        up_to=s,
        now=s + delay + timedelta(milliseconds=20),
        live_since=resumed,
        policy=CatchUpPolicy.NONE,
        window=timedelta(days=1),
        stall_threshold=THRESHOLD,
        jitter_of=lambda i: jitter_delay("j", i, jitter),
        max_jitter=jitter,
    )
    assert p.fire == ((s, Trigger.SCHEDULE),)


def test_an_instant_held_back_by_an_earlier_longer_jitter_is_still_live() -> None:
    # Jitter wider than the schedule's gap: 10:00:x0 may come due after 10:00:(x+1)0.
    jitter = timedelta(seconds=40)
    job = "wide"
    s = t("10:00:00")
    while not (
        jitter_delay(job, s, jitter) - jitter_delay(job, s + timedelta(seconds=10), jitter)
        > timedelta(seconds=10) + THRESHOLD + timedelta(seconds=1)
    ):
        s += timedelta(seconds=10)
    later = s + timedelta(seconds=10)
    # APScheduler dispatches `s` at its jittered time, then `later` at once (already overdue).
    p = plan_due(
        EVERY_TEN,
        cursor=s,
        up_to=later,
        now=s + jitter_delay(job, s, jitter),
        live_since=t("09:00:00"),
        policy=CatchUpPolicy.NONE,
        window=timedelta(days=1),
        stall_threshold=THRESHOLD,
        jitter_of=lambda i: jitter_delay(job, i, jitter),
        max_jitter=jitter,
    )
    assert p.fire == ((later, Trigger.SCHEDULE),)
