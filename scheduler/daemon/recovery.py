"""Open fires nobody is carrying: retries that came due, uncertain fires, orphans to adopt.

Runs on the daemon's main thread, once per pass; what it finds goes to the planner as a
`Resume` message (the send pool refuses a fire it already holds, so offering one again is
harmless). Adoption is a conditional UPDATE, so of two daemons adopting the same fire exactly
one wins.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from scheduler.clock import utc_iso
from scheduler.lifecycle import FireStatus
from scheduler.store import DaemonInfo, Fire, Store

log = logging.getLogger(__name__)

# A pending/sending fire of our own, or an unowned one (claimed by a `fire` or `backfill`
# command), that has not moved for this long is resumed: longer than any request lasts (connect
# plus read timeout, 40 s by default), so nobody is still sending it.
OWN_ORPHAN_AFTER = timedelta(minutes=2)
# How often open fires of dead daemons (and uncertain fires) are looked for, at most (seconds).
ORPHAN_SCAN_EVERY = 5.0


class Recovery:
    """Finds the open fires this daemon should carry forward (`daemon_id` is ours).

    `in_flight`: how long after a fire was marked `sending` its request may still be on its
    way to the API (the client's `request_deadline`, plus the first read-back delay). A
    `sending` fire is adopted, and so read back, only once that has passed: a daemon killed a
    moment ago may have handed its request to the API, which applies it a moment later, and a
    read-back before then finds nothing and sends it again.
    """

    def __init__(
        self,
        store: Store,
        *,
        daemon_id: str,
        dead_after: timedelta,
        in_flight: timedelta = timedelta(0),
    ) -> None:
        self.store = store
        self.daemon_id = daemon_id
        self.dead_after = dead_after
        self.in_flight = in_flight
        self.hostname = socket.gethostname()
        self._last_scan = -1e18

    def scan_every(self) -> float:
        """Seconds between orphan scans: often enough to notice a dead daemon in time."""
        return min(self.dead_after.total_seconds() / 2, ORPHAN_SCAN_EVERY)

    def open_fires(self, now: datetime, mono: float, *, startup: bool = False) -> list[Fire]:
        """Retries due now, and (at most every `scan_every` seconds, and at startup) uncertain
        fires due for a read-back and orphans, adopted. Raises StoreError."""
        fires = self.store.due_retries(now)
        if startup or mono - self._last_scan >= self.scan_every():
            self._last_scan = mono
            fires += self._orphans(now, startup=startup)
        return fires

    def _orphans(self, now: datetime, *, startup: bool) -> list[Fire]:
        """Open fires nobody carries: ours that stopped moving, those of dead daemons, and
        unowned ones (claimed by a `fire` or `backfill` command) left for long, the latter
        two adopted (in one batch); oldest instant first."""
        found = []
        dead = self._dead_daemons(now)
        # A dead daemon is one silent for `dead_after`, so its rows are at least that old; one
        # whose process is gone (this host) may have left rows of any age, and its `sending`
        # ones are taken once `in_flight` has passed.
        stale = min(self.dead_after, OWN_ORPHAN_AFTER, self.in_flight or self.dead_after)
        long_ago = now - OWN_ORPHAN_AFTER
        for fire in self.store.unsettled(older_than=now if startup else now - stale):
            owner = fire.claimed_by
            mine = owner == self.daemon_id
            if fire.status is FireStatus.UNCERTAIN:
                if fire.next_attempt_at is not None and fire.next_attempt_at > now:
                    continue
            elif fire.status is FireStatus.SENDING and now - fire.updated_at < self.in_flight:
                continue  # its request may still be on its way: read back once it cannot be
            elif (mine or owner is None) and fire.updated_at >= long_ago:
                # Ours and recent: a worker has it queued. Unowned and recent: a `fire` or
                # `backfill` command may be sending it right now, and a read-back before its
                # request lands would find nothing and send it twice. No request lasts this long.
                continue
            if not (mine or owner is None or owner in dead):
                continue
            found.append(fire)
        others = [fire for fire in found if fire.claimed_by != self.daemon_id]
        adopted: dict[int, Fire] = {}
        for fire, taken in zip(
            others, self.store.adopt(others, new_owner=self.daemon_id, now=now), strict=True
        ):
            if taken is not None:  # else another daemon was quicker
                log.info(
                    "adopted fire job=%s scheduled_for=%s from=%s status=%s",
                    fire.job_id,
                    utc_iso(fire.scheduled_for),
                    fire.claimed_by,
                    taken.status,
                )
                adopted[fire.id] = taken
        return [
            fire if fire.claimed_by == self.daemon_id else adopted[fire.id]
            for fire in found
            if fire.claimed_by == self.daemon_id or fire.id in adopted
        ]

    def _dead_daemons(self, now: datetime) -> set[str]:
        dead = set()
        limit = now - self.dead_after
        for info in self.store.daemons():
            if info.id == self.daemon_id:
                continue
            if info.state == "stopped" or info.last_seen < limit or self._gone(info):
                dead.add(info.id)
        return dead

    def _gone(self, info: DaemonInfo) -> bool:
        """A daemon on this host whose process no longer exists is dead now, not in 30 s."""
        if info.hostname != self.hostname or info.pid == os.getpid():
            return False
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
