"""Fault injection for the sandbox: rules that delay, refuse or break chosen requests.

A `FaultRule` says what goes wrong and for which requests. The server asks a `FaultBook` twice
per request: before handling it (`latency`, `rate_limit`, `error_before`) and, only when the
handler succeeded (2xx), after applying it (`delay_after`, `error_after`, `drop_after`). The
"after" kinds are the ones that matter for exactly-once: the API did the work, but the client
never learns it (guarantees.md, "Reconcile").

`SlidingWindowLimit` is the sandbox's real rate limit (tallyfy-api.md section 5.2): at most N
requests per rolling 60 seconds per token; over it, 429 with `Retry-After`, not applied.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

from tallyfy_sandbox.errors import InvalidInput, problem

#: What a rule does; see FaultRule.
FAULT_KINDS = (
    "latency",
    "rate_limit",
    "error_before",
    "error_after",
    "drop_after",
    "delay_after",
)
BEFORE_KINDS = frozenset({"latency", "rate_limit", "error_before"})
AFTER_KINDS = frozenset({"error_after", "drop_after", "delay_after"})
# Kinds that only add time; every matching rule of these applies. Of the other kinds, the first
# matching rule in insertion order answers the request (later ones are not consumed).
SLEEP_KINDS = frozenset({"latency", "delay_after"})

#: The rolling window of the sandbox's rate limit.
RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class FaultRule:
    """One injected fault and the requests it applies to.

    kind:
        ``latency``: sleep `seconds` before handling. ``rate_limit``: answer 429 without
        applying (header ``Retry-After: retry_after`` when given, ``X-RateLimit-Remaining: 0``,
        body ``{"message": ..., "code": "RATE_LIMIT_EXCEEDED"}``). ``error_before``: answer
        `status` without applying. ``error_after``: apply the request, then answer `status`.
        ``drop_after``: apply, then close the connection without any response.
        ``delay_after``: apply, then sleep `seconds` before responding.
    method:
        HTTP method to match (case-insensitive); None matches any. Default "POST".
    path_contains:
        Substring of the request target (path and query string); None matches any.
    count:
        Fire for the next `count` matching requests, then stop; None means every one.
    probability:
        Chance (0..1) that a matching request triggers the rule, drawn from a
        `random.Random(seed)` private to the rule, so a seeded run repeats exactly.
    """

    kind: str
    method: str | None = "POST"
    path_contains: str | None = None
    count: int | None = None
    probability: float = 1.0
    seed: int | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: str | int | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        bad = []
        if self.kind not in FAULT_KINDS:
            bad.append(
                problem(f"must be one of {', '.join(FAULT_KINDS)}", key="kind", value=self.kind)
            )
        if self.count is not None and (isinstance(self.count, bool) or self.count < 0):
            bad.append(
                problem("must be a whole number >= 0 or null", key="count", value=self.count)
            )
        if not 0.0 <= self.probability <= 1.0:
            bad.append(
                problem("must be between 0 and 1", key="probability", value=self.probability)
            )
        if self.seconds < 0:
            bad.append(problem("must be >= 0", key="seconds", value=self.seconds))
        if not 100 <= self.status <= 599:
            bad.append(problem("must be an HTTP status (100-599)", key="status", value=self.status))
        if bad:
            raise InvalidInput(bad)

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        """A rule from its JSON form (the admin endpoint); InvalidInput names any bad key."""
        if not isinstance(data, dict):
            raise InvalidInput(problem("a fault rule must be a JSON object", value=data))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput([problem("unknown key", key=k) for k in unknown])
        if "kind" not in data:
            raise InvalidInput(problem("is required", key="kind"))
        try:
            return cls(**data)
        except TypeError as exc:  # e.g. a string where a number belongs
            raise InvalidInput(problem(str(exc))) from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON form accepted by `from_dict`."""
        return asdict(self)

    def matches(self, method: str, target: str) -> bool:
        """Whether the request is one this rule is about (before count and probability)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in target


class _Armed:
    """A rule plus its mutable bookkeeping: how many firings remain, its own RNG."""

    __slots__ = ("rule", "remaining", "rng", "fired")

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.remaining = rule.count
        self.rng = random.Random(rule.seed)
        self.fired = 0

    def try_fire(self) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rule.probability < 1.0 and self.rng.random() >= self.rule.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        return True


class FaultBook:
    """The active fault rules, in insertion order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._armed.append(_Armed(rule))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def rules(self) -> list[dict[str, Any]]:
        """Every rule with how often it fired and how many firings remain (for /_sandbox/stats)."""
        with self._lock:
            return [
                {**a.rule.to_dict(), "fired": a.fired, "remaining": a.remaining}
                for a in self._armed
            ]

    def __bool__(self) -> bool:
        return bool(self._armed)

    def take(self, kinds: frozenset[str], method: str, target: str) -> list[FaultRule]:
        """The rules of `kinds` that fire for this request, consuming their counts.

        Every firing sleep kind is returned; of the other kinds, only the first that fires.
        """
        if not self._armed:  # the common case: no lock, no work
            return []
        out: list[FaultRule] = []
        terminal = False
        with self._lock:
            for armed in self._armed:
                rule = armed.rule
                if rule.kind not in kinds or not rule.matches(method, target):
                    continue
                is_sleep = rule.kind in SLEEP_KINDS
                if not is_sleep and terminal:
                    continue
                if armed.try_fire():
                    out.append(rule)
                    terminal = terminal or not is_sleep
        return out


class SlidingWindowLimit:
    """At most `per_minute` requests per key in any rolling 60 s; None disables the limit.

    Refused requests are not counted (Laravel's throttle checks before it records a hit), so a
    client that waits `Retry-After` seconds gets through.
    """

    def __init__(self, per_minute: int | None = None) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self.per_minute = per_minute

    def set(self, per_minute: int | None) -> None:
        if per_minute is not None and (isinstance(per_minute, bool) or per_minute < 1):
            raise InvalidInput(problem("must be a whole number >= 1 or null", key="per_minute"))
        with self._lock:
            self.per_minute = per_minute
            self._hits.clear()

    def hit(self, key: str, now: float) -> tuple[bool, int, int]:
        """Record one request at monotonic time `now`.

        Returns (allowed, remaining, retry_after_seconds); retry_after is 0 when allowed.
        """
        with self._lock:
            limit = self.per_minute
            if limit is None:
                return True, 0, 0
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - RATE_WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= limit:
                wait = hits[0] + RATE_WINDOW_SECONDS - now
                return False, 0, max(1, math.ceil(wait))
            hits.append(now)
            return True, limit - len(hits), 0
