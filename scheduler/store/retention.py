"""History retention: pruning old finished history rows without losing anything the engine
needs (docs/operations.md, "History retention"), and the lease that lets one daemon at a
time do it on a shared store.

What pruning keeps exact, for every job:

- **the watermark** `job_marks.pruned_before`: every pruned row of the job lies strictly
  before it, and it never passes the job's oldest open fire (a fire still to be sent or
  settled). History below it no longer says whether an instant was sent, so claims,
  backfills and manual fires of instants below it are refused (at most once);
- **`seq`** (1 + successful fires before an instant): `pruned_successes` counts the pruned
  succeeded rows, all before the watermark, and every instant that may still be sent is at or
  after it, so `pruned_successes` + the succeeded rows left before the instant is exact.
  `max_fires` adds it the same way;
- **the cursor** (the newest instant the history accounts for): `pruned_until` is the newest
  instant a pruned row accounted for, so a job whose rows are all pruned keeps its cursor;
- **`run_from_job`**: a job's newest succeeded fire is never pruned.

Each batch is one short transaction (the marks and the deletes together), so a crash between
batches loses nothing and fires wait at most one batch for SQLite's write lock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from scheduler.clock import to_utc
from scheduler.lifecycle import OPEN, FireStatus, Trigger
from scheduler.store.database import Database, chunks
from scheduler.store.ledger import last_instant
from scheduler.store.tables import FIRES, JOB_MARKS, META

__all__ = ["PruneReport", "Retention", "TERMINAL"]

# Rows pruning may delete: a fire that is over. Everything else is open (`lifecycle.OPEN`).
TERMINAL = frozenset({FireStatus.SUCCEEDED, FireStatus.FAILED, FireStatus.SKIPPED})
DEFAULT_BATCH = 500
_LEASE_PREFIX = "lease:"
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PruneReport:
    """What a prune did (or, with `dry_run`, would do): rows deleted, per job."""

    rows: int
    by_job: dict[str, int]
    complete: bool  # False: stopped early (asked to, or its batches ran out)


class Retention:
    """The store's history pruning and leases (a `Store` mixin); see the module docstring."""

    _db: Database

    def prune_history(
        self,
        *,
        older_than: datetime,
        now: datetime,
        batch: int = DEFAULT_BATCH,
        dry_run: bool = False,
        keep_going: Callable[[], bool] | None = None,
    ) -> PruneReport:
        """Delete finished rows whose every instant is before `older_than`, `batch` at a time
        (one transaction each), oldest first; `keep_going()` is asked before each batch
        (False: stop, what is done stays done). `dry_run` writes nothing and counts."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        cutoff = to_utc(older_than)
        now = to_utc(now)
        after: tuple[datetime, int] | None = None
        by_job: dict[str, int] = {}
        total = 0
        while True:
            if keep_going is not None and not keep_going():
                return PruneReport(total, by_job, complete=False)
            with self._db.tx(write=not dry_run) as conn:
                found = _candidates(conn, cutoff, after, batch)
                if not found:
                    return PruneReport(total, by_job, complete=True)
                after = (found[-1].scheduled_for, found[-1].id)
                floors = _open_floors(conn, {row.job_id for row in found})
                chosen = [r for r in found if r.scheduled_for < floors.get(r.job_id, _FAR_FUTURE)]
                if chosen and not dry_run:
                    deleted = _delete(conn, chosen)
                    chosen = [r for r in chosen if r.id in deleted]
                    _mark_pruned(self._db, conn, chosen, cutoff, floors, now)
            for row in chosen:
                by_job[row.job_id] = by_job.get(row.job_id, 0) + 1
            total += len(chosen)

    def pruned_before(self, job_id: str) -> datetime | None:
        """The job's watermark: history before it may have been pruned (None: never pruned)."""
        with self._db.tx() as conn:
            value: datetime | None = conn.scalar(
                select(JOB_MARKS.c.pruned_before).where(JOB_MARKS.c.job_id == job_id)
            )
        return value

    def watermarks(self) -> dict[str, datetime]:
        """Every job's watermark (jobs never pruned have none)."""
        with self._db.tx() as conn:
            rows = conn.execute(
                select(JOB_MARKS.c.job_id, JOB_MARKS.c.pruned_before).where(
                    JOB_MARKS.c.pruned_before.is_not(None)
                )
            ).all()
        return {job_id: at for job_id, at in rows}

    def take_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Hold lease `name` until `now + ttl`: True if `holder` has it now (it was free,
        ran out, or was already its own, and is renewed). One conditional write, so of two
        daemons asking at once exactly one gets it."""
        now = to_utc(now)
        key = _LEASE_PREFIX + name
        value = f"{holder}|{(now + ttl).isoformat()}"
        with self._db.tx(write=True) as conn:
            current = conn.scalar(select(META.c.value).where(META.c.key == key))
            if current is None:
                stmt = (
                    self._db.insert(META)
                    .values(key=key, value=value)
                    .on_conflict_do_nothing(index_elements=[META.c.key])
                )
                return bool(conn.execute(stmt).rowcount)
            owner, _, until = current.rpartition("|")
            if owner != holder and datetime.fromisoformat(until) > now:
                return False
            changed = conn.execute(
                update(META).where(META.c.key == key, META.c.value == current).values(value=value)
            ).rowcount
            return bool(changed)

    def release_lease(self, name: str, holder: str) -> None:
        """Give lease `name` back if `holder` has it."""
        key = _LEASE_PREFIX + name
        with self._db.tx(write=True) as conn:
            conn.execute(
                delete(META).where(META.c.key == key, META.c.value.startswith(f"{holder}|"))
            )


# -- one batch ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    job_id: str
    scheduled_for: datetime
    last: datetime
    status: str
    trigger: str


def _candidates(
    conn: Connection, cutoff: datetime, after: tuple[datetime, int] | None, batch: int
) -> list[_Row]:
    """The next `batch` finished rows wholly before `cutoff`, by (instant, id), leaving out
    each job's newest succeeded fire (`run_from_job` attaches to it)."""
    newer = FIRES.alias("newer")
    newer_success = exists().where(
        newer.c.job_id == FIRES.c.job_id,
        newer.c.scheduled_for > FIRES.c.scheduled_for,
        newer.c.status == str(FireStatus.SUCCEEDED),
    )
    query = (
        select(
            FIRES.c.id,
            FIRES.c.job_id,
            FIRES.c.scheduled_for,
            last_instant(),
            FIRES.c.status,
            FIRES.c.trigger,
        )
        .where(
            FIRES.c.scheduled_for < cutoff,
            last_instant() < cutoff,
            # `status || ''`: not the status index (most rows are finished), so the instants
            # are walked in order by their index and the walk stops at `batch`; with it,
            # SQLite sorted the whole table for every batch (1.5 s a batch at 1M rows).
            FIRES.c.status.concat("").in_(sorted(str(s) for s in TERMINAL)),
            or_(FIRES.c.status != str(FireStatus.SUCCEEDED), newer_success),
        )
        .order_by(FIRES.c.scheduled_for, FIRES.c.id)
        .limit(batch)
    )
    if after is not None:
        at, fire_id = after
        # `>=` on its own: SQLite ranges over the index only on a plain bound (the OR alone
        # made each batch walk from the start, 2.4 s at 1M rows).
        query = query.where(
            FIRES.c.scheduled_for >= at,
            or_(FIRES.c.scheduled_for > at, FIRES.c.id > fire_id),
        )
    return [_Row(*row) for row in conn.execute(query)]


def _open_floors(conn: Connection, job_ids: Iterable[str]) -> dict[str, datetime]:
    """Per job, its oldest open fire's instant: nothing at or after it is pruned (its `seq`
    counts the succeeded rows before it). Open rows are few, and the status index finds them."""
    # Every open row, not only those of `job_ids`: filtered by job, SQLite would walk those
    # jobs' whole history by the unique key instead of the few open rows by the status index.
    # No GROUP BY either: SQLite would scan the unique key for its order.
    wanted = set(job_ids)
    floors: dict[str, datetime] = {}
    rows = conn.execute(
        select(FIRES.c.job_id, FIRES.c.scheduled_for).where(
            FIRES.c.status.in_(sorted(str(s) for s in OPEN))
        )
    )
    for job_id, at in rows:
        if job_id in wanted and (job_id not in floors or at < floors[job_id]):
            floors[job_id] = at
    return floors


def _delete(conn: Connection, rows: list[_Row]) -> set[int]:
    """Delete the rows still finished (a row reopened meanwhile stays); the ids deleted."""
    deleted: set[int] = set()
    terminal = sorted(str(s) for s in TERMINAL)
    for chunk in chunks(sorted(row.id for row in rows)):
        result = conn.execute(
            delete(FIRES)
            # `status || ''`: found by id; by the status index SQLite walked every finished
            # row (160 ms a batch at 1M rows).
            .where(FIRES.c.id.in_(chunk), FIRES.c.status.concat("").in_(terminal))
            .returning(FIRES.c.id)
        )
        deleted.update(result.scalars())
    return deleted


def _mark_pruned(
    db: Database,
    conn: Connection,
    rows: list[_Row],
    cutoff: datetime,
    floors: dict[str, datetime],
    now: datetime,
) -> None:
    """Raise each job's watermark and add what its deleted rows counted (same transaction):
    one prebuilt upsert, executed once for all the batch's jobs."""
    per_job: dict[str, dict[str, Any]] = {}
    for row in rows:
        mark = per_job.setdefault(row.job_id, {"successes": 0, "until": None})
        if row.status == str(FireStatus.SUCCEEDED):
            mark["successes"] += 1
        if row.trigger != str(Trigger.MANUAL):  # manual fires are no scheduled instant
            mark["until"] = row.last if mark["until"] is None else max(mark["until"], row.last)
    if not per_job:
        return
    conn.execute(
        _upsert_marks(db.dialect),
        [
            {
                "job_id": job_id,
                "pruned_before": min(cutoff, floors.get(job_id, _FAR_FUTURE)),
                "pruned_successes": mark["successes"],
                "pruned_until": mark["until"],
                "updated_at": now,
            }
            for job_id, mark in per_job.items()
        ],
    )


@functools.cache
def _upsert_marks(dialect: str) -> Any:
    """INSERT a job's marks, or on conflict raise its watermark and cursor and add its count
    (built once per dialect: building it per job cost more than running it)."""
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(JOB_MARKS)
    old, new = JOB_MARKS.c, stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[old.job_id],
        set_={
            "pruned_before": _greatest(old.pruned_before, new.pruned_before),
            "pruned_successes": old.pruned_successes + new.pruned_successes,
            "pruned_until": _greatest(old.pruned_until, new.pruned_until),
            "updated_at": new.updated_at,
        },
    )


def _greatest(old: Any, new: Any) -> Any:
    """The later of two nullable instants, in SQL on both backends (NULL: the other one)."""
    return case((old.is_(None), new), (new.is_(None), old), (new > old, new), else_=old)
