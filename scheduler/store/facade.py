"""`Store`: the one object the rest of the code uses for the database.

A facade over the store's modules, each owning one concept, all on one `Database`:

- `database.py`: engines, SQLite's pragmas, short transactions, driver errors translated;
- `schema.py`: the schema versions and their migrations (`init_schema`, `check_schema`);
- `jobs.py`: the job repository (`apply` and its diffing, reads, pause/resume, revision);
- `ledger.py`: the fire ledger, the fire state machine of `scheduler.lifecycle` (claim,
  record_skips, start_attempts, finish, adopt, reopen: batch-shaped) and its reads;
- `reports.py`: history, per-job counts, daemon heartbeats;
- `incidents.py`: alerts' incidents, the outbox of their messages, and the ledger reads
  alerts start from;
- `retention.py`: pruning old history (watermarks, kept counts) and the lease for it;
- `tables.py`: the tables themselves.

`Store` is those parts put together (each is a mixin holding no state but the shared
`Database`), so callers say `store.claim(...)`, `store.apply(...)`, not which part does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from scheduler.store.database import Database, make_engine
from scheduler.store.incidents import IncidentStore
from scheduler.store.jobs import JobRepository
from scheduler.store.ledger import FireLedger
from scheduler.store.reports import Reports
from scheduler.store.retention import Retention
from scheduler.store.schema import MIGRATIONS, Migration, SchemaVersions, checked_migrations

__all__ = ["Store"]


class Store(SchemaVersions, JobRepository, FireLedger, Reports, IncidentStore, Retention):
    """Jobs, fire history and heartbeats, on SQLite or PostgreSQL: the single source of truth.

    Opens a short transaction per call, commits every write before returning, and hands back
    frozen domain objects (`StoredJob`, `Fire`, `DaemonInfo`, `ApplyPlan`), never sessions or
    rows. Safe to call from many threads.

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
        self._migrations = checked_migrations(migrations)
        self._db = Database(engine)

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """A store on the database at `url` (see `make_engine`); without `create`, a SQLite
        file that is not there is refused (SchemaError), never made."""
        return cls(make_engine(url, create=create))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (tests inject faults through its events)."""
        return self._db.engine

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._db.url

    @property
    def file_path(self) -> Path | None:
        """The SQLite database file (None for PostgreSQL or memory): the daemon watches it."""
        return self._db.file_path

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.engine.dispose()
