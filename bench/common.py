"""What the benchmark scripts share: varied jobs, stores, an in-memory API, processes, timers.

Nothing here is a test fixture and nothing runs in `make test`. Every helper is bounded in time
and talks to 127.0.0.1 only. The pieces:

- `varied_documents(n, ...)`: `n` canonical job documents (as `jobs apply` stores them) with
  a spread of cron shapes, zones and both actions, built from a few validated templates;
- `fill_store(url, docs, now)`: an initialized store holding them (`Store.apply` at `now`);
- `bench_settings(url, ...)` and `InMemoryApi`: settings and a client double for a daemon
  built in this process, so a benchmark can time our code without HTTP in the way;
- `Timers`: wraps functions by attribute and adds up the seconds spent in them;
- `quiet_logs()`: logging configured as `run` does it, written to /dev/null;
- `cpu_seconds(pid)`, `rss_mb(pid)`, `peak_rss_mb(pid)`: /proc readings of another process;
- `NotifySocket`: a `$NOTIFY_SOCKET` that records sd_notify datagrams with their arrival time;
- `SandboxProcess`: `tallyfy-scheduler sandbox` in its own process on a free port;
- `DaemonProcess`: `tallyfy-scheduler run` in its own process, always killed by `stop()`;
  run by `$BENCH_DAEMON_PYTHON` when set (another checkout's venv: see `bench/compare.py`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from scheduler.client import ApiRequest, Created
from scheduler.config import (
    CatchUpPolicy,
    SchedulerSettings,
    Secret,
    Settings,
    StoreSettings,
    TallyfySettings,
)
from scheduler.definitions import validate_documents
from scheduler.job import schedule_key
from scheduler.store import JobDocument, Store, make_engine

REPO = Path(__file__).resolve().parents[1]
ORG = "demo-org"
TOKEN = "sandbox-token"
# The demo organization's "Weekly client review" template and its two required kick-off fields.
REVIEW = "beeffbdddf558869a18556731b2da7c2"
CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"
REVIEW_DUE = "2024ec22c6346de494cc419191bb01aa"
# A name / title that is a pure function of (job, instant): the audits find each fire by it.
TITLE = "{job} {fire_utc:%Y-%m-%dT%H:%M:%SZ}"

ZONES = (
    "UTC",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Pacific/Auckland",
)


def _slow_schedule(rng: random.Random) -> str:
    """A schedule firing at most hourly, in one of the shapes real job files use."""
    m, h = rng.randrange(60), rng.randrange(24)
    shapes = (
        f"{m} {h} * * *",
        f"{m} {h} * * MON-FRI",
        f"{m} {h} {rng.randrange(1, 29)} * *",
        f"{m} {h} * * {rng.choice(('MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT', 'SUN'))}",
        "H H * * *",
        "H(0-29) 9-17 * * 1-5",
        f"{m} */{rng.choice((2, 3, 4, 6, 8, 12))} * * *",
        f"{m} * * * *",
        f"{m} {h} 1,15 * *",
        f"{m} {h} L * *",
        f"{m} {h} * * 5L",
        f"{m} {h} * * 1#2",
        f"{m} {h} * {rng.randrange(1, 13)} *",
        "@daily",
        "@weekly",
        "H 8-18/2 * * *",
    )
    return shapes[rng.randrange(len(shapes))]


def _base_documents() -> dict[str, dict[str, Any]]:
    """One validated canonical document per action, to vary (validation renders templates)."""
    raw = [
        {
            "id": "base-launch",
            "schedule": "0 9 * * MON",
            "action": {
                "type": "launch_process",
                "checklist_id": REVIEW,
                "name": TITLE,
                "prerun": {CLIENT_NAME: "Acme", REVIEW_DUE: {"at": "+2bd@17:00"}},
            },
        },
        {
            "id": "base-task",
            "schedule": "0 9 * * MON",
            "action": {
                "type": "create_task",
                "title": TITLE,
                "owners": {"users": [1001], "groups": [], "guests": []},
                "started_at": "+0",
                "deadline": "+1d@17:00",
            },
        },
    ]
    settings = Settings(store=StoreSettings(url="sqlite://"))
    jobs = validate_documents(raw, settings, datetime(2026, 1, 5, tzinfo=UTC))
    return {job.action.type: job.to_document() for job in jobs}


def make_document(
    base: Mapping[str, Any],
    job_id: str,
    schedule: str,
    timezone: str,
    *,
    catch_up: CatchUpPolicy | None = None,
    catch_up_window: str | None = None,
) -> JobDocument:
    """`base` with another id, schedule, zone and catch-up policy, as `jobs apply` stores it."""
    doc = json.loads(json.dumps(base))
    doc.update(id=job_id, schedule=schedule, timezone=timezone)
    if catch_up is not None:
        doc["catch_up"] = catch_up.value
    if catch_up_window is not None:
        doc["catch_up_window"] = catch_up_window
    return JobDocument(
        id=job_id, definition=doc, schedule_key=schedule_key(schedule, timezone), enabled=True
    )


def varied_documents(
    n: int,
    *,
    seed: int = 11,
    schedule: Callable[[random.Random], str] = _slow_schedule,
    prefix: str = "job",
) -> list[JobDocument]:
    """`n` documents: cron shapes from `schedule`, ten zones, both actions, alternating."""
    rng = random.Random(seed)
    bases = _base_documents()
    kinds = sorted(bases)
    width = len(str(n))
    return [
        make_document(
            bases[kinds[i % 2]],
            f"{prefix}-{i:0{width}d}",
            schedule(rng),
            ZONES[rng.randrange(len(ZONES))],
        )
        for i in range(n)
    ]


def base_document(action: str) -> dict[str, Any]:
    """The validated canonical document of `action` ("launch_process" or "create_task")."""
    return _base_documents()[action]


def fill_store(url: str, docs: Sequence[JobDocument], now: datetime, **engine: Any) -> float:
    """Initialize the store at `url` and apply `docs` at `now`; returns the apply's seconds."""
    store = Store(make_engine(url, **engine))
    try:
        store.init_schema()
        started = time.perf_counter()
        store.apply(docs, prune=False, now=now)
        return time.perf_counter() - started
    finally:
        store.close()


def bench_settings(
    url: str,
    *,
    base_url: str = "http://127.0.0.1:9/api",
    per_minute: int = 100,
    max_concurrent_fires: int = 8,
    **scheduler: Any,
) -> Settings:
    """Settings for a daemon built in this process (no file, no environment)."""
    return Settings(
        store=StoreSettings(url=url),
        tallyfy=TallyfySettings(
            base_url=base_url,
            organization_id=ORG,
            access_token=Secret(TOKEN),
            max_requests_per_minute=per_minute,
        ),
        scheduler=SchedulerSettings(max_concurrent_fires=max_concurrent_fires, **scheduler),
    )


class InMemoryApi:
    """A `TallyfyClient` double: every write succeeds at once; what was sent is kept.

    Used where a benchmark measures the daemon's own work (planning, store writes) and an HTTP
    round trip would only add noise.
    """

    organization_id = ORG

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.sent: list[ApiRequest] = []

    def take_slot(self, stop: threading.Event | None = None) -> bool:
        return True

    def send(
        self,
        request: ApiRequest,
        *,
        stop: threading.Event | None = None,
        slot_taken: bool = False,
    ) -> Created:
        with self._lock:
            self.sent.append(request)
            remote_id = f"{next(self._ids):032x}"
        return Created(remote_id, 201, {"data": {"id": remote_id}})

    def find_runs(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def find_tasks(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


def quiet_logs() -> None:
    """Log as `run` does (INFO, our line format, secrets redacted), but to /dev/null: the cost
    of logging each skip or fire stays in the figures, the lines stay out of the report."""
    from scheduler.logs import configure_logging

    configure_logging("INFO", open(os.devnull, "w"))  # noqa: SIM115 - for the process's life


# -- timing ---------------------------------------------------------------------------------------
@dataclass
class Timers:
    """Seconds and calls per name, added up across threads (so a total may exceed wall time)."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    # perf_counter: wall time; time.thread_time: CPU of the calling thread (waits excluded).
    clock: Callable[[], float] = time.perf_counter
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + calls

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        started = self.clock()
        try:
            yield
        finally:
            self.add(name, self.clock() - started)

    def wrap(self, owner: Any, attribute: str, name: str | None = None) -> None:
        """Replace `owner.attribute` by a timed wrapper until `restore()` (if it exists: the
        daemon changes, and a benchmark should still run)."""
        original = getattr(owner, attribute, None)
        if original is None:
            return
        label = name or attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self.clock()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label, self.clock() - started)

        had = attribute in vars(owner) if hasattr(owner, "__dict__") else True
        setattr(owner, attribute, timed)
        if had:
            self._undo.append(lambda: setattr(owner, attribute, original))
        else:
            self._undo.append(lambda: delattr(owner, attribute))

    def wrap_iter(self, owner: Any, attribute: str, name: str | None = None) -> None:
        """Like `wrap`, for a function that returns an iterator (a generator): the time spent
        producing its items counts, not the caller's time between them."""
        original = getattr(owner, attribute, None)
        if original is None:
            return
        label = name or attribute

        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            spent = 0.0
            iterator = iter(original(*args, **kwargs))
            try:
                while True:
                    started = self.clock()
                    try:
                        item = next(iterator)
                    except StopIteration:
                        spent += self.clock() - started
                        return
                    spent += self.clock() - started
                    yield item
            finally:
                self.add(label, spent)

        had = attribute in vars(owner) if hasattr(owner, "__dict__") else True
        setattr(owner, attribute, timed)
        if had:
            self._undo.append(lambda: setattr(owner, attribute, original))
        else:
            self._undo.append(lambda: delattr(owner, attribute))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


# -- other processes ------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory now, MB."""
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory so far (VmHWM), MB."""
    return _status_kb(pid, "VmHWM") / 1024


def self_peak_rss_mb() -> float:
    return peak_rss_mb(os.getpid())


class NotifySocket:
    """A datagram socket standing in for systemd's `$NOTIFY_SOCKET`; records each message."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"notify-{uuid.uuid4().hex[:8]}.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def wait_for(self, prefix: str, timeout: float, alive: Callable[[], bool]) -> float:
        """The monotonic arrival time of the first message with a line starting `prefix`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, message in list(self.messages):
                if any(line.startswith(prefix) for line in message.splitlines()):
                    return at
            if not alive():
                raise RuntimeError(f"the process exited before sending {prefix!r}")
            time.sleep(0.01)
        raise TimeoutError(f"no {prefix!r} within {timeout:.0f} s")

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without TALLYFY_* / systemd variables, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TALLYFY_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class SandboxProcess:
    """`tallyfy-scheduler sandbox --port 0` in its own process; `stop()` always kills it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.out = open(workdir / "sandbox.stdout", "w+b")  # noqa: SIM115 - closed by stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "sandbox", "--port", "0"],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=workdir,
        )
        self.url = self._wait_for_url(15)
        self.base_url = self.url.removesuffix("/api")

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = (self.workdir / "sandbox.stdout").read_text(errors="replace")
            found = re.search(r"sandbox at (http://\S+)", text)
            if found:
                return found.group(1)
            if self.popen.poll() is not None:
                raise RuntimeError(f"the sandbox exited: {text[-2000:]}")
            time.sleep(0.02)
        self.stop()
        raise TimeoutError("the sandbox did not start")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def admin(self, method: str, name: str, body: Any = None) -> Any:
        response = requests.request(
            method, f"{self.base_url}/_sandbox/{name}", json=body, timeout=120
        )
        response.raise_for_status()
        return response.json()["data"]

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.admin("GET", "stats")
        return data

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self.out.close()


def daemon_python() -> str:
    """The interpreter that runs measured daemons: ours, or another checkout's venv
    (`$BENCH_DAEMON_PYTHON`), so two commits are measured by the same script, back to back."""
    return os.environ.get("BENCH_DAEMON_PYTHON") or sys.executable


class DaemonProcess:
    """`tallyfy-scheduler run` against `db_url` and `api_url`; `stop()` always ends it."""

    def __init__(
        self,
        workdir: Path,
        db_url: str,
        api_url: str,
        *,
        config: str = "",
        notify: NotifySocket | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.workdir = workdir
        config_path = workdir / "config.toml"
        config_path.write_text(config)
        extra = {
            "TALLYFY_ACCESS_TOKEN": TOKEN,
            "TALLYFY_ORGANIZATION_ID": ORG,
            "TALLYFY_BASE_URL": api_url,
        }
        if notify is not None:
            extra["NOTIFY_SOCKET"] = str(notify.path)
        if os.environ.get("BENCH_ALERT_URLS"):
            # Alerts on (docs/design.md, "Alerts": measured with and without).
            extra["TALLYFY_SCHEDULER_ALERT_URLS"] = os.environ["BENCH_ALERT_URLS"]
        self.log_path = workdir / "daemon.stderr"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [
                daemon_python(),
                "-m",
                "scheduler",
                "--db",
                db_url,
                "--config",
                str(config_path),
                "run",
                "--log-level",
                log_level,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=child_env(extra),
            cwd=workdir,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, grace: float = 20) -> int | None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self._log.close()


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"tallyfy-bench-{prefix}-") as path:
        yield Path(path)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy (returned); TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s")
        time.sleep(interval)


def pg_url() -> str | None:
    """The PostgreSQL server of the test suite, when TALLYFY_SCHEDULER_TEST_PG_URL is set."""
    return os.environ.get("TALLYFY_SCHEDULER_TEST_PG_URL") or None


@contextlib.contextmanager
def pg_schema(url: str) -> Iterator[dict[str, Any]]:
    """A fresh PostgreSQL schema, dropped afterwards; yields `make_engine` keyword arguments."""
    from sqlalchemy import create_engine

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        yield {"connect_args": {"options": f"-csearch_path={name}"}}
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        admin.dispose()


def fmt_seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.1f} ms"


def print_table(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
