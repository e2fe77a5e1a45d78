"""The daemon's steps, one at a time, under a FakeClock (no real waiting, no threads).

The daemon is built with `threaded=False`: no APScheduler thread, no planner thread, no send
workers. The tests play the timer's part by calling `wake()` (after moving the clock to the
fire time) and the main loop's by calling `tick()` and `detect_stall`; every message the daemon
posts is handled, and every fire sent, before the call returns. Fires go over real HTTP to an
in-process sandbox that stamps `created_at` with the same FakeClock.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import audit, write_job
from hypothesis import given
from hypothesis import strategies as st
from store_helpers import row_at

import scheduler.daemon.planner as planner_module
from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import (
    CatchUpPolicy,
    RetrySettings,
    SchedulerSettings,
    Secret,
    Settings,
    StoreSettings,
    TallyfySettings,
)
from scheduler.cron import jitter_delay, parse_schedule
from scheduler.daemon import Daemon
from scheduler.daemon.planner import CatchUp, gaps
from scheduler.definitions import job_from_document, load_job_files
from scheduler.errors import StoreUnavailable
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.notify import Notifier
from scheduler.ratelimit import RateLimiter
from scheduler.runner import Runner
from scheduler.store import Fire, JobDocument, Store
from scheduler.timeexpr import BusinessCalendar
from tallyfy_sandbox import FaultRule, SandboxServer

START = datetime(2026, 5, 4, 10, 0, 0, 500000, tzinfo=UTC)  # a Monday, half a second past 10:00
SECOND = timedelta(seconds=1)


def at(seconds: float) -> datetime:
    """10:00:00 plus `seconds`."""
    return datetime(2026, 5, 4, 10, 0, tzinfo=UTC) + timedelta(seconds=seconds)


class StepClock(FakeClock):
    """A FakeClock whose wall clock can also be stepped alone (NTP), monotonic time unmoved."""

    def step(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class World:
    """A store, a sandbox, a clock and a factory of daemons sharing them."""

    def __init__(self, tmp_path: Path, sandbox: SandboxServer, clock: StepClock) -> None:
        self.tmp_path = tmp_path
        self.sandbox = sandbox
        self.clock = clock
        self.store = Store.open(f"sqlite:///{tmp_path / 'steps.db'}")
        self.store.init_schema()
        self.settings = Settings(
            store=StoreSettings(url=self.store.url),
            tallyfy=TallyfySettings(
                base_url=sandbox.url,
                organization_id=sandbox.organization_id,
                access_token=Secret(sandbox.token),
            ),
            scheduler=SchedulerSettings(catch_up=CatchUpPolicy.ALL),
            retry=RetrySettings(max_attempts=3, initial_backoff=timedelta(seconds=2)),
        )
        self.daemons: list[Daemon] = []
        self.clients: list[TallyfyClient] = []
        self._ids = itertools.count(1)

    def put(self, job_id: str, schedule: str, **kw: Any) -> None:
        """Apply one job file now (its instants start strictly after the clock's now)."""
        path = write_job(self.tmp_path / "jobs" / job_id, job_id, schedule, **kw)
        (job,) = load_job_files([path], self.settings, self.clock.now())
        doc = JobDocument(job.id, job.to_document(), job.schedule_key, job.enabled, job.source)
        self.store.apply([doc], prune=False, now=self.clock.now())

    def client(
        self, base_url: str | None = None, rate_limiter: RateLimiter | None = None
    ) -> TallyfyClient:
        client = TallyfyClient(
            base_url or self.sandbox.url,
            self.sandbox.organization_id,
            Secret(self.sandbox.token),
            clock=self.clock,
            timeout=5,
            connect_timeout=2,
            rate_limiter=rate_limiter,
        )
        self.clients.append(client)
        return client

    def runner(self, *, respect_overlap: bool = False) -> Runner:
        """A runner of our own, as the `fire` command makes one (no daemon id)."""
        return Runner(
            self.store,
            self.client(),
            organization_id=self.sandbox.organization_id,
            calendar=BusinessCalendar.from_settings(self.settings.calendar),
            retry=self.settings.retry,
            clock=self.clock,
            respect_overlap=respect_overlap,
        )

    def daemon(
        self,
        *,
        prepare: bool = True,
        base_url: str | None = None,
        store: Store | None = None,
        rate_limiter: RateLimiter | None = None,
        **kw: Any,
    ) -> Daemon:
        kw.setdefault("notifier", Notifier({}))
        daemon = Daemon(
            self.settings,
            store or self.store,
            self.client(base_url, rate_limiter),
            clock=self.clock,
            daemon_id=f"d{next(self._ids)}",
            threaded=False,
            **kw,
        )
        self.daemons.append(daemon)
        if prepare:
            daemon.prepare()
        return daemon

    def fires(self, job_id: str) -> list[Fire]:
        """The job's history, oldest instant first."""
        return sorted(self.store.history(job_id, limit=None), key=lambda f: f.scheduled_for)

    def tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tasks() if t["is_oneoff_task"]]

    def titles(self) -> list[str]:
        return sorted(t["title"] for t in self.tasks())

    def close(self) -> None:
        for daemon in self.daemons:
            if not daemon.stop_event.is_set():
                daemon.shutdown()
        for client in self.clients:
            client.close()
        self.store.close()


def title(job_id: str, instant: datetime) -> str:
    return f"{job_id} {instant:%Y-%m-%dT%H:%M:%SZ}"


def run_for(daemon: Daemon, world: World, seconds: float) -> None:
    """Play the main loop for `seconds` of fake time: tick, wait what it asks, repeat."""
    end = world.clock.monotonic() + seconds
    while world.clock.monotonic() < end - 1e-3:  # FakeClock moves in whole microseconds
        wait = daemon.tick()
        world.clock.advance(timedelta(seconds=min(max(wait, 0.01), end - world.clock.monotonic())))
    daemon.tick()


def fire_at(daemon: Daemon, world: World, instant: datetime) -> None:
    """Play the timer: the clock reaches the instant, and the daemon is woken."""
    world.clock.set(max(world.clock.now(), instant + timedelta(milliseconds=5)))
    daemon.wake()


def loaded(daemon: Daemon) -> set[str]:
    return set(daemon.planner.job_ids())


# -- live firing --------------------------------------------------------------------------------
def test_it_fires_a_due_instant_once_as_a_scheduled_fire(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    fire_at(daemon, world, at(1))
    fire_at(daemon, world, at(1))  # APScheduler twice for one instant: still one fire
    (fire,) = world.fires("j")
    assert (fire.scheduled_for, fire.status, fire.trigger) == (
        at(1),
        FireStatus.SUCCEEDED,
        Trigger.SCHEDULE,
    )
    assert world.titles() == [title("j", at(1))]


def test_a_late_dispatch_accounts_for_every_instant_up_to_it(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    fire_at(daemon, world, at(1))
    # APScheduler coalesced 2..3 into one wake-up at 3: 2 is still fired, once.
    fire_at(daemon, world, at(3))
    assert [f.scheduled_for for f in world.fires("j")] == [at(1), at(2), at(3)]
    assert len(world.tasks()) == 3


class CountingStore(Store):
    """A store that counts its claim transactions and the instants each claimed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claims: list[int] = []

    def claim(self, instants: Any, *args: Any, **kwargs: Any) -> list[Fire | None]:
        self.claims.append(len(instants))
        return super().claim(instants, *args, **kwargs)


def test_a_burst_of_jobs_due_at_once_is_planned_in_batches_and_each_fire_sent_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner_module, "PLAN_BATCH", 10)
    burst = [f"b{i:02d}" for i in range(25)]
    for job_id in burst:
        world.put(job_id, "* * * * * *")
    world.put("capped", "* * * * * *", max_fires=1)  # counted per instant: planned on its own
    store = CountingStore(world.store.engine)
    daemon = world.daemon(store=store)
    fire_at(daemon, world, at(1))  # one wake-up for all 26 jobs
    # 25 plain jobs in batches of 10; the capped job alone.
    assert sorted(store.claims) == [1, 5, 10, 10]
    fire_at(daemon, world, at(1))  # woken again for the same second: nothing more
    for job_id in [*burst, "capped"]:
        fires = world.fires(job_id)
        assert [f.scheduled_for for f in fires] == [at(1)], job_id
        assert {(f.status, f.trigger, f.attempts) for f in fires} == {
            (FireStatus.SUCCEEDED, Trigger.SCHEDULE, 1)
        }
    assert world.titles() == sorted(title(j, at(1)) for j in [*burst, "capped"])
    assert {f.remote_id for j in burst for f in world.fires(j)} == {
        t["id"] for t in world.tasks() if not t["title"].startswith("capped")
    }


def test_a_bug_in_the_planner_does_not_stop_later_wake_ups_and_its_batch_is_replanned(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    real_claim = daemon.store.claim
    calls = []

    def broken_once(*args: Any, **kwargs: Any) -> list[Fire | None]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(daemon.store, "claim", broken_once)
    fire_at(daemon, world, at(1))
    assert world.fires("j") == []
    assert any(r.exc_info for r in caplog.records)  # logged with its traceback
    daemon.tick()  # the batch is planned again
    fire_at(daemon, world, at(2))  # and the planner still runs for later wake-ups
    assert [(f.scheduled_for, f.status) for f in world.fires("j")] == [
        (at(1), FireStatus.SUCCEEDED),
        (at(2), FireStatus.SUCCEEDED),
    ]


def test_a_wake_up_handled_after_the_stop_claims_nothing(world: World) -> None:
    for job_id in ("a", "b"):
        world.put(job_id, "* * * * * *")
    daemon = world.daemon()
    daemon.stop_event.set()  # SIGTERM before the planner handled the wake-up
    fire_at(daemon, world, at(1))
    assert world.fires("a") == world.fires("b") == []
    daemon.shutdown()
    world.daemon().tick()  # the next start plans them (catch_up = "all")
    assert [f.trigger for f in world.fires("a") + world.fires("b")] == [Trigger.CATCH_UP] * 2


# -- catch-up at startup ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "sent", "skipped"),
    [
        ("all", [1, 2, 3, 4, 5], []),
        ("latest", [5], [1, 2, 3, 4]),
        ("none", [], [1, 2, 3, 4, 5]),
    ],
    ids=["all", "latest", "none"],
)
def test_startup_plans_the_outage_by_policy_before_it_returns(
    world: World, policy: str, sent: list[int], skipped: list[int]
) -> None:
    world.put("j", "* * * * * *", catch_up=policy)
    world.clock.set(at(5.5))  # the daemon was down for 1..5
    world.daemon()
    report = audit(world.store, world.sandbox, "j", START, at(5.5)).assert_ok()
    assert report.sent == [at(s) for s in sent]
    assert report.skipped == [at(s) for s in skipped]
    assert {report.rows[s].trigger for s in report.sent} <= {Trigger.CATCH_UP}


def test_instants_older_than_the_window_are_one_skip_row_with_a_count(world: World) -> None:
    world.put("j", "* * * * * *", catch_up="all", catch_up_window="10s")
    world.clock.set(START + timedelta(hours=1))
    world.daemon()
    fires = world.fires("j")
    assert len(fires) == 1 + 10  # one range outside the window, ten fired inside it
    assert fires[0].status is FireStatus.SKIPPED
    assert fires[0].skipped_count == 3600 - 10
    audit(world.store, world.sandbox, "j", START, world.clock.now()).assert_ok()


def test_a_restart_resumes_from_the_history_without_refiring(world: World) -> None:
    world.put("j", "* * * * * *")
    first = world.daemon()
    for s in (1, 2, 3):
        fire_at(first, world, at(s))
    first.shutdown()
    world.clock.set(at(6.2))
    world.daemon()
    report = audit(world.store, world.sandbox, "j", START, at(6.2)).assert_ok()
    assert report.sent == [at(s) for s in range(1, 7)]
    assert [report.rows[at(s)].trigger for s in range(4, 7)] == [Trigger.CATCH_UP] * 3


# -- stalls and clock steps ---------------------------------------------------------------------
def test_a_frozen_loop_is_detected_and_caught_up(world: World) -> None:
    world.put("j", "* * * * * *", catch_up="latest")
    daemon = world.daemon()
    daemon.tick()
    world.clock.advance(timedelta(seconds=30))  # SIGSTOP: both clocks moved, the loop did not
    assert daemon.detect_stall(world.clock.now(), world.clock.monotonic())
    report = audit(world.store, world.sandbox, "j", START, world.clock.now()).assert_ok()
    assert report.sent == [at(30)]
    assert len(report.skipped) == 29


def test_a_wall_clock_step_forward_is_a_stall(world: World) -> None:
    world.put("j", "* * * * * *", catch_up="none")
    daemon = world.daemon()
    daemon.tick()
    world.clock.step(timedelta(minutes=10))  # NTP stepped the wall clock; no time passed
    assert daemon.detect_stall(world.clock.now(), world.clock.monotonic())
    report = audit(world.store, world.sandbox, "j", START, world.clock.now()).assert_ok()
    assert report.sent == []
    assert len(report.skipped) == 600
    assert len(world.fires("j")) == 1  # one row with a count


def test_a_wall_clock_step_back_never_refires(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    for s in (1, 2, 3):
        fire_at(daemon, world, at(s))
    world.clock.step(-timedelta(seconds=90))
    assert not daemon.detect_stall(world.clock.now(), world.clock.monotonic())
    daemon.wake()  # nothing is due in the past...
    daemon.planner.post(CatchUp(world.clock.now()))  # ...and a catch-up plans nothing old
    daemon.tick()
    # A restart while the clock is behind does not re-fire either.
    daemon.shutdown()
    world.daemon().tick()
    assert len(world.tasks()) == 3
    assert [f.scheduled_for for f in world.fires("j")] == [at(1), at(2), at(3)]


def test_a_clock_step_either_way_makes_the_timer_look_at_the_clock_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The timer sleeps for (wake-up - now) measured before the step; a step back and then
    # forward again would leave it asleep for as long as the clock had gone back.
    daemon = world.daemon()
    wakeups: list[datetime] = []
    monkeypatch.setattr(daemon.timer, "look_again", lambda: wakeups.append(world.clock.now()))
    daemon.tick()
    world.clock.advance(SECOND)
    daemon.tick()
    assert wakeups == []  # an ordinary pass leaves it alone
    world.clock.step(-timedelta(minutes=1))
    daemon.tick()
    world.clock.step(timedelta(minutes=1))
    daemon.tick()
    assert len(wakeups) == 2


# -- live changes -------------------------------------------------------------------------------
def test_reload_picks_up_added_changed_and_removed_jobs(world: World) -> None:
    world.put("a", "* * * * * *")
    daemon = world.daemon()
    world.put("b", "*/2 * * * * *")
    daemon.tick()
    assert loaded(daemon) == {"a", "b"}
    fire_at(daemon, world, at(2))
    assert [f.scheduled_for for f in world.fires("b")] == [at(2)]
    world.store.remove_job("a")
    world.clock.advance(world.settings.scheduler.reload_interval)
    daemon.tick()
    assert loaded(daemon) == {"b"}
    assert daemon.planner.next_fire_of("a") is None
    fire_at(daemon, world, at(5))
    # Fired at 1 and 2, while loaded; nothing after its removal (b fired on: its own).
    assert [f.scheduled_for for f in world.fires("a")] == [at(1), at(2)]
    assert [f.scheduled_for for f in world.fires("b")] == [at(2), at(4)]


def test_sighup_reloads_at_once(world: World) -> None:
    daemon = world.daemon()
    daemon.tick()
    world.put("late", "* * * * * *")
    daemon.request_reload()
    daemon.tick()  # no reload_interval has passed
    assert "late" in loaded(daemon)


def test_a_paused_stretch_is_not_replayed_on_resume(world: World) -> None:
    world.put("j", "* * * * * *", catch_up="all")
    daemon = world.daemon()
    fire_at(daemon, world, at(1))
    world.store.set_enabled("j", False, now=world.clock.now())
    world.clock.advance(world.settings.scheduler.reload_interval)
    daemon.tick()
    world.clock.set(at(20.5))
    world.store.set_enabled("j", True, now=world.clock.now())
    world.clock.advance(world.settings.scheduler.reload_interval)
    daemon.tick()
    fire_at(daemon, world, at(23))
    assert [f.scheduled_for for f in world.fires("j")] == [at(1), at(21), at(22), at(23)]


def test_a_job_removed_while_its_fire_waits_for_a_retry_still_finishes_it(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule("rate_limit", count=1, retry_after=5))
    fire_at(daemon, world, at(1))
    assert world.fires("j")[0].status is FireStatus.RETRYING
    world.store.remove_job("j")
    run_for(daemon, world, 6)
    (fire,) = world.fires("j")
    assert (fire.status, fire.attempts) == (FireStatus.SUCCEEDED, 2)
    assert world.titles() == [title("j", at(1))]


def test_an_open_fire_of_a_job_removed_before_the_start_is_failed_with_a_reason(
    world: World,
) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule("rate_limit", count=1, retry_after=5))
    fire_at(daemon, world, at(1))
    daemon.shutdown()
    world.store.remove_job("j")
    world.clock.advance(timedelta(seconds=6))
    world.daemon().tick()
    (fire,) = world.fires("j")
    assert fire.status is FireStatus.FAILED
    assert "removed" in (fire.error or "")
    assert world.tasks() == []


# -- job options --------------------------------------------------------------------------------
def test_start_at_and_end_at_bound_the_fires(world: World) -> None:
    world.put("j", "* * * * * *", start_at=at(3), end_at=at(5))
    daemon = world.daemon()
    for s in range(1, 9):
        fire_at(daemon, world, at(s))
    assert [f.scheduled_for for f in world.fires("j")] == [at(3), at(4), at(5)]
    assert daemon.planner.next_fire_of("j") is None  # past end_at: nothing more


def test_max_fires_stops_the_series_and_plans_nothing_after_it(world: World) -> None:
    world.put("j", "* * * * * *", max_fires=2, catch_up="latest")
    daemon = world.daemon()
    for s in range(1, 6):
        fire_at(daemon, world, at(s))
    assert [(f.scheduled_for, f.status) for f in world.fires("j")] == [
        (at(1), FireStatus.SUCCEEDED),
        (at(2), FireStatus.SUCCEEDED),
    ]
    daemon.shutdown()
    world.clock.advance(timedelta(minutes=5))
    world.daemon().tick()
    assert len(world.fires("j")) == 2  # no skip rows for a finished series either


def test_jitter_delays_the_fire_but_the_scheduled_instant_stays_the_key(world: World) -> None:
    world.put("j", "*/10 * * * * *", jitter="8s")
    daemon = world.daemon()
    delay = jitter_delay("j", at(10), timedelta(seconds=8))
    assert delay == jitter_delay("j", at(10), timedelta(seconds=8)) > timedelta(0)
    assert daemon.planner.next_fire_of("j") == at(10) + delay
    world.clock.set(at(10) + delay - timedelta(milliseconds=5))
    daemon.wake()  # the instant has passed, its jittered time not yet
    assert world.fires("j") == []
    world.clock.set(at(10) + delay + timedelta(milliseconds=5))
    daemon.wake()
    (fire,) = world.fires("j")
    assert (fire.scheduled_for, fire.trigger) == (at(10), Trigger.SCHEDULE)
    assert world.titles() == [title("j", at(10))]


def test_a_restart_between_an_instant_and_its_jittered_time_fires_it_on_time(
    world: World,
) -> None:
    world.put("j", "*/10 * * * * *", jitter="8s", catch_up="none")
    instant = at(10)
    while jitter_delay("j", instant, timedelta(seconds=8)) <= timedelta(seconds=3):
        instant += timedelta(seconds=10)
    delay = jitter_delay("j", instant, timedelta(seconds=8))
    world.clock.set(instant + timedelta(seconds=2))  # restarted after the instant, before its time
    daemon = world.daemon()
    assert [f for f in world.fires("j") if f.scheduled_for >= instant] == []  # not "missed"
    assert daemon.planner.next_fire_of("j") == instant + delay
    world.clock.set(instant + delay + timedelta(milliseconds=5))
    daemon.wake()
    fire = row_at(world.store, "j", instant)
    assert fire is not None and (fire.trigger, fire.status) == (
        Trigger.SCHEDULE,
        FireStatus.SUCCEEDED,
    )


def test_run_from_job_attaches_to_the_latest_successful_launch(world: World) -> None:
    world.put("launch", "*/5 * * * * *", action="launch")
    world.put(
        "follow",
        "2-59/5 * * * * *",
        action_keys={"run_from_job": "launch"},
    )
    daemon = world.daemon()
    fire_at(daemon, world, at(2))  # no launch yet: failed, with the reason
    fire_at(daemon, world, at(5))
    fire_at(daemon, world, at(7))
    fire_at(daemon, world, at(10))
    fire_at(daemon, world, at(12))
    failed, first, second = world.fires("follow")
    assert failed.status is FireStatus.FAILED and "no successful launch" in (failed.error or "")
    launches = {f.scheduled_for: f.remote_id for f in world.fires("launch")}
    by_title = {t["title"]: t for t in world.tasks()}
    assert by_title[title("follow", at(7))]["run_id"] == launches[at(5)]
    assert by_title[title("follow", at(12))]["run_id"] == launches[at(10)]
    assert (first.status, second.status) == (FireStatus.SUCCEEDED, FireStatus.SUCCEEDED)


# -- retries and reconciliation -----------------------------------------------------------------
def test_a_retry_is_persisted_and_resumed_by_the_next_daemon(world: World) -> None:
    world.put("j", "* * * * * *")
    first = world.daemon()
    world.sandbox.add_fault(FaultRule("rate_limit", count=1, retry_after=30))
    fire_at(first, world, at(1))
    (fire,) = world.fires("j")
    assert fire.status is FireStatus.RETRYING
    assert fire.next_attempt_at == world.clock.now() + timedelta(seconds=30)  # Retry-After
    first.shutdown()
    second = world.daemon()
    second.tick()
    assert world.fires("j")[0].status is FireStatus.RETRYING  # not due yet
    run_for(second, world, 31)
    (fire,) = world.fires("j")
    assert (fire.status, fire.attempts) == (FireStatus.SUCCEEDED, 2)
    assert len(world.tasks()) == 1


@pytest.mark.parametrize(
    "kind", ["error_after", "drop_after"], ids=["5xx after apply", "dropped after apply"]
)
def test_an_uncertain_fire_is_read_back_and_not_sent_twice(world: World, kind: str) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule(kind, count=1))
    fire_at(daemon, world, at(1))
    assert world.fires("j")[0].status is FireStatus.UNCERTAIN
    run_for(daemon, world, 6)
    (fire,) = world.fires("j")
    (task,) = world.tasks()
    assert (fire.status, fire.remote_id, fire.attempts) == (FireStatus.SUCCEEDED, task["id"], 1)


def test_an_uncertain_fire_that_did_not_arrive_is_sent_again(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule("error_before", count=1, status=502))
    fire_at(daemon, world, at(1))
    assert world.fires("j")[0].status is FireStatus.UNCERTAIN
    run_for(daemon, world, 6)
    (fire,) = world.fires("j")
    assert (fire.status, fire.attempts) == (FireStatus.SUCCEEDED, 2)
    assert len(world.tasks()) == 1


def test_a_stale_retry_snapshot_that_became_uncertain_is_read_back_not_resent(
    world: World,
) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule("rate_limit", count=1, retry_after=1))
    fire_at(daemon, world, at(1))
    snapshot = world.fires("j")[0]
    assert snapshot.status is FireStatus.RETRYING
    job = daemon.planner.job("j")
    assert job is not None
    # A worker took the retry; the server applied it and answered 503.
    world.sandbox.add_fault(FaultRule("error_after", count=1))
    daemon.runner.resume(job, snapshot)
    assert world.fires("j")[0].status is FireStatus.UNCERTAIN
    # A second worker still holding the old `retrying` snapshot must read back, not resend.
    daemon.runner.resume(job, snapshot)
    assert world.fires("j")[0].status is FireStatus.SUCCEEDED
    assert len(world.tasks()) == 1


@pytest.mark.parametrize("status", ["pending", "sending"], ids=["pending", "sending"])
def test_open_fires_of_a_dead_daemon_are_adopted_and_settled_once(
    world: World, status: str
) -> None:
    world.put("j", "* * * * * *")
    world.clock.set(at(1.2))
    # A daemon claimed 10:00:01 (and, for `sending`, sent it: the task exists), then died.
    world.store.heartbeat(
        "dead",
        hostname="elsewhere",
        pid=1,
        started_at=START,
        now=START,
        next_fire_at=None,
        state="running",
    )
    (fire,) = world.store.claim([("j", at(1), Trigger.SCHEDULE)], now=at(1), daemon_id="dead")
    assert fire is not None
    if status == "sending":
        world.store.start_attempts([fire.id], now=at(1), daemon_id="dead")
        runner = world.runner()
        job = job_from_document(world.store.get_job("j").definition, world.settings)
        runner.client.send(runner.request_for(job, fire))
    # Past its heartbeat's `dead_after`, and past the `sending` fire's `request_deadline` (its
    # request can no longer be on its way: docs/guarantees.md, "Several daemons").
    later = max(world.settings.scheduler.dead_after, world.settings.tallyfy.request_deadline)
    world.clock.set(at(1.2) + later + 2 * SECOND)
    world.daemon()  # adopts at startup: the dead daemon's heartbeat is too old
    (row,) = [f for f in world.fires("j") if f.scheduled_for == at(1)]
    (task,) = [t for t in world.tasks() if t["title"] == title("j", at(1))]
    assert (row.status, row.remote_id) == (FireStatus.SUCCEEDED, task["id"])


def test_a_fire_that_never_gets_through_fails_after_max_attempts(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon(base_url="http://127.0.0.1:1/api")  # connection refused: not sent
    fire_at(daemon, world, at(1))
    run_for(daemon, world, 300)
    (fire,) = world.fires("j")
    assert (fire.status, fire.attempts) == (FireStatus.FAILED, 3)


def test_a_fire_not_sent_because_of_shutdown_stays_claimed_and_the_next_start_sends_it(
    world: World,
) -> None:
    class SigtermWhileWaiting(FakeClock):
        """The limiter's clock: SIGTERM arrives while a fire waits for its slot."""

        def wait(self, event: threading.Event, timeout: float) -> bool:
            event.set()  # the daemon's stop event, which the limiter waits on
            return True

    world.put("j", "* * * * * *")
    limiter = RateLimiter(60, clock=SigtermWhileWaiting(START))
    assert limiter.acquire()  # someone took the free slot: the next caller waits
    daemon = world.daemon(rate_limiter=limiter)
    fire_at(daemon, world, at(1))  # claimed, then it waits for a slot, and the stop comes
    assert daemon.stop_event.is_set()
    (fire,) = world.fires("j")
    assert (fire.status, fire.attempts) == (FireStatus.PENDING, 0)  # never marked sending
    assert world.tasks() == []
    daemon.shutdown()
    world.clock.advance(SECOND)
    world.daemon()  # the next start sends it at once (the stopped daemon's claim is adopted)
    fire = row_at(world.store, "j", at(1))
    assert fire is not None and (fire.status, fire.attempts) == (FireStatus.SUCCEEDED, 1)
    assert world.titles().count(title("j", at(1))) == 1


# -- the loop itself ----------------------------------------------------------------------------
class FlakyStore(Store):
    """A store whose job polling fails `failures` times (a locked or restarting database)."""

    failures = 0

    def jobs_revision(self) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("store is unavailable: database is locked")
        return super().jobs_revision()

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        if self.failures:
            raise StoreUnavailable("store is unavailable: database is locked")
        super().heartbeat(*args, **kwargs)


def test_a_store_outage_costs_a_pass_not_the_daemon(world: World) -> None:
    world.put("j", "* * * * * *")
    flaky = FlakyStore(world.store.engine)
    daemon = world.daemon(store=flaky)
    flaky.failures = 2
    world.put("k", "* * * * * *")
    world.clock.advance(world.settings.scheduler.reload_interval)
    assert daemon.tick() >= 0  # no exception
    assert "k" not in loaded(daemon)
    world.clock.advance(world.settings.scheduler.reload_interval)
    daemon.tick()
    world.clock.advance(world.settings.scheduler.reload_interval)
    daemon.tick()
    assert "k" in loaded(daemon)


def test_the_heartbeat_records_the_next_fire_and_stop(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    (info,) = world.store.daemons()
    assert (info.id, info.state) == (daemon.daemon_id, "starting")
    daemon.tick()
    (info,) = world.store.daemons()
    assert info.state == "running" and info.last_seen == world.clock.now()
    assert info.next_fire_at is not None
    world.clock.advance(world.settings.scheduler.heartbeat_interval)
    daemon.tick()
    assert world.store.daemons()[0].last_seen == world.clock.now()
    daemon.shutdown()
    (info,) = world.store.daemons()
    assert info.state == "stopped"


def test_tick_asks_to_be_woken_for_the_next_retry(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    assert daemon.tick() == pytest.approx(1.0)
    world.sandbox.add_fault(FaultRule("rate_limit", count=1, retry_after=1))
    fire_at(daemon, world, at(1))
    world.clock.advance(timedelta(milliseconds=600))
    assert 0 < daemon.tick() < 1.0


@pytest.mark.parametrize(
    ("manual", "skip_rows"),
    [(1, [(2, 5)]), (3, [(1, 2), (4, 5)]), (5, [(1, 4)])],
    ids=["at the first skipped instant", "in the middle", "at the last"],
)
def test_a_skip_range_is_cut_around_a_manual_fire_at_a_scheduled_instant(
    world: World, manual: int, skip_rows: list[tuple[int, int]]
) -> None:
    world.put("j", "* * * * * *", catch_up="none")
    world.clock.set(at(manual + 0.2))
    # While no daemon ran, someone fired the job by hand `--at` one of its scheduled instants.
    runner = world.runner()
    job = job_from_document(world.store.get_job("j").definition, world.settings)
    assert runner.fire(job, at(manual), Trigger.MANUAL) is not None
    world.clock.set(at(5.5))
    world.daemon()
    report = audit(world.store, world.sandbox, "j", START, at(5.5)).assert_ok()
    assert report.sent == [at(manual)]
    skips = [f for f in world.fires("j") if f.status is FireStatus.SKIPPED]
    assert [(f.scheduled_for, f.skipped_until or f.scheduled_for) for f in skips] == [
        (at(a), at(b)) for a, b in skip_rows
    ]
    assert sum(f.skipped_count or 1 for f in skips) == 4


class FailingStore(Store):
    """A store whose named methods fail the next `failures[name]` calls (StoreUnavailable)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: dict[str, int] = {}

    def _maybe_fail(self, name: str) -> None:
        if self.failures.get(name):
            self.failures[name] -= 1
            raise StoreUnavailable("store is unavailable: database is locked")

    def claim(self, *args: Any, **kwargs: Any) -> list[Fire | None]:
        self._maybe_fail("claim")
        return super().claim(*args, **kwargs)

    def finish(self, *args: Any, **kwargs: Any) -> list[Fire | None]:
        self._maybe_fail("finish")
        return super().finish(*args, **kwargs)


def failing_daemon(world: World) -> tuple[Daemon, FailingStore]:
    store = FailingStore(world.store.engine)
    return world.daemon(store=store), store


def test_a_store_failure_while_claiming_is_one_log_line_and_planned_again(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.put("j", "* * * * * *")
    daemon, store = failing_daemon(world)
    store.failures["claim"] = 1
    fire_at(daemon, world, at(1))
    assert world.fires("j") == []
    daemon.tick()  # the store answers again: the job is planned again at once
    (fire,) = world.fires("j")
    assert (fire.scheduled_for, fire.status) == (at(1), FireStatus.SUCCEEDED)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback: an expected fault
    assert any("store unavailable while planning job=j" in r.getMessage() for r in caplog.records)


def test_a_fire_stranded_by_a_store_failure_is_read_back_on_the_next_pass(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon, store = failing_daemon(world)
    store.failures["finish"] = 1  # the API created the task; recording the outcome failed
    fire_at(daemon, world, at(1))
    assert world.fires("j")[0].status is FireStatus.SENDING
    daemon.tick()  # one second later, not OWN_ORPHAN_AFTER (2 min) later
    (fire,) = world.fires("j")
    (task,) = world.tasks()
    assert (fire.status, fire.remote_id, fire.attempts) == (FireStatus.SUCCEEDED, task["id"], 1)


def test_an_unowned_fire_a_command_may_still_be_sending_is_left_alone_for_a_while(
    world: World,
) -> None:
    world.put("j", "* * * * * *")
    world.clock.set(at(1.2))
    # `tallyfy-scheduler fire` claimed and started sending (no daemon id); its request is
    # still on its way when a daemon starts: reading back now would find nothing, resend.
    (fire,) = world.store.claim([("j", at(1), Trigger.MANUAL)], now=world.clock.now())
    assert fire is not None
    world.store.start_attempts([fire.id], now=world.clock.now())
    daemon = world.daemon()
    run_for(daemon, world, 60)
    assert world.fires("j")[0].status is FireStatus.SENDING
    assert world.tasks() == []
    run_for(daemon, world, 70)  # past OWN_ORPHAN_AFTER: the command is long gone
    (fire,) = world.fires("j")
    assert (fire.status, fire.attempts) == (FireStatus.SUCCEEDED, 2)
    assert len(world.tasks()) == 1


def test_read_backs_back_off_through_a_long_outage_then_settle_once(world: World) -> None:
    world.put("j", "* * * * * *")
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule("error_after", count=1, path_contains="/tasks"))
    fire_at(daemon, world, at(1))  # applied, answered 503: uncertain
    # Then every request fails for ten minutes, read-backs included.
    world.sandbox.add_fault(FaultRule("error_before", method=None, path_contains="/tasks"))
    waits = []
    for _ in range(600):
        run_for(daemon, world, 1)
        fire = world.fires("j")[0]
        if fire.next_attempt_at is not None and (not waits or waits[-1][0] != fire.updated_at):
            waits.append((fire.updated_at, fire.next_attempt_at - fire.updated_at))
    steps = [w for _, w in waits]
    assert len(steps) <= 12  # not one read-back every few seconds for ten minutes
    assert steps[-1] >= 3 * steps[0]
    world.sandbox.clear_faults()
    run_for(daemon, world, world.settings.retry.max_backoff.total_seconds() + 10)
    (fire,) = world.fires("j")
    assert (fire.status, fire.attempts) == (FireStatus.SUCCEEDED, 1)
    assert len(world.tasks()) == 1


# -- cutting a skip range around existing rows (a pure function) --------------------------------
EVERY_MINUTE = parse_schedule("* * * * *", "UTC")
BASE = datetime(2026, 5, 4, 10, tzinfo=UTC)


def minute(n: int) -> datetime:
    return BASE + timedelta(minutes=n)


def row(first: int, last: int | None = None) -> Fire:
    return Fire(
        id=first,
        job_id="j",
        scheduled_for=minute(first),
        trigger=Trigger.SCHEDULE,
        status=FireStatus.SKIPPED if last is not None else FireStatus.SUCCEEDED,
        attempts=0,
        next_attempt_at=None,
        first_attempt_at=None,
        remote_id=None,
        http_status=None,
        error=None,
        field_errors=None,
        skipped_count=None if last is None else last - first + 1,
        skipped_until=None if last is None else minute(last),
        claimed_by=None,
        created_at=BASE,
        updated_at=BASE,
    )


@given(
    spans=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 5), st.booleans()), max_size=6),
    first=st.integers(0, 30),
    length=st.integers(0, 20),
)
def test_gaps_are_exactly_the_instants_no_row_accounts_for(
    spans: list[tuple[int, int, bool]], first: int, length: int
) -> None:
    rows: list[Fire] = []
    taken: set[int] = set()
    for start, extra, is_range in sorted(spans):
        end = start + extra if is_range else start
        if any(m in taken for m in range(start, end + 1)):
            continue  # rows never overlap in a store
        taken.update(range(start, end + 1))
        rows.append(row(start, end if is_range else None))
    last = first + length
    touching = [
        r
        for r in rows
        if r.scheduled_for <= minute(last) and (r.skipped_until or r.scheduled_for) >= minute(first)
    ]

    def index(instant: datetime) -> int:
        return int((instant - BASE).total_seconds() // 60)

    runs = gaps(EVERY_MINUTE, minute(first), minute(last), touching)
    got = [m for lo, hi in runs for m in range(index(lo), index(hi) + 1)]
    assert got == [m for m in range(first, last + 1) if m not in taken]


def test_seq_counts_the_successful_fires_before_the_instant(world: World) -> None:
    world.put("j", "* * * * * *", action_keys={"title": "{job} #{seq} {fire_utc:%H:%M:%S}"})
    daemon = world.daemon()
    world.sandbox.add_fault(FaultRule("rate_limit", count=1, retry_after=2))
    fire_at(daemon, world, at(1))  # 429: retried later, still #1
    fire_at(daemon, world, at(2))  # not yet: #1 has not succeeded
    run_for(daemon, world, 3)
    fire_at(daemon, world, at(6))
    # 10:00:02 went out while 10:00:01 waited: one success before neither of them.
    assert world.titles() == [
        "j #1 10:00:01",
        "j #1 10:00:02",
        "j #3 10:00:03",
        "j #4 10:00:04",
        "j #5 10:00:05",
        "j #6 10:00:06",
    ]
