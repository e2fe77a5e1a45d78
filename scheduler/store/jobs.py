"""The job repository: applying job documents (one transaction, diffed against what is stored),
reading jobs, pausing, resuming and removing them, and the revision counter the daemon polls;
and each job's marks (`job_marks`, schema 3): who paused it and why, the failure breaker that
pauses it, and what history retention pruned of its history.

`active_since` is the one piece of scheduling state kept here: instants strictly after it
belong to the job, so a resumed or rescheduled job never replays its paused or old-schedule
instants (guarantees.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, String, bindparam, cast, delete, select, update

from scheduler.clock import to_utc
from scheduler.errors import DefinitionError, JobNotFound, problem
from scheduler.lifecycle import FireStatus, Trigger, rejected_by_api
from scheduler.store.database import Database, chunks
from scheduler.store.ledger import Fire, fire_from_row
from scheduler.store.tables import FIRES, JOB_MARKS, JOBS, JOBS_REVISION_KEY, META

__all__ = [
    "BREAKER",
    "OPERATOR",
    "ApplyPlan",
    "JobDocument",
    "JobMark",
    "JobRepository",
    "StoredJob",
]

# Who paused a job (`JobMark.paused_by`); a paused job with neither was disabled by its file.
BREAKER = "breaker"
OPERATOR = "operator"


@dataclass(frozen=True)
class JobDocument:
    """A job as `jobs apply` hands it to the store.

    `definition` is the validated, defaults-resolved job document (JSON-serializable);
    `schedule_key` changes exactly when the schedule or its time zone changes; `enabled` is
    the file's value (on apply the file is the truth for it); `source` is the file path.
    """

    id: str
    definition: dict[str, Any]
    schedule_key: str
    enabled: bool = True
    source: str | None = None


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as stored. Instants strictly after `active_since` belong to it.

    The definition is kept as the stored canonical JSON text and decoded at each read of
    `definition` (a fresh dict): 100,000 decoded documents held at once took ~280 MB and a
    third of `list_jobs`' time (bench/README.md, figure 1), while the daemon reads each one once.
    """

    id: str
    definition_json: str = field(repr=False)
    schedule_key: str
    enabled: bool
    active_since: datetime
    source: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def definition(self) -> dict[str, Any]:
        """The validated, defaults-resolved job document (decoded anew at each access)."""
        value: dict[str, Any] = json.loads(self.definition_json)
        return value


@dataclass(frozen=True)
class JobMark:
    """What the store keeps about a job beside its definition (tables.JobMarkRow)."""

    job_id: str
    paused_by: str | None = None
    pause_reason: str | None = None
    paused_at: datetime | None = None
    pruned_before: datetime | None = None
    pruned_successes: int = 0
    pruned_until: datetime | None = None


@dataclass(frozen=True)
class ApplyPlan:
    """What `apply` did (or, from `plan_apply`, would do): job ids, sorted, per outcome."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)


# The columns of a StoredJob, in the order of its fields (`_stored_jobs` builds them by place).
_JOB_COLUMNS = (
    JOBS.c.id,
    JOBS.c.definition,
    JOBS.c.schedule_key,
    JOBS.c.enabled,
    JOBS.c.active_since,
    JOBS.c.source,
    JOBS.c.created_at,
    JOBS.c.updated_at,
)
_REVISION = select(META.c.value).where(META.c.key == JOBS_REVISION_KEY)


class JobRepository:
    """The store's jobs (a `Store` mixin); see the module docstring."""

    _db: Database

    def plan_apply(self, docs: Sequence[JobDocument], *, prune: bool) -> ApplyPlan:
        """What `apply(docs, prune=prune)` would do now; writes nothing (`--dry-run`)."""
        prepared = _prepare(docs)
        with self._db.tx() as conn:
            return _plan(_job_states(conn), prepared, prune)

    def apply(self, docs: Sequence[JobDocument], *, prune: bool, now: datetime) -> ApplyPlan:
        """Upsert every document, and with `prune` delete stored jobs none defines.

        One transaction: all of it happens or none of it. A document whose definition hash,
        schedule key, `enabled` and source all match the stored row is unchanged. The file is
        the truth for `enabled`: applying an enabled document resumes a job paused through
        the CLI. `active_since` becomes `now` for a new job, a changed `schedule_key`, and a
        job the document turns from disabled to enabled (no replay, guarantees.md). History
        rows of removed jobs stay. `jobs_revision` is bumped when anything changed.
        """
        now = to_utc(now)
        prepared = _prepare(docs)
        with self._db.tx(write=True) as conn:
            self._lock_jobs(conn)
            states = _job_states(conn)
            plan = _plan(states, prepared, prune)
            if plan.added:
                conn.execute(
                    JOBS.insert(),
                    [
                        {
                            "id": job_id,
                            "definition": prepared[job_id][1],
                            "definition_hash": prepared[job_id][2],
                            "schedule_key": prepared[job_id][0].schedule_key,
                            "enabled": prepared[job_id][0].enabled,
                            "active_since": now,
                            "source": prepared[job_id][0].source,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for job_id in plan.added
                    ],
                )
            if plan.changed:
                rows = []
                for job_id in plan.changed:
                    doc, definition, digest = prepared[job_id]
                    old = states[job_id]
                    restart = doc.schedule_key != old.schedule_key or (
                        doc.enabled and not old.enabled
                    )
                    rows.append(
                        {
                            "b_id": job_id,
                            "definition": definition,
                            "definition_hash": digest,
                            "schedule_key": doc.schedule_key,
                            "enabled": doc.enabled,
                            "active_since": now if restart else old.active_since,
                            "source": doc.source,
                            "updated_at": now,
                        }
                    )
                toggled = [
                    job_id
                    for job_id in plan.changed
                    if prepared[job_id][0].enabled != states[job_id].enabled
                ]
                # The file is the truth for `enabled`: whoever paused the job no longer has.
                _clear_pause(conn, toggled, now)
                conn.execute(
                    update(JOBS)
                    .where(JOBS.c.id == bindparam("b_id"))
                    .values(
                        {
                            name: bindparam(name)
                            for name in rows[0]
                            if name != "b_id"  # the key, not a new value
                        }
                    ),
                    rows,
                )
            for chunk in chunks(plan.removed):
                conn.execute(delete(JOBS).where(JOBS.c.id.in_(chunk)))
            if plan.has_changes:
                _bump_revision(conn)
            return plan

    def get_job(self, job_id: str) -> StoredJob:
        """The stored job; JobNotFound if there is none."""
        with self._db.tx() as conn:
            found = _stored_jobs(conn.execute(select(*_JOB_COLUMNS).where(JOBS.c.id == job_id)))
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    def list_jobs(self) -> list[StoredJob]:
        """Every job, by id: one query, rows turned into StoredJobs as they are fetched (no
        list of rows, no mappings, no decoded documents: see StoredJob)."""
        with self._db.tx() as conn:
            # Fetched in batches (fetchmany), not one driver call per row.
            query = select(*_JOB_COLUMNS).order_by(JOBS.c.id).execution_options(yield_per=1000)
            return _stored_jobs(conn.execute(query))

    def iter_jobs(self, *, batch: int = 1000) -> Iterator[StoredJob]:
        """Every job, by id, read `batch` at a time, each batch in its own short transaction.

        For a caller that handles one job at a time (the daemon loading 100,000 of them):
        only one batch of StoredJobs is alive at once, where `list_jobs` holds them all
        (~85 MB for 100,000; bench/README.md, figure 1). Not one snapshot: a job applied
        meanwhile may or may not be seen, as with any later change (`jobs_revision` tells).
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after: str | None = None
        while True:
            query = select(*_JOB_COLUMNS).order_by(JOBS.c.id).limit(batch)
            if after is not None:
                query = query.where(JOBS.c.id > after)
            with self._db.tx() as conn:
                page = _stored_jobs(conn.execute(query))
            yield from page
            if len(page) < batch:
                return
            after = page[-1].id

    def set_enabled(self, job_id: str, enabled: bool, *, now: datetime) -> StoredJob:
        """Pause or resume a job; resuming sets `active_since = now` (no replay).

        Setting the value it already has changes nothing (a running job keeps its
        `active_since`, so no instant is lost).
        """
        now = to_utc(now)
        with self._db.tx(write=True) as conn:
            self._lock_jobs(conn)
            current = conn.scalar(select(JOBS.c.enabled).where(JOBS.c.id == job_id))
            if current is None:
                raise JobNotFound(job_id)
            if bool(current) != enabled:
                values: dict[str, Any] = {"enabled": enabled, "updated_at": now}
                if enabled:
                    values["active_since"] = now
                conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(values))
                if enabled:
                    _clear_pause(conn, [job_id], now)
                else:
                    self._mark_paused(conn, job_id, OPERATOR, None, now)
                _bump_revision(conn)
            (job,) = _stored_jobs(conn.execute(select(*_JOB_COLUMNS).where(JOBS.c.id == job_id)))
        return job

    def remove_job(self, job_id: str) -> None:
        """Delete the job; its history rows stay. JobNotFound if there is none."""
        with self._db.tx(write=True) as conn:
            self._lock_jobs(conn)
            if not conn.execute(delete(JOBS).where(JOBS.c.id == job_id)).rowcount:
                raise JobNotFound(job_id)
            _bump_revision(conn)

    def pause_by_breaker(self, job_id: str, *, threshold: int, now: datetime) -> Fire | None:
        """The failure breaker (docs/jobs.md, "pause_after_failures"): pause the job when its
        last `threshold` settled fires (succeeded or failed, newest scheduled instant first)
        were all rejected by the API (`lifecycle.rejected_by_api`) and all settled since the
        job last (re)started firing (`active_since`: a resume clears the count).

        One transaction: the job paused, who and why in its marks, and one `skipped` history
        row at `now` (trigger `manual`: not a scheduled instant) holding the reason and the
        last error, which alerts report like any skip. Returns that row; None when the job is
        not tripped (or already paused, or gone). Costs nothing unless a fire was rejected.
        """
        if threshold < 1:
            return None
        now = to_utc(now)
        with self._db.tx(write=True) as conn:
            self._lock_jobs(conn)
            job = conn.execute(
                select(JOBS.c.enabled, JOBS.c.active_since).where(JOBS.c.id == job_id)
            ).first()
            if job is None or not job.enabled:
                return None
            settled = conn.execute(
                select(FIRES.c.status, FIRES.c.http_status, FIRES.c.error, FIRES.c.updated_at)
                .where(
                    FIRES.c.job_id == job_id,
                    FIRES.c.status.in_([str(FireStatus.SUCCEEDED), str(FireStatus.FAILED)]),
                )
                .order_by(FIRES.c.scheduled_for.desc(), FIRES.c.id.desc())
                .limit(threshold)
            ).all()
            if len(settled) < threshold or not all(
                row.status == str(FireStatus.FAILED)
                and rejected_by_api(row.http_status)
                and row.updated_at >= job.active_since
                for row in settled
            ):
                return None
            reason = (
                f"paused by the breaker: {threshold} consecutive fires rejected by the API "
                f"(pause_after_failures = {threshold}); last error: {settled[0].error}; "
                f"fix the job, then `tallyfy-scheduler jobs resume {job_id}`"
            )
            conn.execute(
                update(JOBS).where(JOBS.c.id == job_id).values(enabled=False, updated_at=now)
            )
            self._mark_paused(conn, job_id, BREAKER, reason, now)
            _bump_revision(conn)
            return _history_note(conn, self._db.insert(FIRES), job_id, reason, now)

    def job_marks(self, job_ids: Sequence[str] | None = None) -> dict[str, JobMark]:
        """The marks of these jobs (all jobs with marks when None), by job id; a job with no
        row has none (it was never paused nor pruned)."""
        query = select(JOB_MARKS)
        with self._db.tx() as conn:
            if job_ids is None:
                rows = list(conn.execute(query).mappings())
            else:
                rows = []
                for chunk in chunks(list(job_ids)):
                    rows += conn.execute(query.where(JOB_MARKS.c.job_id.in_(chunk))).mappings()
        return {
            row["job_id"]: JobMark(
                job_id=row["job_id"],
                paused_by=row["paused_by"],
                pause_reason=row["pause_reason"],
                paused_at=row["paused_at"],
                pruned_before=row["pruned_before"],
                pruned_successes=row["pruned_successes"],
                pruned_until=row["pruned_until"],
            )
            for row in rows
        }

    def _mark_paused(
        self, conn: Connection, job_id: str, who: str, reason: str | None, now: datetime
    ) -> None:
        values = {"paused_by": who, "pause_reason": reason, "paused_at": now, "updated_at": now}
        stmt = self._db.insert(JOB_MARKS).values(job_id=job_id, pruned_successes=0, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=[JOB_MARKS.c.job_id], set_=values))

    def jobs_revision(self) -> int:
        """A number bumped by every job change, in the same transaction (cheap to poll)."""
        with self._db.tx() as conn:
            value = conn.scalar(_REVISION)
        return int(value or 0)

    def _lock_jobs(self, conn: Connection) -> None:
        # Serializes job writers on PostgreSQL (SQLite's BEGIN IMMEDIATE already has).
        if self._db.dialect == "postgresql":
            conn.execute(_REVISION.with_for_update())


# -- helpers ------------------------------------------------------------------------------------
def _stored_jobs(rows: Iterable[Any]) -> list[StoredJob]:
    """Rows of `_JOB_COLUMNS` as StoredJobs (by place: the startup path, 100,000 of them)."""
    return [
        StoredJob(id_, text, key, bool(on), since, source, created, updated)
        for id_, text, key, on, since, source, created, updated in rows
    ]


def _clear_pause(conn: Connection, job_ids: Sequence[str], now: datetime) -> None:
    for chunk in chunks(list(job_ids)):
        conn.execute(
            update(JOB_MARKS)
            .where(JOB_MARKS.c.job_id.in_(chunk), JOB_MARKS.c.paused_by.is_not(None))
            .values(paused_by=None, pause_reason=None, paused_at=None, updated_at=now)
        )


def _history_note(conn: Connection, insert: Any, job_id: str, reason: str, now: datetime) -> Fire:
    """A `skipped` row at `now` (or the first free microsecond after it: the instant may hold
    a manual fire) recording `reason` in the job's history."""
    stmt = insert.on_conflict_do_nothing(
        index_elements=[FIRES.c.job_id, FIRES.c.scheduled_for]
    ).returning(*FIRES.c)
    at = now
    while True:
        row = (
            conn.execute(
                stmt.values(
                    job_id=job_id,
                    scheduled_for=at,
                    trigger=str(Trigger.MANUAL),
                    status=str(FireStatus.SKIPPED),
                    attempts=0,
                    error=reason,
                    skipped_count=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            .mappings()
            .first()
        )
        if row is not None:
            return fire_from_row(row)
        at += timedelta(microseconds=1)


def _bump_revision(conn: Connection) -> None:
    conn.execute(
        update(META)
        .where(META.c.key == JOBS_REVISION_KEY)
        .values(value=cast(cast(META.c.value, Integer) + 1, String))
    )


@dataclass(frozen=True)
class _JobState:
    definition_hash: str
    schedule_key: str
    enabled: bool
    source: str | None
    active_since: datetime


def _job_states(conn: Connection) -> dict[str, _JobState]:
    rows = conn.execute(
        select(
            JOBS.c.id,
            JOBS.c.definition_hash,
            JOBS.c.schedule_key,
            JOBS.c.enabled,
            JOBS.c.source,
            JOBS.c.active_since,
        )
    )
    return {row.id: _JobState(*row[1:]) for row in rows}


_Prepared = dict[str, tuple[JobDocument, str, str]]  # id -> (doc, canonical JSON, sha256)


def _canonical(definition: Mapping[str, Any]) -> str:
    return json.dumps(
        definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _prepare(docs: Sequence[JobDocument]) -> _Prepared:
    prepared: _Prepared = {}
    for doc in docs:
        if doc.id in prepared:
            raise DefinitionError(problem("two job documents have this id", key="id", value=doc.id))
        try:
            definition = _canonical(doc.definition)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"job {doc.id!r}: definition is not plain JSON: {exc}") from None
        digest = hashlib.sha256(definition.encode()).hexdigest()
        prepared[doc.id] = (doc, definition, digest)
    return prepared


def _plan(states: Mapping[str, _JobState], prepared: _Prepared, prune: bool) -> ApplyPlan:
    added, changed, unchanged = [], [], []
    for job_id, (doc, _definition, digest) in prepared.items():
        old = states.get(job_id)
        if old is None:
            added.append(job_id)
        elif (old.definition_hash, old.schedule_key, bool(old.enabled), old.source) == (
            digest,
            doc.schedule_key,
            doc.enabled,
            doc.source,
        ):
            unchanged.append(job_id)
        else:
            changed.append(job_id)
    removed = [job_id for job_id in states if job_id not in prepared] if prune else []
    return ApplyPlan(
        added=tuple(sorted(added)),
        changed=tuple(sorted(changed)),
        removed=tuple(sorted(removed)),
        unchanged=tuple(sorted(unchanged)),
    )
