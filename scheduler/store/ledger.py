"""The fire ledger: the history rows, the fire state machine over them, and the reads the
daemon drives it with.

Every write is one operation of `scheduler.lifecycle.TRANSITIONS`, batch-shaped: it takes
a sequence of items, applies them in ONE committed transaction, and answers one result per
item, in order: the row as it now is, or None where the operation did not apply. One fire is a
batch of one; there is no single-fire twin of any operation. Exactly once per instant
(guarantees.md) rests on two database mechanisms, identical on both backends:

- `claim` and `record_skips` INSERT on `UNIQUE (job_id, scheduled_for)` with ON CONFLICT DO
  NOTHING: an instant that already has a row (another daemon's claim, an earlier run) is None;
- `start_attempts`, `finish`, `defer`, `adopt` and `reopen` are conditional UPDATEs
  (`... WHERE id IN (...) AND status IN <lifecycle sources>`), so of two racers exactly one
  sees its row change; the other gets None and must leave the fire alone.

Every write reads its rows back in the same statement (RETURNING; database.py), except a
batch of outcomes, written as one executemany UPDATE and one SELECT (~25 us a fire instead of
~80 us with RETURNING per fire), falling back to fire by fire when one was moved on.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import BindParameter

from scheduler.clock import to_utc
from scheduler.errors import FireNotFound
from scheduler.lifecycle import (
    RELEASED,
    TRANSITIONS,
    FireStatus,
    Op,
    Trigger,
    sources,
    targets,
)
from scheduler.store.database import Database, chunks
from scheduler.store.tables import FIRES, JOB_MARKS, UTCDateTime

__all__ = ["Claim", "Fire", "FireLedger", "Outcome", "Skip", "last_instant", "read_fires"]


# -- what goes in and comes out -----------------------------------------------------------------
@dataclass(frozen=True)
class Fire:
    """One row of the history: a (job, scheduled instant), or a skipped range of them.

    All instants are aware UTC. `error` holds the failure message, or the reason for a skip.
    A skip row standing for several instants has `skipped_count` > 1 and `skipped_until`
    (the last of them).
    """

    id: int
    job_id: str
    scheduled_for: datetime
    trigger: Trigger
    status: FireStatus
    attempts: int
    next_attempt_at: datetime | None
    first_attempt_at: datetime | None
    remote_id: str | None
    http_status: int | None
    error: str | None
    field_errors: dict[str, list[str]] | None
    skipped_count: int | None
    skipped_until: datetime | None
    claimed_by: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self, zone: ZoneInfo | None = None) -> dict[str, Any]:
        """The `history --json` form (cli.md): instants ISO 8601 with their offset in `zone`."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "scheduled_for": _iso(self.scheduled_for, zone),
            "trigger": str(self.trigger),
            "status": str(self.status),
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at, zone),
            "remote_id": self.remote_id,
            "http_status": self.http_status,
            "error": self.error,
            "skipped_count": self.skipped_count,
            "skipped_until": _iso(self.skipped_until, zone),
            "created_at": _iso(self.created_at, zone),
            "updated_at": _iso(self.updated_at, zone),
        }


@dataclass(frozen=True)
class Outcome:
    """What `finish` (or `defer`) records for one fire.

    `status` is one of `lifecycle.targets(Op.FINISH)` (of `Op.DEFER` for `defer`). `retrying`
    and `held` need `next_attempt_at` and release the fire (`claimed_by` = NULL) so any
    daemon may take the retry or the recheck;
    `uncertain` keeps `next_attempt_at` (when to read back) when given; every other outcome
    clears it.
    """

    fire_id: int
    status: FireStatus
    remote_id: str | None = None
    http_status: int | None = None
    error: str | None = None
    field_errors: Mapping[str, Sequence[str]] | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Skip:
    """Instants of a job not fired, for `record_skips`: one row for `count` instants from
    `scheduled_for` to `until` (the last of them; needed when `count` > 1), with a reason."""

    job_id: str
    scheduled_for: datetime
    reason: str
    count: int = 1
    until: datetime | None = None
    trigger: Trigger = Trigger.CATCH_UP


Claim = tuple[str, datetime, Trigger]  # (job id, scheduled instant, trigger)


def fire_from_row(row: RowMapping) -> Fire:
    """A `fires` row (every column) as a Fire."""
    return Fire(
        id=row["id"],
        job_id=row["job_id"],
        scheduled_for=row["scheduled_for"],
        trigger=Trigger(row["trigger"]),
        status=FireStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        first_attempt_at=row["first_attempt_at"],
        remote_id=row["remote_id"],
        http_status=row["http_status"],
        error=row["error"],
        field_errors=None if row["field_errors"] is None else json.loads(row["field_errors"]),
        skipped_count=row["skipped_count"],
        skipped_until=row["skipped_until"],
        claimed_by=row["claimed_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def read_fires(db: Database, query: Any) -> list[Fire]:
    """The fires a SELECT of every column finds, in its order, in one short transaction."""
    with db.tx() as conn:
        return [fire_from_row(row) for row in conn.execute(query).mappings()]


def last_instant() -> ColumnElement[datetime]:
    """The last instant a row accounts for: `skipped_until` for a skip range, else its own."""
    return func.coalesce(FIRES.c.skipped_until, FIRES.c.scheduled_for)


# -- the ledger ---------------------------------------------------------------------------------
class FireLedger:
    """The store's fire history and its state machine (a `Store` mixin); module docstring."""

    _db: Database

    # -- writes: one lifecycle operation each ---------------------------------------------------
    def claim(
        self, instants: Sequence[Claim], *, now: datetime, daemon_id: str | None = None
    ) -> list[Fire | None]:
        """Claim each (job, instant, trigger): insert its `pending` row, owned by `daemon_id`
        (None: by nobody, as the CLI claims). None for an instant that already has a row.

        One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING (SQLAlchemy's
        "insertmanyvalues"): ~25 us a row. All or nothing when the store fails.
        """
        now = to_utc(now)
        (status,) = targets(Op.CLAIM)
        rows = [
            {
                "job_id": job_id,
                "scheduled_for": to_utc(scheduled_for),
                "trigger": str(Trigger(trigger)),
                "status": str(status),
                "attempts": 0,
                "claimed_by": daemon_id,
                "created_at": now,
                "updated_at": now,
            }
            for job_id, scheduled_for, trigger in instants
        ]
        return self._insert(rows)

    def record_skips(self, skips: Sequence[Skip], *, now: datetime) -> list[Fire | None]:
        """Record each range of instants not fired as one `skipped` row; None for a range
        whose first instant already has a row. ValueError for a malformed range (nothing is
        written)."""
        now = to_utc(now)
        (status,) = targets(Op.SKIP)
        rows = []
        for skip in skips:
            first = to_utc(skip.scheduled_for)
            last = None if skip.until is None else to_utc(skip.until)
            if skip.count < 1:
                raise ValueError("count must be at least 1")
            if skip.count > 1 and last is None:
                raise ValueError("a skip row for several instants needs `until`")
            if last is not None and last < first:
                raise ValueError("until must not be before scheduled_for")
            rows.append(
                {
                    "job_id": skip.job_id,
                    "scheduled_for": first,
                    "trigger": str(Trigger(skip.trigger)),
                    "status": str(status),
                    "attempts": 0,
                    "error": skip.reason,
                    "skipped_count": skip.count,
                    "skipped_until": last,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        return self._insert(rows)

    def start_attempts(
        self, fire_ids: Sequence[int], *, now: datetime, daemon_id: str | None = None
    ) -> list[Fire | None]:
        """Mark each fire `sending` and count the attempt; the caller then owns it.

        Applies to a fire in a source status of `Op.START` that is unowned or owned by
        `daemon_id` (without one: unowned only); None for any other (someone else moved it
        on or holds it, or there is no such fire). `first_attempt_at` is kept once set.
        """
        if not fire_ids:
            return []
        params = {"b_now": to_utc(now), "b_owner": daemon_id}
        stmt = _statements(self._db.dialect).start[daemon_id is not None]
        with self._db.tx(write=True) as conn:
            return _by_id(fire_ids, _updated(conn, stmt, fire_ids, params))

    def finish(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[Fire | None]:
        """Record each outcome (see `Outcome`) for a fire in a source status of `Op.FINISH`;
        None for a fire no longer there (someone else moved it on), or no such fire.

        ValueError, with nothing written, for an outcome `finish` cannot record. All or
        nothing when the store fails.
        """
        return self._settle(Op.FINISH, outcomes, now)

    def defer(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[Fire | None]:
        """Put off each fire not started yet (a source status of `Op.DEFER`): `held` or
        `retrying` (with `next_attempt_at`), `skipped` or `failed`, by what the look-ups before
        its start found; no attempt is counted. None for a fire no longer there (someone
        started or replaced it meanwhile). A held fire is released (`claimed_by` = NULL) like a
        retry: whichever daemon finds it due takes it."""
        return self._settle(Op.DEFER, outcomes, now)

    def _settle(self, op: Op, outcomes: Sequence[Outcome], now: datetime) -> list[Fire | None]:
        changes = [(outcome.fire_id, _outcome_values(outcome, now, op)) for outcome in outcomes]
        if not changes:
            return []
        sql = _statements(self._db.dialect)
        with self._db.tx(write=True) as conn:
            if len(changes) > 1 and conn.dialect.supports_sane_multi_rowcount:
                done = _finish_together(conn, sql, changes, op)
                if done is not None:
                    return done
            results: list[Fire | None] = []
            for fire_id, values in changes:
                stmt = sql.outcome(values, op=op)
                row = conn.execute(stmt, _bound(fire_id, values)).mappings().first()
                results.append(None if row is None else fire_from_row(row))
            return results

    def mark_closed(self, fire_ids: Sequence[int], *, now: datetime) -> None:
        """Remember that what these succeeded fires created is closed (completed, archived or
        deleted in Tallyfy): the overlap check never asks about it again."""
        with self._db.tx(write=True) as conn:
            for chunk in chunks(list(fire_ids)):
                conn.execute(
                    update(FIRES)
                    .where(FIRES.c.id.in_(chunk), FIRES.c.remote_closed_at.is_(None))
                    .values(remote_closed_at=to_utc(now))
                )

    def adopt(self, fires: Sequence[Fire], *, new_owner: str, now: datetime) -> list[Fire | None]:
        """Take over open fires from the daemons that held them (dead ones).

        Each applies only while the fire is still in a source status of `Op.ADOPT` and still
        owned by whoever owned it in the given snapshot (`claimed_by`), so of two adopters
        exactly one wins (the other gets None). A `sending` fire becomes `uncertain` (its
        request may have left: read it back before any resend); retrying fires can be
        adopted too (they are normally unowned).
        """
        if not fires:
            return []
        params = {"b_now": to_utc(now), "b_new": new_owner}
        sql = _statements(self._db.dialect)
        by_owner: dict[str | None, list[int]] = {}
        for fire in fires:
            by_owner.setdefault(fire.claimed_by, []).append(fire.id)
        adopted: dict[int, Fire] = {}
        with self._db.tx(write=True) as conn:
            for owner, ids in by_owner.items():
                stmt = sql.adopt_unowned if owner is None else sql.adopt_owned
                adopted.update(_updated(conn, stmt, ids, {**params, "b_owner": owner}))
        return _by_id([fire.id for fire in fires], adopted)

    def reopen(
        self,
        fire_ids: Sequence[int],
        trigger: Trigger,
        *,
        now: datetime,
        daemon_id: str | None = None,
    ) -> list[Fire | None]:
        """Turn failed fires, or skip rows of a single instant (`lifecycle.reopenable`), back
        into `pending` claims with `trigger`, owned by `daemon_id`: for `backfill`, which may
        send them since they were never sent. None for a fire in another state (or a skip row
        standing for several instants)."""
        if not fire_ids:
            return []
        params = {"b_now": to_utc(now), "b_owner": daemon_id, "b_trigger": str(Trigger(trigger))}
        stmt = _statements(self._db.dialect).reopen
        with self._db.tx(write=True) as conn:
            return _by_id(fire_ids, _updated(conn, stmt, fire_ids, params))

    def retry_now(self, *, http_statuses: Collection[int], now: datetime) -> int:
        """Make the retrying fires that wait because of one of these HTTP statuses (401, 403:
        the credentials) due now, once the token is renewed; how many. Their status stays
        `retrying` (no lifecycle operation: only when to try again changes)."""
        now = to_utc(now)
        with self._db.tx(write=True) as conn:
            changed = conn.execute(
                update(FIRES)
                .where(
                    FIRES.c.status == str(FireStatus.RETRYING),
                    FIRES.c.http_status.in_(sorted(http_statuses)),
                    FIRES.c.next_attempt_at > now,
                )
                .values(next_attempt_at=now)
            ).rowcount
        return int(changed or 0)

    # -- reads that drive the lifecycle ---------------------------------------------------------
    def get_fire(self, fire_id: int) -> Fire:
        """The fire with this id; FireNotFound if there is none."""
        with self._db.tx() as conn:
            row = conn.execute(_statements(self._db.dialect).fire_by_id, {"b_id": fire_id})
            found = row.mappings().first()
        if found is None:
            raise FireNotFound(fire_id)
        return fire_from_row(found)

    def fires_touching(self, job_id: str, first: datetime, last: datetime) -> list[Fire]:
        """The job's rows accounting for any instant in [first, last] (a skip range counts by
        its span), oldest first: what a new skip range over [first, last] must leave out."""
        return read_fires(
            self._db,
            select(FIRES)
            .where(
                FIRES.c.job_id == job_id,
                FIRES.c.scheduled_for <= to_utc(last),
                last_instant() >= to_utc(first),
            )
            .order_by(FIRES.c.scheduled_for, FIRES.c.id),
        )

    def due_retries(self, now: datetime, limit: int = 1000) -> list[Fire]:
        """Released fires (`retrying`, `held`) whose `next_attempt_at` has come, oldest due
        first."""
        params = {"b_now": to_utc(now), "b_limit": limit}
        with self._db.tx() as conn:
            rows = conn.execute(_statements(self._db.dialect).due_retries, params).mappings()
            return [fire_from_row(row) for row in rows]

    def unsettled(self, *, older_than: datetime) -> list[Fire]:
        """Fires to reconcile: pending/sending rows not updated since `older_than` (their daemon
        likely died), and every uncertain row; oldest instant first."""
        stale = and_(
            _status_is((FireStatus.PENDING, FireStatus.SENDING)),
            FIRES.c.updated_at < to_utc(older_than),
        )
        return read_fires(
            self._db,
            select(FIRES)
            .where(or_(stale, FIRES.c.status == str(FireStatus.UNCERTAIN)))
            .order_by(FIRES.c.scheduled_for, FIRES.c.id),
        )

    def next_retry_at(self) -> datetime | None:
        """The earliest `next_attempt_at` of a released fire (`retrying`, `held`)."""
        with self._db.tx() as conn:
            value: datetime | None = conn.scalar(_statements(self._db.dialect).next_retry_at)
        return value

    def accounted_until(self) -> dict[str, datetime]:
        """Per job, the newest scheduled instant the history accounts for (manual fires are
        not scheduled instants, so they do not count). One grouped query."""
        with self._db.tx() as conn:
            rows = conn.execute(
                select(FIRES.c.job_id, func.max(last_instant()))
                .where(FIRES.c.trigger != str(Trigger.MANUAL))
                .group_by(FIRES.c.job_id)
            ).all()
            # What pruning removed still counts (a job whose rows are all gone keeps its cursor).
            pruned = conn.execute(
                select(JOB_MARKS.c.job_id, JOB_MARKS.c.pruned_until).where(
                    JOB_MARKS.c.pruned_until.is_not(None)
                )
            ).all()
        accounted = {job_id: instant for job_id, instant in rows}
        for job_id, instant in pruned:
            if job_id not in accounted or accounted[job_id] < instant:
                accounted[job_id] = instant
        return accounted

    def count_fires(self, job_id: str, *, statuses: Collection[FireStatus] | None = None) -> int:
        """The job's fires (rows, so a skip range counts once), only in `statuses` if given;
        succeeded fires pruned from the history count too (history retention)."""
        query = select(func.count()).where(FIRES.c.job_id == job_id)
        if statuses is not None:
            query = query.where(_status_is(statuses))
        with self._db.tx() as conn:
            count = int(conn.scalar(query) or 0)
            if statuses is not None and FireStatus.SUCCEEDED in statuses:
                count += int(conn.scalar(_pruned_successes(job_id)) or 0)  # history retention
            return count

    def success_count(self, job_id: str, *, before: datetime | None = None) -> int:
        """Succeeded fires of the job, only those scheduled strictly before `before` if given
        (so the template value `seq` of a late fire is what it would have been on time).

        Those pruned from the history count too (`job_marks.pruned_successes`): every one of
        them lies before the job's watermark, and no instant below it is ever sent again
        (store/retention.py), so the sum is exact."""
        params: dict[str, Any] = {"b_job": job_id}
        if before is not None:
            params["b_before"] = to_utc(before)
        stmt = _statements(self._db.dialect).success_count[before is not None]
        with self._db.tx() as conn:
            return int(conn.scalar(stmt, params) or 0)

    def latest_success(self, job_id: str) -> Fire | None:
        """The job's succeeded fire with the newest scheduled instant."""
        found = read_fires(
            self._db,
            select(FIRES)
            .where(FIRES.c.job_id == job_id, FIRES.c.status == str(FireStatus.SUCCEEDED))
            .order_by(FIRES.c.scheduled_for.desc(), FIRES.c.id.desc())
            .limit(1),
        )
        return found[0] if found else None

    def remote_ids(self, job_id: str, *, exclude_fire_id: int | None = None) -> set[str]:
        """The API ids already recorded for the job's fires (reconcile must not reuse them)."""
        query = select(FIRES.c.remote_id).where(
            FIRES.c.job_id == job_id, FIRES.c.remote_id.is_not(None)
        )
        if exclude_fire_id is not None:
            query = query.where(FIRES.c.id != exclude_fire_id)
        with self._db.tx() as conn:
            return {str(value) for value in conn.scalars(query)}

    def maybe_running(self, job_id: str, *, exclude_fire_id: int) -> list[Fire]:
        """The job's fires whose launch or task may still be open, newest instant first: those
        in flight (`sending`, `uncertain`: their request may have arrived) and succeeded ones
        not yet known to be closed (`mark_closed`). The overlap check (scheduler/overlap.py)."""
        in_flight = _status_is((FireStatus.SENDING, FireStatus.UNCERTAIN))
        unclosed = and_(
            FIRES.c.status == str(FireStatus.SUCCEEDED),
            FIRES.c.remote_id.is_not(None),
            FIRES.c.remote_closed_at.is_(None),
        )
        return read_fires(
            self._db,
            select(FIRES)
            .where(
                FIRES.c.job_id == job_id,
                FIRES.c.id != exclude_fire_id,
                or_(in_flight, unclosed),
            )
            .order_by(FIRES.c.scheduled_for.desc(), FIRES.c.id.desc()),
        )

    def held_fires(self, job_id: str) -> list[Fire]:
        """The job's held fires, oldest instant first (`overlap = "buffer_one"` keeps one)."""
        return read_fires(
            self._db,
            select(FIRES)
            .where(FIRES.c.job_id == job_id, FIRES.c.status == str(FireStatus.HELD))
            .order_by(FIRES.c.scheduled_for, FIRES.c.id),
        )

    # -- plumbing -------------------------------------------------------------------------------
    def _insert(self, rows: list[dict[str, Any]]) -> list[Fire | None]:
        """INSERT the rows, each unless its (job, instant) has one; one result per row."""
        if not rows:
            return []
        stmt = _statements(self._db.dialect).insert
        with self._db.tx(write=True) as conn:
            inserted = {
                (fire.job_id, fire.scheduled_for): fire
                for fire in map(fire_from_row, conn.execute(stmt, rows).mappings())
            }
        # A row given twice is inserted once: the first of them has it.
        return [inserted.pop((row["job_id"], row["scheduled_for"]), None) for row in rows]


def _pruned_successes(job_id: str) -> Any:
    return select(JOB_MARKS.c.pruned_successes).where(JOB_MARKS.c.job_id == job_id)


# -- statements ---------------------------------------------------------------------------------
class _Statements:
    """The ledger's statements, built once per dialect (`_statements`).

    Building a Core statement and its cache key costs more than running it on SQLite (a claim
    took ~0.8 ms of CPU, ~0.35 ms with a prebuilt INSERT ... RETURNING; bench/README.md,
    figure 3). Values are bound parameters, so the statements never change.
    """

    def __init__(self, dialect: str) -> None:
        insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
        self.insert = (
            insert_(FIRES)
            .on_conflict_do_nothing(index_elements=[FIRES.c.job_id, FIRES.c.scheduled_for])
            .returning(*FIRES.c)
        )
        self.fire_by_id = select(FIRES).where(FIRES.c.id == bindparam("b_id"))
        self.fires_by_ids = select(FIRES).where(FIRES.c.id.in_(bindparam("b_ids", expanding=True)))
        now = bindparam("b_now", type_=UTCDateTime())
        owner: BindParameter[str] = bindparam("b_owner")
        unowned = FIRES.c.claimed_by.is_(None)

        (sending,) = targets(Op.START)
        # [False]: no daemon id (only unowned fires); [True]: unowned or owned by b_owner.
        self.start = tuple(
            _conditional(
                Op.START,
                sending,
                or_(unowned, FIRES.c.claimed_by == owner) if owned else unowned,
            ).values(
                status=str(sending),
                attempts=FIRES.c.attempts + 1,
                first_attempt_at=func.coalesce(FIRES.c.first_attempt_at, now),
                claimed_by=owner,
                updated_at=now,
            )
            for owned in (False, True)
        )

        moves = {}
        for before, after in TRANSITIONS[Op.ADOPT].items():
            (moves[before],) = after  # adopt leaves each status in exactly one
        adopted_status = case(
            {str(b): str(a) for b, a in moves.items() if b != a},
            value=FIRES.c.status,
            else_=FIRES.c.status,
        )
        self.adopt_owned, self.adopt_unowned = (
            _conditional(Op.ADOPT, None, who).values(
                claimed_by=bindparam("b_new"), status=adopted_status, updated_at=now
            )
            for who in (FIRES.c.claimed_by == owner, unowned)
        )

        (pending,) = targets(Op.REOPEN)
        self.reopen = _conditional(
            Op.REOPEN, pending, func.coalesce(FIRES.c.skipped_count, 1) == 1
        ).values(
            status=str(pending),
            trigger=bindparam("b_trigger"),
            attempts=0,
            error=None,
            field_errors=None,
            http_status=None,
            next_attempt_at=None,
            first_attempt_at=None,
            skipped_count=None,
            skipped_until=None,
            claimed_by=owner,
            updated_at=now,
        )

        kept = select(func.count()).where(
            FIRES.c.job_id == bindparam("b_job"), FIRES.c.status == str(FireStatus.SUCCEEDED)
        )
        pruned = (
            select(JOB_MARKS.c.pruned_successes)
            .where(JOB_MARKS.c.job_id == bindparam("b_job"))
            .scalar_subquery()
        )
        self.success_count = tuple(
            select(query.scalar_subquery() + func.coalesce(pruned, 0))
            for query in (
                kept,
                kept.where(FIRES.c.scheduled_for < bindparam("b_before", type_=UTCDateTime())),
            )
        )
        retrying = _status_is(RELEASED)
        self.due_retries = (
            select(FIRES)
            .where(retrying, FIRES.c.next_attempt_at <= now)
            .order_by(FIRES.c.next_attempt_at, FIRES.c.id)
            .limit(bindparam("b_limit"))
        )
        self.next_retry_at = select(func.min(FIRES.c.next_attempt_at)).where(retrying)
        self._outcomes: dict[tuple[Op, FireStatus, tuple[str, ...], bool], Any] = {}

    def outcome(self, values: Mapping[str, Any], *, op: Op, many: bool = False) -> Any:
        """`UPDATE fires SET <values> WHERE id = :b_id AND status IN <sources of op (FINISH or
        DEFER) to the new status>`, cached per shape (a handful: succeeded, retrying, ...).

        `many`: for executemany, without RETURNING (see `_finish_together`); else RETURNING
        every column.
        """
        status = FireStatus(values["status"])
        names = tuple(sorted(values))
        key = (op, status, names, many)
        stmt = self._outcomes.get(key)
        if stmt is None:
            stmt = (
                update(FIRES)
                .where(FIRES.c.id == bindparam("b_id"), _status_is(sources(op, to=status)))
                .values({name: bindparam(f"v_{name}") for name in names})
            )
            if not many:
                stmt = stmt.returning(*FIRES.c)
            self._outcomes[key] = stmt
        return stmt


@functools.cache
def _statements(dialect: str) -> _Statements:
    return _Statements(dialect)


def _conditional(op: Op, to: FireStatus | None, *conditions: ColumnElement[bool]) -> Any:
    """`UPDATE fires ... WHERE id IN :b_ids AND status IN <sources of op (to `to`)> AND
    <conditions> RETURNING *`: a lifecycle operation on a batch of fires."""
    return (
        update(FIRES)
        .where(
            FIRES.c.id.in_(bindparam("b_ids", expanding=True)),
            _status_is(sources(op, to=to)),
            *conditions,
        )
        .returning(*FIRES.c)
    )


def _status_is(statuses: Iterable[FireStatus]) -> ColumnElement[bool]:
    # OR of equalities, not `IN (...)`: a literal IN list is an "expanding" parameter,
    # rendered anew at every execution and refused by executemany.
    return or_(false(), *(FIRES.c.status == str(status) for status in sorted(statuses)))


def _updated(
    conn: Connection, stmt: Any, fire_ids: Sequence[int], params: Mapping[str, Any]
) -> dict[int, Fire]:
    """Run a `_conditional` statement over `fire_ids`, a statement per `chunks`; the fires it
    changed, by id."""
    changed: dict[int, Fire] = {}
    for chunk in chunks(list(dict.fromkeys(fire_ids))):
        for row in conn.execute(stmt, {**params, "b_ids": list(chunk)}).mappings():
            changed[row["id"]] = fire_from_row(row)
    return changed


def _by_id(fire_ids: Sequence[int], changed: dict[int, Fire]) -> list[Fire | None]:
    """One result per id, in order; an id given twice was changed once: its first place has it."""
    return [changed.pop(fire_id, None) for fire_id in fire_ids]


def _bound(fire_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
    params = {f"v_{name}": value for name, value in values.items()}
    params["b_id"] = fire_id
    return params


def _finish_together(
    conn: Connection, sql: _Statements, changes: Sequence[tuple[int, Mapping[str, Any]]], op: Op
) -> list[Fire | None] | None:
    """Every change as one executemany UPDATE per shape of values, then one SELECT of the
    results. None, with nothing changed, when some fire was not open for its change (the
    caller then goes fire by fire, to learn which)."""
    shapes: dict[Any, list[dict[str, Any]]] = {}  # statement -> its parameter sets
    for fire_id, values in changes:
        shapes.setdefault(sql.outcome(values, op=op, many=True), []).append(_bound(fire_id, values))
    with conn.begin_nested() as savepoint:
        changed = sum(conn.execute(stmt, params).rowcount for stmt, params in shapes.items())
        if changed != len(changes):
            savepoint.rollback()
            return None
    ids = [fire_id for fire_id, _values in changes]
    fires: dict[int, Fire] = {}
    for chunk in chunks(ids):
        for row in conn.execute(sql.fires_by_ids, {"b_ids": list(chunk)}).mappings():
            fires[row["id"]] = fire_from_row(row)
    return [fires[fire_id] for fire_id in ids]


def _outcome_values(outcome: Outcome, now: datetime, op: Op) -> dict[str, Any]:
    """The columns `finish` (or `defer`) sets for `outcome`; ValueError for an outcome it
    cannot record."""
    status = outcome.status
    if status not in targets(op):
        verb = "finish" if op is Op.FINISH else str(op)
        raise ValueError(f"cannot {verb} a fire as {status}")
    next_attempt_at = outcome.next_attempt_at
    if status in RELEASED and next_attempt_at is None:
        raise ValueError(f"a {status} fire needs next_attempt_at")
    keep_next = status in RELEASED or status is FireStatus.UNCERTAIN
    values: dict[str, Any] = {
        "status": str(status),
        "remote_id": outcome.remote_id,
        "http_status": outcome.http_status,
        "error": outcome.error,
        "field_errors": _field_errors_json(outcome.field_errors),
        "next_attempt_at": to_utc(next_attempt_at) if keep_next and next_attempt_at else None,
        "updated_at": to_utc(now),
    }
    if status in RELEASED:
        values["claimed_by"] = None  # any daemon may take the retry (or the recheck)
    return values


def _field_errors_json(field_errors: Mapping[str, Sequence[str]] | None) -> str | None:
    if not field_errors:
        return None
    return json.dumps({k: list(v) for k, v in field_errors.items()}, sort_keys=True)


def _iso(instant: datetime | None, zone: ZoneInfo | None) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(zone or UTC).isoformat()
