"""The one seam through which code reads time, and small helpers for UTC instants.

Logic never calls `datetime.now()`: it takes `now` (an aware UTC datetime) or a `Clock`.
The daemon reads the clock once per pass and passes the value down.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall time for "what is due", monotonic time for "how long to wait"."""

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for pacing and timeouts)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until `event` is set or `timeout` seconds pass; True if the event was set."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class FakeClock:
    """A clock that moves only when told to (tests); `wait` advances it instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self._now = to_utc(start)
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.advance(timedelta(seconds=max(0.0, timeout)))
        return event.is_set()

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta
            self._mono += max(0.0, delta.total_seconds())

    def set(self, instant: datetime) -> None:
        """Jump the wall clock (forwards or backwards); monotonic time does not go back."""
        with self._lock:
            new = to_utc(instant)
            self._mono += max(0.0, (new - self._now).total_seconds())
            self._now = new


def to_utc(instant: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are refused (they hide bugs)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()} has no offset")
    return instant.astimezone(UTC)


def utc_iso(instant: datetime) -> str:
    """`2026-03-08T07:00:00Z`: the form instants are sent to the API in."""
    return to_utc(instant).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with an offset (or `Z`) -> aware UTC datetime; ValueError otherwise."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (write e.g. 2026-03-08T09:00:00-05:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise ValueError(f"{text!r} is outside the years 1-9999 in UTC") from None
