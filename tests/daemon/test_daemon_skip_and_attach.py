"""The daemon's steps for issue 13: skip days (`skip_on`) and a task waiting for its launch.

Built like test_daemon_steps.py (its `World`: a store, an in-process sandbox over real HTTP, a
FakeClock, daemons without threads), the timer played by `fire_at` and the main loop by
`run_for`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from test_daemon_steps import START, World, at, fire_at, run_for, title

from scheduler.config import CalendarSettings
from scheduler.cron import jitter_delay, parse_schedule
from scheduler.lifecycle import FireStatus, Trigger
from tallyfy_sandbox import FaultRule

SKIPPED = FireStatus.SKIPPED
SUCCEEDED = FireStatus.SUCCEEDED


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# -- skip days -------------------------------------------------------------------------------------
def test_a_per_second_jobs_blackout_day_is_one_skip_row_and_no_wake_up(world: World) -> None:
    world.put("j", "* * * * * *", skip_on=["2026-05-04"])  # today, from 10:00:00.5
    daemon = world.daemon()
    fire_at(daemon, world, at(1))
    assert world.fires("j") == []
    assert daemon.planner.next_fire == (utc(2026, 5, 5), "j")  # nothing wakes it before

    fire_at(daemon, world, utc(2026, 5, 5))

    skip, fired = world.fires("j")
    assert (skip.status, skip.scheduled_for, skip.skipped_until, skip.skipped_count) == (
        SKIPPED,
        at(1),
        utc(2026, 5, 4, 23, 59, 59),
        50_399,  # 10:00:01 to 23:59:59
    )
    assert skip.error == "skip_on: 2026-05-04 is a blackout date"
    assert (fired.status, fired.scheduled_for, fired.trigger) == (
        SUCCEEDED,
        utc(2026, 5, 5),
        Trigger.SCHEDULE,
    )
    assert world.titles() == [title("j", utc(2026, 5, 5))]


def test_a_calendar_holiday_is_skipped_by_jobs_that_ask_and_fired_by_the_others(
    world: World,
) -> None:
    world.settings = replace(
        world.settings, calendar=CalendarSettings(holidays=frozenset({date(2026, 5, 5)}))
    )
    world.put("careful", "0 9 * * *", skip_on=["holidays"])
    world.put("plain", "0 9 * * *")
    daemon = world.daemon()
    assert daemon.planner.next_fire == (utc(2026, 5, 5, 9), "plain")

    fire_at(daemon, world, utc(2026, 5, 5, 9))
    fire_at(daemon, world, utc(2026, 5, 6, 9))

    assert [(f.scheduled_for, f.status) for f in world.fires("plain")] == [
        (utc(2026, 5, 5, 9), SUCCEEDED),
        (utc(2026, 5, 6, 9), SUCCEEDED),
    ]
    holiday, next_day = world.fires("careful")
    assert (holiday.scheduled_for, holiday.status, holiday.skipped_count) == (
        utc(2026, 5, 5, 9),
        SKIPPED,
        1,
    )
    assert holiday.error == "skip_on: 2026-05-05 is a holiday"
    assert (next_day.scheduled_for, next_day.status) == (utc(2026, 5, 6, 9), SUCCEEDED)
    assert title("careful", utc(2026, 5, 5, 9)) not in world.titles()


def test_catching_up_across_a_blackout_week_plans_it_as_one_row(world: World) -> None:
    world.put(
        "j",
        "* * * * * *",
        catch_up="latest",
        catch_up_window="30d",
        skip_on=["2026-05-05/2026-05-11"],
    )
    world.clock.set(utc(2026, 5, 12, 0, 0, 10, 500000))  # down for a week and a half day

    world.daemon()  # its start-up plans the whole stretch at once

    rows = world.fires("j")
    blackout = next(f for f in rows if f.error and f.error.startswith("skip_on"))
    assert (blackout.scheduled_for, blackout.skipped_until, blackout.skipped_count) == (
        utc(2026, 5, 5),
        utc(2026, 5, 11, 23, 59, 59),
        7 * 86_400,
    )
    assert blackout.error == "skip_on: 2026-05-05 to 2026-05-11 are blackout dates"
    fired = [f for f in rows if f.status is not SKIPPED]
    assert [(f.scheduled_for, f.trigger) for f in fired] == [
        (utc(2026, 5, 12, 0, 0, 10), Trigger.CATCH_UP)  # the newest missed, not on a skip day
    ]
    instants = parse_schedule("* * * * * *", "UTC").count_between(START, utc(2026, 5, 12, 0, 0, 10))
    assert sum(f.skipped_count or 1 for f in rows) == instants  # each instant once
    assert len(rows) <= 4  # the stretch, the policy's skips on each side of it, the fire


# -- a task waiting for its launch -----------------------------------------------------------------
def test_a_task_waits_while_its_launch_is_retried_then_attaches_to_it(world: World) -> None:
    world.put("launch", "*/10 * * * * *", action="launch")
    world.put("task", "*/10 * * * * *", action_keys={"run_from_job": "launch"})
    world.sandbox.add_fault(FaultRule("rate_limit", path_contains="/runs", retry_after=3, count=1))
    daemon = world.daemon()

    fire_at(daemon, world, at(10))

    (launch,) = world.fires("launch")
    (task,) = world.fires("task")
    assert launch.status is FireStatus.RETRYING
    assert (task.status, task.error) == (
        FireStatus.RETRYING,
        "waiting: the launch of 'launch' scheduled for 2026-05-04T10:00:10Z is still retrying",
    )
    assert world.tasks() == []

    run_for(daemon, world, 8)

    (launch,) = world.fires("launch")
    (task,) = world.fires("task")
    assert (launch.status, task.status) == (SUCCEEDED, SUCCEEDED)
    [created] = world.tasks()
    assert created["run_id"] == launch.remote_id


def test_a_task_gives_up_waiting_once_its_catch_up_window_has_passed(world: World) -> None:
    world.put("launch", "*/10 * * * * *", action="launch")
    world.put(
        "task", "*/10 * * * * *", catch_up_window="15s", action_keys={"run_from_job": "launch"}
    )
    world.sandbox.add_fault(FaultRule("rate_limit", path_contains="/runs", retry_after=2))
    daemon = world.daemon()
    fire_at(daemon, world, at(10))

    run_for(daemon, world, 60)  # its retries back off: 2 s, 4 s, 8 s, ... (jittered)

    (task,) = world.fires("task")
    assert task.status is FireStatus.FAILED
    assert task.error == (
        "action.run_from_job: gave up waiting: the launch of 'launch' scheduled for "
        "2026-05-04T10:00:10Z is still retrying, and the catch-up window (15s) has passed"
    )
    assert world.fires("launch")[0].status is FireStatus.RETRYING  # 429s never use up attempts
    assert world.tasks() == []


def test_a_task_waits_for_a_launch_claimed_after_it(world: World) -> None:
    delay = jitter_delay("launch", at(10), timedelta(seconds=5))
    assert delay > timedelta(milliseconds=500)  # the launch is claimed well after the task
    world.put("launch", "*/10 * * * * *", action="launch", jitter="5s")
    world.put("task", "*/10 * * * * *", action_keys={"run_from_job": "launch"})
    daemon = world.daemon()

    fire_at(daemon, world, at(10))

    assert world.fires("launch") == []
    (task,) = world.fires("task")
    assert task.error == (
        "waiting: 'launch' has not claimed its launch scheduled for 2026-05-04T10:00:10Z yet"
    )

    fire_at(daemon, world, at(10) + delay)
    run_for(daemon, world, 6)

    (launch,) = world.fires("launch")
    (task,) = world.fires("task")
    assert (launch.status, task.status) == (SUCCEEDED, SUCCEEDED)
    assert world.tasks()[0]["run_id"] == launch.remote_id
