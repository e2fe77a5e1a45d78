"""A client-side rate limit shared by every thread that talks to Tallyfy.

The limiter is GCRA (the "generic cell rate algorithm", a token bucket kept as one timestamp):
requests are spaced `60 / per_minute` seconds apart, with `burst` of them allowed back to back
after a quiet spell. Each caller *reserves* the next free slot under a lock and then waits for
it outside the lock, so callers are served in arrival order and the measured rate equals the
limit (no slot is lost to wake-up latency, unlike "check, sleep, check again").

`delay(seconds)` pushes every caller back after the server answered 429 with `Retry-After`:
new reservations start after the pause, and callers already waiting for an earlier slot
re-reserve when they wake.

Time comes from a `Clock` (monotonic for pacing), so tests use `FakeClock`, whose `wait`
advances time instead of sleeping.
"""

from __future__ import annotations

import threading

from scheduler.clock import Clock, SystemClock


class RateLimiter:
    """At most `per_minute` acquisitions per minute across all threads, `burst` at once.

    `acquire()` blocks until the caller may send one request; it returns False as soon as
    `stop` is set (shutdown), giving its reserved slot back when no one queued behind it.
    """

    def __init__(self, per_minute: int, *, clock: Clock | None = None, burst: int = 1) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be greater than 0, not {per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.per_minute = per_minute
        self.burst = burst
        self._clock: Clock = clock or SystemClock()
        self._interval = 60.0 / per_minute
        # How far ahead of the schedule a caller may go: the bucket's depth, in seconds.
        self._tolerance = (burst - 1) * self._interval
        self._lock = threading.Lock()
        # Theoretical arrival time: when the next request would be due at exactly the limit.
        self._tat = self._clock.monotonic()
        self._paused_until = self._clock.monotonic()
        # Used when the caller passes no stop event; never set.
        self._never = threading.Event()

    def set_rate(self, per_minute: int) -> None:
        """Change the limit from now on (`systemctl reload` with a new config)."""
        if per_minute <= 0:
            raise ValueError(f"per_minute must be greater than 0, not {per_minute}")
        with self._lock:
            self.per_minute = per_minute
            self._interval = 60.0 / per_minute
            self._tolerance = (self.burst - 1) * self._interval

    @property
    def interval(self) -> float:
        """Seconds between two requests at the limit."""
        return self._interval

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for the next free slot; True when the caller may send, False if `stop` was set."""
        event = stop if stop is not None else self._never
        while True:
            if event.is_set():
                return False
            slot, reservation_end = self._reserve()
            while True:
                remaining = slot - self._clock.monotonic()
                if remaining <= 0:
                    break
                if self._clock.wait(event, remaining):
                    self._release(reservation_end)
                    return False
            with self._lock:
                # A 429 arrived while we waited: this slot now falls inside the pause.
                if self._clock.monotonic() < self._paused_until:
                    continue
            return True

    def delay(self, seconds: float) -> None:
        """Push every caller back by `seconds` from now (the server said 429, Retry-After)."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock.monotonic() + seconds
            self._paused_until = max(self._paused_until, until)
            self._tat = max(self._tat, until)

    def _reserve(self) -> tuple[float, float]:
        """Take the next slot: (when the caller may go, the TAT its reservation produced)."""
        with self._lock:
            now = self._clock.monotonic()
            tat = max(self._tat, now, self._paused_until)
            slot = max(now, tat - self._tolerance, self._paused_until)
            self._tat = tat + self._interval
            return slot, self._tat

    def _release(self, reservation_end: float) -> None:
        """Give an unused slot back, if no later caller has reserved after it."""
        with self._lock:
            if self._tat == reservation_end:
                self._tat -= self._interval
