"""Figure 2: catch-up for 10,000 jobs after a week down, without enumerating missed instants.

Design target (issue 4): planning a week of downtime is cheap even for per-second jobs, because
skipped stretches are counted per day (`count_between`), never walked. The store holds 10,000
jobs applied a week ago, each with one succeeded fire at its last instant before that (the
cursor), and the daemon starts now. A third each fire every second, every minute and every
hour; 45 % have `catch_up = "none"`, 45 % `"latest"` (the default window, 1 day) and 10 %
`"all"` with a small window (10 s, 5 min, 2 h), so "all" fires a handful, not a week.

Two measurements:

1. **planning only**: `catchup.plan_due` for every job, in this process, from its cursor to
   now (pure: no store, no daemon); time per job by schedule, and how many instants the plans
   account for (billions for the per-second jobs) against how many they enumerate;
2. **the whole startup catch-up**: a `Daemon` in this process (in-memory API, so only our work
   is timed) runs `prepare()` (load, plan, write the skip rows and claims, queue the sends:
   APScheduler stays paused, so nothing live interferes) and then sends every claimed fire;
   time to the end of planning (READY would follow) and to the last fire recorded, the rows
   written, by status and trigger.

    .venv/bin/python -m bench.bench_catchup                # 10,000 jobs
    .venv/bin/python -m bench.bench_catchup --jobs 2000
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from bench.common import (
    InMemoryApi,
    Timers,
    base_document,
    bench_settings,
    fill_store,
    fmt_seconds,
    make_document,
    print_table,
    quiet_logs,
    wait_until,
    workdir,
)
from scheduler.catchup import plan_due
from scheduler.config import CatchUpPolicy
from scheduler.definitions import job_from_document
from scheduler.job import Job
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import JobDocument, Store
from scheduler.store.tables import FIRES

DEFAULT_JOBS = 10_000
DOWN_FOR = timedelta(days=7)
STALL_THRESHOLD = timedelta(seconds=5)  # the daemon's default
SEND_TIMEOUT = 150.0
# (name, schedule, window for catch_up = "all")
KINDS = (
    ("per-second", "* * * * * *", "10s"),
    ("per-minute", "0 * * * * *", "5m"),
    ("hourly", "0 0 * * * *", "2h"),
)


@dataclass(frozen=True)
class Spec:
    kind: str
    policy: CatchUpPolicy


def documents(n: int) -> tuple[list[JobDocument], dict[str, Spec]]:
    """`n` jobs: kinds in turn; policies none/latest/all as 9:9:2 (every 20 jobs)."""
    bases = [base_document("create_task"), base_document("launch_process")]
    docs: list[JobDocument] = []
    specs: dict[str, Spec] = {}
    width = len(str(n))
    for i in range(n):
        kind, schedule, all_window = KINDS[i % len(KINDS)]
        slot = (i // len(KINDS)) % 20
        policy = (
            CatchUpPolicy.NONE
            if slot < 9
            else CatchUpPolicy.LATEST
            if slot < 18
            else CatchUpPolicy.ALL
        )
        job_id = f"c-{i:0{width}d}"
        docs.append(
            make_document(
                bases[i % 2],
                job_id,
                schedule,
                "UTC",
                catch_up=policy,
                catch_up_window=all_window if policy is CatchUpPolicy.ALL else None,
            )
        )
        specs[job_id] = Spec(kind, policy)
    return docs, specs


def place_history(store: Store, jobs: list[Job], before: datetime) -> int:
    """One succeeded fire per job at its last instant at or before `before` (one transaction)."""
    rows = []
    for job in jobs:
        instant = job.cron.previous_at_or_before(before)
        assert instant is not None
        rows.append(
            {
                "job_id": job.id,
                "scheduled_for": instant,
                "trigger": str(Trigger.SCHEDULE),
                "status": str(FireStatus.SUCCEEDED),
                "attempts": 1,
                "remote_id": f"week-old-{job.id}",
                "http_status": 201,
                "created_at": instant,
                "updated_at": instant,
            }
        )
    with store.engine.begin() as conn:
        conn.execute(insert(FIRES), rows)
    return len(rows)


def plan_everything(
    jobs: list[Job], specs: dict[str, Spec], cursors: dict[str, datetime], now: datetime
) -> dict[str, Any]:
    """Measurement 1: `plan_due` for every job, timed per kind."""
    seconds: Counter[str] = Counter()
    count: Counter[str] = Counter()
    accounted: Counter[str] = Counter()
    enumerated: Counter[str] = Counter()
    fires = skips = 0
    started = time.perf_counter()
    for job in jobs:
        kind = specs[job.id].kind
        t0 = time.perf_counter()
        plan = plan_due(
            job.cron,
            cursor=cursors[job.id],
            up_to=now,
            now=now,
            live_since=now,
            policy=job.catch_up,
            window=job.catch_up_window,
            stall_threshold=STALL_THRESHOLD,
            until=job.end_at,
        )
        seconds[kind] += time.perf_counter() - t0
        count[kind] += 1
        fires += len(plan.fire)
        skips += len(plan.skips)
        accounted[kind] += len(plan.fire) + sum(s.count for s in plan.skips)
        enumerated[kind] += len(plan.fire) + sum(1 for s in plan.skips if s.count == 1)
    total = time.perf_counter() - started
    return {
        "seconds": total,
        "fires": fires,
        "skip_rows": skips,
        "per_kind": {
            kind: {
                "jobs": count[kind],
                "us_per_job": seconds[kind] / count[kind] * 1e6,
                "instants_accounted": accounted[kind],
                "instants_enumerated": enumerated[kind],
            }
            for kind in count
        },
    }


def whole_catch_up(url: str) -> dict[str, Any]:
    """Measurement 2: a daemon's startup catch-up, then every claimed fire sent."""
    import scheduler.daemon.loader as loader_module
    import scheduler.daemon.planner as planner_module
    from scheduler.daemon import Daemon
    from scheduler.notify import Notifier

    quiet_logs()
    settings = bench_settings(url)
    store = Store.open(url)
    api = InMemoryApi()
    daemon = Daemon(settings, store, api, notifier=Notifier(environ={}))  # type: ignore[arg-type]
    timers = Timers()
    timers.wrap_iter(store, "iter_jobs", "Store.iter_jobs")
    timers.wrap(store, "accounted_until")
    timers.wrap(loader_module, "job_from_document", "job_from_document")
    timers.wrap(planner_module, "plan_due", "plan_due")
    timers.wrap(store, "record_skips", "Store.record_skips (writes)")
    timers.wrap(store, "claim", "Store.claim (writes)")
    timers.wrap(daemon.runner, "attempt", "Runner.attempt (send + 2 writes)")
    open_statuses = [str(s) for s in (FireStatus.PENDING, FireStatus.SENDING)]

    def open_fires() -> int:
        with store.engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count()).select_from(FIRES).where(FIRES.c.status.in_(open_statuses))
                )
                or 0
            )

    try:
        started = time.perf_counter()
        daemon.prepare()  # no timer: only the catch-up, no live fires
        planned = time.perf_counter()
        wait_until(lambda: open_fires() == 0, SEND_TIMEOUT, interval=0.2)
        sent = time.perf_counter()
    finally:
        daemon.shutdown()
        timers.restore()
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                FIRES.c.status,
                FIRES.c.trigger,
                func.count(),
                func.sum(func.coalesce(FIRES.c.skipped_count, 1)),
            ).group_by(FIRES.c.status, FIRES.c.trigger)
        ).all()
    store.close()
    return {
        "planned_s": planned - started,
        "sent_s": sent - started,
        "requests_sent": len(api.sent),
        "rows": {f"{st}/{trig}": [int(n), int(instants)] for st, trig, n, instants in rows},
        "steps": {
            name: {"seconds": timers.seconds[name], "calls": timers.calls[name]}
            for name in timers.seconds
        },
    }


def run(n: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    week_ago = now - DOWN_FOR
    docs, specs = documents(n)
    with workdir("catchup") as folder:
        url = f"sqlite:///{folder / 'scheduler.db'}"
        fill_store(url, docs, week_ago - timedelta(hours=1))
        settings = bench_settings(url)
        store = Store.open(url)
        jobs = [job_from_document(row.definition, settings) for row in store.list_jobs()]
        place_history(store, jobs, week_ago)
        cursors = store.accounted_until()
        store.close()
        print(
            f"figure 2: {n} jobs (1/3 per-second, per-minute, hourly; none/latest/all = 9:9:2),"
            f" down since {week_ago:%Y-%m-%d %H:%M:%S}Z (7 days)"
        )
        planning = plan_everything(jobs, specs, cursors, now)
        print(
            f"\n1. plan_due for {n} jobs: {fmt_seconds(planning['seconds'])}"
            f" ({planning['fires']} fires, {planning['skip_rows']} skip rows)"
        )
        table = []
        for kind, k in planning["per_kind"].items():
            table.append(
                (
                    f"{kind} ({k['jobs']} jobs)",
                    f"{k['us_per_job']:.0f} us/job; {k['instants_accounted']:,} instants"
                    f" accounted, {k['instants_enumerated']:,} enumerated",
                )
            )
        print_table(table)
        whole = whole_catch_up(url)
        print(
            f"\n2. whole startup catch-up (Daemon.prepare, in-memory API): planned and written"
            f" in {fmt_seconds(whole['planned_s'])}; every claimed fire sent and recorded after"
            f" {fmt_seconds(whole['sent_s'])} ({whole['requests_sent']} requests)"
        )
        rows = [
            (f"rows {key}", f"{n_rows} rows, {instants:,} instants")
            for key, (n_rows, instants) in sorted(whole["rows"].items())
        ]
        rows += [
            (name, f"{fmt_seconds(step['seconds'])}  ({step['calls']} calls)")
            for name, step in whole["steps"].items()
        ]
        print_table(rows)
    return {"jobs": n, "planning": planning, "whole": whole}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    args = parser.parse_args(argv)
    return run(max(3, min(args.jobs, 50_000)))


if __name__ == "__main__":
    main()
