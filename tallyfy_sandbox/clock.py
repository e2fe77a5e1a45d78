"""The sandbox's view of time: a two-method protocol and the real clocks.

Declared here rather than imported from `scheduler.clock` so that the sandbox depends on
nothing in the product it checks. The protocol is structural: any object with `now()` and
`monotonic()` fits, so the product's test clock (`scheduler.clock.FakeClock`) can be passed
to `SandboxServer(clock=...)` to make `created_at` stamps and the rate limit deterministic.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall time stamps records; monotonic time drives the rate limit's rolling window."""

    def now(self) -> datetime:
        """The current instant, aware (the sandbox stores it in UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
