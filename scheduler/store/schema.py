"""Schema versions: the ordered migrations, and creating, upgrading and checking a store.

A deliberately small replacement for Alembic. `MIGRATIONS` is an ordered tuple of
`(version, function(connection))`; the store's version lives in `meta.schema_version`.
`init_schema()` runs, in ONE transaction and under a lock (SQLite's write lock, PostgreSQL's
advisory lock), every migration newer than the store's version, records the new version, and
returns it; running it again changes nothing. `check_schema()` refuses a store that is
missing, older (run `tallyfy-scheduler init`) or newer than this code (upgrade the package).

Adding a migration: append `(N + 1, function)`, change the tables (tables.py) to match, freeze
whatever earlier migrations derived from the tables (migration 1 builds them from tables.py,
which is exact only while version 1 is the newest), and commit a snapshot of a version N + 1
store with data in it (docs/upgrading.md, "Adding a schema version"): the upgrade test then
upgrades every earlier snapshot and lets the daemon fire on from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    inspect,
    select,
    text,
    update,
)

from scheduler.errors import SchemaError
from scheduler.lifecycle import Trigger
from scheduler.store.database import Database
from scheduler.store.tables import (
    DAEMONS,
    JOBS,
    JOBS_REVISION_KEY,
    META,
    SCHEMA_VERSION_KEY,
    V2_TABLES,
    V3_TABLES,
    UTCDateTime,
    in_values,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "SchemaVersions", "checked_migrations"]

Migration = Callable[[Connection], None]

# An arbitrary constant naming our PostgreSQL advisory lock for schema changes.
_PG_SCHEMA_LOCK = 7_324_811_950_113


# The statuses a fire could have in schema versions 1 to 3, and from version 4 (`held`).
_V1_FIRE_STATUSES = "pending sending succeeded retrying uncertain failed skipped".split()
_V4_FIRE_STATUSES = [*_V1_FIRE_STATUSES, "held"]


def _fires(name: str, statuses: list[str], *, closed_at: bool, indexes: bool = True) -> Table:
    """`fires` as a schema version made it, written out: tables.py has the newest shape, and
    a migration must do the same thing whatever later versions change (version 1: the first
    statuses, no `remote_closed_at`; version 4: `held` and `remote_closed_at`)."""
    extra: list[Any] = [Column("remote_closed_at", UTCDateTime)] if closed_at else []
    if indexes:
        extra += [
            Index("ix_fires_status_next_attempt_at", "status", "next_attempt_at"),
            Index("ix_fires_scheduled_for", "scheduled_for"),
        ]
    return Table(
        name,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("job_id", String, nullable=False),
        Column("scheduled_for", UTCDateTime, nullable=False),
        Column("trigger", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", UTCDateTime),
        Column("first_attempt_at", UTCDateTime),
        Column("remote_id", String),
        Column("http_status", Integer),
        Column("error", Text),
        Column("field_errors", Text),
        Column("skipped_count", Integer),
        Column("skipped_until", UTCDateTime),
        Column("claimed_by", String),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        *extra,
        UniqueConstraint("job_id", "scheduled_for", name="uq_fires_job_id_scheduled_for"),
        CheckConstraint(in_values("status", statuses), name="ck_fires_status"),
        CheckConstraint(in_values("trigger", Trigger), name="ck_fires_trigger"),
        CheckConstraint("attempts >= 0", name="ck_fires_attempts"),
    )


def _migrate_to_1(conn: Connection) -> None:
    """Version 1: the jobs, fires, daemons and meta tables; `jobs_revision` starts at 0.

    `fires` is version 1's, frozen above; the other three are still as tables.py has them (a
    version that changes one of them writes it out here first, docs/upgrading.md).
    """
    META.metadata.create_all(conn, tables=[JOBS, DAEMONS, META])
    _fires("fires", _V1_FIRE_STATUSES, closed_at=False).create(conn)
    conn.execute(META.insert().values(key=JOBS_REVISION_KEY, value="0"))


def _migrate_to_2(conn: Connection) -> None:
    """Version 2: alerts. The incidents and the outbox of their messages (notifications)."""
    V2_TABLES[0].metadata.create_all(conn, tables=list(V2_TABLES))


def _migrate_to_3(conn: Connection) -> None:
    """Version 3: policies. `job_marks`: who paused a job and why (the failure breaker), and
    what history retention pruned of its history (the watermark and the counts kept)."""
    V3_TABLES[0].metadata.create_all(conn, tables=list(V3_TABLES))


def _migrate_to_4(conn: Connection) -> None:
    """Version 4: overlap. A fire may be `held`; `fires.remote_closed_at` remembers that what
    a fire created is closed.

    PostgreSQL changes the CHECK in place. SQLite cannot change a CHECK constraint, so the
    table is rebuilt the way its documentation says (ALTER TABLE, "other kinds of table
    schema changes"): a new table, the rows copied, the old one dropped, the new one renamed.
    """
    statuses = in_values("status", _V4_FIRE_STATUSES)
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE fires ADD COLUMN remote_closed_at TIMESTAMP"))
        conn.execute(text("ALTER TABLE fires DROP CONSTRAINT ck_fires_status"))
        conn.execute(text(f"ALTER TABLE fires ADD CONSTRAINT ck_fires_status CHECK ({statuses})"))
        return
    old = _fires("fires", _V1_FIRE_STATUSES, closed_at=False)
    for index in old.indexes:  # index names are per database in SQLite: free them first
        conn.execute(text(f"DROP INDEX {index.name}"))
    # The secondary indexes are built after the copy, in one pass each (bench/bench_migrate.py).
    _fires("fires_v4", _V4_FIRE_STATUSES, closed_at=True, indexes=False).create(conn)
    columns = ", ".join(f'"{c.name}"' for c in old.c)
    conn.execute(text(f"INSERT INTO fires_v4 ({columns}) SELECT {columns} FROM fires"))
    conn.execute(text("DROP TABLE fires"))
    conn.execute(text("ALTER TABLE fires_v4 RENAME TO fires"))
    for index in old.indexes:
        index.create(conn)


MIGRATIONS: tuple[tuple[int, Migration], ...] = (
    (1, _migrate_to_1),
    (2, _migrate_to_2),
    (3, _migrate_to_3),
    (4, _migrate_to_4),
)
SCHEMA_VERSION: Final = 4
assert MIGRATIONS[-1][0] == SCHEMA_VERSION


def checked_migrations(
    migrations: Sequence[tuple[int, Migration]],
) -> tuple[tuple[int, Migration], ...]:
    """`migrations` as a tuple; ValueError unless their versions increase from 1 or more."""
    versions = [v for v, _ in migrations]
    if not versions or versions != sorted(set(versions)) or versions[0] < 1:
        raise ValueError("migrations must be a non-empty list with increasing versions >= 1")
    return tuple(migrations)


class SchemaVersions:
    """The store's part that creates, upgrades and checks its schema (a `Store` mixin).

    `_migrations` are this code's migrations; its schema version is the last one's.
    """

    _db: Database
    _migrations: tuple[tuple[int, Migration], ...]

    def init_schema(self) -> int:
        """Create or upgrade the schema in one transaction; idempotent. Returns the version."""
        with self._db.tx(write=True) as conn:
            if self._db.dialect == "postgresql":
                # Two `init`s at once: the second waits, then finds the work done.
                conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
            current = _read_version(conn) or 0
            if current > self._target:
                raise self._newer_error(current)
            for version, migrate in self._migrations:
                if version > current:
                    migrate(conn)
                    _write_version(conn, version)
                    current = version
            return current

    def check_schema(self) -> None:
        """Raise SchemaError unless the store is initialized at exactly this code's version."""
        version = self.schema_version()
        url = self._db.url
        if version is None:
            raise SchemaError(f"store {url} is not initialized: run `tallyfy-scheduler init`")
        if version < self._target:
            raise SchemaError(
                f"store {url} has schema version {version}, older than this "
                f"tallyfy-scheduler's {self._target}: run `tallyfy-scheduler init` to upgrade it"
            )
        if version > self._target:
            raise self._newer_error(version)

    def schema_version(self) -> int | None:
        """The store's schema version, or None when it was never initialized."""
        with self._db.tx() as conn:
            return _read_version(conn)

    @property
    def _target(self) -> int:
        return self._migrations[-1][0]

    def _newer_error(self, version: int) -> SchemaError:
        return SchemaError(
            f"store {self._db.url} was created by a newer tallyfy-scheduler "
            f"(schema {version} > {self._target}); upgrade the package"
        )


def _read_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(META.name):
        return None
    value = conn.scalar(select(META.c.value).where(META.c.key == SCHEMA_VERSION_KEY))
    return None if value is None else int(value)


def _write_version(conn: Connection, version: int) -> None:
    changed = conn.execute(
        update(META).where(META.c.key == SCHEMA_VERSION_KEY).values(value=str(version))
    ).rowcount
    if not changed:
        conn.execute(META.insert().values(key=SCHEMA_VERSION_KEY, value=str(version)))
