"""Reports: what `history`, `status`, `jobs list` and `doctor` show, and the daemons'
heartbeats they tell a live daemon by.

Reads over the fire history that no lifecycle step depends on (the ledger has those), and the
`daemons` table: each daemon's heartbeat row, written by the daemon, read here and by the
recovery of a live daemon deciding which daemons are dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, union_all

from scheduler.clock import to_utc
from scheduler.lifecycle import OPEN, FireStatus
from scheduler.store.database import Database
from scheduler.store.ledger import Fire, last_instant, read_fires
from scheduler.store.tables import DAEMONS, FIRES, JOB_MARKS

__all__ = ["DaemonInfo", "Reports"]


@dataclass(frozen=True)
class DaemonInfo:
    """The last heartbeat of one daemon process."""

    id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen: datetime
    next_fire_at: datetime | None
    state: str


class Reports:
    """The store's reports and heartbeats (a `Store` mixin); see the module docstring."""

    _db: Database

    # -- the history ----------------------------------------------------------------------------
    def history(
        self,
        job_id: str | None = None,
        *,
        status: FireStatus | str | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[Fire]:
        """Fires newest first (by scheduled instant), optionally of one job, in one status,
        and touching instants at or after `since` (a skip range counts by its last instant);
        `offset` passes over that many first (the dashboard's pages)."""
        query = select(FIRES)
        if job_id is not None:
            query = query.where(FIRES.c.job_id == job_id)
        if status is not None:
            query = query.where(FIRES.c.status == str(FireStatus(status)))
        if since is not None:
            query = query.where(last_instant() >= to_utc(since))
        query = query.order_by(FIRES.c.scheduled_for.desc(), FIRES.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        return read_fires(self._db, query)

    def recent_fires(self, job_ids: Sequence[str], per_job: int) -> dict[str, list[Fire]]:
        """The newest `per_job` fires of each job (by scheduled instant), newest first, in one
        query: a UNION ALL of one LIMITed index range per job (the dashboard's strips of
        fates). Not a window over every row of each job: a job with 100,000 fires would rank
        them all (~400 ms; bench/README.md, the dashboard)."""
        if not job_ids:
            return {}
        parts = [
            select(FIRES)
            .where(FIRES.c.job_id == job_id)
            .order_by(FIRES.c.scheduled_for.desc(), FIRES.c.id.desc())
            .limit(per_job)
            .subquery()
            for job_id in job_ids
        ]
        # SQLite allows no ORDER BY / LIMIT inside a compound SELECT: each part is a subquery.
        query = union_all(*[select(*part.c) for part in parts])
        found: dict[str, list[Fire]] = {job_id: [] for job_id in job_ids}
        for fire in read_fires(self._db, query):
            found[fire.job_id].append(fire)
        for fires in found.values():
            fires.sort(key=lambda f: (f.scheduled_for, f.id), reverse=True)
        return found

    def success_counts(self) -> dict[str, int]:
        """Per job, the number of succeeded fires (those pruned from the history too)."""
        with self._db.tx() as conn:
            rows = conn.execute(
                select(FIRES.c.job_id, func.count())
                .where(FIRES.c.status == str(FireStatus.SUCCEEDED))
                .group_by(FIRES.c.job_id)
            ).all()
            pruned = conn.execute(
                select(JOB_MARKS.c.job_id, JOB_MARKS.c.pruned_successes).where(
                    JOB_MARKS.c.pruned_successes > 0
                )
            ).all()
        counts = {job_id: int(n) for job_id, n in rows}
        for job_id, n in pruned:  # history retention: pruned successes still count
            counts[job_id] = counts.get(job_id, 0) + int(n)
        return counts

    def last_successes(self) -> dict[str, datetime]:
        """Per job, the scheduled instant of its newest succeeded fire (one grouped query)."""
        with self._db.tx() as conn:
            rows = conn.execute(
                select(FIRES.c.job_id, func.max(FIRES.c.scheduled_for))
                .where(FIRES.c.status == str(FireStatus.SUCCEEDED))
                .group_by(FIRES.c.job_id)
            ).all()
        return {job_id: to_utc(instant) for job_id, instant in rows}

    def open_counts(self) -> dict[FireStatus, int]:
        """The number of fires in each open status (every one of them, zeros included)."""
        counts = dict.fromkeys(sorted(OPEN), 0)
        with self._db.tx() as conn:
            rows = conn.execute(
                select(FIRES.c.status, func.count())
                .where(FIRES.c.status.in_(sorted(str(s) for s in OPEN)))
                .group_by(FIRES.c.status)
            ).all()
        for status, n in rows:
            counts[FireStatus(status)] = int(n)
        return counts

    # -- daemons --------------------------------------------------------------------------------
    def heartbeat(
        self,
        daemon_id: str,
        *,
        hostname: str,
        pid: int,
        started_at: datetime,
        now: datetime,
        next_fire_at: datetime | None,
        state: str,
    ) -> None:
        """Insert or refresh this daemon's row (`last_seen = now`)."""
        values = {
            "id": daemon_id,
            "hostname": hostname,
            "pid": pid,
            "started_at": to_utc(started_at),
            "last_seen": to_utc(now),
            "next_fire_at": None if next_fire_at is None else to_utc(next_fire_at),
            "state": state,
        }
        stmt = self._db.insert(DAEMONS).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[DAEMONS.c.id],
            set_={name: stmt.excluded[name] for name in values if name != "id"},
        )
        with self._db.tx(write=True) as conn:
            conn.execute(stmt)

    def daemons(self) -> list[DaemonInfo]:
        """Every daemon that has sent a heartbeat, oldest first (a stopped one says so in
        `state`)."""
        with self._db.tx() as conn:
            rows = conn.execute(
                select(DAEMONS).order_by(DAEMONS.c.started_at, DAEMONS.c.id)
            ).mappings()
            return [DaemonInfo(**row) for row in rows]
