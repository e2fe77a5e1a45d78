"""The access token never leaves the process except in the Authorization header (issue 3).

A representative flow runs with a recognisable token against a sandbox that accepts only that
token (so every success proves it was sent): apply, validate --online, a successful fire,
fires failing every way a fire can fail (422, 5xx before and after applying, a dropped
connection, 429, an unreachable API, 401), history, status, jobs list/show, preview, doctor,
and a short daemon run in a subprocess with DEBUG logging. The token must not appear in any
captured stdout, stderr or log record, any exception text or traceback, any history row or
`--json` document, nor in the bytes of the SQLite store (its -wal and -shm files included).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler.cli import App, cli
from scheduler.client import ApiRequest, TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import Secret
from scheduler.errors import ApiError
from scheduler.lifecycle import FireStatus
from scheduler.store import Store
from tallyfy_sandbox import FaultRule, SandboxServer

TOKEN = "tok-SECRET-5f3a9c"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
REPO = Path(__file__).resolve().parent.parent
REVIEW = "beeffbdddf558869a18556731b2da7c2"
CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"
REVIEW_DUE = "2024ec22c6346de494cc419191bb01aa"
WEEKLY = "weekly-client-review"


def only_our_token() -> dict[str, Any]:
    """The demo organization, accepting TOKEN and nothing else."""
    fixture = json.loads(files("tallyfy_sandbox").joinpath("demo_org.json").read_text())
    fixture = copy.deepcopy(fixture)
    fixture["tokens"] = [TOKEN]
    return dict(fixture)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(only_our_token()) as server:
        yield server


@pytest.fixture
def workdir(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TALLYFY_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("TALLYFY_ORGANIZATION_ID", sandbox.organization_id)
    monkeypatch.setenv("TALLYFY_BASE_URL", sandbox.url)
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{tmp_path / 'state' / 'x.db'}")
    Path("config.toml").write_text("[tallyfy]\nmax_requests_per_minute = 60000\n")
    return tmp_path


class Transcript:
    """Everything the flow produced that a person or a log shipper could see."""

    def __init__(self, *, frozen: bool = True) -> None:
        self.texts: list[tuple[str, str]] = []
        self.frozen = frozen  # commands see NOW; else the real clock (for a live daemon)

    def add(self, what: str, text: str) -> None:
        self.texts.append((what, text))

    def run(self, *args: str) -> tuple[int, str]:
        """Run one command in-process; keep its stdout, stderr and any exception."""
        app = App(clock=FakeClock(NOW)) if self.frozen else App()
        result = CliRunner().invoke(cli, list(args), obj=app)
        self.add(f"{args} stdout", result.stdout)
        self.add(f"{args} stderr", result.stderr)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            self.add(f"{args} exception", "".join(traceback.format_exception(result.exception)))
            raise result.exception
        return result.exit_code, result.stdout

    def leaks(self) -> list[str]:
        return [what for what, text in self.texts if TOKEN in text]


def store_bytes(folder: Path) -> dict[str, bytes]:
    """The SQLite database and its -wal / -shm files, as they are on disk now."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("x.db*"))}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_output_of_a_representative_flow_holds_the_token(
    workdir: Path,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    seen = Transcript()
    weekly = (EXAMPLES / f"{WEEKLY}.toml").read_text()
    kept = [line for line in weekly.splitlines() if not line.startswith(f'"{REVIEW_DUE}"')]
    no_due = "\n".join(kept)
    Path("jobs").mkdir()
    Path("jobs", f"{WEEKLY}.toml").write_text(weekly)
    Path("jobs", "no-due-date.toml").write_text(no_due)

    assert seen.run("init")[0] == 0
    assert seen.run("jobs", "validate", "--online", "jobs")[0] == 1  # no-due-date lacks a field
    assert seen.run("jobs", "apply", "jobs")[0] == 0
    assert seen.run("fire", WEEKLY, "--at", "2026-03-02T09:00:00Z")[0] == 0
    assert seen.run("fire", "no-due-date", "--at", "2026-03-02T09:00:00Z")[0] == 1  # 422

    faults: list[tuple[str, FaultRule | None]] = [
        ("2026-03-09T09:00:00Z", FaultRule("error_before", count=1, status=503)),
        ("2026-03-16T09:00:00Z", FaultRule("error_after", count=1, status=502)),
        ("2026-03-23T09:00:00Z", FaultRule("drop_after", count=1)),
        ("2026-03-30T09:00:00Z", FaultRule("rate_limit", count=1, retry_after=30)),
    ]
    for at, rule in faults:
        if rule is not None:
            sandbox.add_fault(rule)
        assert seen.run("fire", WEEKLY, "--at", at)[0] == 1
        sandbox.clear_faults()

    monkeypatch.setenv("TALLYFY_BASE_URL", f"http://127.0.0.1:{closed_port()}/api")
    assert seen.run("fire", WEEKLY, "--at", "2026-04-06T09:00:00Z")[0] == 1  # not sent
    assert seen.run("doctor")[0] == 1
    monkeypatch.setenv("TALLYFY_BASE_URL", sandbox.url)

    sandbox.expire_token(TOKEN)
    assert seen.run("fire", WEEKLY, "--at", "2026-04-13T09:00:00Z")[0] == 1  # 401
    assert seen.run("doctor")[0] == 1
    assert seen.run("jobs", "validate", "--online", "jobs")[0] == 1
    sandbox.add_token(TOKEN)

    for args in (
        ("history", "--json"),
        ("history",),
        ("status", "--json"),
        ("status",),
        ("jobs", "list", "--json"),
        ("jobs", "show", WEEKLY, "--json"),
        ("preview", WEEKLY, "--json"),
        ("doctor",),
    ):
        seen.run(*args)

    for record in caplog.records:
        seen.add(f"log {record.name}", record.getMessage())
        if record.exc_info:
            seen.add(
                f"log {record.name} exc", "".join(traceback.format_exception(*record.exc_info))
            )

    # The flow did what it claims: the API accepted the token and every kind of outcome happened.
    fires = json.loads(seen.run("history", "--json")[1])["fires"]
    outcomes = {(f["status"], f["http_status"]) for f in fires}
    assert {
        ("succeeded", 201),
        ("failed", 422),
        ("uncertain", 503),
        ("uncertain", 502),
        ("retrying", 429),
        ("retrying", None),
        ("retrying", 401),  # a refused token holds the fire: it waits for a renewed one
    } <= outcomes, outcomes
    assert any("Unauthenticated" in (f["error"] or "") for f in fires)

    assert seen.leaks() == []
    store = Store.open(f"sqlite:///{workdir / 'state' / 'x.db'}")
    try:
        rows = store.history(None, limit=None)
        assert {str(r.status) for r in rows} >= {FireStatus.SUCCEEDED, FireStatus.FAILED}
        for row in rows:
            assert TOKEN not in repr(row)
        for stored in store.list_jobs():
            assert TOKEN not in json.dumps(stored.definition)
    finally:
        store.close()
    for name, data in store_bytes(workdir / "state").items():
        assert TOKEN.encode() not in data, name


def test_api_errors_and_their_tracebacks_never_hold_the_token(sandbox: SandboxServer) -> None:
    request = ApiRequest("POST", f"/organizations/{sandbox.organization_id}/runs", {})
    errors: list[ApiError] = []
    sandbox.expire_token(TOKEN)
    # A refused token, and a token that cannot even be put in a header (requests quotes the
    # header value in its InvalidHeader message).
    for token in (TOKEN, f"{TOKEN}\nX-Injected: 1"):
        with TallyfyClient(sandbox.url, sandbox.organization_id, Secret(token)) as client:
            with pytest.raises(ApiError) as caught:
                client.send(request)
            errors.append(caught.value)
    assert [type(e).__name__ for e in errors] == ["AuthenticationFailed", "PermanentApiError"]
    for error in errors:
        for text in (
            str(error),
            repr(error),
            error.raw_body or "",
            "".join(traceback.format_exception(error)),
        ):
            assert TOKEN not in text


# -- the daemon, in a subprocess, logging at DEBUG -------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def daemon_log(workdir: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `tallyfy-scheduler run --log-level DEBUG`; always killed and reaped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(REPO)
        with open(workdir / "daemon.out", "wb") as out, open(workdir / "daemon.err", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "run", "--log-level", "DEBUG"],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=err,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.mark.slow
def test_a_daemon_logging_at_debug_never_writes_the_token(
    workdir: Path,
    sandbox: SandboxServer,
    daemon_log: Callable[[], subprocess.Popen[bytes]],
) -> None:
    job = (
        'schedule = "*/2 * * * * *"\ntimezone = "UTC"\ncatch_up = "none"\n\n[action]\n'
        f'type = "launch_process"\nchecklist_id = "{REVIEW}"\n'
        'name = "Secrets {fire_utc:%H:%M:%S}"\n\n[action.prerun]\n'
        f'"{CLIENT_NAME}" = "Acme"\n"{REVIEW_DUE}" = {{ at = "+1d" }}\n'
    )
    Path("every-2s.toml").write_text(job)
    seen = Transcript(frozen=False)
    assert seen.run("init")[0] == 0
    assert seen.run("jobs", "apply", "every-2s.toml")[0] == 0
    # The first launch answers 502 after it was applied (uncertain: read back), the next one
    # is refused with 429 (retried after 1 s).
    sandbox.add_fault(FaultRule("error_after", count=1, status=502))
    sandbox.add_fault(FaultRule("rate_limit", count=1, retry_after=1))

    process = daemon_log()
    wait_until(lambda: len(sandbox.runs()) >= 2, 15, "two launches")
    wal_while_running = store_bytes(workdir / "state")
    sandbox.expire_token(TOKEN)  # from now on every fire is refused with 401
    log = workdir / "daemon.err"
    wait_until(lambda: "credentials rejected" in log.read_text(), 10, "a 401 in the log")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0

    text = log.read_text() + (workdir / "daemon.out").read_text()
    assert " DEBUG " in text and "fire succeeded" in text and "HTTP 401" in text
    assert TOKEN not in text
    for name, data in {**wal_while_running, **store_bytes(workdir / "state")}.items():
        assert TOKEN.encode() not in data, name
    assert seen.leaks() == []
