"""The database under the store: engines, short transactions, and driver errors translated.

Owns everything that depends on which database it is (SQLite or PostgreSQL) rather than on
what is stored: the engine and its pool, SQLite's pragmas and transaction mode, the lowest
SQLite it runs on, one short transaction per call, and turning driver errors into
`StoreUnavailable` / `SchemaError` with the password masked.

Transactions on SQLite
    pysqlite's implicit BEGIN is switched off; we emit `BEGIN IMMEDIATE` for writes and a
    deferred `BEGIN` for reads. Taking the write lock up front is where the busy timeout
    applies; a deferred transaction that reads and then writes may instead fail at once with
    "database is locked", because SQLite cannot wait to upgrade a stale read snapshot. In WAL
    mode readers never wait for the writer.

RETURNING
    Every write of the fire ledger reads its rows back in the same statement (INSERT/UPDATE
    ... RETURNING), which SQLite has since 3.35 (2021; Debian 12 ships 3.40) and PostgreSQL
    always had. An older SQLite is refused when the engine is made, not met mid-fire.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote, unquote

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from scheduler.errors import ConfigError, SchemaError, StoreError, StoreUnavailable, problem

__all__ = ["IDS_PER_STATEMENT", "MIN_SQLITE", "Database", "chunks", "make_engine"]

# -- tunables -----------------------------------------------------------------------------------
DEFAULT_BUSY_TIMEOUT = timedelta(seconds=5)  # how long SQLite waits for another writer's lock
# The daemon runs up to `max_concurrent_fires` (default 8) sender threads plus its loop,
# heartbeat and reload; this leaves head room without letting a leak go unnoticed.
POOL_SIZE = 10
POOL_MAX_OVERFLOW = 10
POOL_TIMEOUT = timedelta(seconds=30)  # waiting longer for a connection means: unavailable
PG_CONNECT_TIMEOUT = timedelta(seconds=10)  # an unreachable server fails instead of hanging
# Ids in one `IN (...)` list: well under SQLite's 32,766 bound variables and PostgreSQL's 65,535.
IDS_PER_STATEMENT: Final = 500
MIN_SQLITE: Final = (3, 35, 0)  # RETURNING

_WRITE_OPTION = "tallyfy_write"  # connection execution option: SQLite BEGIN IMMEDIATE

# Fragments of driver messages that mean "the store is there but cannot serve us right now".
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "readonly database",
)

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = IDS_PER_STATEMENT) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size` (one `IN (...)` list each)."""
    for first in range(0, len(items), size):
        yield items[first : first + size]


# -- engine -------------------------------------------------------------------------------------
def make_engine(
    url: str | URL,
    *,
    connect_args: Mapping[str, Any] | None = None,
    busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
    create: bool = True,
) -> Engine:
    """An engine for `sqlite:///path` or `postgresql+psycopg://...`, set up for the store.

    SQLite: refuses a library older than `MIN_SQLITE`; with `create`, makes the parent
    directory and the file (mode 0600) before SQLAlchemy opens it; without, refuses a file
    that is not there (SchemaError: run `init`) and opens it so that SQLite cannot create it
    either (`mode=rw`): only `init` creates a store. Sets WAL, foreign keys, `busy_timeout`
    and `synchronous=NORMAL` on every connection. `sqlite://` (in memory) works too, for
    experiments: one shared connection, serialized.
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
        return _sqlite_engine(parsed, dict(connect_args or {}), busy_timeout, create)
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


def _check_sqlite_version() -> None:
    version = sqlite3.sqlite_version_info
    if version < MIN_SQLITE:
        raise StoreError(
            f"SQLite {'.'.join(map(str, version))} is too old: tallyfy-scheduler needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer (for RETURNING); upgrade the system's "
            "SQLite library (libsqlite3) that Python's sqlite3 module uses, or use PostgreSQL"
        )


def _sqlite_engine(
    url: URL, connect_args: dict[str, Any], busy_timeout: timedelta, create: bool
) -> Engine:
    _check_sqlite_version()
    database = url.database or ""
    memory = database in ("", ":memory:")
    connect_args.setdefault("check_same_thread", False)  # the pool hands connections to threads
    connect_args.setdefault("timeout", busy_timeout.total_seconds())
    if memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
    else:
        path = Path(database).expanduser()
        if create:
            _create_private_file(path)
        elif not path.is_file():
            raise SchemaError(f"no store at {path}: run `tallyfy-scheduler init` to create it")
        engine = create_engine(
            # A URI with mode=rw: should the file go, a new connection fails instead of
            # creating an empty store in its place.
            url.set(database=f"file:{quote(str(path))}", query={"mode": "rw", "uri": "true"}),
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


# -- transactions -------------------------------------------------------------------------------
class Database:
    """An engine made by `make_engine`, used one short transaction at a time.

    Safe to use from many threads: each transaction checks a connection out of the pool for
    its own use.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        # `sqlite://` shares one connection between threads: serialize its transactions.
        memory = self.is_sqlite and isinstance(engine.pool, StaticPool)
        self._serial: AbstractContextManager[Any] = threading.RLock() if memory else nullcontext()
        # SQLite has one writer at a time. Threads of this process queue for it here, and are
        # woken the moment it is free, instead of in SQLite's busy handler, which sleeps in
        # 1-100 ms steps (other processes still meet the busy timeout).
        self._writer: AbstractContextManager[Any] = (
            threading.RLock() if self.is_sqlite and not memory else nullcontext()
        )

    @property
    def url(self) -> str:
        """The database URL with any password masked (a SQLite file as `sqlite:///PATH`)."""
        path = self.file_path
        if path is not None:
            return f"sqlite:///{path}"
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def file_path(self) -> Path | None:
        """The SQLite database file, or None (PostgreSQL, or SQLite in memory)."""
        database = self.engine.url.database or ""
        if not self.is_sqlite or database in ("", ":memory:"):
            return None
        if database.startswith("file:"):  # opened as a URI (`mode=rw`)
            return Path(unquote(database.removeprefix("file:")))
        return Path(database)

    def insert(self, table: Table) -> Any:
        """This dialect's INSERT for `table` (it has `on_conflict_do_nothing/update`)."""
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    @contextmanager
    def tx(self, *, write: bool = False) -> Iterator[Connection]:
        """One short transaction on a pooled connection, committed on success."""
        writer = self._writer if write else nullcontext()
        with self._serial, writer, self._translated(), self.engine.connect() as conn:
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
        database = self.engine.url.database
        if not database or database == ":memory:":
            return None
        path = Path(database)
        for target in (path, path.parent):
            if target.exists() and not os.access(target, os.W_OK):
                return target
        return None

    def _scrub(self, message: str) -> str:
        password = self.engine.url.password
        return message.replace(str(password), "***") if password else message
