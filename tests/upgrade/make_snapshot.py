"""Write a snapshot of a store at this code's schema version, with data in it, as SQL text.

    export TALLYFY_SCHEDULER_TEST_PG_URL=postgresql+psycopg://...
    .venv/bin/python tests/upgrade/make_snapshot.py

writes `snapshots/v<N>.sqlite.sql` beside this file, and with a PostgreSQL server also
`snapshots/v<N>.postgresql.sql` (through `pg_dump`, of the same major version as the server),
N being `SCHEMA_VERSION`. Run it once, in the commit that adds schema version N, and commit
what it writes; never write an older version's snapshot again: it stands for what stores of
that version hold. test_upgrade.py loads every snapshot, upgrades it with `init` and lets the
daemon fire on from it: it expects the history below in every version's snapshot.

The store is made through this code's own `Store`, as a daemon would have left it, at fixed
instants around `ANCHOR` (the moment its daemon stopped; the test moves every instant so that
`ANCHOR` is a minute or two before it runs):

- `all` (every second, catch_up = all): succeeded fires, a failed one, a skip range, then
  the four open kinds, the last instants it had: a retry due, an uncertain fire due for a
  read-back, and a pending and a sending fire of the daemon that stopped;
- `latest` (every second, catch_up = latest): succeeded fires and a manual fire;
- `paused` (every second): succeeded fires, then paused;
- the stopped daemon's heartbeat;
- from schema version 2: the `failed` incident of `all`'s failure, open, with one message
  sent and one still queued, and a cleared `late` incident;
- from schema version 3: `job_marks`: `paused` paused by an operator (its `set_enabled`);
- from schema version 4: `all`'s last instant before the stop held (as an overlap job's
  would be; due for its recheck) and its first two fires known closed (`remote_closed_at`).

Every schedule is per second in UTC, so moving the instants by whole minutes keeps them on it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from scheduler.alertstate import IncidentKind, NotifyType, OutboxStatus
from scheduler.config import Settings, StoreSettings
from scheduler.definitions import load_job_files
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import (
    SCHEMA_VERSION,
    JobDocument,
    Message,
    Outcome,
    Skip,
    Store,
    make_engine,
)

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
# The fire of `all` whose request had gone out when the daemon stopped (left `sending`).
FLYING = ANCHOR - timedelta(seconds=31)
OLD_DAEMON = "old-host:4242:snapshot"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
PG_SCHEMA = "tallyfy_snapshot"

_TASK = """
[action]
type = "create_task"
title = "{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}"
owners = { users = [1001], groups = [], guests = [] }
started_at = "+0"
deadline = "+1d@17:00"
"""
JOB_FILES = {
    "all": 'schedule = "* * * * * *"\ncatch_up = "all"\ncatch_up_window = "1h"\n' + _TASK,
    "latest": 'schedule = "* * * * * *"\ncatch_up = "latest"\n' + _TASK,
    "paused": 'schedule = "* * * * * *"\n' + _TASK,
}


def at(seconds: float) -> datetime:
    """`ANCHOR` plus `seconds` (negative: before the daemon stopped)."""
    return ANCHOR + timedelta(seconds=seconds)


def fill(store: Store) -> None:
    """The history described in the module docstring, through the store's own operations."""
    store.init_schema()
    with tempfile.TemporaryDirectory() as folder:
        for job_id, text in JOB_FILES.items():
            (Path(folder) / f"{job_id}.toml").write_text('timezone = "UTC"\n' + text)
        settings = Settings(store=StoreSettings(url="sqlite://"))
        jobs = load_job_files([Path(folder)], settings, at(-60))
    docs = [
        JobDocument(j.id, j.to_document(), j.schedule_key, True, f"jobs/{j.id}.toml") for j in jobs
    ]
    store.apply(docs, prune=True, now=at(-60))

    def sent(
        job_id: str, seconds: float, remote_id: str, trigger: Trigger = Trigger.SCHEDULE
    ) -> None:
        (fire,) = store.claim(
            [(job_id, at(seconds), trigger)], now=at(seconds), daemon_id=OLD_DAEMON
        )
        assert fire is not None
        store.start_attempts([fire.id], now=at(seconds), daemon_id=OLD_DAEMON)
        outcome = Outcome(fire.id, FireStatus.SUCCEEDED, remote_id=remote_id, http_status=200)
        store.finish([outcome], now=at(seconds + 0.3))

    for second in range(-50, -40):
        sent("all", second, f"old-all{second}")
    for second in range(-50, -45):
        sent("latest", second, f"old-latest{second}")
    sent("latest", -47.5, "old-latest-manual", Trigger.MANUAL)
    for second in range(-50, -47):
        sent("paused", second, f"old-paused{second}")
    store.set_enabled("paused", False, now=at(-47))

    failed, retrying, uncertain, pending, sending = store.claim(
        [("all", at(s), Trigger.SCHEDULE) for s in (-40, -34, -33, -32)]
        + [("all", FLYING, Trigger.SCHEDULE)],
        now=at(-31),
        daemon_id=OLD_DAEMON,
    )
    assert failed and retrying and uncertain and pending and sending
    store.start_attempts(
        [f.id for f in (failed, retrying, uncertain, sending)], now=at(-31), daemon_id=OLD_DAEMON
    )
    store.finish(
        [
            Outcome(
                failed.id,
                FireStatus.FAILED,
                http_status=422,
                error="HTTP 422: owners: unknown user",
                field_errors={"owners": ["unknown user"]},
            ),
            Outcome(retrying.id, FireStatus.RETRYING, error="429", next_attempt_at=at(-30)),
            Outcome(uncertain.id, FireStatus.UNCERTAIN, error="502", next_attempt_at=at(-30)),
        ],
        now=at(-31),
    )
    store.record_skips(
        [Skip("all", at(-39), "missed; catch_up = none", count=5, until=at(-35))], now=at(-39)
    )
    store.heartbeat(
        OLD_DAEMON,
        hostname="old-host",
        pid=4242,
        started_at=at(-60),
        now=at(-30),
        next_fire_at=at(-30),
        state="running",
    )
    if SCHEMA_VERSION >= 2:
        incidents(store)
    if SCHEMA_VERSION >= 4:
        overlap(store)


def overlap(store: Store) -> None:
    """Schema version 4's: a held fire and items known closed."""
    (held,) = store.claim([("all", at(-30), Trigger.SCHEDULE)], now=at(-30), daemon_id=OLD_DAEMON)
    assert held is not None
    reason = "held (overlap = buffer_one): task old-all-41 is still open"
    store.defer(
        [Outcome(held.id, FireStatus.HELD, error=reason, next_attempt_at=at(-1))], now=at(-30)
    )
    first_two = [f.id for f in store.history("all", limit=100)][-2:]
    store.mark_closed(first_two, now=at(-40))


def incidents(store: Store) -> None:
    """Schema version 2's tables: incidents and their outbox."""
    message = Message("opened", NotifyType.FAILURE, "default", 0, "failed: all", "HTTP 422")
    store.open_incident(
        IncidentKind.FAILED,
        "failed:all",
        ref="inc-snapshot0001",
        detail={"job": "all", "instant": at(-40).isoformat(), "failed_at": at(-31).isoformat()},
        messages=[
            Message(**{**message.__dict__, "status": OutboxStatus.SENT}),
            Message(**{**message.__dict__, "target": "ops"}),
        ],
        now=at(-31),
        daemon_id=OLD_DAEMON,
        job_id="all",
    )
    late = store.open_incident(
        IncidentKind.LATE,
        "late",
        ref="inc-snapshot0002",
        detail={"jobs": [{"job": "all", "instant": at(-45).isoformat(), "count": 1}]},
        messages=[],
        now=at(-44),
        daemon_id=OLD_DAEMON,
    )
    assert late is not None
    store.clear_incident(late.id, messages=[], now=at(-42))


def sqlite_snapshot(folder: Path) -> str:
    path = folder / "snapshot.db"
    store = Store.open(f"sqlite:///{path}")
    try:
        fill(store)
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        text = "\n".join(conn.iterdump())
    conn.close()
    return text + "\n"


def postgresql_snapshot(url: str) -> str:
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{PG_SCHEMA}"')
    try:
        store = Store(make_engine(url, connect_args={"options": f"-csearch_path={PG_SCHEMA}"}))
        try:
            fill(store)
        finally:
            store.close()
        parsed = make_url(url)
        dumped = subprocess.run(
            [
                "pg_dump",
                "--no-owner",
                "--no-privileges",
                "--inserts",
                f"--schema={PG_SCHEMA}",
                f"--host={parsed.host or '127.0.0.1'}",
                f"--port={parsed.port or 5432}",
                f"--username={parsed.username}",
                str(parsed.database),
            ],
            env={**os.environ, "PGPASSWORD": str(parsed.password or "")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')
        admin.dispose()
    return _portable(dumped)


def _portable(dump: str) -> str:
    """pg_dump's text, loadable into any schema (the one on the search path) by any client:
    no session settings, no psql meta-commands, no schema names, no comments."""
    kept = []
    for line in dump.splitlines():
        if line.startswith(("SET ", "SELECT pg_catalog.set_config", "\\", "--")):
            continue
        if line.startswith(f"CREATE SCHEMA {PG_SCHEMA};"):
            continue
        kept.append(line.replace(f"{PG_SCHEMA}.", ""))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip() + "\n"


def main() -> None:
    SNAPSHOTS.mkdir(exist_ok=True)
    header = (
        f"-- A tallyfy-scheduler store at schema version {SCHEMA_VERSION}, with data in it.\n"
        "-- Written by tests/upgrade/make_snapshot.py; loaded by tests/upgrade/test_upgrade.py.\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        text = sqlite_snapshot(Path(folder))
    out = SNAPSHOTS / f"v{SCHEMA_VERSION}.sqlite.sql"
    out.write_text(header + text)
    print(f"wrote {out}")
    url = os.environ.get("TALLYFY_SCHEDULER_TEST_PG_URL")
    if not url:
        sys.exit("TALLYFY_SCHEDULER_TEST_PG_URL is not set: no PostgreSQL snapshot written")
    out = SNAPSHOTS / f"v{SCHEMA_VERSION}.postgresql.sql"
    out.write_text(header + postgresql_snapshot(url))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
