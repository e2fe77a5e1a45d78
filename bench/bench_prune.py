"""History retention at scale: 10 million history rows, and firing stays on time while the
daemon prunes the older half (issue 13, "History that does not grow forever").

Setup: a fresh SQLite store whose `fires` table gets `--rows` history rows (default 10,000,000)
by bulk SQL (one INSERT ... SELECT over a recursive counter, indexes dropped during the load
and built again after): `--history-jobs` jobs (default 1,000), one row every 2 hours each,
ending an hour before now, inserted in time order as a daemon writes them, so that about
half are older than `[store] history_retention =
"400d"`; 9 in 10 succeeded, the rest failed. Then `--live-jobs` per-second jobs (default 20,
a one-off task each) are applied, the sandbox starts in its own process and the daemon
(`tallyfy-scheduler run`, default settings) in another.

The daemon's pruner starts a minute after the daemon (pruner.FIRST_PRUNE_AFTER). Measured:

- fire lateness (each fire's first attempt minus its scheduled instant) of the live jobs, in
  the `--baseline` seconds before pruning starts and in the `--during` seconds after it;
- rows pruned per second (from the pruner's progress in the store) and the whole pass's time,
  when it ends within `--during` (else extrapolated, and said so);
- that nothing was lost: every live instant in both windows has exactly one row, succeeded.

    .venv/bin/python -m bench.bench_prune                       # 10 million rows
    .venv/bin/python -m bench.bench_prune --rows 1000000 --during 60
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    DaemonProcess,
    NotifySocket,
    SandboxProcess,
    cpu_seconds,
    fmt_seconds,
    print_table,
    wait_until,
    workdir,
)
from scheduler.config import Settings, StoreSettings
from scheduler.daemon.pruner import FIRST_PRUNE_AFTER
from scheduler.definitions import load_job_files
from scheduler.lifecycle import FireStatus
from scheduler.store import Fire, JobDocument, Store

RETENTION = timedelta(days=400)
STEP = timedelta(hours=2)
# Indexes of `fires` (tables.py) other than the unique key, dropped while loading.
_INDEXES = {
    "ix_fires_status_next_attempt_at": "fires (status, next_attempt_at)",
    "ix_fires_scheduled_for": "fires (scheduled_for)",
}
_CONFIG = """
[tallyfy]
max_requests_per_minute = 60000

[store]
history_retention = "400d"
"""
_LIVE_JOB = """
schedule = "* * * * * *"
timezone = "UTC"

[action]
type = "create_task"
title = "{{job}} {{fire_utc:%Y-%m-%dT%H:%M:%SZ}}"
owners = {{ users = [1001], groups = [], guests = [] }}
deadline = "+1d@17:00"
"""


def bulk_history(path: Path, rows: int, jobs: int, now: datetime) -> float:
    """`rows` history rows over `jobs` jobs by bulk SQL; the seconds it took."""
    per_job = rows // jobs
    first = (now - timedelta(hours=1) - STEP * (per_job - 1)).replace(tzinfo=None)
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        for name in _INDEXES:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("BEGIN")
        # Instants as SQLAlchemy writes them on SQLite (naive UTC text, microseconds), so the
        # store compares them like its own.
        conn.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last),
            r(job, step, at) AS (
                SELECT i % :jobs, i / :jobs,
                       strftime('%Y-%m-%d %H:%M:%S', :first, '+' || ((i / :jobs) * :step)
                                || ' seconds') || '.000000'
                FROM n
            )
            INSERT INTO fires (job_id, scheduled_for, "trigger", status, attempts,
                               first_attempt_at, remote_id, http_status, error,
                               created_at, updated_at)
            SELECT 'history-' || job, at, 'schedule',
                   CASE WHEN step % 10 = 3 THEN 'failed' ELSE 'succeeded' END,
                   1, at,
                   CASE WHEN step % 10 = 3 THEN NULL ELSE lower(hex(randomblob(16))) END,
                   CASE WHEN step % 10 = 3 THEN 422 ELSE 201 END,
                   CASE WHEN step % 10 = 3 THEN 'HTTP 422: owners: unknown user' END,
                   at, at
            FROM r
            """,
            {
                "last": per_job * jobs - 1,
                "jobs": jobs,
                "first": first.isoformat(sep=" "),
                "step": int(STEP.total_seconds()),
            },
        )
        conn.execute("COMMIT")
        for name, columns in _INDEXES.items():
            conn.execute(f"CREATE INDEX {name} ON {columns}")
    finally:
        conn.close()
    return time.perf_counter() - started


def live_jobs(folder: Path, count: int, now: datetime) -> list[JobDocument]:
    """`count` per-second one-off-task jobs, validated as `jobs apply` does."""
    jobs_dir = folder / "jobs"
    jobs_dir.mkdir()
    for i in range(count):
        (jobs_dir / f"live-{i:02d}.toml").write_text(_LIVE_JOB.format())
    settings = Settings(store=StoreSettings(url="sqlite://"))
    jobs = load_job_files([jobs_dir], settings, now)
    return [JobDocument(j.id, j.to_document(), j.schedule_key, True, j.source) for j in jobs]


def lateness(fires: list[Fire], first: datetime, last: datetime) -> dict[str, Any]:
    """Fire lateness (first attempt minus instant) of the rows with instants in [first, last),
    and whether each instant has exactly one succeeded row."""
    rows = [f for f in fires if first <= f.scheduled_for < last]
    late = sorted(
        (f.first_attempt_at - f.scheduled_for).total_seconds()
        for f in rows
        if f.first_attempt_at is not None
    )
    seconds = int((last - first).total_seconds())
    jobs = {f.job_id for f in fires}
    keys = {(f.job_id, f.scheduled_for) for f in rows}
    return {
        "fires": len(rows),
        "expected": seconds * len(jobs),
        "exactly_once": len(keys) == len(rows)
        and all(f.status is FireStatus.SUCCEEDED for f in rows),
        "p50": statistics.median(late) if late else None,
        "p99": late[int(len(late) * 0.99) - 1] if late else None,
        "max": late[-1] if late else None,
    }


def _min_history_id(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT min(id) FROM fires").scalar() or 0)


def _pruning_started(store: Store) -> bool:
    return bool(store.watermarks())


def run(rows: int, history_jobs: int, live: int, baseline: float, during: float) -> dict[str, Any]:
    with workdir("prune") as folder:
        path = folder / "scheduler.db"
        db_url = f"sqlite:///{path}"
        now = datetime.now(UTC).replace(microsecond=0)
        store = Store.open(db_url)
        store.init_schema()
        store.close()
        fill_s = bulk_history(path, rows, history_jobs, now)
        store = Store.open(db_url)
        with store.engine.connect() as conn:
            old = int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM fires WHERE scheduled_for < ?",
                    ((now - RETENTION).replace(tzinfo=None).isoformat(sep=" "),),
                ).scalar()
                or 0
            )
        print(
            f"history: {rows:,} rows over {history_jobs:,} jobs in {fill_s:.1f} s (bulk SQL); "
            f"{old:,} older than {RETENTION.days} days"
        )
        store.apply(live_jobs(folder, live, now), prune=False, now=now)
        sandbox = SandboxProcess(folder)
        notify = NotifySocket(folder)
        daemon: DaemonProcess | None = None
        try:
            daemon = process = DaemonProcess(
                folder,
                db_url,
                sandbox.url,
                notify=notify,
                config=_CONFIG,
            )
            started = datetime.now(UTC)
            notify.wait_for("READY=1", 120, lambda: process.running)
            ready = datetime.now(UTC)
            print(
                f"daemon READY in {(ready - started).total_seconds():.1f} s; pruning starts "
                f"{FIRST_PRUNE_AFTER.total_seconds():.0f} s after start"
            )
            wait_until(lambda: _pruning_started(store), FIRST_PRUNE_AFTER.total_seconds() + 60, 0.2)
            prune_at = datetime.now(UTC)
            first_id = _min_history_id(store)
            cpu0 = cpu_seconds(daemon.pid)
            done_at: datetime | None = None
            deadline = time.monotonic() + during
            progress = [(0.0, 0)]
            while time.monotonic() < deadline:
                time.sleep(5)
                pruned = _min_history_id(store) - first_id
                progress.append(((datetime.now(UTC) - prune_at).total_seconds(), pruned))
                if "history pruned" in daemon.log():
                    done_at = datetime.now(UTC)
                    break
            end = datetime.now(UTC)
            cpu = cpu_seconds(daemon.pid) - cpu0
            time.sleep(3)  # the last instants settle
            fires = [
                f for f in store.history(since=ready, limit=None) if f.job_id.startswith("live-")
            ]
            base_from = max(ready + timedelta(seconds=5), prune_at - timedelta(seconds=baseline))
            before = lateness(
                fires, base_from.replace(microsecond=0), prune_at.replace(microsecond=0)
            )
            during_ = lateness(
                fires,
                prune_at.replace(microsecond=0) + timedelta(seconds=1),
                end.replace(microsecond=0),
            )
            elapsed, pruned = progress[-1]
            rate = pruned / elapsed if elapsed else 0.0
        finally:
            if daemon is not None:
                daemon.stop()
            notify.close()
            sandbox.stop()
            store.close()
    result = {
        "rows": rows,
        "old_rows": old,
        "fill_s": fill_s,
        "before": before,
        "during": during_,
        "pruned": pruned,
        "rate": rate,
        "complete_s": None if done_at is None else (done_at - prune_at).total_seconds(),
        "daemon_cpu_s": cpu,
        "window_s": (end - prune_at).total_seconds(),
    }
    print(f"\nfire lateness of {live} per-second jobs (first attempt minus instant)")
    for name, window in (("before pruning", before), ("while pruning", during_)):
        print_table(
            [
                (
                    name,
                    f"{window['fires']:,} fires of {window['expected']:,} instants, exactly once: "
                    f"{window['exactly_once']}; p50 {fmt_seconds(window['p50'] or 0)}, p99 "
                    f"{fmt_seconds(window['p99'] or 0)}, max {fmt_seconds(window['max'] or 0)}",
                )
            ]
        )
    whole = (
        f"the whole pass took {result['complete_s']:.0f} s"
        if result["complete_s"] is not None
        else f"about {old / rate / 60:.0f} min for all {old:,} (extrapolated)"
        if rate
        else "-"
    )
    print(
        f"\npruned {pruned:,} rows in {elapsed:.0f} s: {rate:,.0f} rows/s; {whole}; daemon CPU "
        f"{cpu:.1f} s over {result['window_s']:.0f} s"
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--history-jobs", type=int, default=1000)
    parser.add_argument("--live-jobs", type=int, default=20)
    parser.add_argument("--baseline", type=float, default=45.0)
    parser.add_argument("--during", type=float, default=120.0)
    args = parser.parse_args(argv)
    return run(args.rows, args.history_jobs, args.live_jobs, args.baseline, args.during)


if __name__ == "__main__":
    main()
