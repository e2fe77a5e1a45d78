"""Shared fixtures of the reliability suites: real daemon processes, a sandbox, an exact audit.

What a test gets from the `rig` fixture (SQLite) or `pg_rig` (PostgreSQL, a fresh schema):

- `rig.sandbox`: an in-process `SandboxServer` on a free port that accepts `RELIABILITY_TOKEN`
  (a recognisable token that must never show up in a log line or a history row);
- `rig.write_config(...)`, `rig.apply_jobs(...)`: the config file and the jobs, stored the way
  `jobs apply` stores them (`job_toml(...)` writes a job file whose rendered name or title
  contains the scheduled instant, so the audit can match every launch and task);
- `rig.daemon()`: a `DaemonProcess` (`python -m scheduler --db URL run` as a subprocess; its
  stderr goes to a log file), killed in teardown whatever happens;
- `rig.settle()`: wait until every instant up to now is accounted for and no fire is open;
- `rig.audit(until)`: the exact audit (`audit_history`) of every job and every scheduled
  instant; `rig.assert_token_hidden()`; `rig.figures`: the numbers a test prints and writes
  to `figures.json` under its tmp dir (`rig.finish()` does both).

Options: `--soak` (when tests/reliability is on the command line) or `TALLYFY_RELIABILITY_SOAK=N`
multiplies durations and kill counts; `TALLYFY_RELIABILITY_SEED` replays a seeded run.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pytest
from sqlalchemy import create_engine

from scheduler.clock import utc_iso
from scheduler.config import load_settings
from scheduler.cron import CronSchedule, parse_schedule
from scheduler.definitions import load_job_files
from scheduler.lifecycle import OPEN, FireStatus
from scheduler.store import Fire, JobDocument, Store
from tallyfy_sandbox import SandboxServer

# -- constants ----------------------------------------------------------------------------------
RELIABILITY_TOKEN = "tok-RELIABILITY-8d2e71"
# "Monthly close" in the demo organization: one required text field, one step.
LAUNCH_CHECKLIST = "705c13739dc06c6dda2accd933846ccc"
PERIOD_FIELD = "0078ef3fc605082e96cff58ab46c04bc"
OWNER_USER = 1001
# Every rendered process name / task title is "REL <job> <instant UTC>", so the audit can map
# each item the sandbox holds back to one (job, instant).
NAME_TEMPLATE = "REL {job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}"
NAME_PATTERN = re.compile(r"^REL (?P<job>\S+) (?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")
OPEN_STATUSES = sorted(OPEN)  # pending, retrying, sending, uncertain


def _find_libfaketime() -> Path:
    """Debian's libfaketime, wherever the machine's multiarch triplet puts it."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    return found[0] if found else Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


LIBFAKETIME = _find_libfaketime()
READY_LINE = "daemon started"
SETTLE_RECHECK = 1.0  # seconds between the two checks that the history has settled
# Log events counted into the figures: evidence of which recovery paths a test exercised.
LOG_EVIDENCE = {
    "reconciled": "reconciled job=",
    "adopted": "adopted fire job=",
    "retrying": "fire retrying job=",
    "failed": "fire failed job=",
    "skip_rows": "skipped job=",
    "stalls": "stall detected",
    "clock_back": "wall clock stepped back",
}

# Read at import: the suite's autouse fixture clears TALLYFY_* before each test.
_SEED_ENV = os.environ.get("TALLYFY_RELIABILITY_SEED")
_SOAK_ENV = os.environ.get("TALLYFY_RELIABILITY_SOAK")
_SESSION_FIGURES: list[dict[str, Any]] = []
DEFAULT_SOAK = 10  # the multiplier of a bare `--soak` or TALLYFY_RELIABILITY_SOAK=1

# Settings every daemon of the suite runs with: short enough that a test settles in seconds,
# and a client-side limit high enough that 1-second jobs never queue behind it.
BASE_CONFIG: dict[str, dict[str, Any]] = {
    "tallyfy": {
        "timeout": "5s",
        "connect_timeout": "2s",
        # A dead daemon's `sending` fire is read back this long (plus a second) after it
        # started: longer than any request of the suite lasts, short enough to settle in time.
        "request_deadline": "8s",
        "max_requests_per_minute": 6000,
    },
    "scheduler": {
        "catch_up": "all",
        "reload_interval": "1s",
        "heartbeat_interval": "1s",
        "dead_after": "6s",
        "shutdown_grace": "10s",
        "max_concurrent_fires": 8,
    },
    "retry": {"max_attempts": 8, "initial_backoff": "1s", "max_backoff": "4s"},
}


# -- options ------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store",
        nargs="?",
        const=str(DEFAULT_SOAK),
        default=None,
        metavar="N",
        help="reliability suites: multiply durations and kill counts by N (default 10)",
    )


def soak_factor(config: pytest.Config) -> int:
    """1 in CI. `--soak N` gives N (a bare `--soak`: 10); TALLYFY_RELIABILITY_SOAK=1 (or
    true/yes/on) gives 10 and TALLYFY_RELIABILITY_SOAK=N (N >= 2) gives N."""
    option = config.getoption("--soak", default=None)
    if option:
        return max(1, int(option))
    value = (_SOAK_ENV or "").strip().lower()
    if not value or value in ("0", "false", "no", "off"):
        return 1
    if value in ("1", "true", "yes", "on"):
        return DEFAULT_SOAK
    return max(1, int(value))


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> int:
    """The duration / kill-count multiplier (1 in CI)."""
    return soak_factor(request.config)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The test's RNG seed: TALLYFY_RELIABILITY_SEED to replay, else fresh; always printed."""
    value = int(_SEED_ENV) if _SEED_ENV else random.SystemRandom().randrange(2**32)
    print(f"\n[{request.node.name}] seed={value} (replay: TALLYFY_RELIABILITY_SEED={value})")
    return value


@pytest.fixture
def rng(seed: int) -> random.Random:
    return random.Random(seed)


# -- helpers ------------------------------------------------------------------------------------
def wait_until(
    predicate: Callable[[], bool], timeout: float, *, interval: float = 0.1, what: str = ""
) -> None:
    """Poll `predicate` until it is true; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def job_toml(
    job_id: str,
    schedule: str,
    *,
    action: str = "launch_process",
    catch_up: str | None = "all",
    catch_up_window: str | None = None,
    timezone: str = "UTC",
) -> str:
    """A job file whose launch name / task title is `NAME_TEMPLATE` (unique per instant)."""
    lines = [f'id = "{job_id}"', f'schedule = "{schedule}"', f'timezone = "{timezone}"']
    if catch_up is not None:
        lines.append(f'catch_up = "{catch_up}"')
    if catch_up_window is not None:
        lines.append(f'catch_up_window = "{catch_up_window}"')
    lines.append("")
    lines.append("[action]")
    if action == "launch_process":
        lines += [
            'type = "launch_process"',
            f'checklist_id = "{LAUNCH_CHECKLIST}"',
            f'name = "{NAME_TEMPLATE}"',
            "",
            "[action.prerun]",
            f'"{PERIOD_FIELD}" = "{{fire:%Y-%m}}"',
        ]
    elif action == "create_task":
        lines += [
            'type = "create_task"',
            f'title = "{NAME_TEMPLATE}"',
            'task_type = "task"',
            f"owners = {{ users = [{OWNER_USER}], groups = [], guests = [] }}",
            'deadline = "+1h"',
        ]
    else:
        raise ValueError(f"unknown action {action!r}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))


def config_toml(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """BASE_CONFIG with `overrides` ({table: {key: value}}) merged in, as TOML."""
    tables: dict[str, dict[str, Any]] = {k: dict(v) for k, v in BASE_CONFIG.items()}
    for table, values in (overrides or {}).items():
        tables.setdefault(table, {}).update(values)
    out = []
    for table, values in tables.items():
        out.append(f"[{table}]")
        out += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        out.append("")
    return "\n".join(out)


class FakeWallClock:
    """A libfaketime timestamp file shared by a daemon (LD_PRELOAD) and the test's sandbox.

    The file holds an offset from the real wall clock ("+10800"); with FAKETIME_NO_CACHE=1
    the daemon reads it on every clock call, and FAKETIME_DONT_FAKE_MONOTONIC=1 keeps its
    monotonic clock real, so only the wall clock jumps (as with an NTP step or a VM restore).
    It is also a `scheduler.clock.Clock`, so the sandbox stamps `created_at` in the same time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = timedelta(0)
        self._lock = threading.Lock()
        self.set_offset(timedelta(0))

    @staticmethod
    def available() -> bool:
        return LIBFAKETIME.is_file()

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def set_offset(self, offset: timedelta) -> None:
        seconds = int(offset.total_seconds())
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(f"{seconds:+d}\n", encoding="ascii")
            tmp.replace(self.path)  # atomic: the daemon never reads half a line
            self._offset = timedelta(seconds=seconds)

    def step(self, delta: timedelta) -> None:
        self.set_offset(self.offset + delta)

    # the Clock protocol (scheduler.clock)
    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class DaemonProcess:
    """One `python -m scheduler --db URL run` subprocess; start it again after a kill.

    stderr (the daemon's log) is appended to `log_path` across restarts.
    """

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exit_codes: list[int] = []
        self._log_offset = 0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, wait_ready: bool = True, timeout: float = 20.0) -> DaemonProcess:
        assert not self.alive, "already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = open(self.log_path, "ab")  # noqa: SIM115  # closed in _reap
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        self.starts += 1
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait for the "daemon started" line of this start (catch-up planned, READY)."""

        def ready() -> bool:
            if not self.alive:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode if self.proc else '?'}:\n"
                    + self.log_since_start()[-3000:]
                )
            return READY_LINE in self.log_since_start()

        wait_until(ready, timeout, interval=0.05, what="the daemon to start")

    def log_since_start(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL and reap (no chance to record anything)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self._reap(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful stop) and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a suspended process cannot act on SIGTERM
            self.proc.terminate()
        return self._reap(timeout=timeout)

    def _reap(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.exit_codes.append(code)
        return code


# -- figures ------------------------------------------------------------------------------------
@dataclass
class Figures:
    """What one reliability test measured; printed and written to figures.json."""

    test: str
    seed: int | None = None
    kills: Counter[str] = field(default_factory=Counter)  # by the moment chosen
    restarts: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # injected, by kind (fired count)
    instants_audited: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kills"] = dict(self.kills)
        data["kills_total"] = sum(self.kills.values())
        data["faults"] = dict(self.faults)
        return data

    def line(self) -> str:
        return (
            f"[{self.test}] kills={sum(self.kills.values())} {dict(self.kills)} "
            f"restarts={self.restarts} faults={dict(self.faults)} "
            f"instants_audited={self.instants_audited} sent={self.sent} "
            f"skipped={self.skipped} failed={self.failed} lost={self.lost} "
            f"duplicated={self.duplicated} seconds={self.seconds:.1f}"
            + (f" {self.extra}" if self.extra else "")
        )


# -- the audit ----------------------------------------------------------------------------------
@dataclass
class AuditReport:
    """The verdict on every (job, instant): exactly one of sent / skipped / failed."""

    instants: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    lost: list[str] = field(default_factory=list)  # neither sent nor recorded
    duplicated: list[str] = field(default_factory=list)  # two or more launches/tasks
    contradicted: list[str] = field(default_factory=list)  # sent AND skipped/failed, etc.
    unsettled: list[str] = field(default_factory=list)  # still open at the end
    strays: list[str] = field(default_factory=list)  # items that match no scheduled instant
    by_job: dict[str, Counter[str]] = field(default_factory=dict)
    # job id -> instant -> "sent" | "skipped" | "failed" | "open" (clean verdicts only)
    outcomes: dict[str, dict[datetime, str]] = field(default_factory=dict)
    # job id -> instant -> the history row that accounts for it (its own row or a skip range)
    rows: dict[str, dict[datetime, Fire]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return self.lost + self.duplicated + self.contradicted + self.unsettled + self.strays

    def assert_clean(self) -> None:
        if self.problems:
            shown = "\n".join(self.problems[:40])
            raise AssertionError(
                f"audit failed: lost={len(self.lost)} duplicated={len(self.duplicated)} "
                f"contradicted={len(self.contradicted)} unsettled={len(self.unsettled)} "
                f"strays={len(self.strays)} (of {self.instants} instants)\n{shown}"
            )


def sandbox_items(
    runs: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, str], list[str]]:
    """(job id, UTC instant "YYYY-MM-DDTHH:MM:SSZ") -> ids of launches and one-off tasks."""
    found: dict[tuple[str, str], list[str]] = {}
    for item, key in [(r, "name") for r in runs] + [
        (t, "title") for t in tasks if t.get("is_oneoff_task")
    ]:
        match = NAME_PATTERN.match(str(item.get(key) or ""))
        if match:
            found.setdefault((match["job"], match["at"]), []).append(str(item["id"]))
    return found


def audit_history(
    store: Store,
    runs: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    *,
    until: datetime,
    job_ids: Sequence[str] | None = None,
    after: Mapping[str, datetime] | None = None,
) -> AuditReport:
    """Check every scheduled instant of every job in (active_since, until].

    For each instant (from the schedule engine) exactly one holds: the sandbox has exactly one
    launch/task for it and the history has it `succeeded` with that id; or the sandbox has none
    and the history has a skip (its own row or a range covering it) or a failure, with a reason.
    Items the sandbox holds for instants after `until` must not be duplicated either, and every
    item must match a scheduled instant of a job. `after` overrides a job's window start.
    """
    report = AuditReport()
    items = sandbox_items(runs, tasks)
    seen_keys: set[tuple[str, str]] = set()
    stored = {j.id: j for j in store.list_jobs()}
    ids = list(job_ids) if job_ids is not None else sorted(stored)
    for job_id in ids:
        job = stored[job_id]
        counts: Counter[str] = Counter()
        report.by_job[job_id] = counts
        outcomes = report.outcomes.setdefault(job_id, {})
        accounted_by = report.rows.setdefault(job_id, {})
        definition = job.definition
        schedule = parse_schedule(
            str(definition["schedule"]), str(definition.get("timezone") or "UTC"), job_id=job_id
        )
        start = (after or {}).get(job_id, job.active_since)
        rows = store.history(job_id, limit=None)
        exact: dict[datetime, Fire] = {}
        ranges: list[Fire] = []
        for row in rows:
            if row.skipped_count and row.skipped_count > 1 and row.skipped_until is not None:
                ranges.append(row)
            if row.scheduled_for in exact:
                report.contradicted.append(f"{job_id} {utc_iso(row.scheduled_for)}: two rows")
            exact[row.scheduled_for] = row
        for instant in schedule.iter_after(start):
            if instant > until:
                break
            key = (job_id, utc_iso(instant))
            seen_keys.add(key)
            found = items.get(key, [])
            row = exact.get(instant)
            covering = [
                r
                for r in ranges
                if r.scheduled_for < instant <= (r.skipped_until or r.scheduled_for)
            ]
            where = f"{job_id} {key[1]}"
            report.instants += 1
            counts["instants"] += 1
            if len(found) > 1:
                report.duplicated.append(f"{where}: {len(found)} items {found}")
                continue
            if covering and row is not None:
                report.contradicted.append(f"{where}: own row {row.status} and a skip range")
                continue
            if covering:
                row = covering[0]
            if row is not None:
                accounted_by[instant] = row
            if row is None:
                if found:
                    report.contradicted.append(f"{where}: sent {found} but no history row")
                else:
                    report.lost.append(f"{where}: no item and no history row")
                continue
            status = row.status
            if status in OPEN_STATUSES:
                outcomes[instant] = "open"
                report.unsettled.append(f"{where}: still {status} ({row.error})")
            elif status is FireStatus.SUCCEEDED:
                if not found:
                    report.lost.append(
                        f"{where}: history says sent ({row.remote_id}), API has none"
                    )
                elif row.remote_id != found[0]:
                    report.contradicted.append(
                        f"{where}: history remote_id {row.remote_id} but the API holds {found[0]}"
                    )
                else:
                    outcomes[instant] = "sent"
                    report.sent += 1
                    counts["sent"] += 1
            elif status in (FireStatus.SKIPPED, FireStatus.FAILED):
                if found:
                    report.contradicted.append(f"{where}: {status} ({row.error}) but sent {found}")
                elif not row.error:
                    report.lost.append(f"{where}: {status} without a reason")
                elif status is FireStatus.SKIPPED:
                    outcomes[instant] = "skipped"
                    report.skipped += 1
                    counts["skipped"] += 1
                else:
                    outcomes[instant] = "failed"
                    report.failed += 1
                    counts["failed"] += 1
            else:  # pragma: no cover - a status this audit does not know
                report.contradicted.append(f"{where}: unknown status {status}")
    for key, found in items.items():
        if key in seen_keys:
            continue
        job_id, at = key
        if len(found) > 1:
            report.duplicated.append(f"{job_id} {at} (after the window): {len(found)} items")
        if job_id not in ids:
            continue
        instant = datetime.fromisoformat(at.replace("Z", "+00:00"))
        start = (after or {}).get(job_id, stored[job_id].active_since)
        if instant <= start:
            report.strays.append(f"{job_id} {at}: an item before the job's window")
        elif instant <= until:
            report.strays.append(f"{job_id} {at}: an item at no scheduled instant")
    return report


# -- the rig ------------------------------------------------------------------------------------
class Rig:
    """One test's world: sandbox, store, config, job files, daemons, figures (module doc)."""

    job_toml = staticmethod(job_toml)
    kit_items = staticmethod(sandbox_items)
    TOKEN = RELIABILITY_TOKEN

    def __init__(
        self,
        tmp: Path,
        db_url: str,
        figures: Figures,
        *,
        fake_clock: FakeWallClock | None = None,
    ) -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.figures = figures
        self.fake_clock = fake_clock
        self.started = time.monotonic()
        self.sandbox = SandboxServer(clock=fake_clock).start()
        self.sandbox.add_token(RELIABILITY_TOKEN)
        self.token_file = tmp / "token"
        self.token_file.write_text(RELIABILITY_TOKEN + "\n", encoding="utf-8")
        self.token_file.chmod(0o600)
        self.config_path = tmp / "config.toml"
        self.jobs_dir = tmp / "jobs"
        self.jobs_dir.mkdir()
        self.write_config()
        self.daemons: list[DaemonProcess] = []
        self._store: Store | None = None
        self.store.init_schema()

    @staticmethod
    def kit_wait(
        predicate: Callable[[], bool], timeout: float, *, interval: float = 0.2, what: str = ""
    ) -> None:
        """`wait_until`, reachable from a test module through the fixture."""
        wait_until(predicate, timeout, interval=interval, what=what)

    def kit_schedule(self, job_id: str) -> CronSchedule:
        """The stored job's schedule, from the one schedule engine."""
        definition = self.store.get_job(job_id).definition
        return parse_schedule(
            str(definition["schedule"]), str(definition.get("timezone") or "UTC"), job_id=job_id
        )

    # configuration and jobs
    def write_config(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.config_path.write_text(config_toml(overrides), encoding="utf-8")

    @property
    def env(self) -> dict[str, str]:
        """The daemon's environment: ours without TALLYFY_*, plus the sandbox's coordinates."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFY_")}
        env.update(
            {
                "TALLYFY_BASE_URL": self.sandbox.url,
                "TALLYFY_ORGANIZATION_ID": self.sandbox.organization_id,
                # From a file, so SIGHUP picks up a renewed token.
                "TALLYFY_ACCESS_TOKEN_FILE": str(self.token_file),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        return env

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.db_url)
        return self._store

    def now(self) -> datetime:
        """The daemons' view of the wall clock (real, or shifted by the fake clock)."""
        return self.fake_clock.now() if self.fake_clock else datetime.now(UTC)

    def apply_jobs(self, *documents: str) -> list[str]:
        """Write job files and store them as `jobs apply` does; returns the job ids."""
        paths = []
        for doc in documents:
            job_id = re.search(r'^id = "([^"]+)"', doc, re.M)
            assert job_id, doc
            path = self.jobs_dir / f"{job_id[1]}.toml"
            path.write_text(doc, encoding="utf-8")
            paths.append(path)
        settings = load_settings(self.config_path, environ=self.env, db_url=self.db_url)
        now = self.now()
        found = load_job_files(paths, settings, now)
        self.store.apply(
            [
                JobDocument(j.id, j.to_document(), j.schedule_key, j.enabled, j.source)
                for j in found
            ],
            prune=False,
            now=now,
        )
        return [j.id for j in found]

    # daemons
    def daemon(
        self, name: str | None = None, *, env: Mapping[str, str] | None = None
    ) -> DaemonProcess:
        """A daemon process (not started); killed in teardown."""
        name = name or f"daemon{len(self.daemons) + 1}"
        full_env = self.env
        if self.fake_clock is not None:
            full_env.update(self.fake_clock.env())
        full_env.update(env or {})
        argv = [
            sys.executable,
            "-m",
            "scheduler",
            "--config",
            str(self.config_path),
            "--db",
            self.db_url,
            "run",
        ]
        process = DaemonProcess(argv, full_env, self.tmp / f"{name}.log")
        self.daemons.append(process)
        return process

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`python -m scheduler --config ... --db ... ARGS` (e.g. `status --json`)."""
        argv = [
            sys.executable,
            "-m",
            "scheduler",
            "--config",
            str(self.config_path),
            "--db",
            self.db_url,
            *args,
        ]
        result = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} exited {result.returncode}:\n{result.stderr}")
        return result

    # settling and auditing
    def open_fires(self) -> list[Fire]:
        out: list[Fire] = []
        for status in OPEN_STATUSES:
            out += self.store.history(status=status, limit=None)
        return out

    def accounted(self, until: datetime) -> bool:
        """Every enabled job's last instant at or before `until` has a history row."""
        done = self.store.accounted_until()
        for job in self.store.list_jobs():
            if not job.enabled:
                continue
            schedule = parse_schedule(
                str(job.definition["schedule"]), str(job.definition.get("timezone") or "UTC")
            )
            last = schedule.previous_at_or_before(until)
            if last is None or last <= job.active_since:
                continue
            if done.get(job.id) is None or done[job.id] < last:
                return False
        return True

    def settle(self, timeout: float = 60.0) -> datetime:
        """Wait until every instant up to now is accounted for and no fire is open.

        Returns that "now" (in the daemons' view of time): the end of the audit window.
        """
        end = self.now()

        def settled() -> bool:
            return self.accounted(end) and not self.open_fires()

        try:
            wait_until(settled, timeout, interval=0.2, what="the history to settle")
            # Once more a moment later: another daemon may still be claiming older instants
            # when a newer one already has its row.
            time.sleep(SETTLE_RECHECK)
            wait_until(settled, timeout, interval=0.2, what="the history to settle")
        except AssertionError:
            opened = [
                f"{f.job_id} {utc_iso(f.scheduled_for)} {f.status}" for f in self.open_fires()
            ]
            raise AssertionError(
                f"not settled after {timeout:.0f} s: open fires {opened[:20]}"
                f"\n--- daemon log tail ---\n{self.log_tail()}"
            ) from None
        return end

    def audit(self, until: datetime, *, after: Mapping[str, datetime] | None = None) -> AuditReport:
        """The exact audit of every job up to `until`; fills in the figures; asserts it clean."""
        report = audit_history(
            self.store, self.sandbox.runs(), self.sandbox.tasks(), until=until, after=after
        )
        self.figures.instants_audited = report.instants
        self.figures.sent = report.sent
        self.figures.skipped = report.skipped
        self.figures.failed = report.failed
        self.figures.lost = len(report.lost)
        self.figures.duplicated = len(report.duplicated)
        return report

    def record_faults(self) -> None:
        """Add how often each active fault rule fired to the figures (then clear the rules)."""
        for rule in self.sandbox.faults.rules():
            self.figures.faults[str(rule["kind"])] += int(rule["fired"])
        self.sandbox.clear_faults()

    def logs(self) -> str:
        return "\n".join(d.log_text() for d in self.daemons if d.log_path.exists())

    def log_tail(self, chars: int = 4000) -> str:
        return self.logs()[-chars:]

    def evidence(self) -> Counter[str]:
        """How often each LOG_EVIDENCE event appears in the daemons' logs."""
        text = self.logs()
        return Counter({name: text.count(needle) for name, needle in LOG_EVIDENCE.items()})

    def assert_token_hidden(self) -> None:
        """The token is in no daemon log line and no history row (nor the SQLite file)."""
        assert RELIABILITY_TOKEN not in self.logs(), "the access token appears in a daemon log"
        for fire in self.store.history(limit=None):
            text = json.dumps(fire.to_json()) + json.dumps(fire.field_errors)
            assert RELIABILITY_TOKEN not in text, f"the access token is in history row {fire.id}"
        for job in self.store.list_jobs():
            assert RELIABILITY_TOKEN not in json.dumps(job.definition)
        if self.db_url.startswith("sqlite:///"):
            base = Path(self.db_url[len("sqlite:///") :])
            for path in (base, Path(f"{base}-wal")):
                if path.exists():
                    assert RELIABILITY_TOKEN.encode() not in path.read_bytes(), path

    def assert_no_tracebacks(self) -> None:
        """No worker died with an unexpected error (the daemon logs those as such)."""
        bad = [ln for ln in self.logs().splitlines() if "unexpected error" in ln]
        assert not bad, "\n".join(bad[:5])

    def stop_all(self) -> None:
        """SIGTERM every running daemon; each must exit 0."""
        for d in self.daemons:
            if d.alive:
                code = d.terminate()
                assert code == 0, f"daemon exited {code}\n{d.log_since_start()[-3000:]}"

    def finish(self, report: AuditReport) -> None:
        """Print and write the figures, then assert the audit clean and the token hidden."""
        self.figures.seconds = time.monotonic() - self.started
        self.figures.extra.setdefault("log_events", dict(+self.evidence()))
        data = self.figures.as_dict()
        data["problems"] = report.problems[:50]
        (self.tmp / "figures.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
        _SESSION_FIGURES.append(self.figures.as_dict())
        print("\n" + self.figures.line())
        report.assert_clean()
        self.assert_token_hidden()

    def close(self) -> None:
        for d in self.daemons:
            d.kill()  # SIGKILL: teardown must leave no process behind
        self.sandbox.stop()
        if self._store is not None:
            self._store.close()


def _figures_for(request: pytest.FixtureRequest, seed: int) -> Figures:
    return Figures(test=request.node.name, seed=seed)


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest, seed: int) -> Iterator[Rig]:
    """A sandbox, a SQLite store and the daemons of one test (all stopped in teardown)."""
    url = f"sqlite:///{tmp_path / 'state' / 'scheduler.db'}"
    r = Rig(tmp_path, url, _figures_for(request, seed))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def faketime_rig(tmp_path: Path, request: pytest.FixtureRequest, seed: int) -> Iterator[Rig]:
    """Like `rig`, with daemons under libfaketime and a sandbox on the same shifted clock."""
    if not FakeWallClock.available():
        if os.environ.get("CI"):
            pytest.fail(f"{LIBFAKETIME} is missing: .ci/run installs the faketime package")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    url = f"sqlite:///{tmp_path / 'state' / 'scheduler.db'}"
    clock = FakeWallClock(tmp_path / "faketime")
    r = Rig(tmp_path, url, _figures_for(request, seed), fake_clock=clock)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def pg_store_url(pg_url: str) -> Iterator[str]:
    """A store URL on a fresh PostgreSQL schema (search_path in the URL), dropped afterwards."""
    name = f"rel_{uuid.uuid4().hex[:16]}"
    admin = create_engine(pg_url, pool_size=1, max_overflow=0)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{pg_url}?options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


@pytest.fixture
def pg_rig(
    tmp_path: Path, request: pytest.FixtureRequest, seed: int, pg_store_url: str
) -> Iterator[Rig]:
    """Like `rig`, on PostgreSQL (several daemons may share it)."""
    r = Rig(tmp_path, pg_store_url, _figures_for(request, seed))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def kit() -> SimpleNamespace:
    """This conftest's helpers for test modules (a conftest cannot be imported reliably)."""
    return SimpleNamespace(
        TOKEN=RELIABILITY_TOKEN,
        LAUNCH_CHECKLIST=LAUNCH_CHECKLIST,
        NAME_TEMPLATE=NAME_TEMPLATE,
        OPEN_STATUSES=OPEN_STATUSES,
        job_toml=job_toml,
        config_toml=config_toml,
        wait_until=wait_until,
        audit_history=audit_history,
        sandbox_items=sandbox_items,
        AuditReport=AuditReport,
        DaemonProcess=DaemonProcess,
        FakeWallClock=FakeWallClock,
        Figures=Figures,
        Rig=Rig,
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per reliability test that ran: what it survived and what the audit found."""
    if not _SESSION_FIGURES:
        return
    terminalreporter.section("reliability figures")
    for data in _SESSION_FIGURES:
        terminalreporter.write_line(json.dumps(data, sort_keys=True))
