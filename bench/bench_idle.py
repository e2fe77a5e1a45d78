"""Figure 4: near-zero CPU between fires: 1,000 hourly jobs, a daemon idle for 30 s.

Design target (issue 4): a daemon waiting for its next fire costs next to nothing. The store
holds 1,000 jobs firing hourly, at minutes chosen so that none comes due during the run; the
daemon (`tallyfy-scheduler run`, default settings, a sandbox process as its API) starts, gets
READY, settles for 3 s, then we read its CPU time (utime + stime, /proc/PID/stat) and its
context switches (wake-ups) over 30 s.

Then, to say where that CPU goes, the same daemon is built in this process and its loop step
(`Daemon.tick`, once a second, as `run` does) is timed for the same number of passes, with the
store queries it makes counted.

    .venv/bin/python -m bench.bench_idle
    .venv/bin/python -m bench.bench_idle --jobs 10000 --seconds 60
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    ZONES,
    DaemonProcess,
    InMemoryApi,
    NotifySocket,
    SandboxProcess,
    Timers,
    base_document,
    bench_settings,
    cpu_seconds,
    fill_store,
    fmt_seconds,
    make_document,
    print_table,
    quiet_logs,
    rss_mb,
    workdir,
)
from scheduler.store import JobDocument, Store

DEFAULT_JOBS = 1000
DEFAULT_SECONDS = 30.0
SETTLE = 3.0
READY_TIMEOUT = 60.0


def hourly_documents(n: int, now: datetime, quiet: float) -> list[JobDocument]:
    """`n` hourly jobs, none due within `quiet` seconds (plus a margin) of `now`."""
    busy = {
        (now + timedelta(seconds=s)).minute for s in range(-60, int(quiet) + 180, 30)
    }  # minutes that may come due while we measure
    minutes = [m for m in range(60) if m not in busy]
    rng = random.Random(4)
    bases = [base_document("launch_process"), base_document("create_task")]
    width = len(str(n))
    return [
        make_document(
            bases[i % 2],
            f"h-{i:0{width}d}",
            f"{rng.choice(minutes)} * * * *",
            ZONES[i % len(ZONES)],
        )
        for i in range(n)
    ]


def _switches(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def measure_process(folder: Path, db_url: str, seconds: float) -> dict[str, Any]:
    sandbox = SandboxProcess(folder)
    notify = NotifySocket(folder)
    daemon: DaemonProcess | None = None
    try:
        daemon = process = DaemonProcess(folder, db_url, sandbox.url, notify=notify)
        notify.wait_for("READY=1", READY_TIMEOUT, lambda: process.running)
        time.sleep(SETTLE)
        pid = daemon.pid
        cpu0, sw0, t0 = cpu_seconds(pid), _switches(pid), time.monotonic()
        time.sleep(seconds)
        cpu1, sw1, t1 = cpu_seconds(pid), _switches(pid), time.monotonic()
        posts = int(sandbox.stats()["requests"]["by_method"].get("POST", 0))
        return {
            "seconds": t1 - t0,
            "cpu_s": cpu1 - cpu0,
            "cpu_percent": (cpu1 - cpu0) / (t1 - t0) * 100,
            "wakeups_per_s": (sw1 - sw0) / (t1 - t0),
            "rss_mb": rss_mb(pid),
            "fires_during": posts,
        }
    finally:
        if daemon is not None:
            daemon.stop()
        notify.close()
        sandbox.stop()


def measure_ticks(db_url: str, passes: int) -> dict[str, Any]:
    """The loop step of an in-process daemon on the same store, timed `passes` times."""
    from scheduler.daemon import MAX_TICK, Daemon
    from scheduler.notify import Notifier

    quiet_logs()
    settings = bench_settings(db_url)
    store = Store.open(db_url)
    daemon = Daemon(
        settings,
        store,
        InMemoryApi(),  # type: ignore[arg-type]
        notifier=Notifier(environ={}),
    )
    timers = Timers()
    daemon.start()
    try:
        for name in (
            "jobs_revision",
            "due_retries",
            "next_retry_at",
            "unsettled",
            "daemons",
            "heartbeat",
        ):
            timers.wrap(store, name, f"Store.{name}")
        timers.wrap(daemon, "status_line", "Daemon.status_line")
        cpu = 0.0
        for _ in range(passes):
            started = time.thread_time()
            with timers.time("Daemon.tick (all)"):
                wait = daemon.tick()
            cpu += time.thread_time() - started
            time.sleep(min(wait, MAX_TICK))
    finally:
        timers.restore()
        daemon.shutdown()
        store.close()
    return {
        "passes": passes,
        "tick_cpu_s": cpu,
        "steps": {
            name: {"seconds": timers.seconds[name], "calls": timers.calls[name]}
            for name in timers.seconds
        },
    }


def run(n: int, seconds: float) -> dict[str, Any]:
    with workdir("idle") as folder:
        db_url = f"sqlite:///{folder / 'scheduler.db'}"
        now = datetime.now(UTC)
        fill_store(db_url, hourly_documents(n, now, seconds + 60), now)
        print(f"figure 4: {n} hourly jobs, none due during the run; the daemon idles {seconds} s")
        p = measure_process(folder, db_url, seconds)
        print(f"\n`tallyfy-scheduler run` process, idle for {p['seconds']:.1f} s")
        print_table(
            [
                ("CPU used", f"{p['cpu_s']:.2f} s = {p['cpu_percent']:.2f} % of one core"),
                ("context switches", f"{p['wakeups_per_s']:.1f} per second"),
                ("RSS", f"{p['rss_mb']:.0f} MB"),
                ("fires meanwhile", str(p["fires_during"])),
            ]
        )
        t = measure_ticks(db_url, int(seconds))
        print(
            f"\nin process: {t['passes']} passes of Daemon.tick (one a second, as `run` does):"
            f" {fmt_seconds(t['tick_cpu_s'])} of CPU"
        )
        print_table(
            [
                (name, f"{fmt_seconds(step['seconds'])}  ({step['calls']} calls)")
                for name, step in t["steps"].items()
            ]
        )
    return {"jobs": n, "process": p, "ticks": t}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    args = parser.parse_args(argv)
    return run(max(1, min(args.jobs, 100_000)), max(5.0, min(args.seconds, 120.0)))


if __name__ == "__main__":
    main()
