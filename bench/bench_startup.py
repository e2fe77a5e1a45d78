"""Figure 1: 100,000 stored jobs, from start to READY, and the memory it takes.

Design target (issue 4): 100,000 stored jobs are scheduled (READY) within a few seconds, in
well under 300 MB. Three measurements on the same store:

1. **in process, broken down**: a fresh Python process builds a `Daemon` on the store (the
   API is an in-memory double) and times `Daemon.start()` up to READY, with the steps it
   takes wrapped in timers: reading the rows (`Store.iter_jobs`), `job_from_document` (and,
   inside it, the cron compile), the catch-up planning (`plan_due`) and its claims, and the
   sends the catch-up queued, which run on after READY: "queued work done" is when the last
   of them finished. Peak RSS is the process's.
2. **the `run` process**: `tallyfy-scheduler run` with a `$NOTIFY_SOCKET` we listen on: the
   seconds from spawning the process to its READY=1, and its peak RSS (VmHWM) then and once
   the catch-up queue has drained (STATUS settles). The API is a sandbox process.
3. The same in-process run on PostgreSQL when TALLYFY_SCHEDULER_TEST_PG_URL is set.

    .venv/bin/python -m bench.bench_startup                  # 100,000 jobs, SQLite (+ PG)
    .venv/bin/python -m bench.bench_startup --jobs 20000 --no-process
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from bench.common import (
    DaemonProcess,
    InMemoryApi,
    NotifySocket,
    SandboxProcess,
    Timers,
    bench_settings,
    child_env,
    cpu_seconds,
    fill_store,
    fmt_seconds,
    peak_rss_mb,
    pg_schema,
    pg_url,
    print_table,
    quiet_logs,
    self_peak_rss_mb,
    varied_documents,
    wait_until,
    workdir,
)
from scheduler.store import Store
from scheduler.store.tables import JOBS

DEFAULT_JOBS = 100_000
TARGET_SECONDS = 5.0  # "a few seconds"
TARGET_MB = 300.0
# Only the measured child may take this long; the whole script is bounded by these.
CHILD_TIMEOUT = 240.0
READY_TIMEOUT = 180.0
# The store's jobs were applied this long before each start: a restart, with a minute of
# catch-up to plan (per-minute and hourly jobs have instants in it).
DOWNTIME = timedelta(minutes=1)


# -- 1. in process ---------------------------------------------------------------------------------
def measure_in_process(url: str, engine_args: dict[str, Any]) -> dict[str, Any]:
    """Build a daemon on `url` in this process, time `start()` step by step; the figures."""
    # Imported here so the baseline RSS below counts the modules the daemon needs.
    import scheduler.daemon.core as core_module
    import scheduler.daemon.loader as loader_module
    import scheduler.daemon.planner as planner_module
    import scheduler.job as job_module
    from scheduler.clock import SystemClock
    from scheduler.daemon import Daemon
    from scheduler.notify import Notifier
    from scheduler.store import Store, make_engine

    quiet_logs()
    baseline_mb = self_peak_rss_mb()
    settings = bench_settings(url)
    store = Store(make_engine(url, **engine_args))
    clock = SystemClock()
    marks: dict[str, float] = {}

    class ReadyClock(Notifier):
        def ready(self, status: str | None = None) -> bool:
            marks.setdefault("ready", time.perf_counter())
            return True

    daemon = Daemon(
        settings,
        store,
        InMemoryApi(),  # type: ignore[arg-type]
        clock=clock,
        notifier=ReadyClock(environ={}),
    )
    timers = Timers()
    timers.wrap(store, "check_schema")
    timers.wrap(store, "jobs_revision")
    timers.wrap_iter(store, "iter_jobs", "Store.iter_jobs (reading the rows)")
    timers.wrap(store, "accounted_until")
    timers.wrap(loader_module, "job_from_document", "job_from_document (all)")
    timers.wrap(job_module, "parse_schedule", "  of which cron compile")
    timers.wrap(planner_module, "plan_due", "catch-up plan_due")
    timers.wrap(store, "claim", "Store.claim (claims)")
    timers.wrap(core_module.gc, "freeze", "gc.freeze")
    timers.wrap(daemon.recovery, "open_fires", "open fires (retries, orphans)")
    timers.wrap(daemon, "_heartbeat", "heartbeat")
    timers.wrap(daemon, "prepare", "prepare (load + plan, all)")
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        daemon.start()
        returned = time.perf_counter()
        cpu_ready = time.process_time() - cpu_started
        ready_mb = self_peak_rss_mb()
        # Fires the startup catch-up claimed are sent after READY: wait until none is left.
        wait_until(lambda: not daemon.pool.pending(), CHILD_TIMEOUT, interval=0.01)
        drained = time.perf_counter()
        jobs = daemon.planner.job_count
    finally:
        daemon.shutdown()
        timers.restore()
        store.close()
    gc.collect()
    return {
        "url": store.url,
        "jobs": jobs,
        "ready_s": marks.get("ready", returned) - started,
        "start_returned_s": returned - started,
        "cpu_at_ready_s": cpu_ready,
        "catch_up_drained_s": drained - started,
        "baseline_mb": baseline_mb,
        "peak_rss_at_ready_mb": ready_mb,
        "peak_rss_mb": self_peak_rss_mb(),
        "steps": {
            name: {"seconds": timers.seconds[name], "calls": timers.calls[name]}
            for name in timers.seconds
        },
    }


def in_child(url: str, engine_args: dict[str, Any]) -> dict[str, Any]:
    """`measure_in_process` in a fresh interpreter, so its peak RSS is the daemon's alone."""
    spec = json.dumps([url, engine_args])
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_startup", "--child", spec],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT + 60,
        env=child_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measured child failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- 2. the run process ----------------------------------------------------------------------------
def measure_process(db_url: str, folder: Path) -> dict[str, Any]:
    """Spawn `tallyfy-scheduler run`; seconds to READY=1 and its peak RSS."""
    sandbox = SandboxProcess(folder)
    notify = NotifySocket(folder)
    daemon: DaemonProcess | None = None
    try:
        daemon = process = DaemonProcess(folder, db_url, sandbox.url, notify=notify)
        ready_at = notify.wait_for("READY=1", READY_TIMEOUT, lambda: process.running)
        ready_cpu = cpu_seconds(daemon.pid)
        ready_s = ready_at - daemon.started
        ready_mb = peak_rss_mb(daemon.pid)
        # Let the queued catch-up work finish, then read the peak again.
        time.sleep(3.0)
        settled_mb = peak_rss_mb(daemon.pid)
        return {
            "ready_s": ready_s,
            "cpu_at_ready_s": ready_cpu,
            "peak_rss_at_ready_mb": ready_mb,
            "peak_rss_mb": settled_mb,
        }
    finally:
        if daemon is not None:
            daemon.stop()
        notify.close()
        sandbox.stop()


# -- the naive loader -------------------------------------------------------------------------
NAIVE_CHILD = """
import resource, sys, time, tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo
from croniter import croniter
started, cpu = time.perf_counter(), time.process_time()
failed = 0
for path in sorted(Path(sys.argv[1]).glob("*.toml")):
    doc = tomllib.loads(path.read_text())
    try:
        now = datetime.now(ZoneInfo(doc.get("timezone", "UTC")))
        croniter(doc["schedule"], now, hash_id=doc["id"]).get_next(datetime)
    except Exception:
        failed += 1
print(time.perf_counter() - started, time.process_time() - cpu,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, failed)
"""


def _toml(value: Any) -> str:
    """A TOML value for the bench's job documents (strings, numbers, lists, tables inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def measure_naive(folder: Path, jobs: int) -> dict[str, Any]:
    """What the simplest loader costs: one job file per job, read with `tomllib`, and one
    croniter next fire time each (the yardstick of issue 9: READY in a quarter of it)."""
    files = folder / "naive-jobs"
    files.mkdir(exist_ok=True)
    for doc in varied_documents(jobs):
        definition = doc.definition
        top = [f"{k} = {_toml(v)}" for k, v in definition.items() if k != "action"]
        action = [f"{k} = {_toml(v)}" for k, v in definition["action"].items()]
        (files / f"{doc.id}.toml").write_text("\n".join([*top, "[action]", *action]) + "\n")
    done = subprocess.run(
        [sys.executable, "-c", NAIVE_CHILD, str(files)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=True,
    )
    seconds, cpu, rss, failed = done.stdout.split()
    shutil.rmtree(files)
    return {
        "seconds": float(seconds),
        "cpu_s": float(cpu),
        "peak_rss_mb": float(rss),
        "croniter_refused": int(failed),
    }


# -- report ----------------------------------------------------------------------------------------
def _print_in_process(label: str, r: dict[str, Any]) -> None:
    print(f"\n{label}: {r['jobs']} jobs, in process ({r['url']})")
    rows = [
        ("start -> READY", f"{fmt_seconds(r['ready_s'])} (CPU {fmt_seconds(r['cpu_at_ready_s'])})"),
        ("start -> queued work done", fmt_seconds(r["catch_up_drained_s"])),
        ("peak RSS at READY", f"{r['peak_rss_at_ready_mb']:.0f} MB"),
        ("peak RSS", f"{r['peak_rss_mb']:.0f} MB (imports alone: {r['baseline_mb']:.0f} MB)"),
    ]
    for name, step in r["steps"].items():
        rows.append((name, f"{fmt_seconds(step['seconds'])}  ({step['calls']} calls)"))
    print_table(rows)


def fresh_copy(template: Path, name: str, downtime: timedelta) -> str:
    """A copy of the template store whose jobs were applied `downtime` ago (a restart)."""
    target = template.with_name(f"{name}.db")
    shutil.copyfile(template, target)
    url = f"sqlite:///{target}"
    store = Store.open(url)
    try:
        since = datetime.now(UTC) - downtime
        with store.engine.begin() as conn:
            conn.execute(update(JOBS).values(active_since=since, updated_at=since))
    finally:
        store.close()
    return url


def run(jobs: int, *, process: bool, postgres: bool) -> dict[str, Any]:
    """Every measurement of figure 1; returns the figures (also printed)."""
    results: dict[str, Any] = {"jobs": jobs, "downtime_s": DOWNTIME.total_seconds()}
    with workdir("startup") as folder:
        started = time.perf_counter()
        docs = varied_documents(jobs)
        generated = time.perf_counter() - started
        template = folder / "template.db"
        results["apply_s"] = fill_store(f"sqlite:///{template}", docs, datetime.now(UTC))
        print(
            f"figure 1: {jobs} varied jobs generated in {generated:.1f} s,"
            f" stored (Store.apply) in {results['apply_s']:.1f} s;"
            f" each run starts {DOWNTIME.total_seconds():.0f} s after they were applied"
        )
        results["sqlite"] = in_child(fresh_copy(template, "shipped", DOWNTIME), {})
        _print_in_process("SQLite, as shipped", results["sqlite"])
        if process:
            url = fresh_copy(template, "process", DOWNTIME)
            results["process"] = measure_process(url, folder)
            p = results["process"]
            print(f"\n`tallyfy-scheduler run` process, SQLite, {jobs} jobs, as shipped")
            print_table(
                [
                    ("spawn -> READY=1", fmt_seconds(p["ready_s"])),
                    ("CPU at READY=1 (utime + stime)", fmt_seconds(p["cpu_at_ready_s"])),
                    ("peak RSS at READY", f"{p['peak_rss_at_ready_mb']:.0f} MB"),
                    ("peak RSS 3 s later", f"{p['peak_rss_mb']:.0f} MB"),
                ]
            )
        pg = pg_url() if postgres else None
        if pg is not None:
            with pg_schema(pg) as engine_args:
                since = datetime.now(UTC) - DOWNTIME
                results["postgres_apply_s"] = fill_store(pg, docs, since, **engine_args)
                results["postgres"] = in_child(pg, engine_args)
            _print_in_process("PostgreSQL, as shipped", results["postgres"])
    best = results.get("process", results["sqlite"])
    results["verdict"] = (
        f"READY in {best['ready_s']:.1f} s (target {TARGET_SECONDS:.0f} s), "
        f"peak {best['peak_rss_mb']:.0f} MB (target < {TARGET_MB:.0f} MB)"
    )
    print(f"\n=> {results['verdict']}")
    return results


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--no-process", action="store_true", help="skip the `run` process")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        url, engine_args = json.loads(args.child)
        print(json.dumps(measure_in_process(url, engine_args)))
        return None
    return run(
        max(1, min(args.jobs, 200_000)),
        process=not args.no_process,
        postgres=not args.no_postgres,
    )


if __name__ == "__main__":
    main()
