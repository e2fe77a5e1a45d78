"""The shared client-side rate limit: pacing, bursts, 429 pauses, shutdown, real-time accuracy."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from scheduler.clock import FakeClock, SystemClock
from scheduler.ratelimit import RateLimiter

START = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def elapsed_after(limiter: RateLimiter, clock: FakeClock, n: int) -> float:
    """Fake seconds that pass while `n` callers acquire one after another."""
    start = clock.monotonic()
    for _ in range(n):
        assert limiter.acquire()
    return clock.monotonic() - start


@pytest.mark.parametrize(
    ("per_minute", "burst", "n", "expected_seconds"),
    [
        (60, 1, 1, 0.0),
        (60, 1, 5, 4.0),
        (120, 1, 5, 2.0),
        (100, 1, 101, 60.0),
        (60, 3, 3, 0.0),
        (60, 3, 5, 2.0),
    ],
    ids=[
        "first-is-free",
        "one-per-second",
        "two-per-second",
        "hundred-per-minute",
        "burst-of-three-at-once",
        "burst-then-paced",
    ],
)
def test_it_spaces_acquisitions_at_the_limit(
    per_minute: int, burst: int, n: int, expected_seconds: float
) -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(per_minute, clock=clock, burst=burst)
    assert elapsed_after(limiter, clock, n) == pytest.approx(expected_seconds)


def test_it_refills_the_burst_after_a_quiet_spell() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(60, clock=clock, burst=3)
    elapsed_after(limiter, clock, 3)
    clock.set(clock.now().replace(minute=5))  # five quiet minutes
    assert elapsed_after(limiter, clock, 3) == pytest.approx(0.0)


def test_it_does_not_bank_more_than_the_burst() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(60, clock=clock, burst=2)
    clock.set(clock.now().replace(hour=9))  # two idle hours earn no more than `burst`
    assert elapsed_after(limiter, clock, 4) == pytest.approx(2.0)


def test_delay_pushes_the_next_caller_back() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(60, clock=clock)
    assert limiter.acquire()
    limiter.delay(10)
    assert elapsed_after(limiter, clock, 1) == pytest.approx(10.0)
    # Afterwards the normal pace resumes.
    assert elapsed_after(limiter, clock, 1) == pytest.approx(1.0)


def test_delay_of_zero_or_less_changes_nothing() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(60, clock=clock)
    limiter.delay(0)
    limiter.delay(-5)
    assert elapsed_after(limiter, clock, 2) == pytest.approx(1.0)


def test_it_returns_false_at_once_when_stop_is_already_set() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(60, clock=clock)
    stop = threading.Event()
    stop.set()
    assert limiter.acquire(stop) is False
    assert clock.monotonic() == 1000.0


class StopsOnce(FakeClock):
    """A FakeClock on which someone sets the stop event during the first wait."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.armed = True

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if self.armed:
            self.armed = False
            event.set()
            return True
        return super().wait(event, timeout)


def test_a_stopped_caller_gives_its_slot_back() -> None:
    clock = StopsOnce(START)
    limiter = RateLimiter(60, clock=clock)
    assert limiter.acquire()
    assert limiter.acquire(threading.Event()) is False
    # The slot the stopped caller had reserved (t+1) goes to the next caller, not t+2.
    assert elapsed_after(limiter, clock, 1) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("per_minute", "burst"), [(0, 1), (-1, 1), (60, 0)], ids=["zero-rate", "negative", "no-burst"]
)
def test_it_rejects_a_limit_that_allows_nothing(per_minute: int, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(per_minute, burst=burst)


def test_a_real_stop_wakes_a_blocked_caller_within_a_moment() -> None:
    limiter = RateLimiter(1, clock=SystemClock())  # one a minute: the second caller waits 60 s
    assert limiter.acquire()
    stop = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(limiter.acquire(stop)))
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    stop.set()
    waiter.join(5)
    assert result == [False]
    assert time.monotonic() - started < 1.0


def test_a_real_delay_holds_back_a_caller_already_waiting() -> None:
    # Slots 1 s apart: the waiter's slot (+1 s) is far enough out that a busy host cannot run
    # it before `delay` is called, which a 0.1 s spacing once allowed.
    limiter = RateLimiter(60, clock=SystemClock())
    assert limiter.acquire()
    returned_at: list[float] = []
    started = time.monotonic()

    def wait_then_stamp() -> None:
        limiter.acquire()
        returned_at.append(time.monotonic())

    waiter = threading.Thread(target=wait_then_stamp)
    waiter.start()
    time.sleep(0.05)  # the waiter now holds the slot at +1 s
    assert not returned_at
    limiter.delay(1.5)
    waiter.join(5)
    assert returned_at and returned_at[0] - started >= 1.45


@pytest.mark.slow
def test_the_measured_rate_is_within_a_few_percent_of_the_limit_across_threads() -> None:
    """1200/min for ~3 s from 6 threads: the achieved rate is the limit, within 3%."""
    per_minute = 1200
    limiter = RateLimiter(per_minute)
    stamps: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 3.0

    def worker() -> None:
        while time.monotonic() < deadline:
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    stamps.sort()
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60
    assert measured == pytest.approx(per_minute, rel=0.03)
    # No one-second window holds more than the limit allows (+1 for the window edge, +1 jitter).
    allowed = per_minute / 60 + 2
    for i, t0 in enumerate(stamps):
        in_window = sum(1 for t in stamps[i:] if t < t0 + 1.0)
        assert in_window <= allowed
