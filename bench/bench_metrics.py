"""Issue 12: scraping `/metrics` with 10,000 jobs takes under 100 ms and does not delay fires.

Setup: 10,000 jobs (the default `[http] max_job_series`: every per-job family is on the
page), all creating one-off tasks: 9,900 hourly ones, due in the same minute shortly after
the start (`H M * * * *`: ~165 fires a second for that minute, so that each then has every
per-job series, `fires_total` and `last_success` included), and 100 probes firing every 10 s
(`H/10 * * * * *`: 10 fires a second) whose delays are measured. A fresh SQLite store; the
sandbox in its own process; the daemon (`tallyfy-scheduler run`, `[http] listen =
"127.0.0.1:0"`, no effective rate limit) in another. After that minute, three phases of the
same length:

- **quiet**: nobody scrapes;
- **every second**: one scrape a second (Prometheus asks every 15-60 s);
- **back to back**: the next scrape as soon as the last one is read: the worst case.

A scrape's time is the client's wall time for the whole exchange (connect, render, ~3 MB
read over loopback). A fire's delay is read from the ledger, not from the metrics: its first
attempt (`first_attempt_at`, when it was marked `sending`) minus its scheduled instant. The
probes' delays in each phase are compared: scraping must not move them.

    .venv/bin/python -m bench.bench_metrics
    .venv/bin/python -m bench.bench_metrics --jobs 2000 --seconds 10     # a smoke run
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    DaemonProcess,
    SandboxProcess,
    base_document,
    cpu_seconds,
    fill_store,
    make_document,
    print_table,
    wait_until,
    workdir,
)
from scheduler.lifecycle import FireStatus
from scheduler.store import JobDocument, Store

DEFAULT_JOBS = 10_000
DEFAULT_SECONDS = 30.0
PROBES = 100
READY_TIMEOUT = 120.0
LEAD = 45.0  # the hourly jobs' minute starts at least this long after the store is filled
CONFIG = """\
[tallyfy]
max_requests_per_minute = 100000000

[http]
listen = "127.0.0.1:0"
"""


def documents(n: int, minute: int) -> list[JobDocument]:
    """`n - PROBES` jobs due once an hour, all in `minute`, and PROBES every 10 seconds."""
    base = base_document("create_task")
    hourly = [
        make_document(base, f"h-{i:05d}", f"H {minute} * * * *", "UTC")
        for i in range(max(0, n - PROBES))
    ]
    probes = [
        make_document(base, f"p-{i:03d}", "H/10 * * * * *", "UTC") for i in range(min(n, PROBES))
    ]
    return hourly + probes


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def scrape(url: str) -> tuple[float, int, int]:
    """One scrape: (seconds, bytes, samples)."""
    started = time.perf_counter()
    response = requests.get(url, timeout=30)
    body = response.content
    seconds = time.perf_counter() - started
    response.raise_for_status()
    samples = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
    return seconds, len(body), samples


def delays(store: Store, since: datetime, until: datetime) -> tuple[list[float], int]:
    """The probes' delays (s) for instants in [since, until), and how many did not succeed."""
    fires = [
        f
        for f in store.history(since=since, limit=None)
        if since <= f.scheduled_for < until and f.job_id.startswith("p-")
    ]
    late = [
        (f.first_attempt_at - f.scheduled_for).total_seconds()
        for f in fires
        if f.first_attempt_at is not None
    ]
    return late, sum(1 for f in fires if f.status is not FireStatus.SUCCEEDED)


def scraping(url: str, seconds: float, every: float) -> list[tuple[float, int, int]]:
    """Scrape for `seconds`, one scrape every `every` seconds (0: back to back)."""
    scrapes: list[tuple[float, int, int]] = []
    until = time.monotonic() + seconds
    while (now := time.monotonic()) < until:
        scrapes.append(scrape(url))
        time.sleep(max(0.0, now + every - time.monotonic()))
    return scrapes


def stats_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": max(values) * 1000,
    }


def run(n: int, seconds: float, folder: Path) -> dict[str, Any]:
    db_url = f"sqlite:///{folder / 'scheduler.db'}"
    start = datetime.now(UTC)
    busy = (start + timedelta(seconds=LEAD + 60)).replace(second=0, microsecond=0)
    fill_store(db_url, documents(n, busy.minute), start)
    sandbox = SandboxProcess(folder)
    daemon = DaemonProcess(folder, db_url, sandbox.url, config=CONFIG)
    phases: dict[str, tuple[datetime, datetime, list[tuple[float, int, int]], float]] = {}
    try:
        port = wait_until(
            lambda: re.search(r"listening on http://127\.0\.0\.1:(\d+) ", daemon.log()),
            READY_TIMEOUT,
        )[1]
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).ok, READY_TIMEOUT, 0.2)
        settled = busy + timedelta(seconds=70)
        print(f"daemon ready; hourly jobs due at {busy:%H:%M}Z; measuring from {settled:%H:%M:%S}Z")
        time.sleep(max(0.0, (settled - datetime.now(UTC)).total_seconds()))
        url = f"{base}/metrics"
        for name, every in (("quiet", None), ("every second", 1.0), ("back to back", 0.0)):
            since, cpu = datetime.now(UTC), cpu_seconds(daemon.pid)
            if every is None:
                time.sleep(seconds)
                scrapes = []
            else:
                scrapes = scraping(url, seconds, every)
            phases[name] = (since, datetime.now(UTC), scrapes, cpu_seconds(daemon.pid) - cpu)
        time.sleep(3)  # the last fires settle before the ledger is read
    finally:
        daemon.stop()
        sandbox.stop()
    store = Store.open(db_url)
    try:
        out: dict[str, Any] = {"jobs": n, "seconds": seconds, "phases": {}}
        for name, (since, until, scrapes, cpu) in phases.items():
            found, bad = delays(store, since, until)
            out["phases"][name] = {
                "fires": len(found),
                "not_succeeded": bad,
                "delay_ms": stats_ms(found),
                "daemon_cpu_s": cpu,
                "scrapes": len(scrapes),
                "scrape_ms": stats_ms([s for s, _b, _n in scrapes]) if scrapes else None,
                "bytes": scrapes[-1][1] if scrapes else None,
                "samples": scrapes[-1][2] if scrapes else None,
            }
        out["hourly"] = {
            "succeeded": len(store.history(status=FireStatus.SUCCEEDED, since=busy, limit=None))
        }
    finally:
        store.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    args = parser.parse_args(argv)
    n = max(1, min(args.jobs, 10_000))  # above max_job_series the page is another page
    seconds = max(5.0, min(args.seconds, 120.0))
    print(f"issue 12: /metrics with {n:,} jobs; phases of {seconds:.0f} s")
    with workdir("metrics") as folder:
        r = run(n, seconds, folder)
    rows = []
    for name, p in r["phases"].items():
        d = p["delay_ms"]
        rows.append(
            (
                f"{name}: fire delay",
                f"p50 {d['p50']:.1f} ms, p99 {d['p99']:.1f} ms, max {d['max']:.0f} ms "
                f"({p['fires']} probe fires, {p['not_succeeded']} not succeeded); "
                f"daemon CPU {p['daemon_cpu_s']:.1f} s",
            )
        )
        if p["scrape_ms"]:
            s = p["scrape_ms"]
            rows.append(
                (
                    f"{name}: scrape",
                    f"p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms, max {s['max']:.1f} ms "
                    f"({p['scrapes']} scrapes of {p['samples']:,} samples, "
                    f"{p['bytes'] / 1e6:.1f} MB)",
                )
            )
    print_table(rows)
    return r


if __name__ == "__main__":
    main()
