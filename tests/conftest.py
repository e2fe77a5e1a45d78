"""Fixtures shared by the whole suite.

- every test runs with the `TALLYFY_*` environment variables cleared;
- `sqlite_url`: a store URL for a fresh SQLite file under `tmp_path`;
- `pg_url`: the PostgreSQL server from `TALLYFY_SCHEDULER_TEST_PG_URL` (skipped locally when
  unset, a failure in CI); `pg_engine`: an engine on a fresh schema of it, dropped afterwards;
- `store`: an initialized `Store`, once on SQLite and once on PostgreSQL (the contract suite);
  `sqlite_store`: the SQLite one only, for tests that do not exercise the database itself;
  `blank_store`: like `store`, but with no schema yet.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from scheduler.store import Store, make_engine
from tallyfy_sandbox import SandboxServer

PG_URL_VARIABLE = "TALLYFY_SCHEDULER_TEST_PG_URL"
# Read once at import, before the autouse fixture below clears TALLYFY_* for each test.
_PG_URL = os.environ.get(PG_URL_VARIABLE)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's TALLYFY_* settings (httpx `clean_environ`)."""
    for name in list(os.environ):
        if name.startswith("TALLYFY_"):
            monkeypatch.delenv(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store URL in a directory that does not exist yet (the store creates it)."""
    return f"sqlite:///{tmp_path / 'state' / 'scheduler.db'}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL server's URL; skip (locally) or fail (CI) when it is not set."""
    if not _PG_URL:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_URL_VARIABLE} is not set; CI must run the PostgreSQL tests")
        pytest.skip(f"set {PG_URL_VARIABLE} (see .ci/postgres-up)")
    return _PG_URL


@pytest.fixture(scope="session")
def _pg_admin(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url, pool_size=1, max_overflow=1)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema(_pg_admin: Engine) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL schema, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with _pg_admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    yield name
    with _pg_admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def pg_engine(pg_url: str, pg_schema: str) -> Iterator[Engine]:
    """A store engine whose connections all use the test's own schema."""
    engine = make_engine(pg_url, connect_args={"options": f"-csearch_path={pg_schema}"})
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def blank_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store with no schema, on each backend."""
    if request.param == "sqlite":
        engine = make_engine(request.getfixturevalue("sqlite_url"))
    else:
        engine = request.getfixturevalue("pg_engine")
    store = Store(engine)
    yield store
    store.close()


@pytest.fixture
def store(blank_store: Store) -> Store:
    """An initialized store, on each backend."""
    blank_store.init_schema()
    return blank_store


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    """An initialized SQLite store (for tests that need a store, not a database contract)."""
    store = Store.open(sqlite_url)
    store.init_schema()
    yield store
    store.close()


# -- the sandbox ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def _sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(_sandbox_server: SandboxServer) -> SandboxServer:
    """A sandbox API on 127.0.0.1, shared by a module's tests, reset for each test."""
    _sandbox_server.reset()
    return _sandbox_server


@pytest.fixture
def sandbox_env(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is `tmp_path` and the environment points the CLI at the sandbox."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TALLYFY_ACCESS_TOKEN", sandbox.token)
    monkeypatch.setenv("TALLYFY_ORGANIZATION_ID", sandbox.organization_id)
    monkeypatch.setenv("TALLYFY_BASE_URL", sandbox.url)
    return tmp_path
