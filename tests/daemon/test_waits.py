"""Waiting before a fire is started costs no attempt: a task waiting for its `run_from_job`
launch is asked again and again (`retrying`, `attempts` 0), and once the launch is there, the
task still has every attempt of `[retry] max_attempts` for its own request. Daemon steps under
a FakeClock, real HTTP to the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_daemon_steps import World, fire_at, run_for

from scheduler.daemon.core import DUE_RETRY_POLL
from scheduler.lifecycle import FireStatus, Trigger
from tallyfy_sandbox import FaultRule

ELEVEN = datetime(2026, 5, 4, 11, 0, tzinfo=UTC)


def test_a_task_waiting_for_its_launch_spends_no_attempt(world: World) -> None:
    world.put("weekly", "0 0 11 * * *", action="launch")
    daemon = world.daemon()
    world.sandbox.add_fault(
        FaultRule("rate_limit", path_contains="/runs", retry_after=2700, count=1)
    )
    fire_at(daemon, world, ELEVEN)  # the launch: 429, again in 45 minutes
    (launch,) = world.fires("weekly")
    assert launch.status is FireStatus.RETRYING
    world.put("daily", "0 30 11 * * *", action_keys={"run_from_job": "weekly"})
    run_for(daemon, world, 1)  # loaded

    fire_at(daemon, world, ELEVEN + timedelta(minutes=30))
    run_for(daemon, world, 300)  # the launch is not back yet: the task asks again and again
    (task,) = world.fires("daily")
    assert task.status is FireStatus.RETRYING and task.error is not None
    assert task.error.startswith("waiting: the launch of 'weekly'")
    assert task.attempts == 0

    # The launch is sent at 11:45; the task's first request fails in a way that needs a
    # read-back (503), and it still has its attempts left to send again.
    world.sandbox.add_fault(FaultRule("error_before", path_contains="/tasks", status=503, count=1))
    run_for(daemon, world, 2400)
    (launch,) = world.fires("weekly")
    (task,) = world.fires("daily")
    assert launch.status is FireStatus.SUCCEEDED
    assert (task.status, task.attempts) == (FireStatus.SUCCEEDED, 2)
    assert len(world.tasks()) == 1


def test_the_loop_does_not_spin_while_a_due_retry_is_carried(world: World) -> None:
    world.put("weekly", "0 0 11 * * *", action="launch")
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule("rate_limit", path_contains="/runs", retry_after=1, count=1))
    fire_at(daemon, world, ELEVEN)
    (launch,) = world.fires("weekly")
    assert launch.status is FireStatus.RETRYING
    world.clock.advance(timedelta(seconds=2))
    # The pass finds the retry due and hands it on; it asks the store again a moment later,
    # not at once (a worker may still be waiting for the fire's slot or look-ups).
    assert daemon.tick() >= DUE_RETRY_POLL
    (launch,) = world.fires("weekly")
    assert launch.status is FireStatus.SUCCEEDED


def test_a_fire_left_sending_by_a_dead_daemon_is_read_back_only_once_it_cannot_be_in_flight(
    world: World,
) -> None:
    world.put("j", "0 0 11 * * *")
    instant = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # an instant the dead daemon was sending
    now = world.clock.now()
    (fire,) = world.store.claim([("j", instant, Trigger.SCHEDULE)], now=now, daemon_id="gone")
    assert fire is not None
    world.store.start_attempts([fire.id], now=now, daemon_id="gone")
    world.store.heartbeat(
        "gone",
        hostname="elsewhere",
        pid=1,
        started_at=now,
        now=now,
        next_fire_at=None,
        state="stopped",
    )
    world.clock.advance(timedelta(seconds=0.5))
    daemon = world.daemon()  # starts now: the dead daemon's fire is in its first scan
    run_for(daemon, world, 30)
    (waiting,) = world.fires("j")
    assert waiting.status is FireStatus.SENDING and world.tasks() == []  # not read back yet

    # The dead daemon's request reaches the API late (a slow server), as a kill can leave it.
    job = daemon.planner.job("j")
    assert job is not None
    created = world.client().send(world.runner().request_for(job, waiting))
    run_for(daemon, world, 40)  # past request_deadline (60 s) + 1 s since it started
    (settled,) = world.fires("j")
    assert (settled.status, settled.attempts) == (FireStatus.SUCCEEDED, 1)
    assert settled.remote_id == created.remote_id
    assert len(world.tasks()) == 1  # read back, never sent again
