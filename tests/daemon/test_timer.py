"""The timer (APScheduler's one job) and the next fire times the planner gives it.

The timer runs APScheduler's real thread here, with wake-ups a fraction of a second ahead;
each wait is bounded. The planner's side is checked with the daemon built without threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_helpers import write_job

from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import Secret, Settings, StoreSettings
from scheduler.cron import jitter_delay, parse_schedule
from scheduler.daemon import Daemon
from scheduler.daemon.timer import Timer
from scheduler.definitions import load_job_files
from scheduler.notify import Notifier
from scheduler.store import JobDocument, Store


class Wakes:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.event = threading.Event()

    def __call__(self) -> None:
        self.times.append(time.monotonic())
        self.event.set()


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def timer(wakes: Wakes) -> Iterator[Timer]:
    made = Timer(wakes)
    made.start()
    yield made
    made.shutdown()


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_it_wakes_once_when_the_time_asked_for_comes(timer: Timer, wakes: Wakes) -> None:
    asked = time.monotonic()
    timer.wake_at(soon(0.3))
    assert wakes.event.wait(3)
    assert wakes.times[0] - asked >= 0.25
    time.sleep(0.3)
    assert len(wakes.times) == 1  # served: nothing more until asked again


def test_a_time_already_past_is_served_at_once(timer: Timer, wakes: Wakes) -> None:
    timer.wake_at(soon(-5))
    assert wakes.event.wait(1)


def test_a_new_time_replaces_the_old_one_and_none_cancels(timer: Timer, wakes: Wakes) -> None:
    timer.wake_at(soon(0.2))
    timer.wake_at(soon(5))  # later: the first is gone
    timer.wake_at(None)
    time.sleep(0.5)
    assert wakes.times == []
    timer.wake_at(soon(0.1))
    assert wakes.event.wait(3)


def test_asked_again_after_a_wake_up_it_wakes_again(timer: Timer, wakes: Wakes) -> None:
    for _ in range(3):
        wakes.event.clear()
        timer.wake_at(soon(0.05))
        assert wakes.event.wait(3)
    assert len(wakes.times) == 3


def test_before_start_and_after_shutdown_nothing_is_called(wakes: Wakes) -> None:
    timer = Timer(wakes)
    timer.wake_at(soon(-1))
    time.sleep(0.2)
    assert wakes.times == [] and not timer.alive
    timer.start()  # asked before the start: served now
    assert wakes.event.wait(2)
    timer.shutdown()
    assert not timer.alive
    timer.wake_at(soon(-1))
    time.sleep(0.2)
    assert len(wakes.times) == 1


def test_loaded_jobs_get_the_engines_next_instant_and_the_timer_the_earliest(
    tmp_path: Path,
) -> None:
    # What the bulk-loading APScheduler store used to pin: every job loaded at startup has the
    # next fire time the engine gives (jitter included), and the earliest is the wake-up.
    start = datetime(2026, 5, 4, 10, 0, 0, 500000, tzinfo=UTC)
    clock = FakeClock(start)
    store = Store.open(f"sqlite:///{tmp_path / 't.db'}")
    store.init_schema()
    settings = Settings(store=StoreSettings(url=store.url))
    jobs = {
        "daily-ny": ("0 9 * * *", "America/New_York", None),
        "weekly-london": ("30 9 * * MON", "Europe/London", None),
        "yearly-kolkata": ("0 0 1 1 *", "Asia/Kolkata", None),
        "jittered": ("*/10 * * * *", "UTC", "5m"),
    }
    for job_id, (schedule, zone, jitter) in jobs.items():
        extra = {"jitter": jitter} if jitter else {}
        path = write_job(tmp_path / "jobs", job_id, schedule, timezone=zone, **extra)
        (job,) = load_job_files([path], settings, clock.now())
        doc = JobDocument(job.id, job.to_document(), job.schedule_key, True, job.source)
        store.apply([doc], prune=False, now=clock.now())
    client = TallyfyClient("http://127.0.0.1:1/api", "org", Secret("t"))
    daemon = Daemon(settings, store, client, clock=clock, notifier=Notifier({}), threaded=False)
    try:
        daemon.prepare()
        expected = {}
        for job_id, (schedule, zone, jitter) in jobs.items():
            instant = parse_schedule(schedule, zone, job_id=job_id).next_after(start)
            assert instant is not None
            if jitter:
                instant += jitter_delay(job_id, instant, timedelta(minutes=5))
            expected[job_id] = instant
            assert daemon.planner.next_fire_of(job_id) == instant, job_id
        first = min(expected, key=lambda job_id: expected[job_id])
        assert daemon.next_fire_at() == expected[first]
        assert daemon.status_line() == f"4 jobs; next fire {first} at " + expected[first].strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    finally:
        daemon.shutdown()
        client.close()
        store.close()
