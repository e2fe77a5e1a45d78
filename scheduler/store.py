"""The store: jobs, fire history and daemon heartbeats, on SQLite or PostgreSQL.

The store is the single source of truth. `Store` takes an SQLAlchemy `Engine`, opens a short
transaction per call, commits every write before returning, and hands back frozen domain
objects (`StoredJob`, `Fire`, `DaemonInfo`, `ApplyPlan`), never sessions or rows. It is safe
to call from many threads: each call checks a connection out of the pool for its own use.

Exactly once per instant (guarantees.md) rests on two database mechanisms, identical on both
backends:

- a claim is an INSERT on `UNIQUE (job_id, scheduled_for)` in its own committed transaction;
  a conflict means another process already owns the instant;
- every later state change is a conditional UPDATE (`... WHERE id = :id AND status IN (...)`),
  so of two racers exactly one sees its row change.

Transactions on SQLite
    pysqlite's implicit BEGIN is switched off; we emit `BEGIN IMMEDIATE` for writes and a
    deferred `BEGIN` for reads. Taking the write lock up front is where the busy timeout
    applies; a deferred transaction that reads and then writes may instead fail at once with
    "database is locked", because SQLite cannot wait to upgrade a stale read snapshot. In WAL
    mode readers never wait for the writer.

Schema versioning
    A deliberately small replacement for Alembic. `MIGRATIONS` is an ordered tuple of
    `(version, function(connection))`; the store's version lives in `meta.schema_version`.
    `Store.init_schema()` runs, in ONE transaction and under a lock (SQLite's write lock,
    PostgreSQL's advisory lock), every migration newer than the store's version, records the
    new version, and returns it; running it again changes nothing. `Store.check_schema()`
    refuses a store that is missing, older (run `tallyfy-scheduler init`) or newer than this
    code (upgrade the package). Adding a migration: append `(N + 1, function)`, change the
    models to match, and freeze whatever earlier migrations derived from the models (migration
    1 builds the tables from the models, which is exact only while version 1 is the newest).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.pool import StaticPool

from scheduler.clock import to_utc
from scheduler.errors import (
    ConfigError,
    DefinitionError,
    FireConflict,
    FireNotFound,
    JobNotFound,
    SchemaError,
    StoreError,
    StoreUnavailable,
    problem,
)
from scheduler.models import (
    DAEMONS,
    FIRES,
    JOBS,
    META,
    TABLES,
    FireStatus,
    Trigger,
    UTCDateTime,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ApplyPlan",
    "DaemonInfo",
    "Fire",
    "JobDocument",
    "Migration",
    "Store",
    "StoredJob",
    "make_engine",
]

# -- tunables -----------------------------------------------------------------------------------
DEFAULT_BUSY_TIMEOUT = timedelta(seconds=5)  # how long SQLite waits for another writer's lock
# The daemon runs up to `max_concurrent_fires` (default 8) sender threads plus its loop,
# heartbeat and reload; this leaves head room without letting a leak go unnoticed.
POOL_SIZE = 10
POOL_MAX_OVERFLOW = 10
POOL_TIMEOUT = timedelta(seconds=30)  # waiting longer for a connection means: unavailable
PG_CONNECT_TIMEOUT = timedelta(seconds=10)  # an unreachable server fails instead of hanging
IN_CHUNK = 500  # ids per `IN (...)` list: well under SQLite's bound-parameter limit

SCHEMA_VERSION_KEY: Final = "schema_version"
JOBS_REVISION_KEY: Final = "jobs_revision"
# An arbitrary constant naming our PostgreSQL advisory lock for schema changes.
_PG_SCHEMA_LOCK = 7_324_811_950_113
_WRITE_OPTION = "tallyfy_write"  # connection execution option: SQLite BEGIN IMMEDIATE

# Ids in one `IN (...)`: well under SQLite's 32,766 bound variables and PostgreSQL's 65,535.
_IDS_PER_STATEMENT = 500

_OPEN_FOR_START = (FireStatus.PENDING, FireStatus.RETRYING, FireStatus.UNCERTAIN)
_OPEN_FOR_FINISH = (FireStatus.PENDING, FireStatus.SENDING, FireStatus.UNCERTAIN)
_OPEN_FOR_ADOPT = (
    FireStatus.PENDING,
    FireStatus.SENDING,
    FireStatus.UNCERTAIN,
    FireStatus.RETRYING,
)
_FINISH_TARGETS = frozenset(
    {
        FireStatus.SUCCEEDED,
        FireStatus.RETRYING,
        FireStatus.UNCERTAIN,
        FireStatus.FAILED,
        FireStatus.SKIPPED,
    }
)

# Fragments of driver messages that mean "the store is there but cannot serve us right now".
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "readonly database",
)


# -- domain objects -----------------------------------------------------------------------------
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
class ApplyPlan:
    """What `apply` did (or, from `plan_apply`, would do): job ids, sorted, per outcome."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)


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
    """What `finish` records for one fire (see `Store.finish` for the rules)."""

    fire_id: int
    status: FireStatus
    remote_id: str | None = None
    http_status: int | None = None
    error: str | None = None
    field_errors: Mapping[str, Sequence[str]] | None = None
    next_attempt_at: datetime | None = None


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


def _iso(instant: datetime | None, zone: ZoneInfo | None) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(zone or UTC).isoformat()


# -- schema migrations --------------------------------------------------------------------------
Migration = Callable[[Connection], None]


def _migrate_to_1(conn: Connection) -> None:
    """Version 1: the jobs, fires, daemons and meta tables; `jobs_revision` starts at 0."""
    TABLES[0].metadata.create_all(conn, tables=list(TABLES))
    conn.execute(META.insert().values(key=JOBS_REVISION_KEY, value="0"))


MIGRATIONS: tuple[tuple[int, Migration], ...] = ((1, _migrate_to_1),)
SCHEMA_VERSION: Final = 1
assert MIGRATIONS[-1][0] == SCHEMA_VERSION


# -- engine -------------------------------------------------------------------------------------
def make_engine(
    url: str | URL,
    *,
    connect_args: Mapping[str, Any] | None = None,
    busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
) -> Engine:
    """An engine for `sqlite:///path` or `postgresql+psycopg://...`, set up for the store.

    SQLite: creates the parent directory and the file (mode 0600) before SQLAlchemy opens it,
    and sets WAL, foreign keys, `busy_timeout` and `synchronous=NORMAL` on every connection.
    `sqlite://` (in memory) works too, for experiments: one shared connection, serialized.
    PostgreSQL: `postgresql://` means the psycopg 3 driver; connections are pinged before use.
    `connect_args` go to the driver (tests set a PostgreSQL `search_path` through `options`).
    """
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError(problem("not a database URL", key="store.url")) from None
    except ValueError:
        # SQLAlchemy's int(port) failed. Not echoed: with an unescaped '@' or ':' in the
        # password, part of the password is what landed in the "port".
        raise ConfigError(
            problem(
                "not a database URL: the port is not a number (a password holding '@', ':' or "
                "'/' must be percent-encoded, e.g. '@' as %40)",
                key="store.url",
            )
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, dict(connect_args or {}), busy_timeout)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise ConfigError(
                problem(
                    "unsupported PostgreSQL driver: use postgresql+psycopg://",
                    key="store.url",
                    value=parsed.render_as_string(hide_password=True),
                )
            )
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT.total_seconds(),
            connect_args={
                "connect_timeout": int(PG_CONNECT_TIMEOUT.total_seconds()),
                **(connect_args or {}),
            },
        )
    raise ConfigError(
        problem(
            "unsupported database: use sqlite:///PATH or postgresql+psycopg://...",
            key="store.url",
            value=parsed.render_as_string(hide_password=True),
        )
    )


def _sqlite_engine(url: URL, connect_args: dict[str, Any], busy_timeout: timedelta) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:")
    connect_args.setdefault("check_same_thread", False)  # the pool hands connections to threads
    connect_args.setdefault("timeout", busy_timeout.total_seconds())
    if memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
    else:
        path = Path(database).expanduser()
        _create_private_file(path)
        engine = create_engine(
            url.set(database=str(path)),
            pool_size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT.total_seconds(),
            connect_args=connect_args,
        )
    busy_ms = max(0, int(busy_timeout.total_seconds() * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (see _on_begin); pysqlite's implicit one would start reads
        # outside any transaction and writes as DEFERRED.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")  # first: the others may wait
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL-safe
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only (it holds job definitions)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDONLY, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the SQLite database {path}: {exc.strerror}") from None
    os.close(fd)


# -- the store ----------------------------------------------------------------------------------
class Store:
    """Jobs, fire history and heartbeats; see the module docstring for the guarantees.

    Build the engine with `make_engine` (or use `Store.open`): it sets up SQLite's pragmas and
    transaction mode, which the guarantees depend on. `migrations` is injectable for tests of
    the upgrade path; this code's schema version is the last one's.

    Every method that writes a timestamp takes `now` (an aware instant; naive ones raise
    ValueError). Transient database failures raise `StoreUnavailable`; a store without
    tables raises `SchemaError`.
    """

    def __init__(
        self, engine: Engine, *, migrations: Sequence[tuple[int, Migration]] = MIGRATIONS
    ) -> None:
        versions = [v for v, _ in migrations]
        if not versions or versions != sorted(set(versions)) or versions[0] < 1:
            raise ValueError("migrations must be a non-empty list with increasing versions >= 1")
        self._engine = engine
        self._migrations = tuple(migrations)
        self._target = versions[-1]
        self._dialect = engine.dialect.name
        # `sqlite://` shares one connection between threads: serialize its transactions.
        memory = self._dialect == "sqlite" and isinstance(engine.pool, StaticPool)
        self._serial: AbstractContextManager[Any] = threading.RLock() if memory else nullcontext()
        # SQLite has one writer at a time. Threads of this process queue for it here, and are
        # woken the moment it is free, instead of in SQLite's busy handler, which sleeps in
        # 1-100 ms steps (other processes still meet the busy timeout).
        self._writer: AbstractContextManager[Any] = (
            threading.RLock() if self._dialect == "sqlite" and not memory else nullcontext()
        )
        self._sql = _Statements(self._dialect)

    @classmethod
    def open(cls, url: str) -> Store:
        """A store on the database at `url` (see `make_engine`)."""
        return cls(make_engine(url))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (tests inject faults through its events)."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self._dialect == "sqlite"

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    # -- schema ---------------------------------------------------------------------------------
    def init_schema(self) -> int:
        """Create or upgrade the schema in one transaction; idempotent. Returns the version."""
        with self._tx(write=True) as conn:
            if self._dialect == "postgresql":
                # Two `init`s at once: the second waits, then finds the work done.
                conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
            current = self._read_version(conn) or 0
            if current > self._target:
                raise self._newer_error(current)
            for version, migrate in self._migrations:
                if version > current:
                    migrate(conn)
                    self._write_version(conn, version)
                    current = version
            return current

    def check_schema(self) -> None:
        """Raise SchemaError unless the store is initialized at exactly this code's version."""
        version = self.schema_version()
        if version is None:
            raise SchemaError(f"store {self.url} is not initialized: run `tallyfy-scheduler init`")
        if version < self._target:
            raise SchemaError(
                f"store {self.url} has schema version {version}, older than this "
                f"tallyfy-scheduler's {self._target}: run `tallyfy-scheduler init` to upgrade it"
            )
        if version > self._target:
            raise self._newer_error(version)

    def schema_version(self) -> int | None:
        """The store's schema version, or None when it was never initialized."""
        with self._tx() as conn:
            return self._read_version(conn)

    def _read_version(self, conn: Connection) -> int | None:
        if not inspect(conn).has_table(META.name):
            return None
        value = conn.scalar(select(META.c.value).where(META.c.key == SCHEMA_VERSION_KEY))
        return None if value is None else int(value)

    def _write_version(self, conn: Connection, version: int) -> None:
        changed = conn.execute(
            update(META).where(META.c.key == SCHEMA_VERSION_KEY).values(value=str(version))
        ).rowcount
        if not changed:
            conn.execute(META.insert().values(key=SCHEMA_VERSION_KEY, value=str(version)))

    def _newer_error(self, version: int) -> SchemaError:
        return SchemaError(
            f"store {self.url} was created by a newer tallyfy-scheduler "
            f"(schema {version} > {self._target}); upgrade the package"
        )

    # -- jobs -----------------------------------------------------------------------------------
    def plan_apply(self, docs: Sequence[JobDocument], *, prune: bool) -> ApplyPlan:
        """What `apply(docs, prune=prune)` would do now; writes nothing (`--dry-run`)."""
        prepared = _prepare(docs)
        with self._tx() as conn:
            return _plan(self._job_states(conn), prepared, prune)

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
        with self._tx(write=True) as conn:
            self._lock_jobs(conn)
            states = self._job_states(conn)
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
            for start in range(0, len(plan.removed), IN_CHUNK):
                chunk = plan.removed[start : start + IN_CHUNK]
                conn.execute(delete(JOBS).where(JOBS.c.id.in_(chunk)))
            if plan.has_changes:
                self._bump_revision(conn)
            return plan

    def get_job(self, job_id: str) -> StoredJob:
        """The stored job; JobNotFound if there is none."""
        with self._tx() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    def list_jobs(self) -> list[StoredJob]:
        """Every job, by id: one query, rows turned into StoredJobs as they are fetched (no
        list of rows, no mappings, no decoded documents: see StoredJob)."""
        with self._tx() as conn:
            # Fetched in batches (fetchmany), not one driver call per row.
            query = select(*_JOB_COLUMNS).order_by(JOBS.c.id).execution_options(yield_per=1000)
            result = conn.execute(query)
            return [
                StoredJob(id_, text, key, bool(on), since, source, created, updated)
                for id_, text, key, on, since, source, created, updated in result
            ]

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
            with self._tx() as conn:
                page = [
                    StoredJob(id_, text, key, bool(on), since, source, created, updated)
                    for id_, text, key, on, since, source, created, updated in conn.execute(query)
                ]
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
        with self._tx(write=True) as conn:
            self._lock_jobs(conn)
            current = conn.scalar(select(JOBS.c.enabled).where(JOBS.c.id == job_id))
            if current is None:
                raise JobNotFound(job_id)
            if bool(current) != enabled:
                values: dict[str, Any] = {"enabled": enabled, "updated_at": now}
                if enabled:
                    values["active_since"] = now
                conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(values))
                self._bump_revision(conn)
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().one()
        return _job(row)

    def remove_job(self, job_id: str) -> None:
        """Delete the job; its history rows stay. JobNotFound if there is none."""
        with self._tx(write=True) as conn:
            self._lock_jobs(conn)
            if not conn.execute(delete(JOBS).where(JOBS.c.id == job_id)).rowcount:
                raise JobNotFound(job_id)
            self._bump_revision(conn)

    def jobs_revision(self) -> int:
        """A number bumped by every job change, in the same transaction (cheap to poll)."""
        with self._tx() as conn:
            value = conn.scalar(self._sql.jobs_revision)
        return int(value or 0)

    def _lock_jobs(self, conn: Connection) -> None:
        # Serializes job writers on PostgreSQL (SQLite's BEGIN IMMEDIATE already has).
        if self._dialect == "postgresql":
            conn.execute(
                select(META.c.value).where(META.c.key == JOBS_REVISION_KEY).with_for_update()
            )

    def _bump_revision(self, conn: Connection) -> None:
        conn.execute(
            update(META)
            .where(META.c.key == JOBS_REVISION_KEY)
            .values(value=cast(cast(META.c.value, Integer) + 1, String))
        )

    def _job_states(self, conn: Connection) -> dict[str, _JobState]:
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

    # -- fires: lifecycle -----------------------------------------------------------------------
    def claim(
        self,
        job_id: str,
        scheduled_for: datetime,
        trigger: Trigger,
        *,
        now: datetime,
        daemon_id: str | None = None,
    ) -> Fire | None:
        """Insert the `pending` row for (job, instant), committed; None if it already exists."""
        instant = to_utc(scheduled_for)
        values = {
            "job_id": job_id,
            "scheduled_for": instant,
            "trigger": str(Trigger(trigger)),
            "status": str(FireStatus.PENDING),
            "attempts": 0,
            "claimed_by": daemon_id,
            "created_at": to_utc(now),
            "updated_at": to_utc(now),
        }
        with self._tx(write=True) as conn:
            if conn.dialect.insert_returning:
                # One statement: the new row comes back from the INSERT itself.
                row = conn.execute(self._sql.claim, values).mappings().first()
                return None if row is None else _fire(row)
            if not self._insert_fire(conn, values):
                return None
            return self._fire_at(conn, job_id, instant)

    def claim_many(
        self,
        instants: Sequence[tuple[str, datetime, Trigger]],
        *,
        now: datetime,
        daemon_id: str | None = None,
    ) -> list[Fire]:
        """`claim` for many (job, instant, trigger) at once, in one committed transaction.

        Returns the rows claimed, in the order given; an instant already claimed is left out.
        All or nothing: when the store fails, nothing is claimed.
        """
        if not instants:
            return []
        now = to_utc(now)
        rows = [
            {
                "job_id": job_id,
                "scheduled_for": to_utc(scheduled_for),
                "trigger": str(Trigger(trigger)),
                "status": str(FireStatus.PENDING),
                "attempts": 0,
                "claimed_by": daemon_id,
                "created_at": now,
                "updated_at": now,
            }
            for job_id, scheduled_for, trigger in instants
        ]
        with self._tx(write=True) as conn:
            if conn.dialect.insert_returning:
                # One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING (SQLAlchemy's
                # "insertmanyvalues"): ~25 us a row instead of ~200 us a claim.
                claimed = [_fire(row) for row in conn.execute(self._sql.claim, rows).mappings()]
            else:
                claimed = []
                for (job_id, _at, _trigger), values in zip(instants, rows, strict=True):
                    if self._insert_fire(conn, values):
                        fire = self._fire_at(conn, job_id, to_utc(_at))
                        assert fire is not None
                        claimed.append(fire)
        order = {(job_id, to_utc(at)): index for index, (job_id, at, _t) in enumerate(instants)}
        claimed.sort(key=lambda fire: order[(fire.job_id, fire.scheduled_for)])
        return claimed

    def start_attempt(
        self, fire_id: int, *, now: datetime, daemon_id: str | None = None
    ) -> Fire | None:
        """Mark an open fire `sending` and count the attempt; None if someone else moved it.

        The conditional UPDATE succeeds only from pending, retrying or uncertain, and only
        when the fire is unowned or owned by `daemon_id`; the caller then owns it.
        """
        now = to_utc(now)
        owned = daemon_id is not None
        params = {"b_id": fire_id, "b_now": now, "b_owner": daemon_id}
        with self._tx(write=True) as conn:
            if conn.dialect.update_returning:
                stmt = self._sql.start_attempt_returning[owned]
                row = conn.execute(stmt, params).mappings().first()
                return None if row is None else _fire(row)
            changed = conn.execute(self._sql.start_attempt[owned], params).rowcount
            return self._fire_by_id(conn, fire_id) if changed else None

    def start_attempts(
        self, fire_ids: Sequence[int], *, now: datetime, daemon_id: str | None = None
    ) -> list[Fire]:
        """`start_attempt` for many fires in one committed transaction; returns those started
        (the others were moved on by someone else), in no particular order."""
        if not fire_ids:
            return []
        now = to_utc(now)
        owned = daemon_id is not None
        started: list[Fire] = []
        with self._tx(write=True) as conn:
            if conn.dialect.update_returning:
                stmt = self._sql.start_attempts_returning[owned]
                for first in range(0, len(fire_ids), _IDS_PER_STATEMENT):
                    params = {
                        "b_ids": list(fire_ids[first : first + _IDS_PER_STATEMENT]),
                        "b_now": now,
                        "b_owner": daemon_id,
                    }
                    started += [_fire(row) for row in conn.execute(stmt, params).mappings()]
                return started
            for fire_id in fire_ids:
                params = {"b_id": fire_id, "b_now": now, "b_owner": daemon_id}
                if conn.execute(self._sql.start_attempt[owned], params).rowcount:
                    fire = self._fire_by_id(conn, fire_id)
                    assert fire is not None
                    started.append(fire)
        return started

    def finish(
        self,
        fire_id: int,
        status: FireStatus,
        *,
        now: datetime,
        remote_id: str | None = None,
        http_status: int | None = None,
        error: str | None = None,
        field_errors: Mapping[str, Sequence[str]] | None = None,
        next_attempt_at: datetime | None = None,
    ) -> Fire:
        """Record an outcome for a pending, sending or uncertain fire.

        `retrying` needs `next_attempt_at` and releases the fire (`claimed_by` = NULL) so any
        daemon may take the retry; `uncertain` keeps `next_attempt_at` when given; every other
        outcome clears it. FireConflict if the fire is in another state (someone else moved it
        on), FireNotFound if there is no such fire.
        """
        outcome = Outcome(
            fire_id,
            FireStatus(status),
            remote_id=remote_id,
            http_status=http_status,
            error=error,
            field_errors=field_errors,
            next_attempt_at=next_attempt_at,
        )
        values = _outcome_values(outcome, now)
        return self._transition(fire_id, _OPEN_FOR_FINISH, values, f"finish as {outcome.status}")

    def finish_many(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[Fire | None]:
        """`finish` for many fires in one committed transaction.

        Returns, for each outcome in order, the updated fire, or None when the fire was no
        longer open for it (someone else moved it on). All or nothing on a store failure.
        """
        if not outcomes:
            return []
        allowed = _OPEN_FOR_FINISH
        changes = [(outcome.fire_id, _outcome_values(outcome, now)) for outcome in outcomes]
        with self._tx(write=True) as conn:
            if len(changes) > 1 and conn.dialect.supports_sane_multi_rowcount:
                done = self._transition_all(conn, allowed, changes)
                if done is not None:
                    return list(done)
            return [self._transition_on(conn, fire_id, allowed, v) for fire_id, v in changes]

    def mark_uncertain(
        self,
        fire_id: int,
        *,
        now: datetime,
        error: str,
        http_status: int | None = None,
        next_attempt_at: datetime | None = None,
    ) -> Fire:
        """The request may have reached the API: `uncertain`, to reconcile before any resend.

        `next_attempt_at`, when given, says when to try reconciling next.
        """
        return self.finish(
            fire_id,
            FireStatus.UNCERTAIN,
            now=now,
            error=error,
            http_status=http_status,
            next_attempt_at=next_attempt_at,
        )

    def adopt(
        self, fire_id: int, *, expected_owner: str | None, new_owner: str, now: datetime
    ) -> Fire | None:
        """Take over an open fire from `expected_owner` (a daemon that stopped heartbeating).

        Conditional on the fire still being open and still owned by `expected_owner`, so of
        two adopters exactly one wins (the other gets None). A `sending` fire becomes
        `uncertain`: its request may have left, so it must be reconciled before any resend.
        Retrying fires can be adopted too (they are normally unowned).
        """
        now = to_utc(now)
        owner = (
            FIRES.c.claimed_by.is_(None)
            if expected_owner is None
            else FIRES.c.claimed_by == expected_owner
        )
        with self._tx(write=True) as conn:
            changed = conn.execute(
                update(FIRES)
                .where(FIRES.c.id == fire_id, _status_in(_OPEN_FOR_ADOPT), owner)
                .values(
                    claimed_by=new_owner,
                    status=func.coalesce(
                        func.nullif(FIRES.c.status, str(FireStatus.SENDING)),
                        str(FireStatus.UNCERTAIN),
                    ),
                    updated_at=now,
                )
            ).rowcount
            return self._fire_by_id(conn, fire_id) if changed else None

    def reopen(
        self, fire_id: int, trigger: Trigger, *, now: datetime, daemon_id: str | None = None
    ) -> Fire | None:
        """Turn a failed fire, or a single skipped instant, back into a `pending` claim.

        For `backfill`: those instants were never sent, so sending them now cannot duplicate
        anything. Conditional, like every change: None if the fire is in another state (or is a
        skip row standing for several instants).
        """
        now = to_utc(now)
        with self._tx(write=True) as conn:
            changed = conn.execute(
                update(FIRES)
                .where(
                    FIRES.c.id == fire_id,
                    _status_in((FireStatus.FAILED, FireStatus.SKIPPED)),
                    func.coalesce(FIRES.c.skipped_count, 1) == 1,
                )
                .values(
                    status=str(FireStatus.PENDING),
                    trigger=str(Trigger(trigger)),
                    attempts=0,
                    error=None,
                    field_errors=None,
                    http_status=None,
                    next_attempt_at=None,
                    first_attempt_at=None,
                    skipped_count=None,
                    skipped_until=None,
                    claimed_by=daemon_id,
                    updated_at=now,
                )
            ).rowcount
            return self._fire_by_id(conn, fire_id) if changed else None

    def record_skip(
        self,
        job_id: str,
        scheduled_for: datetime,
        *,
        reason: str,
        trigger: Trigger,
        now: datetime,
        count: int = 1,
        until: datetime | None = None,
    ) -> bool:
        """Record instants not fired: one row for `count` instants from `scheduled_for` to
        `until` (the last one). False if the first instant already has a row."""
        if count < 1:
            raise ValueError("count must be at least 1")
        if count > 1 and until is None:
            raise ValueError("a skip row for several instants needs `until`")
        start = to_utc(scheduled_for)
        last = None if until is None else to_utc(until)
        if last is not None and last < start:
            raise ValueError("until must not be before scheduled_for")
        values = {
            "job_id": job_id,
            "scheduled_for": start,
            "trigger": str(Trigger(trigger)),
            "status": str(FireStatus.SKIPPED),
            "attempts": 0,
            "error": reason,
            "skipped_count": count,
            "skipped_until": last,
            "created_at": to_utc(now),
            "updated_at": to_utc(now),
        }
        with self._tx(write=True) as conn:
            return self._insert_fire(conn, values)

    # -- fires: queries -------------------------------------------------------------------------
    def get_fire(self, fire_id: int) -> Fire:
        """The fire with this id; FireNotFound if there is none."""
        with self._tx() as conn:
            fire = self._fire_by_id(conn, fire_id)
        if fire is None:
            raise FireNotFound(fire_id)
        return fire

    def find_fire(self, job_id: str, scheduled_for: datetime) -> Fire | None:
        """The row for (job, instant), if any."""
        with self._tx() as conn:
            return self._fire_at(conn, job_id, to_utc(scheduled_for))

    def fires_touching(self, job_id: str, first: datetime, last: datetime) -> list[Fire]:
        """The job's rows accounting for any instant in [first, last] (a skip range counts by
        its span), oldest first: what a new skip range over [first, last] must leave out."""
        return self._fires(
            select(FIRES)
            .where(
                FIRES.c.job_id == job_id,
                FIRES.c.scheduled_for <= to_utc(last),
                _last_instant() >= to_utc(first),
            )
            .order_by(FIRES.c.scheduled_for, FIRES.c.id)
        )

    def history(
        self,
        job_id: str | None = None,
        *,
        status: FireStatus | str | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[Fire]:
        """Fires newest first (by scheduled instant), optionally of one job, in one status,
        and touching instants at or after `since` (a skip range counts by its last instant)."""
        query = select(FIRES)
        if job_id is not None:
            query = query.where(FIRES.c.job_id == job_id)
        if status is not None:
            query = query.where(FIRES.c.status == str(FireStatus(status)))
        if since is not None:
            query = query.where(_last_instant() >= to_utc(since))
        query = query.order_by(FIRES.c.scheduled_for.desc(), FIRES.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return self._fires(query)

    def due_retries(self, now: datetime, limit: int = 1000) -> list[Fire]:
        """Retrying fires whose `next_attempt_at` has come, oldest due first."""
        params = {"b_now": to_utc(now), "b_limit": limit}
        with self._tx() as conn:
            return [_fire(row) for row in conn.execute(self._sql.due_retries, params).mappings()]

    def unsettled(self, *, older_than: datetime) -> list[Fire]:
        """Fires to reconcile: pending/sending rows not updated since `older_than` (their daemon
        likely died), and every uncertain row; oldest instant first."""
        stale = and_(
            _status_in((FireStatus.PENDING, FireStatus.SENDING)),
            FIRES.c.updated_at < to_utc(older_than),
        )
        return self._fires(
            select(FIRES)
            .where(or_(stale, FIRES.c.status == str(FireStatus.UNCERTAIN)))
            .order_by(FIRES.c.scheduled_for, FIRES.c.id)
        )

    def next_retry_at(self) -> datetime | None:
        """The earliest `next_attempt_at` of a retrying fire."""
        with self._tx() as conn:
            value: datetime | None = conn.scalar(self._sql.next_retry_at)
        return value

    def accounted_until(self) -> dict[str, datetime]:
        """Per job, the newest scheduled instant the history accounts for (manual fires are
        not scheduled instants, so they do not count). One grouped query."""
        with self._tx() as conn:
            rows = conn.execute(
                select(FIRES.c.job_id, func.max(_last_instant()))
                .where(FIRES.c.trigger != str(Trigger.MANUAL))
                .group_by(FIRES.c.job_id)
            ).all()
        return {job_id: instant for job_id, instant in rows}

    def success_counts(self) -> dict[str, int]:
        """Per job, the number of succeeded fires."""
        with self._tx() as conn:
            rows = conn.execute(
                select(FIRES.c.job_id, func.count())
                .where(FIRES.c.status == str(FireStatus.SUCCEEDED))
                .group_by(FIRES.c.job_id)
            ).all()
        return {job_id: int(n) for job_id, n in rows}

    def success_count(self, job_id: str, *, before: datetime | None = None) -> int:
        """Succeeded fires of the job, only those scheduled strictly before `before` if given
        (so the template value `seq` of a late fire is what it would have been on time)."""
        params: dict[str, Any] = {"b_job": job_id}
        if before is not None:
            params["b_before"] = to_utc(before)
        with self._tx() as conn:
            return int(conn.scalar(self._sql.success_count[before is not None], params) or 0)

    def count_fires(self, job_id: str, *, statuses: Collection[FireStatus] | None = None) -> int:
        """The job's fires (rows, so a skip range counts once), only in `statuses` if given."""
        query = select(func.count()).where(FIRES.c.job_id == job_id)
        if statuses is not None:
            query = query.where(_status_in(tuple(statuses)))
        with self._tx() as conn:
            return int(conn.scalar(query) or 0)

    def latest_success(self, job_id: str) -> Fire | None:
        """The job's succeeded fire with the newest scheduled instant."""
        found = self._fires(
            select(FIRES)
            .where(FIRES.c.job_id == job_id, FIRES.c.status == str(FireStatus.SUCCEEDED))
            .order_by(FIRES.c.scheduled_for.desc(), FIRES.c.id.desc())
            .limit(1)
        )
        return found[0] if found else None

    def remote_ids(self, job_id: str, *, exclude_fire_id: int | None = None) -> set[str]:
        """The API ids already recorded for the job's fires (reconcile must not reuse them)."""
        query = select(FIRES.c.remote_id).where(
            FIRES.c.job_id == job_id, FIRES.c.remote_id.is_not(None)
        )
        if exclude_fire_id is not None:
            query = query.where(FIRES.c.id != exclude_fire_id)
        with self._tx() as conn:
            return {str(value) for value in conn.scalars(query)}

    def status_counts(self) -> dict[str, dict[str, int]]:
        """Per job, the number of fires in each status (for `status`)."""
        with self._tx() as conn:
            rows = conn.execute(
                select(FIRES.c.job_id, FIRES.c.status, func.count()).group_by(
                    FIRES.c.job_id, FIRES.c.status
                )
            ).all()
        out: dict[str, dict[str, int]] = {}
        for job_id, status, n in rows:
            out.setdefault(job_id, {})[status] = int(n)
        return out

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
        stmt = self._insert(DAEMONS).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[DAEMONS.c.id],
            set_={name: stmt.excluded[name] for name in values if name != "id"},
        )
        with self._tx(write=True) as conn:
            conn.execute(stmt)

    def daemons(self) -> list[DaemonInfo]:
        """Every daemon that has sent a heartbeat and not been removed, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(
                select(DAEMONS).order_by(DAEMONS.c.started_at, DAEMONS.c.id)
            ).mappings()
            return [DaemonInfo(**row) for row in rows]

    def remove_daemon(self, daemon_id: str) -> None:
        """Forget a daemon (on clean shutdown); no error if it is not there."""
        with self._tx(write=True) as conn:
            conn.execute(delete(DAEMONS).where(DAEMONS.c.id == daemon_id))

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        """One short transaction on a pooled connection, committed on success."""
        writer = self._writer if write else nullcontext()
        with self._serial, writer, self._translated(), self._engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors -> StoreUnavailable / SchemaError, with the password masked."""
        try:
            yield
        except sa_exc.TimeoutError:
            raise StoreUnavailable(
                f"store {self.url}: no free database connection within "
                f"{POOL_TIMEOUT.total_seconds():.0f} s"
            ) from None
        except sa_exc.DBAPIError as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc
        except sa_exc.StatementError as exc:
            # A bind processor refused a value (a naive datetime): surface its own error.
            if isinstance(exc.orig, ValueError | TypeError):
                raise exc.orig from None
            raise

    def _translate(self, exc: sa_exc.DBAPIError) -> StoreError | None:
        reason = self._scrub(str(exc.orig).strip().splitlines()[0] if str(exc.orig) else "")
        lowered = reason.lower()
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if "no such table" in lowered or sqlstate == "42P01":  # 42P01: undefined_table
            return SchemaError(f"store {self.url} is not initialized: run `tallyfy-scheduler init`")
        if self.is_sqlite:
            if not any(fragment in lowered for fragment in _SQLITE_UNAVAILABLE):
                return None
            if "locked" in lowered:
                reason += " (another process holds the write lock; try again later)"
            elif "readonly" in lowered or "unable to open" in lowered:
                not_writable = self._not_writable()
                if not_writable is not None:
                    return StoreUnavailable(
                        f"store {self.url} is read-only: {not_writable} is not writable "
                        "(SQLite writes the database file and its -wal and -shm files beside "
                        f"it): make the file and its folder writable for this user ({reason})"
                    )
            return StoreUnavailable(f"store {self.url} is unavailable: {reason}")
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or (
            exc.connection_invalidated
        ):
            return StoreUnavailable(f"store {self.url} is unavailable: {reason}")
        return None

    def _not_writable(self) -> Path | None:
        """The SQLite file or its folder, if this process may not write it (a clearer message
        than SQLite's "unable to open database file" for a read-only store)."""
        database = self._engine.url.database
        if not database or database == ":memory:":
            return None
        path = Path(database)
        for target in (path, path.parent):
            if target.exists() and not os.access(target, os.W_OK):
                return target
        return None

    def _scrub(self, message: str) -> str:
        password = self._engine.url.password
        return message.replace(str(password), "***") if password else message

    def _insert(self, table: Any) -> Any:
        return (pg_insert if self._dialect == "postgresql" else sqlite_insert)(table)

    def _insert_fire(self, conn: Connection, values: Mapping[str, Any]) -> bool:
        # ON CONFLICT DO NOTHING rather than catching IntegrityError: PostgreSQL would abort the
        # transaction and log an error for every lost race; SQLite >= 3.24 has it too.
        if conn.dialect.insert_returning:
            # With RETURNING (which SQLAlchemy adds implicitly where supported) rowcount is -1.
            return conn.execute(self._sql.insert_fire_id, dict(values)).first() is not None
        return bool(conn.execute(self._sql.insert_fire, dict(values)).rowcount)

    def _fire_by_id(self, conn: Connection, fire_id: int) -> Fire | None:
        row = conn.execute(self._sql.fire_by_id, {"b_id": fire_id}).mappings().first()
        return None if row is None else _fire(row)

    def _fire_at(self, conn: Connection, job_id: str, scheduled_for: datetime) -> Fire | None:
        params = {"b_job": job_id, "b_at": scheduled_for}
        row = conn.execute(self._sql.fire_at, params).mappings().first()
        return None if row is None else _fire(row)

    def _fires(self, query: Any) -> list[Fire]:
        with self._tx() as conn:
            return [_fire(row) for row in conn.execute(query).mappings()]

    def _transition(
        self,
        fire_id: int,
        allowed: Sequence[FireStatus],
        values: Mapping[str, Any],
        change: str,
    ) -> Fire:
        with self._tx(write=True) as conn:
            changed = self._transition_on(conn, fire_id, allowed, values)
            fire = changed or self._fire_by_id(conn, fire_id)
        if fire is None:
            raise FireNotFound(fire_id)
        if changed is None:
            raise FireConflict(fire_id, str(fire.status), change)
        return fire

    def _transition_all(
        self,
        conn: Connection,
        allowed: Sequence[FireStatus],
        changes: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> list[Fire] | None:
        """Every change as one executemany UPDATE per shape of values (~25 us a fire instead
        of ~80 us with RETURNING per fire), then one SELECT of the results. None, with nothing
        changed, when some fire was no longer open (the caller then goes fire by fire)."""
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for fire_id, values in changes:
            params = {f"v_{name}": value for name, value in values.items()}
            params["b_id"] = fire_id
            shapes.setdefault(tuple(sorted(values)), []).append(params)
        with conn.begin_nested() as savepoint:
            changed = 0
            for names, params_list in shapes.items():
                stmt = self._sql.transition_many(tuple(allowed), names)
                changed += conn.execute(stmt, params_list).rowcount
            if changed != len(changes):
                savepoint.rollback()
                return None
        ids = [fire_id for fire_id, _values in changes]
        fires: dict[int, Fire] = {}
        for first in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[first : first + _IDS_PER_STATEMENT]
            for row in conn.execute(self._sql.fires_by_ids, {"b_ids": chunk}).mappings():
                fires[row["id"]] = _fire(row)
        return [fires[fire_id] for fire_id in ids]

    def _transition_on(
        self,
        conn: Connection,
        fire_id: int,
        allowed: Sequence[FireStatus],
        values: Mapping[str, Any],
    ) -> Fire | None:
        """The conditional UPDATE of one fire on `conn`; the changed fire, None if unchanged."""
        allowed, names = tuple(allowed), tuple(sorted(values))
        params = {f"v_{name}": value for name, value in values.items()}
        params["b_id"] = fire_id
        if conn.dialect.update_returning:
            stmt = self._sql.transition(allowed, names, returning=True)
            row = conn.execute(stmt, params).mappings().first()
            return None if row is None else _fire(row)
        stmt = self._sql.transition(allowed, names, returning=False)
        if not conn.execute(stmt, params).rowcount:
            return None
        return self._fire_by_id(conn, fire_id)


class _Statements:
    """The statements of the hot paths (every fire, every tick), built once per store.

    Building a Core statement and its cache key costs more than running it on SQLite (a claim
    took ~0.8 ms of CPU, ~0.35 ms with a prebuilt INSERT ... RETURNING; bench/README.md,
    figure 3). Values are bound parameters, so the statements never change.
    """

    def __init__(self, dialect: str) -> None:
        insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
        self.insert_fire = insert_(FIRES).on_conflict_do_nothing(
            index_elements=[FIRES.c.job_id, FIRES.c.scheduled_for]
        )
        self.insert_fire_id = self.insert_fire.returning(FIRES.c.id)
        self.claim = self.insert_fire.returning(*FIRES.c)
        self.fire_by_id = select(FIRES).where(FIRES.c.id == bindparam("b_id"))
        self.fire_at = select(FIRES).where(
            FIRES.c.job_id == bindparam("b_job"),
            FIRES.c.scheduled_for == bindparam("b_at", type_=UTCDateTime()),
        )
        now = bindparam("b_now", type_=UTCDateTime())
        unowned = FIRES.c.claimed_by.is_(None)

        # [False]: no daemon id (only unowned fires); [True]: unowned or owned by b_owner.
        def start(which: Any) -> Any:
            return tuple(
                update(FIRES)
                .where(
                    which,
                    _status_in(_OPEN_FOR_START),
                    or_(unowned, FIRES.c.claimed_by == bindparam("b_owner")) if owned else unowned,
                )
                .values(
                    status=str(FireStatus.SENDING),
                    attempts=FIRES.c.attempts + 1,
                    first_attempt_at=func.coalesce(FIRES.c.first_attempt_at, now),
                    claimed_by=bindparam("b_owner"),
                    updated_at=now,
                )
                for owned in (False, True)
            )

        self.start_attempt = start(FIRES.c.id == bindparam("b_id"))
        # With the changed rows back, built once: `.returning()` per call regenerates the
        # statement's cache key (~0.1 ms a call). The list form expands `b_ids` into IN (...).
        self.start_attempt_returning = tuple(s.returning(*FIRES.c) for s in self.start_attempt)
        self.start_attempts_returning = tuple(
            s.returning(*FIRES.c) for s in start(FIRES.c.id.in_(bindparam("b_ids", expanding=True)))
        )
        succeeded = select(func.count()).where(
            FIRES.c.job_id == bindparam("b_job"), FIRES.c.status == str(FireStatus.SUCCEEDED)
        )
        self.success_count = (
            succeeded,
            succeeded.where(FIRES.c.scheduled_for < bindparam("b_before", type_=UTCDateTime())),
        )
        self.jobs_revision = select(META.c.value).where(META.c.key == JOBS_REVISION_KEY)
        retrying = FIRES.c.status == str(FireStatus.RETRYING)
        self.due_retries = (
            select(FIRES)
            .where(retrying, FIRES.c.next_attempt_at <= bindparam("b_now", type_=UTCDateTime()))
            .order_by(FIRES.c.next_attempt_at, FIRES.c.id)
            .limit(bindparam("b_limit"))
        )
        self.next_retry_at = select(func.min(FIRES.c.next_attempt_at)).where(retrying)
        self._transitions: dict[tuple[tuple[FireStatus, ...], tuple[str, ...], object], Any] = {}
        self.fires_by_ids = select(FIRES).where(FIRES.c.id.in_(bindparam("b_ids", expanding=True)))

    def transition_many(self, allowed: tuple[FireStatus, ...], names: tuple[str, ...]) -> Any:
        """`transition` for executemany: the status test without an expanding IN, no RETURNING."""
        key = (allowed, names, "many")
        stmt = self._transitions.get(key)
        if stmt is None:
            stmt = (
                update(FIRES)
                .where(
                    FIRES.c.id == bindparam("b_id"),
                    or_(*(FIRES.c.status == str(status) for status in allowed)),
                )
                .values({name: bindparam(f"v_{name}") for name in names})
            )
            self._transitions[key] = stmt
        return stmt

    def transition(
        self, allowed: tuple[FireStatus, ...], names: tuple[str, ...], *, returning: bool
    ) -> Any:
        """`UPDATE fires SET <names> WHERE id = :b_id AND status IN (<allowed>)`, cached, with
        `RETURNING` every column when `returning`."""
        key = (allowed, names, returning)
        stmt = self._transitions.get(key)
        if stmt is None:
            stmt = (
                update(FIRES)
                .where(FIRES.c.id == bindparam("b_id"), _status_in(allowed))
                .values({name: bindparam(f"v_{name}") for name in names})
            )
            if returning:
                stmt = stmt.returning(*FIRES.c)
            self._transitions[key] = stmt  # a handful of shapes: finish, retry, uncertain
        return stmt


# -- helpers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _JobState:
    definition_hash: str
    schedule_key: str
    enabled: bool
    source: str | None
    active_since: datetime


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


def _status_in(statuses: Sequence[FireStatus]) -> ColumnElement[bool]:
    return FIRES.c.status.in_([str(s) for s in statuses])


def _last_instant() -> ColumnElement[datetime]:
    """The last instant a row accounts for: `skipped_until` for a skip range, else its own."""
    return func.coalesce(FIRES.c.skipped_until, FIRES.c.scheduled_for)


def _outcome_values(outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The columns `finish` sets for `outcome`; ValueError for an outcome it cannot record."""
    status = outcome.status
    if status not in _FINISH_TARGETS:
        raise ValueError(f"cannot finish a fire as {status}")
    next_attempt_at = outcome.next_attempt_at
    if status is FireStatus.RETRYING and next_attempt_at is None:
        raise ValueError("a retrying fire needs next_attempt_at")
    keep_next = status in (FireStatus.RETRYING, FireStatus.UNCERTAIN)
    values: dict[str, Any] = {
        "status": str(status),
        "remote_id": outcome.remote_id,
        "http_status": outcome.http_status,
        "error": outcome.error,
        "field_errors": _field_errors_json(outcome.field_errors),
        "next_attempt_at": to_utc(next_attempt_at) if keep_next and next_attempt_at else None,
        "updated_at": to_utc(now),
    }
    if status is FireStatus.RETRYING:
        values["claimed_by"] = None  # any daemon may take the retry
    return values


def _field_errors_json(field_errors: Mapping[str, Sequence[str]] | None) -> str | None:
    if not field_errors:
        return None
    return json.dumps({k: list(v) for k, v in field_errors.items()}, sort_keys=True)


# The columns of a StoredJob, in the order of its fields (`list_jobs` builds them positionally).
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


def _job(row: RowMapping) -> StoredJob:
    return StoredJob(
        id=row["id"],
        definition_json=row["definition"],
        schedule_key=row["schedule_key"],
        enabled=bool(row["enabled"]),
        active_since=row["active_since"],
        source=row["source"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _fire(row: RowMapping) -> Fire:
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
