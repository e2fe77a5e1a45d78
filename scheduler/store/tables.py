"""The store's tables (SQLModel), the column type of every instant, and the `meta` keys.

Only `scheduler.store` touches these classes; everything else receives the frozen domain
objects the store builds from rows (`StoredJob`, `Fire`, `DaemonInfo`).

Every instant is a `UTCDateTime` column: naive UTC in the database, aware UTC in Python,
identical on SQLite and PostgreSQL. JSON documents are stored as text, so both databases
hold byte-identical values and no JSON column type differences leak into the code.

These classes describe the newest schema version; `schema.py` says how a store gets there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import CheckConstraint, DateTime, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from scheduler.alertstate import IncidentKind, NotifyType, OutboxStatus
from scheduler.lifecycle import FireStatus, Trigger

# The named values in `meta`.
SCHEMA_VERSION_KEY: Final = "schema_version"
JOBS_REVISION_KEY: Final = "jobs_revision"


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: naive UTC in the column, aware UTC out; naive input is refused.

    A naive datetime has no defined instant, so accepting one would store a guess.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware instant")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # only if a raw SQLite expression lost the column type
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        return value.replace(tzinfo=UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


def in_values(column: str, values: Iterable[StrEnum | str]) -> str:
    """The SQL of a CHECK that `column` holds one of `values` (schema.py freezes old ones)."""
    # Quoted: `trigger` is a keyword in SQLite.
    return f'"{column}" IN ({", ".join(repr(str(v)) for v in values)})'


class JobRow(SQLModel, table=True):
    """One job: its validated definition and when its instants start to count."""

    __tablename__ = "jobs"

    id: str = Field(primary_key=True)
    # The validated, defaults-resolved job document, as canonical JSON text.
    definition: str = Field(sa_type=Text)
    definition_hash: str = Field(sa_type=String(64))
    # Changes when the schedule or its zone changes; a change resets `active_since`.
    schedule_key: str
    enabled: bool
    # Instants strictly after this belong to the job: set at creation, on resume and on a
    # schedule change, so paused and old-schedule instants are never replayed.
    active_since: datetime = Field(sa_type=UTCDateTime)
    source: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class FireRow(SQLModel, table=True):
    """One (job, scheduled instant), or a skipped range of them: the history.

    No foreign key to `jobs`: history outlives a removed job. The unique index leads with
    `job_id`, so it also serves every per-job lookup (no separate `job_id` index needed).
    """

    __tablename__ = "fires"
    __table_args__ = (
        UniqueConstraint("job_id", "scheduled_for", name="uq_fires_job_id_scheduled_for"),
        Index("ix_fires_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_fires_scheduled_for", "scheduled_for"),  # `history` without a job id
        CheckConstraint(in_values("status", FireStatus), name="ck_fires_status"),
        CheckConstraint(in_values("trigger", Trigger), name="ck_fires_trigger"),
        CheckConstraint("attempts >= 0", name="ck_fires_attempts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str
    scheduled_for: datetime = Field(sa_type=UTCDateTime)
    trigger: str = Field(sa_type=String(16))
    status: str = Field(sa_type=String(16))
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    remote_id: str | None = None
    http_status: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    field_errors: str | None = Field(default=None, sa_type=Text)  # JSON {field: [messages]}
    skipped_count: int | None = None  # a skip row standing for this many instants
    skipped_until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # its last one
    claimed_by: str | None = None  # the daemon id that owns an open fire
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    # When the overlap check learned that what this fire created is closed (schema v4).
    remote_closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DaemonRow(SQLModel, table=True):
    """A running daemon's heartbeat, so `status` can tell whether one is alive."""

    __tablename__ = "daemons"

    id: str = Field(primary_key=True)
    hostname: str
    pid: int
    started_at: datetime = Field(sa_type=UTCDateTime)
    last_seen: datetime = Field(sa_type=UTCDateTime)
    next_fire_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    state: str


class MetaRow(SQLModel, table=True):
    """Small named values: `SCHEMA_VERSION_KEY`, `JOBS_REVISION_KEY`, and the marks of the
    alert evaluation (`store/incidents.py`)."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


class IncidentRow(SQLModel, table=True):
    """An incident: opened once (one open row per `open_key`), cleared once (schema 2).

    `open_key` is what makes opening exactly once, across restarts and daemons: an INSERT on
    its unique index. It names the incident's subject (`failed:JOB`, `late`, ...) while the
    incident is open, and is set to NULL when it clears, so the next one can open; a one-off
    (skipped instants) keeps its key, which names the instants it reported. `ref` is the id
    messages show (a receiver may drop a copy by it).
    """

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("open_key", name="uq_incidents_open_key"),
        UniqueConstraint("ref", name="uq_incidents_ref"),
        Index("ix_incidents_state_kind", "state", "kind"),
        CheckConstraint(in_values("kind", IncidentKind), name="ck_incidents_kind"),
        CheckConstraint("state IN ('open', 'cleared')", name="ck_incidents_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(sa_type=String(32))
    kind: str = Field(sa_type=String(16))
    subject: str = Field(sa_type=Text)  # `failed:JOB`, `late`, ... (kept when cleared)
    open_key: str | None = Field(default=None, sa_type=Text)
    job_id: str | None = None
    state: str = Field(sa_type=String(8))
    detail: str = Field(sa_type=Text)  # JSON: what the messages and `alerts list` show
    opened_by: str | None = None  # the daemon that opened it
    opened_at: datetime = Field(sa_type=UTCDateTime)
    cleared_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class NotificationRow(SQLModel, table=True):
    """The outbox: one message of one incident to one URL of one target (schema 2).

    Never a URL: `target` is the target's name and `url_index` the place of the URL in its
    list (the URLs themselves are secrets, read from the environment or a credential).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notifications_incident_id", "incident_id"),
        CheckConstraint(in_values("status", OutboxStatus), name="ck_notifications_status"),
        CheckConstraint(in_values("notify_type", NotifyType), name="ck_notifications_notify_type"),
        CheckConstraint("attempts >= 0", name="ck_notifications_attempts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int
    event: str = Field(sa_type=String(16))  # opened | cleared
    notify_type: str = Field(sa_type=String(16))
    target: str = Field(sa_type=String(64))
    url_index: int = 0
    title: str = Field(sa_type=Text)
    body: str = Field(sa_type=Text)
    status: str = Field(sa_type=String(16))
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = None
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class JobMarkRow(SQLModel, table=True):
    """What the store keeps about a job beside its definition and its history (schema 3).

    No foreign key to `jobs`, like `fires`: the marks outlive a removed job, whose history
    (and what was pruned of it) they describe.

    - who paused the job and why (`paused_by`: `breaker` or `operator`);
    - what pruning removed of its history (docs/operations.md, "History retention"): every
      pruned row lies strictly before `pruned_before` (the watermark: no claim, backfill or
      manual fire below it, since history no longer knows whether those were sent);
      `pruned_successes` of them had succeeded (`seq` and `max_fires` add them) and
      `pruned_until` is the newest scheduled instant they accounted for (the job's cursor).
    """

    __tablename__ = "job_marks"

    job_id: str = Field(primary_key=True)
    paused_by: str | None = Field(default=None, sa_type=String(16))
    pause_reason: str | None = Field(default=None, sa_type=Text)
    paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pruned_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pruned_successes: int = 0
    pruned_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


# The Core tables, for set-based queries (SQLModel does not declare `__table__` to mypy).
JOBS: Table = JobRow.__table__  # type: ignore[attr-defined]
FIRES: Table = FireRow.__table__  # type: ignore[attr-defined]
DAEMONS: Table = DaemonRow.__table__  # type: ignore[attr-defined]
META: Table = MetaRow.__table__  # type: ignore[attr-defined]
INCIDENTS: Table = IncidentRow.__table__  # type: ignore[attr-defined]
NOTIFICATIONS: Table = NotificationRow.__table__  # type: ignore[attr-defined]
JOB_MARKS: Table = JobMarkRow.__table__  # type: ignore[attr-defined]
# The tables each schema version's migration creates (schema.py; version 4 changed `fires`).
V1_TABLES = (JOBS, FIRES, DAEMONS, META)
V2_TABLES = (INCIDENTS, NOTIFICATIONS)
V3_TABLES = (JOB_MARKS,)
TABLES = (*V1_TABLES, *V2_TABLES, *V3_TABLES)
