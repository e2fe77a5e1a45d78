"""`tallyfy-scheduler demo`: the sandbox, the example jobs firing every few seconds, the daemon.

Everything is embedded and needs no configuration: a sandbox on a free loopback port, a SQLite
store in a fresh temporary directory, and the job files from `jobs/` with their schedules
replaced by 6-field ones that fire every few seconds. Each fire is printed as it happens
(job, scheduled instant, remote id, computed deadline) until Ctrl-C.

One more job fails on purpose (`broken-kickoff`: the example launch without its required
client name, a 422), so the demo shows alerts too: its incident goes through the real path
(the store's outbox, Apprise) to a `demo://` target that prints an `ALERT` line here. The
daemon's HTTP listener is on, on a free loopback port: the demo prints where its dashboard
and its metrics are.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from scheduler.client import ApiRequest, TallyfyClient
from scheduler.clock import Clock, SystemClock
from scheduler.config import (
    DEFAULT_TARGET,
    AlertSettings,
    CatchUpPolicy,
    HttpSettings,
    SchedulerSettings,
    Secret,
    Settings,
    StoreSettings,
    TallyfySettings,
)
from scheduler.daemon import Daemon
from scheduler.definitions import load_job_files
from scheduler.job import Job, LaunchProcess
from scheduler.operations import apply_jobs, fire_job
from scheduler.runner import Runner
from scheduler.store import Fire, Store
from scheduler.timeexpr import BusinessCalendar
from tallyfy_sandbox import SandboxServer

# Launches every 10 s; the follow-up task (which attaches to the latest launch) 5 s after each.
DEMO_SCHEDULES = ("*/10 * * * * *", "5-59/10 * * * * *")
BROKEN_JOB = "broken-kickoff"
BROKEN_SCHEDULE = "3-59/20 * * * * *"
CLIENT_NAME_FIELD = "16e27d901362e3abffae5c18ea1a8d12"  # required by the example template
DEMO_ALERTS = "demo://terminal"  # an Apprise target of the demo's own (`_register_demo_target`)
DEMO_RATE_LIMIT = 600  # requests per minute: the demo never comes near it


def demo_jobs(jobs: Sequence[Job]) -> list[Job]:
    """The example jobs, enabled, with schedules that fire every few seconds."""
    out = []
    for index, job in enumerate(sorted(jobs, key=lambda j: j.id != "weekly-client-review")):
        schedule = DEMO_SCHEDULES[min(index, len(DEMO_SCHEDULES) - 1)]
        out.append(
            dataclasses.replace(
                job, schedule=schedule, enabled=True, catch_up=CatchUpPolicy.NONE, max_fires=None
            )
        )
    return out


def broken_job(jobs: Sequence[Job]) -> list[Job]:
    """A copy of the example launch without its required client name: every fire is a 422."""
    for job in jobs:
        action = job.action
        if isinstance(action, LaunchProcess):
            prerun = {k: v for k, v in action.prerun.items() if k != CLIENT_NAME_FIELD}
            broken = dataclasses.replace(action, prerun=prerun)
            return [
                dataclasses.replace(job, id=BROKEN_JOB, schedule=BROKEN_SCHEDULE, action=broken)
            ]
    return []


def _register_demo_target(write: Callable[[str], Any]) -> None:
    """`demo://` prints each alert message's title (Apprise's custom notification hook)."""
    from apprise.decorators import notify

    from scheduler.alerts.targets import quiet_apprise

    @notify(on="demo", name="tallyfy-scheduler demo terminal")  # type: ignore[no-untyped-call,untyped-decorator]
    def show(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
        reason = next((line for line in body.splitlines() if line.startswith("Reason")), "")
        write(f"ALERT     {notify_type:<8} {title}  {reason}".rstrip())
        return True

    quiet_apprise()


def fire_printer(write: Callable[[str], Any]) -> Callable[[Fire, ApiRequest | None], None]:
    """An observer that prints one line per finished fire."""

    def show(fire: Fire, request: ApiRequest | None) -> None:
        deadline = _deadline_of(request)
        write(
            f"{fire.status.value:<9} {fire.job_id:<28} scheduled {fire.scheduled_for:%H:%M:%SZ}"
            f"  remote id {fire.remote_id or '-':<32}  deadline {deadline}"
            + (f"  ({fire.error})" if fire.error else "")
        )

    return show


def _deadline_of(request: ApiRequest | None) -> str:
    if request is None:
        return "-"
    if "deadline" in request.body:
        return str(request.body["deadline"])
    steps = request.body.get("tasks") or {}
    deadlines = sorted(str(s["deadline"]) for s in steps.values() if "deadline" in s)
    return f"steps {', '.join(deadlines)}" if deadlines else "-"


def run_demo(
    jobs_dir: Path,
    *,
    write: Callable[[str], Any],
    clock: Clock | None = None,
    state_dir: Path | None = None,
) -> int:
    """Run until SIGINT/SIGTERM; the exit code."""
    clock = clock or SystemClock()
    if state_dir is None:
        # A fresh store each time, removed afterwards: the demo leaves nothing behind.
        with tempfile.TemporaryDirectory(prefix="tallyfy-scheduler-demo-") as scratch:
            return run_demo(jobs_dir, write=write, clock=clock, state_dir=Path(scratch))
    state = state_dir
    with SandboxServer() as sandbox:
        settings = Settings(
            store=StoreSettings(url=f"sqlite:///{state / 'scheduler.db'}"),
            tallyfy=TallyfySettings(
                base_url=sandbox.url,
                organization_id=sandbox.organization_id,
                access_token=Secret(sandbox.token),
                max_requests_per_minute=DEMO_RATE_LIMIT,
            ),
            scheduler=SchedulerSettings(catch_up=CatchUpPolicy.NONE),
            alerts=AlertSettings(
                urls={DEFAULT_TARGET: Secret(DEMO_ALERTS)}, template_check_every=timedelta(0)
            ),
            http=HttpSettings(listen="127.0.0.1:0"),  # a free port: printed below
        )
        _register_demo_target(write)
        now = clock.now()
        jobs = demo_jobs(load_job_files([jobs_dir], settings, now))
        jobs += broken_job(jobs)
        store = Store.open(settings.store.url)
        store.init_schema()
        apply_jobs(store, jobs, now=now, prune=True)
        client = TallyfyClient.from_settings(settings.tallyfy)
        printer = fire_printer(write)
        runner = Runner(
            store,
            client,
            organization_id=sandbox.organization_id,
            calendar=BusinessCalendar.from_settings(settings.calendar),
            retry=settings.retry,
            clock=clock,
            observer=printer,
        )
        daemon = Daemon(settings, store, client, clock=clock, observer=printer)
        listener = daemon.listen()
        try:
            write(f"sandbox: {sandbox.url} (organization {sandbox.organization_id})")
            write(f"store:   {settings.store.url}")
            if listener is not None:
                write(f"dashboard: {listener.url}/ (read-only: jobs, upcoming, incidents)")
                write(f"metrics: {listener.url}/metrics (health: /healthz, /readyz)")
            for job in jobs:
                write(f"job:     {job.id:<28} {job.schedule!r} in {job.timezone}")
            write("Ctrl-C stops the demo.\n")
            _launch_first(jobs, runner, now)
            return daemon.run()
        finally:
            client.close()
            store.close()
            write(f"\nsandbox created {len(sandbox.runs())} runs and {len(sandbox.tasks())} tasks")


def _launch_first(jobs: Sequence[Job], runner: Runner, now: datetime) -> None:
    """One manual launch first, so the follow-up task has a run to attach to from the start.

    Its outcome is printed by the runner's observer; one that failed is not fatal to a demo.
    """
    for job in jobs:
        if job.id == "weekly-client-review":
            fire_job(runner, job, now=now)
