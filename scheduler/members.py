"""Member emails -> user ids: the organization's members, read through the API and cached.

A job may name a member by email where the API takes a user id (owners, step assignees, roles,
process users, the owner and the starter: docs/jobs.md, "Members by email"). The ids are
looked up when a fire is sent, never when a job is applied (`jobs apply` stays offline), from
one `MemberDirectory` per runner: the members are read once (`GET /users`, every page), again
once a day, and again when an email is not among them (a member added since), at most once a
minute so that a job naming someone who never joins does not read the whole list each fire.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from scheduler.clock import Clock

REFRESH_EVERY = timedelta(days=1)
RECHECK_UNKNOWN_AFTER = timedelta(minutes=1)


class MemberDirectory:
    """The organization's members by email (compared without regard to case).

    `list_users` reads every member (`TallyfyClient.list_users`; its ApiError passes through,
    and the cache is then left as it was). Safe to share between threads: one lock, so fires
    needing a fresh list at the same time read it once; the clock decides when it is stale.
    """

    def __init__(
        self,
        list_users: Callable[[], list[dict[str, Any]]],
        clock: Clock,
        *,
        refresh_every: timedelta = REFRESH_EVERY,
        recheck_unknown_after: timedelta = RECHECK_UNKNOWN_AFTER,
    ) -> None:
        self._list_users = list_users
        self._clock = clock
        self.refresh_every = refresh_every
        self.recheck_unknown_after = recheck_unknown_after
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._read_at: datetime | None = None

    def user_id(self, email: str) -> int | None:
        """The id of the member with this email, or None when no member has it (after
        reading the members again, unless they were read less than a minute ago)."""
        key = email.casefold()
        with self._lock:
            now = self._clock.now()
            if self._read_at is None or now - self._read_at >= self.refresh_every:
                self._read(now)
            found = self._ids.get(key)
            assert self._read_at is not None
            if found is None and now - self._read_at >= self.recheck_unknown_after:
                self._read(now)
                found = self._ids.get(key)
            return found

    def _read(self, now: datetime) -> None:
        ids: dict[str, int] = {}
        for user in self._list_users():
            email, user_id = user.get("email"), user.get("id")
            if isinstance(email, str) and type(user_id) is int:
                ids[email.casefold()] = user_id
        self._ids, self._read_at = ids, now
