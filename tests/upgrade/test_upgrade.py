"""Upgrades: a store of every schema version, with data in it, is upgraded by `init` and the
daemon fires on from where its history stood, each instant exactly once (docs/upgrading.md).

`snapshots/v<N>.<backend>.sql` is a store of schema version N as SQL text, one per backend
(SQLite, PostgreSQL), written by `make_snapshot.py` in the commit that introduced version N
(its docstring says what is in it: jobs, fires in every status, a skip range, open fires of
a daemon that stopped, its heartbeat). Each test here:

1. loads one snapshot into a fresh database, first moving every instant in it by the same
   whole number of minutes, so that the moment its daemon stopped is a minute or two ago
   (the text is SQL: every `'YYYY-MM-DD HH:MM:SS[.ffffff]'` literal is an instant);
2. runs the real `tallyfy-scheduler init`, which runs every migration newer than N;
3. has the request of the fire left `sending` arrive at the API (the sandbox), as if the
   stopped daemon's request had gone out;
4. starts the real daemon (`python -m scheduler run`) against the sandbox, lets it catch up
   and fire live for a few seconds, and stops it;
5. audits every job (tests/daemon/daemon_helpers.py `audit`): every instant since the last
   one the history holds as sent is sent once, skipped or failed, never twice and never lost,
   and what the snapshot held as settled is unchanged.

Adding schema version N + 1 is then: its migration, and its snapshot (`make_snapshot.py`);
`test_every_schema_version_has_a_snapshot` fails until the snapshot is there, and from then
on the version-N snapshot is upgraded for real here.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import make_snapshot
import pytest
from daemon.daemon_helpers import Audit, DaemonEnv, audit, clean_audit, config_toml, wait_until
from sqlalchemy import Engine

from scheduler.client import TallyfyClient
from scheduler.config import CalendarSettings, Secret, Settings, StoreSettings
from scheduler.definitions import job_from_document
from scheduler.lifecycle import OPEN, FireStatus, Trigger
from scheduler.runner import request_for_instant
from scheduler.store import MIGRATIONS, SCHEMA_VERSION, Fire, Store
from scheduler.timeexpr import BusinessCalendar
from tallyfy_sandbox import SandboxServer

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
SNAPSHOT_NAME = re.compile(r"^v(?P<version>\d+)\.(?P<backend>sqlite|postgresql)\.sql$")
# The moment the snapshot's daemon stopped, as written in its text; the history around it is
# make_snapshot's (the same in every version's snapshot).
ANCHOR = make_snapshot.ANCHOR
INSTANT = re.compile(r"'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?)'")
LIVE = timedelta(seconds=4)  # how long the daemon fires live after catching up
BACKENDS = ("sqlite", "postgresql")


def snapshots() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(SNAPSHOTS.glob("*.sql")):
        match = SNAPSHOT_NAME.match(path.name)
        assert match, f"{path.name}: not v<N>.sqlite.sql or v<N>.postgresql.sql"
        found.append((int(match["version"]), match["backend"], path))
    return found


def moved(text: str, by: timedelta) -> str:
    """The snapshot's SQL with every instant literal moved by `by`."""

    def move(match: re.Match[str]) -> str:
        instant = datetime.fromisoformat(match[1]) + by
        return f"'{instant:%Y-%m-%d %H:%M:%S.%f}'"

    return INSTANT.sub(move, text)


def test_every_schema_version_has_a_snapshot_on_each_backend() -> None:
    expected = {(version, backend) for version, _ in MIGRATIONS for backend in BACKENDS}
    assert {(version, backend) for version, backend, _path in snapshots()} == expected


def test_moving_a_snapshot_moves_every_instant_and_nothing_else() -> None:
    text = "INSERT INTO t VALUES('2025-12-31 23:59:10.300000', '2025-12-31 23:59:30', 'x 12:00');"
    assert moved(text, timedelta(minutes=2)) == (
        "INSERT INTO t VALUES('2026-01-01 00:01:10.300000', "
        "'2026-01-01 00:01:30.000000', 'x 12:00');"
    )


@pytest.fixture
def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, datetime]]:
    """The snapshot given as the test's parameter, moved and loaded into a fresh database:
    its URL, and where its daemon's stop (`ANCHOR`) now is."""
    version, backend, path = request.param
    now = datetime.now(UTC)
    anchor = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    text = moved(path.read_text(), anchor - ANCHOR)
    if backend == "sqlite":
        file = tmp_path / "scheduler.db"
        with sqlite3.connect(file) as conn:
            conn.executescript(text)
        conn.close()
        yield f"sqlite:///{file}", anchor
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("pg_schema")
    engine: Engine = request.getfixturevalue("pg_engine")  # its connections use `schema`
    raw = engine.raw_connection()
    try:
        raw.cursor().execute(text)  # no parameters: psycopg runs the statements as they are
        raw.commit()
    finally:
        raw.close()
    yield f"{pg_url}?options=-csearch_path%3D{schema}", anchor


SNAPSHOT_PARAMS = [
    pytest.param(
        snapshot,
        id=f"v{snapshot[0]}-{snapshot[1]}",
        marks=[pytest.mark.postgres] if snapshot[1] == "postgresql" else [],
    )
    for snapshot in snapshots()
]


@pytest.mark.slow
@pytest.mark.parametrize("loaded", SNAPSHOT_PARAMS, indirect=True)
def test_a_store_of_each_version_is_upgraded_and_the_daemon_fires_on_exactly_once(
    loaded: tuple[str, datetime], sandbox: SandboxServer, tmp_path: Path
) -> None:
    db_url, anchor = loaded
    config = tmp_path / "config.toml"
    config.write_text(config_toml(tallyfy={"max_requests_per_minute": 6000}))
    denv = DaemonEnv(db_url, sandbox.url, sandbox.organization_id, sandbox.token, tmp_path, config)
    store = Store.open(db_url)
    try:
        version = store.schema_version()
        assert version is not None and version <= SCHEMA_VERSION
        done = denv.cli("init")
        assert done.returncode == 0, done.stderr
        assert f"schema version {SCHEMA_VERSION}" in done.stdout
        store.check_schema()
        before = {fire.id: fire for fire in store.history(limit=None)}
        # Every status of its version is in it (`held` came with version 4).
        statuses = set(FireStatus) - ({FireStatus.HELD} if version < 4 else set())
        assert {f.status for f in before.values()} == statuses
        final = {i: f for i, f in before.items() if f.status not in OPEN}
        # Where each job's history stood: the last scheduled instant it holds as sent.
        after = {job: last_sent(before.values(), job) for job in ("all", "latest")}
        flying = anchor + (make_snapshot.FLYING - ANCHOR)
        arrived = arrive(store, sandbox, "all", flying)

        with denv.process() as daemon:
            daemon.wait_started(timeout=30)
            until = datetime.now(UTC) + LIVE
            reports = {job: clean(store, sandbox, job, after[job], until) for job in after}
            assert daemon.term() == 0

        everything = {fire.id: fire for fire in store.history(limit=None)}
        assert {i: everything[i] for i in final} == final  # what was settled stays so
        # `all` (catch_up = all) fires on from its history: the failure stays failed, the
        # skip range skipped; the four open fires are settled, and every instant since fired.
        report = reports["all"]
        assert report.failed == [anchor - timedelta(seconds=40)]
        assert report.skipped == [anchor - timedelta(seconds=s) for s in range(39, 34, -1)]
        assert report.sent == report.instants[6:]
        assert report.sent[0] == anchor - timedelta(seconds=34)
        # From version 4 the snapshot holds `all`'s instant -30 s (held): -29 s is caught up.
        first_missed = anchor - timedelta(seconds=30 if version < 4 else 29)
        assert report.rows[first_missed].trigger is Trigger.CATCH_UP
        # The request the stopped daemon had sent is read back, never sent again.
        read_back = report.rows[flying]
        assert (read_back.remote_id, read_back.attempts) == (arrived, 1)
        # `latest` fires the newest instant missed while no daemon ran; the others are
        # skipped; then it fires live.
        latest = reports["latest"]
        skipped = len(latest.skipped)
        assert skipped > 40 and latest.skipped == latest.instants[:skipped]
        assert latest.sent == latest.instants[skipped:]
        triggers = [latest.rows[s].trigger for s in latest.sent]
        assert triggers[0] is Trigger.CATCH_UP and triggers.count(Trigger.CATCH_UP) == 1
        # `paused` stays paused: nothing new in its history.
        assert [f for f in everything.values() if f.job_id == "paused"] == [
            f for f in before.values() if f.job_id == "paused"
        ]
    finally:
        store.close()


def last_sent(fires: Iterable[Fire], job_id: str) -> datetime:
    """The job's newest scheduled instant that the history holds as sent."""
    return max(
        f.scheduled_for
        for f in fires
        if f.job_id == job_id
        and f.status is FireStatus.SUCCEEDED
        and f.trigger is not Trigger.MANUAL
    )


def clean(
    store: Store, sandbox: SandboxServer, job_id: str, after: datetime, until: datetime
) -> Audit:
    """The job's audit over (after, until] once nothing in it is amiss (the daemon is still
    working through it until then); after a minute, what is amiss, as the failure."""
    try:
        return wait_until(clean_audit(store, sandbox, job_id, after, until), 60, message=job_id)
    except AssertionError:
        audit(store, sandbox, job_id, after, until).assert_ok()
        raise


def arrive(store: Store, sandbox: SandboxServer, job_id: str, instant: datetime) -> str:
    """Send the request of (job, instant) to the sandbox, as the stopped daemon had; the id
    of what it created."""
    settings = Settings(store=StoreSettings(url="sqlite://"))
    job = job_from_document(store.get_job(job_id).definition, settings)
    request = request_for_instant(
        store,
        job,
        instant,
        organization_id=sandbox.organization_id,
        calendar=BusinessCalendar.from_settings(CalendarSettings()),
    )
    client = TallyfyClient(sandbox.url, sandbox.organization_id, Secret(sandbox.token))
    try:
        created = client.send(request)
    finally:
        client.close()
    return created.remote_id
