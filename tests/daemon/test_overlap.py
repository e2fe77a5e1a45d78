"""`overlap = "skip" | "buffer_one"`, end to end: the daemon's steps under a FakeClock, real
HTTP to the sandbox, where a person completes, archives or deletes what the job launched.

- skip: while the run the last fire launched is open, an instant is recorded skipped naming
  the run; once the run is completed in the sandbox, the job launches again, and a run once
  seen closed is never asked about again;
- buffer_one: the newest instant is held (`held`, in the ledger) and sent once the open task
  closes, with the start and deadline of its own instant; the next instant replaces a held
  one; a held instant survives a restart and is sent once by one of two daemons;
- a look-up that fails never launches: the fire is held and asked about again;
- a fire by hand ignores `overlap` unless asked (`respect_overlap`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from test_daemon_steps import World, fire_at, run_for

from scheduler.alerts.incidents import held_by_credentials, late_fires
from scheduler.daemon import Daemon
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import Fire
from tallyfy_sandbox import FaultRule

HOUR = timedelta(hours=1)
MANUAL = Trigger.MANUAL
ELEVEN = datetime(2026, 5, 4, 11, 0, tzinfo=UTC)  # the first instant after the world's start


def put(world: World, job_id: str, policy: str, *, action: str = "task") -> None:
    """An hourly job with `overlap = policy`, asking again every minute while it holds; a
    task starts at its instant and is due 90 minutes later."""
    keys = {"deadline": "+90m"} if action == "task" else {}
    world.put(
        job_id,
        "0 0 * * * *",
        action=action,
        action_keys=keys,
        overlap=policy,
        overlap_check_every="1m",
    )


def row(world: World, job_id: str, instant: datetime) -> Fire:
    (found,) = [f for f in world.fires(job_id) if f.scheduled_for == instant]
    return found


def created(world: World, job_id: str) -> list[dict[str, Any]]:
    """What the job created in the sandbox (runs or one-off tasks), oldest first."""
    items = [*world.sandbox.runs(), *world.tasks()]
    mine = [i for i in items if str(i.get("name") or i.get("title") or "").startswith(job_id)]
    return sorted(mine, key=lambda i: str(i.get("name") or i.get("title")))


def test_skip_records_the_open_run_and_launches_again_once_it_is_completed(world: World) -> None:
    put(world, "review", "skip", action="launch")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    (first,) = created(world, "review")

    fire_at(daemon, world, ELEVEN + HOUR)
    skipped = row(world, "review", ELEVEN + HOUR)
    assert skipped.status is FireStatus.SKIPPED
    assert skipped.error is not None and f"run {first['id']}" in skipped.error
    assert "still open" in skipped.error
    assert len(created(world, "review")) == 1  # nothing launched

    world.sandbox.set_run_status(first["id"], "complete")
    fire_at(daemon, world, ELEVEN + 2 * HOUR)
    assert row(world, "review", ELEVEN + 2 * HOUR).status is FireStatus.SUCCEEDED
    second = created(world, "review")[1]

    # A run seen closed is never asked about again: reopened, it holds nothing back.
    world.sandbox.set_run_status(first["id"], "active")
    world.sandbox.set_run_status(second["id"], "archived")
    fire_at(daemon, world, ELEVEN + 3 * HOUR)
    assert row(world, "review", ELEVEN + 3 * HOUR).status is FireStatus.SUCCEEDED
    assert len(created(world, "review")) == 3


def test_a_deleted_run_is_closed_too(world: World) -> None:
    put(world, "review", "skip", action="launch")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    (first,) = created(world, "review")
    world.sandbox.set_run_status(first["id"], "deleted")  # the API answers 404 for it now
    fire_at(daemon, world, ELEVEN + HOUR)
    assert row(world, "review", ELEVEN + HOUR).status is FireStatus.SUCCEEDED


def test_buffer_one_holds_the_instant_and_sends_it_with_its_own_times_once_the_task_closes(
    world: World,
) -> None:
    put(world, "follow", "buffer_one")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    (first,) = created(world, "follow")

    fire_at(daemon, world, ELEVEN + HOUR)
    held = row(world, "follow", ELEVEN + HOUR)
    assert held.status is FireStatus.HELD
    assert held.error is not None and f"task {first['id']}" in held.error
    assert held.next_attempt_at == world.clock.now() + timedelta(minutes=1)  # overlap_check_every
    run_for(daemon, world, 180)  # asked again each minute: still open, still held
    assert row(world, "follow", ELEVEN + HOUR).status is FireStatus.HELD
    assert len(created(world, "follow")) == 1

    world.sandbox.set_task_status(first["id"], "completed")
    run_for(daemon, world, 90)
    sent = row(world, "follow", ELEVEN + HOUR)
    assert sent.status is FireStatus.SUCCEEDED
    (task,) = [t for t in created(world, "follow") if t["id"] == sent.remote_id]
    # Its own instant's times, not the moment it was sent (a few minutes later).
    assert task["title"] == f"follow {ELEVEN + HOUR:%Y-%m-%dT%H:%M:%SZ}"
    assert _instant(task["started_at"]) == ELEVEN + HOUR
    assert _instant(task["deadline"]) == ELEVEN + HOUR + timedelta(minutes=90)


def test_the_next_instant_replaces_a_held_one(world: World) -> None:
    put(world, "follow", "buffer_one")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    (first,) = created(world, "follow")
    fire_at(daemon, world, ELEVEN + HOUR)
    fire_at(daemon, world, ELEVEN + 2 * HOUR)

    replaced = row(world, "follow", ELEVEN + HOUR)
    assert replaced.status is FireStatus.SKIPPED
    assert replaced.error is not None and "replaced by the newer instant" in replaced.error
    assert row(world, "follow", ELEVEN + 2 * HOUR).status is FireStatus.HELD

    world.sandbox.set_task_status(first["id"], "archived")
    run_for(daemon, world, 90)
    assert row(world, "follow", ELEVEN + 2 * HOUR).status is FireStatus.SUCCEEDED
    assert len(created(world, "follow")) == 2  # the first, and the newest instant's


def test_a_held_instant_survives_a_restart_and_one_of_two_daemons_sends_it_once(
    world: World,
) -> None:
    put(world, "follow", "buffer_one")
    first_daemon = world.daemon()
    fire_at(first_daemon, world, ELEVEN)
    (first,) = created(world, "follow")
    fire_at(first_daemon, world, ELEVEN + HOUR)
    assert row(world, "follow", ELEVEN + HOUR).status is FireStatus.HELD
    first_daemon.shutdown()

    world.sandbox.set_task_status(first["id"], "completed")
    second, third = world.daemon(), world.daemon()
    for _ in range(3):
        run_for(second, world, 40)
        run_for(third, world, 40)
    sent = row(world, "follow", ELEVEN + HOUR)
    assert sent.status is FireStatus.SUCCEEDED
    titles = [t["title"] for t in created(world, "follow")]
    assert titles.count(f"follow {ELEVEN + HOUR:%Y-%m-%dT%H:%M:%SZ}") == 1


def test_a_failed_look_up_never_sends_and_is_asked_again(world: World) -> None:
    put(world, "follow", "skip")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    (first,) = created(world, "follow")
    world.sandbox.set_task_status(first["id"], "completed")
    world.sandbox.add_fault(FaultRule("error_before", method="GET", path_contains="/tasks/"))

    fire_at(daemon, world, ELEVEN + HOUR)
    waiting = row(world, "follow", ELEVEN + HOUR)
    assert waiting.status is FireStatus.RETRYING and waiting.attempts == 0
    assert waiting.error is not None and "the overlap look-up failed" in waiting.error
    run_for(daemon, world, 120)
    assert row(world, "follow", ELEVEN + HOUR).status is FireStatus.RETRYING
    assert len(created(world, "follow")) == 1  # never sent on a guess

    world.sandbox.clear_faults()
    run_for(daemon, world, 300)
    assert row(world, "follow", ELEVEN + HOUR).status is FireStatus.SUCCEEDED  # it was closed
    assert len(created(world, "follow")) == 2


def test_a_held_instant_is_not_late(world: World) -> None:
    put(world, "follow", "buffer_one")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    fire_at(daemon, world, ELEVEN + HOUR)
    held = row(world, "follow", ELEVEN + HOUR)
    assert held.status is FireStatus.HELD
    later = ELEVEN + 5 * HOUR
    assert late_fires([held], now=later, late_after=HOUR, jitter_of=lambda _f: timedelta(0)) == []
    # ... whereas the same instant still to send would be.
    pending = Fire(**{**held.__dict__, "status": FireStatus.PENDING})
    assert late_fires([pending], now=later, late_after=HOUR, jitter_of=lambda _f: timedelta(0))


def test_a_fire_by_hand_ignores_overlap_unless_asked(world: World) -> None:
    put(world, "follow", "skip")
    daemon: Daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    job = daemon.planner.job("follow")
    assert job is not None

    by_hand = world.runner().fire(job, ELEVEN + timedelta(minutes=10), Trigger.MANUAL)
    assert by_hand is not None and by_hand.status is FireStatus.SUCCEEDED

    asked = world.runner(respect_overlap=True).fire(
        job, ELEVEN + timedelta(minutes=20), Trigger.MANUAL
    )
    assert asked is not None and asked.status is FireStatus.SKIPPED
    assert asked.error is not None and "still open" in asked.error
    assert len(created(world, "follow")) == 2


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_a_fire_by_hand_never_replaces_a_held_instant(world: World) -> None:
    put(world, "follow", "buffer_one")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    fire_at(daemon, world, ELEVEN + HOUR)
    assert row(world, "follow", ELEVEN + HOUR).status is FireStatus.HELD
    job = daemon.planner.job("follow")
    assert job is not None

    by_hand = world.runner(respect_overlap=True).fire(
        job, ELEVEN + HOUR + timedelta(minutes=5), MANUAL
    )
    assert by_hand is not None and by_hand.status is FireStatus.SKIPPED
    assert row(world, "follow", ELEVEN + HOUR).status is FireStatus.HELD  # still waiting


def test_a_refused_token_on_the_overlap_look_up_waits_with_a_growing_backoff(
    world: World,
) -> None:
    put(world, "follow", "skip")
    daemon = world.daemon()
    fire_at(daemon, world, ELEVEN)
    world.sandbox.expire_token(world.sandbox.token)
    asked = world.sandbox.request_count("GET", "/tasks/")

    fire_at(daemon, world, ELEVEN + HOUR)
    run_for(daemon, world, 600)
    waiting = row(world, "follow", ELEVEN + HOUR)
    assert (waiting.status, waiting.http_status, waiting.attempts) == (
        FireStatus.RETRYING,
        401,
        0,
    )
    assert held_by_credentials(waiting)  # the credentials alert sees it
    # Asked again with a backoff that grows (2 s, 4 s, 8 s ...), not every 1-2 s: about ten
    # look-ups in ten minutes (each GET is tried once more by the client), not hundreds.
    assert world.sandbox.request_count("GET", "/tasks/") - asked <= 24
    assert len(created(world, "follow")) == 1
