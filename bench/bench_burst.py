"""Figure 3: a burst of 10,000 fires due in the same second, drained by the `run` daemon.

Design targets (issue 4): (a) with the client-side rate limit, fires leave at the configured
rate (within a few percent); (b) with no effective limit, at least 1,000 fires/s, and every
fire keeps its own scheduled instant: none lost, none doubled.

Setup: 10,000 jobs whose six-field schedule names the same second T (half launch a process,
half create a one-off task; each name/title renders the job id and the instant in UTC), a fresh
SQLite store, the sandbox in its own process (`tallyfy-scheduler sandbox`), and the daemon
(`tallyfy-scheduler run`, default settings but the rate limit) in another. T is set far enough
ahead for the daemon to be READY (its `$NOTIFY_SOCKET` is ours) before it comes.

While the burst drains, the sandbox's `/_sandbox/stats` is polled: every fire is one POST, so
the rate is POSTs per second between 10 % and 90 % of the burst (steady state); "drained" is
when the last one arrived, counted from T. Then the audit (run b): every job has exactly one
history row, at T, succeeded, whose remote id is the one item the sandbox holds under the name
rendered for (job, T); the sandbox holds nothing else. Run (a) is stopped after 20 s (at
6000/min the whole burst would take 100 s); its audit checks what was sent so far.

    .venv/bin/python -m bench.bench_burst                    # (a) 6000/min, then (b)
    .venv/bin/python -m bench.bench_burst --only unlimited --workers 16
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    TITLE,
    DaemonProcess,
    NotifySocket,
    SandboxProcess,
    base_document,
    cpu_seconds,
    fill_store,
    fmt_seconds,
    make_document,
    peak_rss_mb,
    print_table,
    workdir,
)
from scheduler.lifecycle import FireStatus
from scheduler.store import JobDocument, Store
from scheduler.templates import fire_values, parse_template

DEFAULT_JOBS = 10_000
LIMITED_PER_MINUTE = 6000
LIMITED_SECONDS = 20.0  # how long the limited run drains before it is stopped
UNLIMITED_PER_MINUTE = 100_000_000
LEAD = timedelta(seconds=12)  # T is at least this long after READY
READY_TIMEOUT = 120.0
DRAIN_TIMEOUT = 150.0
POLL = 0.2


def burst_documents(n: int, instant: datetime) -> list[JobDocument]:
    """`n` jobs all due at `instant` (a whole second, UTC), launches and tasks alternating."""
    schedule = f"{instant:%S %M %H %d %m} *"
    bases = [base_document("launch_process"), base_document("create_task")]
    width = len(str(n))
    return [make_document(bases[i % 2], f"b-{i:0{width}d}", schedule, "UTC") for i in range(n)]


def expected_name(job_id: str, instant: datetime) -> str:
    """The name / title the fire of `job_id` at `instant` renders (TITLE; seq is not used)."""
    template = parse_template(TITLE, allowed=frozenset({"job", "fire_utc", "fire"}))
    return template.render(fire_values(job_id, instant, UTC, 1))


def _posts(sandbox: SandboxProcess) -> int:
    """Fires that reached the sandbox: every fire is one POST (admin calls are GETs)."""
    return int(sandbox.stats()["requests"]["by_method"].get("POST", 0))


def watch(
    sandbox: SandboxProcess, daemon: DaemonProcess, n: int, stop_after: float | None
) -> dict[str, Any]:
    """Poll the sandbox until `n` POSTs arrived (or `stop_after` seconds after the first)."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + DRAIN_TIMEOUT
    first_at: float | None = None
    cpu_start = cpu_seconds(daemon.pid)
    while time.monotonic() < deadline:
        count = _posts(sandbox)
        now = time.monotonic()
        samples.append((now, count))
        if count and first_at is None:
            first_at = now
            cpu_start = cpu_seconds(daemon.pid)
        if count >= n:
            break
        if first_at is not None and stop_after is not None and now - first_at >= stop_after:
            break
        if not daemon.running:
            raise RuntimeError(f"the daemon exited:\n{daemon.log()[-3000:]}")
        time.sleep(POLL)
    return {
        "samples": samples,
        "daemon_cpu_s": cpu_seconds(daemon.pid) - cpu_start,
        "daemon_peak_rss_mb": peak_rss_mb(daemon.pid),
    }


def steady_rate(samples: list[tuple[float, int]], lo: float, hi: float) -> float | None:
    """Items per second between the first samples at or above `lo` and `hi` items."""
    start = next((s for s in samples if s[1] >= lo), None)
    end = next((s for s in samples if s[1] >= hi), None)
    if start is None or end is None or end[0] <= start[0]:
        return None
    return (end[1] - start[1]) / (end[0] - start[0])


def audit(
    store: Store, sandbox: SandboxProcess, n: int, instant: datetime, complete: bool
) -> dict[str, Any]:
    """Exactly once per job at `instant`: history rows against what the sandbox created."""
    runs = sandbox.admin("GET", "runs")
    tasks = [t for t in sandbox.admin("GET", "tasks") if t.get("is_oneoff_task")]
    items: dict[str, list[str]] = {}
    for item in runs:
        items.setdefault(str(item["name"]), []).append(str(item["id"]))
    for item in tasks:
        items.setdefault(str(item["title"]), []).append(str(item["id"]))
    problems: list[str] = []
    statuses: Counter[str] = Counter()
    triggers: Counter[str] = Counter()
    expected: set[str] = set()
    fires = store.history(limit=None)
    by_job: dict[str, list[Any]] = {}
    for fire in fires:
        by_job.setdefault(fire.job_id, []).append(fire)
    width = len(str(n))
    for i in range(n):
        job_id = f"b-{i:0{width}d}"
        name = expected_name(job_id, instant)
        expected.add(name)
        rows = by_job.get(job_id, [])
        made = items.get(name, [])
        if len(made) > 1:
            problems.append(f"{job_id}: created {len(made)} times")
        if len(rows) > 1:
            problems.append(f"{job_id}: {len(rows)} history rows")
        for row in rows:
            statuses[str(row.status)] += 1
            triggers[str(row.trigger)] += 1
            if row.scheduled_for != instant:
                problems.append(f"{job_id}: a row at {row.scheduled_for}, not {instant}")
        row = rows[0] if rows else None
        if row is not None and row.status is FireStatus.SUCCEEDED:
            if row.remote_id not in made:
                problems.append(f"{job_id}: succeeded as {row.remote_id}, not what was made")
        elif made and (row is None or row.status is not FireStatus.SENDING):
            problems.append(f"{job_id}: created but recorded as {row and row.status}")
        elif complete:
            problems.append(f"{job_id}: lost ({row.status if row else 'no row'})")
    strangers = [name for name in items if name not in expected]
    if strangers:
        problems.append(f"{len(strangers)} items the jobs did not make, e.g. {strangers[0]!r}")
    return {
        "items": sum(len(ids) for ids in items.values()),
        "rows": len(fires),
        "statuses": dict(statuses),
        "triggers": dict(triggers),
        "problems": problems,
    }


def run_burst(
    folder: Path, n: int, *, per_minute: int, workers: int, stop_after: float | None
) -> dict[str, Any]:
    """One burst: store, sandbox, daemon; the figures and the audit."""
    folder.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{folder / 'scheduler.db'}"
    sandbox = SandboxProcess(folder)
    notify = NotifySocket(folder)
    daemon: DaemonProcess | None = None
    try:
        # Long enough ahead for the store to be filled and the daemon to start.
        instant = (datetime.now(UTC) + LEAD + timedelta(seconds=5 + n / 2000)).replace(
            microsecond=0
        )
        fill_store(db_url, burst_documents(n, instant), datetime.now(UTC))
        config = (
            f"[tallyfy]\nmax_requests_per_minute = {per_minute}\n"
            f"[scheduler]\nmax_concurrent_fires = {workers}\n"
        )
        daemon = process = DaemonProcess(
            folder, db_url, sandbox.url, config=config, notify=notify, log_level="INFO"
        )
        ready = notify.wait_for("READY=1", READY_TIMEOUT, lambda: process.running)
        ready_before_t = instant.timestamp() - time.time() + (time.monotonic() - ready)
        t_mono = time.monotonic() + (instant.timestamp() - time.time())
        watched = watch(sandbox, daemon, n, stop_after)
        samples = watched["samples"]
        sent = samples[-1][1]
        last_at = next(s[0] for s in samples if s[1] >= sent)
        result: dict[str, Any] = {
            "jobs": n,
            "per_minute": per_minute,
            "workers": workers,
            "ready_before_t_s": ready_before_t,
            "sent": sent,
            "first_after_t_s": next(s[0] for s in samples if s[1] > 0) - t_mono,
            "drained_after_t_s": last_at - t_mono,
            "steady_rate": steady_rate(samples, 0.1 * sent, 0.9 * sent),
            "daemon_cpu_s": watched["daemon_cpu_s"],
            "daemon_peak_rss_mb": watched["daemon_peak_rss_mb"],
        }
        daemon.stop()  # SIGTERM: in-flight fires finish and are recorded
        store = Store.open(db_url)
        try:
            result["audit"] = audit(store, sandbox, n, instant, complete=stop_after is None)
        finally:
            store.close()
        return result
    finally:
        if daemon is not None:
            daemon.kill()
        notify.close()
        sandbox.stop()


def _report(label: str, r: dict[str, Any]) -> None:
    a = r["audit"]
    rate = r["steady_rate"]
    limit = r["per_minute"] / 60
    rows = [
        ("daemon READY before T", fmt_seconds(r["ready_before_t_s"])),
        ("fires sent", f"{r['sent']} of {r['jobs']}"),
        ("first fire after T", fmt_seconds(r["first_after_t_s"])),
        ("last fire after T", fmt_seconds(r["drained_after_t_s"])),
        (
            "steady rate (10-90 %)",
            "-"
            if rate is None
            else f"{rate:.0f} fires/s"
            + (f" (limit {limit:.0f}/s: {(rate / limit - 1) * 100:+.1f} %)" if limit < 1e5 else ""),
        ),
        (
            "daemon CPU while draining",
            f"{r['daemon_cpu_s']:.1f} s"
            f" = {r['daemon_cpu_s'] / max(r['sent'], 1) * 1000:.2f} ms/fire",
        ),
        ("daemon peak RSS", f"{r['daemon_peak_rss_mb']:.0f} MB"),
        ("history rows / sandbox items", f"{a['rows']} / {a['items']}"),
        ("statuses", ", ".join(f"{k} {v}" for k, v in sorted(a["statuses"].items()))),
        ("triggers", ", ".join(f"{k} {v}" for k, v in sorted(a["triggers"].items()))),
        ("audit", "OK" if not a["problems"] else f"{len(a['problems'])} problems"),
    ]
    print(f"\n{label}")
    print_table(rows)
    for problem in a["problems"][:10]:
        print(f"    ! {problem}")


def run(n: int, *, only: str | None, workers: int) -> dict[str, Any]:
    results: dict[str, Any] = {"jobs": n}
    print(f"figure 3: {n} jobs due in the same second; sandbox and daemon in their own processes")
    with workdir("burst") as folder:
        if only in (None, "limited"):
            results["limited"] = run_burst(
                folder / "limited",
                n,
                per_minute=LIMITED_PER_MINUTE,
                workers=workers,
                stop_after=LIMITED_SECONDS,
            )
            _report(
                f"(a) limit {LIMITED_PER_MINUTE}/min, stopped after {LIMITED_SECONDS:.0f} s",
                results["limited"],
            )
        if only in (None, "unlimited"):
            results["unlimited"] = run_burst(
                folder / "unlimited",
                n,
                per_minute=UNLIMITED_PER_MINUTE,
                workers=workers,
                stop_after=None,
            )
            _report(f"(b) no effective limit, {workers} workers", results["unlimited"])
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--only", choices=("limited", "unlimited"))
    parser.add_argument("--workers", type=int, default=8, help="max_concurrent_fires")
    args = parser.parse_args(argv)
    return run(max(1, min(args.jobs, 50_000)), only=args.only, workers=max(1, args.workers))


if __name__ == "__main__":
    main()
