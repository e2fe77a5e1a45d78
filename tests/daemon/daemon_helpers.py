"""Run the real daemon as a subprocess against a sandbox, and audit what it did.

Shared by tests/daemon/ and tests/reliability/. Import it as `daemon_helpers` from
tests/daemon/, or as `daemon.daemon_helpers` from elsewhere (tests/ is on sys.path through
tests/conftest.py). Nothing here is a fixture; the `daemons` fixture in tests/daemon/conftest.py
wraps `DaemonProcess` so every process is killed at teardown, and any other user must kill
what it starts (`with DaemonProcess(...)`, or `kill()` in a finally). The API:

``job_toml(schedule, *, action="task", timezone="UTC", **keys) -> str``
    A job file. The task title / process name is ``"{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}"``:
    a pure function of (job, instant), so `audit` can find what each instant created. `keys`
    become top-level job keys (`catch_up="all"`, `jitter="1s"`, `end_at=...`); pass
    ``action_keys={...}`` to override action keys (`started_at`, `deadline`, ...).
``write_job(folder, job_id, schedule, **kw) -> Path``: `job_toml` written to `folder/ID.toml`.
``config_toml(**sections) -> str``: a config file, e.g.
    ``config_toml(scheduler={"shutdown_grace": "5s"}, tallyfy={"max_requests_per_minute": 600})``.
``DaemonEnv(db_url, sandbox_url, organization_id, token, workdir, config=None)``
    What a process needs to reach the store and the sandbox. ``.cli(*args)`` runs one
    `python -m scheduler --db URL [--config F] ARGS...` to completion (CompletedProcess, text);
    ``.apply(*job_files) -> active_since`` runs `jobs apply`; ``.process(**kw)`` builds a
    `DaemonProcess` (not started); ``.env(extra)`` the environment of a child.
``DaemonProcess``: ``start()``, ``wait_started(timeout)`` (the log says "daemon started"),
    ``kill()`` (SIGKILL, then reaped: a zombie would still look alive to `kill(pid, 0)`),
    ``term(timeout) -> exit code`` (SIGTERM, wait), ``send(sig)``, ``wait(timeout)``,
    ``running``, ``pid``, ``returncode``, ``log()`` (stderr so far), ``wait_for_log(regex)``.
    Usable as a context manager (killed on exit if still running).
``wait_until(predicate, timeout, interval=0.05, message="") -> value``
    Polls until `predicate()` is truthy and returns that value; AssertionError on timeout.
``RemoteSandbox(base_url)``: `runs()` / `tasks()` of a sandbox in another process, read
    through its `/_sandbox/` admin endpoints (a `SandboxServer` has the same two methods).
``audit(store, sandbox, job_id, after, until, *, allow_open=False) -> Audit``
    For every scheduled instant of the job in (after, until] (the job's own schedule, start_at
    and end_at), exactly one of: sent (one launch/task in the sandbox, recorded as succeeded
    with that id), skipped (one skip row covers it, nothing created), failed (a failed row,
    nothing created). Anything else is a problem: created twice, created but not recorded,
    recorded as sent but nothing created, not accounted for at all, covered by two rows, or
    still open (pending/sending/retrying/uncertain; allowed with `allow_open=True`). An
    instant inside a skip range that `backfill` fired later counts by its own row.
    ``Audit.assert_ok()`` raises with every problem listed; ``.outcomes`` maps each instant to
    "sent" | "skipped" | "failed" | "open"; ``.items[instant]`` lists what the sandbox created
    for it; ``.rows[instant]`` is the history row at that exact instant, if any.
``clean_audit(store, sandbox, job_id, after, until)``: a predicate for `wait_until` that
    returns the `Audit` once it has no problems (e.g. after a restart, until all is settled).
``history_settled(store, job_id)``: True when none of the job's rows is still open.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import requests

from scheduler.actions import reconcile_key
from scheduler.config import CalendarSettings, Settings, StoreSettings
from scheduler.definitions import job_from_document
from scheduler.errors import SchedulerError
from scheduler.job import Job, LaunchProcess
from scheduler.lifecycle import OPEN, FireStatus, Trigger
from scheduler.runner import request_for_instant
from scheduler.store import Fire, Store
from scheduler.timeexpr import BusinessCalendar

REPO = Path(__file__).resolve().parents[2]
TITLE = "{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}"
# The demo organization's "Weekly client review" template and its two required kick-off fields.
REVIEW = "beeffbdddf558869a18556731b2da7c2"
CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"
REVIEW_DUE = "2024ec22c6346de494cc419191bb01aa"
ONE_MICROSECOND = timedelta(microseconds=1)
SKIPPED = FireStatus.SKIPPED

T = TypeVar("T")


# -- files ----------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return json.dumps(value.isoformat())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    return json.dumps(str(value))


def job_toml(
    schedule: str,
    *,
    action: str = "task",
    timezone: str = "UTC",
    action_keys: Mapping[str, Any] | None = None,
    **keys: Any,
) -> str:
    """A job file whose title/name renders the job id and the scheduled instant in UTC."""
    lines = [f"schedule = {_toml_value(schedule)}", f"timezone = {_toml_value(timezone)}"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
    if action == "task":
        act: dict[str, Any] = {
            "type": "create_task",
            "title": TITLE,
            "owners": {"users": [1001], "groups": [], "guests": []},
            "started_at": "+0",
            "deadline": "+1d@17:00",
        }
    elif action == "launch":
        act = {
            "type": "launch_process",
            "checklist_id": REVIEW,
            "name": TITLE,
            "prerun": {CLIENT_NAME: "Acme", REVIEW_DUE: {"at": "+2d@17:00"}},
        }
    else:
        raise ValueError(f"action must be 'task' or 'launch', not {action!r}")
    act.update(action_keys or {})
    lines.append("[action]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in act.items()]
    return "\n".join(lines) + "\n"


def write_job(folder: Path, job_id: str, schedule: str, **kw: Any) -> Path:
    """Write `job_toml(schedule, **kw)` to `folder/job_id.toml` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.toml"
    path.write_text(job_toml(schedule, **kw))
    return path


def config_toml(**sections: Mapping[str, Any]) -> str:
    """A config file from tables: `config_toml(scheduler={"catch_up": "all"})`."""
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


# -- waiting --------------------------------------------------------------------------------------
def wait_until(
    predicate: Callable[[], T], timeout: float, interval: float = 0.05, message: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting: {message or predicate}")
        time.sleep(interval)


# -- processes ------------------------------------------------------------------------------------
@dataclass
class DaemonEnv:
    """Where the daemon's store and sandbox are; builds commands and processes."""

    db_url: str
    sandbox_url: str
    organization_id: str
    token: str
    workdir: Path
    config: Path | None = None

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a child: ours without TALLYFY_*/systemd variables, plus these."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TALLYFY_", "NOTIFY_SOCKET", "WATCHDOG_", "PYTEST_"))
        }
        env.update(
            TALLYFY_ACCESS_TOKEN=self.token,
            TALLYFY_ORGANIZATION_ID=self.organization_id,
            TALLYFY_BASE_URL=self.sandbox_url,
            PYTHONUNBUFFERED="1",
        )
        env.update(extra or {})
        return env

    def argv(self, *args: str) -> list[str]:
        argv = [sys.executable, "-m", "scheduler", "--db", self.db_url]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        return [*argv, *args]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run one command to completion in `workdir`."""
        return subprocess.run(
            self.argv(*args),
            env=self.env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def apply(self, *paths: Path) -> datetime:
        """`jobs apply PATHS` (must succeed); returns the newest `active_since` among them:
        every instant after it belongs to all the jobs applied."""
        done = self.cli("jobs", "apply", *map(str, paths))
        assert done.returncode == 0, done.stderr
        store = Store.open(self.db_url)
        try:
            return max(store.get_job(path.stem).active_since for path in paths)
        finally:
            store.close()

    def process(
        self,
        *,
        name: str = "daemon",
        env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
    ) -> DaemonProcess:
        """A `run` daemon (not started); `args` go after `run`."""
        return DaemonProcess(
            self.argv("run", *args), env=self.env(env), cwd=self.workdir, name=name
        )


class DaemonProcess:
    """One `tallyfy-scheduler run` subprocess; stderr and stdout go to files in `cwd`."""

    def __init__(self, argv: list[str], *, env: Mapping[str, str], cwd: Path, name: str) -> None:
        self.argv = argv
        self.env = dict(env)
        self.cwd = cwd
        self.name = name
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        self._runs = 0
        self.log_path = cwd / f"{name}.stderr"

    def start(self) -> DaemonProcess:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._runs += 1
        # A fresh log per start, named by run, so `log()` shows this run only.
        self.log_path = self.cwd / f"{self.name}.{self._runs}.stderr"
        with open(self.log_path, "wb") as err, open(self.cwd / f"{self.name}.stdout", "ab") as out:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=err
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log(self) -> str:
        """Everything the current run wrote to stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """The first match of `pattern` in the log; fails early if the process exits."""

        def found() -> re.Match[str] | None:
            match = re.search(pattern, self.log())
            if match is None and not self.running:
                raise AssertionError(
                    f"{self.name} exited ({self.returncode}) before logging {pattern!r}:\n"
                    + self.log()[-3000:]
                )
            return match

        return wait_until(found, timeout, message=f"{self.name} to log {pattern!r}")

    def wait_started(self, timeout: float = 15) -> DaemonProcess:
        self.wait_for_log(r"daemon started", timeout)
        return self

    def send(self, sig: int) -> None:
        if self.running:
            assert self.popen is not None
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL and reap (a zombie would still answer `kill(pid, 0)`)."""
        if self.popen is not None:
            if self.popen.poll() is None:
                self.popen.kill()
            self.popen.wait(10)

    def term(self, timeout: float = 40) -> int:
        """SIGTERM, then wait for the exit; returns the exit code (kills on timeout)."""
        assert self.popen is not None
        self.send(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM") from None

    def __enter__(self) -> DaemonProcess:
        return self.start() if self.popen is None else self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# -- reading the sandbox --------------------------------------------------------------------------
class SandboxLike(Protocol):
    def runs(self) -> list[dict[str, Any]]: ...

    def tasks(self) -> list[dict[str, Any]]: ...


class RemoteSandbox:
    """`runs()` and `tasks()` of a sandbox running in another process."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/api"):
            self.base_url = self.base_url[: -len("/api")]

    def _get(self, name: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.base_url}/_sandbox/{name}", timeout=10)
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def runs(self) -> list[dict[str, Any]]:
        return self._get("runs")

    def tasks(self) -> list[dict[str, Any]]:
        return self._get("tasks")


# -- the audit ------------------------------------------------------------------------------------
@dataclass
class Audit:
    """What `audit` found; see the module docstring."""

    job_id: str
    instants: list[datetime]
    outcomes: dict[datetime, str] = field(default_factory=dict)
    items: dict[datetime, list[dict[str, Any]]] = field(default_factory=dict)
    rows: dict[datetime, Fire] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def of(self, outcome: str) -> list[datetime]:
        return [s for s in self.instants if self.outcomes.get(s) == outcome]

    @property
    def sent(self) -> list[datetime]:
        return self.of("sent")

    @property
    def skipped(self) -> list[datetime]:
        return self.of("skipped")

    @property
    def failed(self) -> list[datetime]:
        return self.of("failed")

    def assert_ok(self) -> Audit:
        if self.problems:
            shown = "\n  ".join(self.problems[:40])
            more = f"\n  ... and {len(self.problems) - 40} more" if len(self.problems) > 40 else ""
            raise AssertionError(
                f"audit of {self.job_id}: {len(self.problems)} problem(s) in "
                f"{len(self.instants)} instants:\n  {shown}{more}"
            )
        return self


def stored_job(store: Store, job_id: str) -> Job:
    """The stored job as a Job (defaults come from the stored document itself)."""
    settings = Settings(store=StoreSettings(url="sqlite://"))
    return job_from_document(store.get_job(job_id).definition, settings)


def _all_rows(store: Store, job_id: str) -> list[Fire]:
    return store.history(job_id, limit=None)


def clean_audit(
    store: Store, sandbox: SandboxLike, job_id: str, after: datetime, until: datetime
) -> Callable[[], Audit | None]:
    """For `wait_until`: a predicate giving the audit once it has no problems, else None."""

    def check() -> Audit | None:
        report = audit(store, sandbox, job_id, after, until)
        return None if report.problems else report

    return check


def history_settled(store: Store, job_id: str) -> bool:
    """True when none of the job's history rows is pending, sending, retrying or uncertain."""
    return not any(f.status in OPEN for f in _all_rows(store, job_id))


def audit(
    store: Store,
    sandbox: SandboxLike,
    job_id: str,
    after: datetime,
    until: datetime,
    *,
    allow_open: bool = False,
    organization_id: str = "demo-org",
    job: Job | None = None,
) -> Audit:
    """Check exactly-once for every scheduled instant of `job_id` in (after, until]."""
    job = job or stored_job(store, job_id)
    instants = []
    for s in job.fires_after(after):
        if s > until:
            break
        instants.append(s)
    result = Audit(job_id, instants)
    rows = _all_rows(store, job_id)
    exact = {f.scheduled_for: f for f in rows}
    skips = [f for f in rows if f.status is FireStatus.SKIPPED]
    launch = isinstance(job.action, LaunchProcess)
    created = [
        item
        for item in (sandbox.runs() if launch else sandbox.tasks())
        if launch or item.get("is_oneoff_task")
    ]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for item in created:
        key = str(item.get("name") if launch else item.get("title"))
        by_key.setdefault(key, []).append(item)
    calendar = BusinessCalendar.from_settings(CalendarSettings())

    for skip in skips:
        first, last = skip.scheduled_for, skip.skipped_until or skip.scheduled_for
        expected = job.cron.count_between(first - ONE_MICROSECOND, last)
        if expected != (skip.skipped_count or 1):
            result.problems.append(
                f"skip row {first.isoformat()}..{last.isoformat()} says "
                f"{skip.skipped_count} instants, the schedule has {expected}"
            )

    for s in instants:
        row = exact.get(s)
        if row is not None:
            result.rows[s] = row
        covering = [
            f for f in skips if f.scheduled_for <= s <= (f.skipped_until or f.scheduled_for)
        ]
        if row is not None and row.trigger is Trigger.BACKFILL and row.status is not SKIPPED:
            # `backfill` fires instants a catch-up skipped; the range row stays as the record
            # of the skip, the instant's own row says what happened later.
            covering = []
        try:
            request = request_for_instant(
                store, job, s, organization_id=organization_id, calendar=calendar
            )
            items = by_key.get(reconcile_key(job, request)[1], [])
        except SchedulerError:
            items = []  # e.g. run_from_job without a launch: nothing can have been created
        result.items[s] = items
        where = f"{s.isoformat()}:"
        if len(items) > 1:
            result.problems.append(f"{where} created {len(items)} times")
        if covering and row is not None and row.status is not FireStatus.SKIPPED:
            result.problems.append(f"{where} both {row.status} and covered by a skip row")
        if len(covering) > 1:
            result.problems.append(f"{where} covered by {len(covering)} skip rows")
        if row is not None and row.status in OPEN:
            result.outcomes[s] = "open"
            if not allow_open:
                result.problems.append(f"{where} still {row.status} (attempts={row.attempts})")
        elif items:
            result.outcomes[s] = "sent"
            if row is None or row.status is not FireStatus.SUCCEEDED:
                state = "no row" if row is None else str(row.status)
                result.problems.append(f"{where} created in the sandbox but recorded as {state}")
            elif row.remote_id not in {str(i.get("id")) for i in items}:
                result.problems.append(f"{where} remote_id {row.remote_id} is not what was made")
            if covering:
                result.problems.append(f"{where} created although skipped")
        elif covering:
            result.outcomes[s] = "skipped"
        elif row is not None and row.status is FireStatus.FAILED:
            result.outcomes[s] = "failed"
        elif row is not None and row.status is FireStatus.SUCCEEDED:
            result.outcomes[s] = "sent"
            result.problems.append(f"{where} recorded as succeeded but nothing was created")
        else:
            result.outcomes[s] = "lost"
            result.problems.append(f"{where} not accounted for (no row, no skip, nothing sent)")
    return result
