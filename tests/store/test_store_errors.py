"""How the store fails: StoreUnavailable for a locked or unreachable database, never with the
password in the message; naive instants refused at the column type."""

from __future__ import annotations

import sqlite3
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from scheduler.errors import StoreError, StoreUnavailable
from scheduler.lifecycle import Trigger
from scheduler.store import Store, make_engine
from scheduler.store.tables import UTCDateTime

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "s3cret-Pa55word"


def full_text(exc: BaseException) -> str:
    """The exception as a log or traceback would show it, causes included."""
    return "".join(traceback.format_exception(exc))


def test_a_write_to_a_locked_sqlite_database_raises_store_unavailable(sqlite_url: str) -> None:
    store = Store(make_engine(sqlite_url, busy_timeout=timedelta(milliseconds=100)))
    store.init_schema()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="database is locked") as caught:
            store.claim([("job", T0, Trigger.SCHEDULE)], now=T0)
        assert time.monotonic() - started < 3  # the short busy timeout, not the default
        assert "another process holds the write lock" in str(caught.value)
        assert store.history() == []  # WAL: reads still work while the writer holds the lock
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.claim([("job", T0, Trigger.SCHEDULE)], now=T0) != [None]  # and it passes
    store.close()


def test_an_unreachable_postgresql_raises_store_unavailable_without_the_password() -> None:
    # Port 1 on localhost: connection refused at once.
    store = Store.open(f"postgresql+psycopg://tallyfy:{PASSWORD}@127.0.0.1:1/tallyfy")

    with pytest.raises(StoreUnavailable, match="is unavailable") as caught:
        store.check_schema()

    assert "tallyfy:***@127.0.0.1:1" in str(caught.value)
    assert PASSWORD not in full_text(caught.value)
    assert PASSWORD not in store.url


@pytest.mark.postgres
def test_a_wrong_postgresql_password_is_reported_without_it(pg_url: str) -> None:
    url = make_url(pg_url).set(password=PASSWORD)
    store = Store(make_engine(url))

    with pytest.raises(StoreUnavailable, match="password authentication failed") as caught:
        store.schema_version()

    assert PASSWORD not in full_text(caught.value)
    store.close()


def test_an_unusable_sqlite_location_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").touch()
    with pytest.raises(StoreError, match="cannot create the SQLite database") as caught:
        make_engine(f"sqlite:///{tmp_path / 'a-file' / 'scheduler.db'}")
    assert type(caught.value) is StoreError  # not "unavailable": waiting will not fix it


# -- UTCDateTime ------------------------------------------------------------------------------
@pytest.fixture
def instants(tmp_path: Path) -> Iterator[tuple[Table, Engine]]:
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime)
    )
    engine = create_engine(f"sqlite:///{tmp_path / 'instants.db'}")
    table.metadata.create_all(engine)
    yield table, engine
    engine.dispose()


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
        datetime(2026, 3, 8, 3, 30, tzinfo=timezone(timedelta(hours=-4))),
        datetime(2026, 3, 8, 13, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
    ids=["utc", "offset-minus-4", "offset-plus-5-30-with-microseconds"],
)
def test_utc_datetime_stores_naive_utc_and_returns_the_same_instant_in_utc(
    instants: tuple[Table, Engine], value: datetime
) -> None:
    table, engine = instants
    with engine.begin() as conn:
        conn.execute(insert(table).values(id=1, at=value))
        raw = conn.exec_driver_sql("SELECT at FROM t").scalar()
        back = conn.execute(select(table.c.at)).scalar()
    assert raw == value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert back == value
    assert back is not None and back.tzinfo is UTC


def test_utc_datetime_refuses_a_naive_datetime(instants: tuple[Table, Engine]) -> None:
    table, engine = instants
    with engine.begin() as conn, pytest.raises(StatementError, match="naive datetime") as caught:
        conn.execute(insert(table).values(id=1, at=datetime(2026, 3, 8, 7, 30)))
    assert isinstance(caught.value.orig, ValueError)
