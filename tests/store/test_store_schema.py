"""The store's engine set-up and schema versioning (init, upgrade, refusal of newer stores)."""

from __future__ import annotations

import sqlite3
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from scheduler.errors import ConfigError, SchemaError, StoreError
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import MIGRATIONS, SCHEMA_VERSION, Migration, Outcome, Store, make_engine
from scheduler.store.tables import FIRES

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _create_extra_table(conn: Connection) -> None:
    conn.execute(text("CREATE TABLE extra (id INTEGER PRIMARY KEY)"))


def _has_table(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return inspect(conn).has_table(name)


NEXT = SCHEMA_VERSION + 1  # a version this code does not know yet
WITH_V2: tuple[tuple[int, Migration], ...] = (*MIGRATIONS, (NEXT, _create_extra_table))


# -- SQLite file set-up --------------------------------------------------------------------------
def test_it_creates_the_sqlite_file_and_its_directory_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a" / "b" / "scheduler.db"
    store = Store.open(f"sqlite:///{path}")
    store.init_schema()
    store.claim([("job", NOW, Trigger.SCHEDULE)], now=NOW)  # a write, so WAL files exist

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for sidecar in (path.with_name("scheduler.db-wal"), path.with_name("scheduler.db-shm")):
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600, sidecar
    store.close()


def test_it_leaves_the_mode_of_an_existing_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    Store.open(f"sqlite:///{path}").init_schema()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_every_sqlite_connection_uses_wal_and_the_pragmas(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    pragmas = {}
    with engine.connect() as conn:
        for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
            pragmas[name] = conn.exec_driver_sql(f"PRAGMA {name}").scalar()
    engine.dispose()
    # synchronous: 1 is NORMAL.
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "synchronous": 1,
    }

    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:  # WAL is persistent: a plain client sees it too
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


def test_an_sqlite_without_returning_is_refused_when_the_engine_is_made(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    with pytest.raises(StoreError, match=r"SQLite 3\.34\.1 is too old: .* 3\.35\.0 or newer"):
        make_engine(sqlite_url)
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # refused before creating


def test_an_in_memory_sqlite_store_works_for_experiments() -> None:
    store = Store.open("sqlite://")
    assert store.init_schema() == SCHEMA_VERSION
    assert store.claim([("job", NOW, Trigger.MANUAL)], now=NOW) != [None]
    store.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://u:hunter2@host/db", "postgresql+psycopg2://u:hunter2@host/db", "not a url"],
    ids=["other-database", "other-driver", "garbage"],
)
def test_it_refuses_unsupported_urls_without_showing_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_engine(url)
    assert "hunter2" not in str(caught.value)


def test_a_plain_postgresql_url_means_psycopg_3() -> None:
    engine = make_engine("postgresql://u:pw@127.0.0.1:1/db")
    assert engine.url.drivername == "postgresql+psycopg"
    assert Store(engine).url == "postgresql+psycopg://u:***@127.0.0.1:1/db"


# -- schema versioning (both databases) --------------------------------------------------------
def test_a_new_store_reports_no_version_and_refuses_to_be_used(blank_store: Store) -> None:
    assert blank_store.schema_version() is None
    with pytest.raises(SchemaError, match=r"not initialized: run `tallyfy-scheduler init`"):
        blank_store.check_schema()


def test_using_a_store_before_init_says_to_run_init(blank_store: Store) -> None:
    with pytest.raises(SchemaError, match="run `tallyfy-scheduler init`"):
        blank_store.claim([("job", NOW, Trigger.SCHEDULE)], now=NOW)


def test_init_creates_the_schema_and_is_idempotent(blank_store: Store) -> None:
    assert blank_store.init_schema() == SCHEMA_VERSION
    blank_store.claim([("job", NOW, Trigger.SCHEDULE)], now=NOW)
    revision = blank_store.jobs_revision()

    assert blank_store.init_schema() == SCHEMA_VERSION  # again: changes nothing
    blank_store.check_schema()
    assert blank_store.schema_version() == SCHEMA_VERSION
    assert blank_store.jobs_revision() == revision == 0
    assert len(blank_store.history()) == 1


def test_two_inits_at_once_both_succeed(blank_store: Store) -> None:
    results: list[object] = []
    barrier = threading.Barrier(2)

    def init() -> None:
        barrier.wait()
        try:
            results.append(blank_store.init_schema())
        except Exception as exc:  # collected, asserted below
            results.append(exc)

    threads = [threading.Thread(target=init) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [SCHEMA_VERSION, SCHEMA_VERSION]


def test_init_upgrades_an_older_store_through_the_new_migrations(store: Store) -> None:
    newer_code = Store(store.engine, migrations=WITH_V2)
    with pytest.raises(
        SchemaError, match=rf"older than this tallyfy-scheduler's {NEXT}: run `tallyfy"
    ):
        newer_code.check_schema()

    assert newer_code.init_schema() == NEXT
    newer_code.check_schema()
    assert _has_table(store.engine, "extra")
    assert newer_code.init_schema() == NEXT  # idempotent after an upgrade too


def test_a_failing_migration_leaves_the_store_at_its_old_version(store: Store) -> None:
    def half_done(conn: Connection) -> None:
        _create_extra_table(conn)
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        Store(store.engine, migrations=(*MIGRATIONS, (NEXT, half_done))).init_schema()
    assert store.schema_version() == SCHEMA_VERSION
    assert not _has_table(store.engine, "extra")  # the DDL was rolled back with it


def test_it_refuses_a_store_created_by_a_newer_version(store: Store) -> None:
    Store(store.engine, migrations=WITH_V2).init_schema()
    message = (
        rf"created by a newer tallyfy-scheduler \(schema {NEXT} > {SCHEMA_VERSION}\); "
        "upgrade the package"
    )
    with pytest.raises(SchemaError, match=message):
        store.check_schema()
    with pytest.raises(SchemaError, match=message):  # and never "downgrades" it
        store.init_schema()
    assert store.schema_version() == NEXT


@pytest.mark.parametrize(
    "migrations",
    [(), ((2, _create_extra_table), (1, _create_extra_table)), ((0, _create_extra_table),)],
    ids=["empty", "out-of-order", "version-0"],
)
def test_it_refuses_a_malformed_migration_list(
    sqlite_url: str, migrations: tuple[tuple[int, Migration], ...]
) -> None:
    with pytest.raises(ValueError, match="increasing versions"):
        Store(make_engine(sqlite_url), migrations=migrations)


def test_version_4_gives_an_old_fires_table_the_new_shape_and_keeps_every_row(
    blank_store: Store,
) -> None:
    engine = blank_store.engine
    old = Store(engine, migrations=MIGRATIONS[:3])
    assert old.init_schema() == 3
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    stamp = "'2026-03-01 00:00:00.000000'"
    row = (
        'INSERT INTO fires (id, job_id, scheduled_for, "trigger", status, attempts, claimed_by,'
        f" created_at, updated_at) VALUES (7, 'j', {stamp}, 'schedule', '{{}}', 0, 'd', {stamp},"
        f" {stamp})"
    )
    with engine.begin() as conn:  # version 3 refuses the status version 4 adds
        with pytest.raises(IntegrityError):
            with conn.begin_nested():
                conn.execute(text(row.format("held")))
        conn.execute(text(row.format("pending")))

    assert Store(engine).init_schema() == SCHEMA_VERSION == 4

    upgraded = inspect(engine)
    assert [c["name"] for c in upgraded.get_columns("fires")] == [c.name for c in FIRES.c]
    names = {i["name"] for i in upgraded.get_indexes("fires")}  # PostgreSQL lists uq_ too
    assert {n for n in names if n and n.startswith("ix_")} == {i.name for i in FIRES.indexes}
    assert {c["name"] for c in upgraded.get_unique_constraints("fires")} == {
        "uq_fires_job_id_scheduled_for"
    }
    kept = blank_store.get_fire(7)
    assert (kept.job_id, kept.scheduled_for, kept.status) == ("j", t0, FireStatus.PENDING)
    assert kept.claimed_by == "d"
    (held,) = blank_store.defer(
        [Outcome(kept.id, FireStatus.HELD, error="waiting", next_attempt_at=t0)], now=t0
    )
    assert held is not None and held.status is FireStatus.HELD
    (again,) = blank_store.claim([("j", t0, Trigger.SCHEDULE)], now=t0)
    assert again is None  # the unique key survived the rebuild
