"""Operator mistakes (issue 11, items 6, 10, 11 and 13), each against real local servers.

- item 6: a `.env` in the working directory must not redirect an explicit `--config`: a
  hostile HTTP server on 127.0.0.1 stands in for "evil" and must receive nothing, while the
  sandbox named by the config file answers; `doctor` says where each setting came from and
  never prints a secret's value;
- item 10: a store URL whose port is not a number is refused with one clear line (no
  traceback, no password), by the CLI, `doctor` and the daemon;
- item 11: zone names that are not zones of a place (`localtime`, `Factory`, `posixrules`,
  `right/...`, `posix/...`) are refused in job files, in `[scheduler] timezone` and by
  `next --tz`, and nothing is stored;
- item 13: a token file readable by its group or others gets a warning from `doctor` (exit 0)
  and from the daemon as it starts, naming the file and the fix, never the token.

Every case checks the exit code, the exact message, that no traceback was printed, and that
the token appears in no output; those that touch the store check it is unchanged, or holds
the one history row the fire made.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from tallyfy_sandbox import SandboxServer

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WEEKLY = "weekly-client-review"
TRACEBACK = re.compile(r"Traceback|^\s+File \"", re.M)
STORE_PASSWORD = "pw-4e1c9"


def invoke(config: Path | None, *args: str, env: Mapping[str, str] | None = None) -> Result:
    """`tallyfy-scheduler [--config C] ARGS` in-process, at NOW; a crash is re-raised."""
    argv = ["--config", str(config)] if config else []
    result = CliRunner().invoke(cli, [*argv, *args], obj=App(clock=FakeClock(NOW)), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a crash, never an answer
    assert not TRACEBACK.search(result.output), result.output
    return result


@pytest.fixture(autouse=True)
def alerts_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alerts have a target, so `doctor` has no "alerts off" warning to add to these answers.

    Nothing listens on port 9 and `doctor` sends nothing: it only names where the URLs came from.
    """
    monkeypatch.setenv("TALLYFY_SCHEDULER_ALERT_URLS", "json://127.0.0.1:9/alerts")


def dump(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        return "\n".join(conn.iterdump())


def details(result: Result) -> list[str]:
    """`doctor`'s indented lines under the config check: where each setting came from."""
    return [line.strip() for line in result.stdout.splitlines() if line.startswith("      ")]


# -- item 6: a hostile .env in the working directory ---------------------------------------------


class HostileServer:
    """An HTTP server on 127.0.0.1 that answers like Tallyfy and records every request.

    It stands in for `http://evil/api`: whatever reaches it is a leak.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bool]] = []  # method, path, bearer token sent
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, data: object) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                auth = self.headers.get("Authorization") or ""
                requests.append((self.command, self.path, auth.lower().startswith("bearer ")))
                body = json.dumps({"data": data}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(200, {"id": 666, "first_name": "Eve", "email": "eve@evil.example"})

            def do_POST(self) -> None:
                self._answer(201, {"id": "evil-run-1"})

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads `requests`

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def evil() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture
def good_config(tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`etc/good.toml` pointing at the sandbox, its store initialized with the examples; the
    token in the environment; the working directory `work/`, elsewhere, holding nothing yet."""
    etc = tmp_path / "etc"
    etc.mkdir()
    good = etc / "good.toml"
    good.write_text(
        f'[tallyfy]\nbase_url = "{sandbox.url}"\norganization_id = "{sandbox.organization_id}"\n'
        f'max_requests_per_minute = 6000\n[store]\nurl = "sqlite:///{tmp_path / "x.db"}"\n',
        encoding="utf-8",
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TALLYFY_ACCESS_TOKEN", sandbox.token)
    assert invoke(good, "init").exit_code == 0
    assert invoke(good, "jobs", "apply", str(EXAMPLES)).exit_code == 0
    return good


def test_a_dotenv_in_the_working_directory_cannot_redirect_an_explicit_config(
    good_config: Path, tmp_path: Path, sandbox: SandboxServer, evil: HostileServer
) -> None:
    (tmp_path / "work" / ".env").write_text(f"TALLYFY_BASE_URL={evil.url}\n", encoding="utf-8")

    doctor = invoke(good_config, "doctor")
    fire = invoke(good_config, "fire", WEEKLY, "--at", "2026-03-02T09:00:00Z")

    assert evil.requests == [], f"reached evil: {evil.requests}"
    assert (doctor.exit_code, doctor.stderr) == (0, "")
    assert f"ok    api: {sandbox.url} answers; token of Olive Ops" in doctor.stdout
    assert "tallyfy.base_url: the config file" in details(doctor)
    assert fire.exit_code == 0, fire.output
    [run] = sandbox.runs()
    assert fire.stdout == (
        f"{WEEKLY} 2026-03-02T09:00:00+00:00: succeeded, remote id {run['id']}\n"
    )
    history = json.loads(invoke(good_config, "history", "--json").stdout)["fires"]
    assert [(f["status"], f["remote_id"]) for f in history] == [("succeeded", run["id"])]
    for result in (doctor, fire):
        assert sandbox.token not in result.output


def test_doctor_says_where_each_setting_came_from_and_never_a_secret(
    good_config: Path, tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The .env beside the config file is read (and wins over the file); the one in the
    # working directory is not.
    beside = tmp_path / "etc" / ".env"
    beside.write_text(
        f"TALLYFY_ACCESS_TOKEN={sandbox.token}\n"
        f"TALLYFY_SCHEDULER_DB=postgresql://u:{STORE_PASSWORD}@127.0.0.1:1/db\n",
        encoding="utf-8",
    )
    (tmp_path / "work" / ".env").write_text("TALLYFY_ORGANIZATION_ID=from-cwd\n")
    monkeypatch.delenv("TALLYFY_ACCESS_TOKEN")
    monkeypatch.setenv("TALLYFY_ORGANIZATION_ID", sandbox.organization_id)

    result = invoke(good_config, "doctor")

    assert result.exit_code == 1  # the PostgreSQL store named in .env is not running
    assert details(result) == [
        "where each setting came from:",
        "tallyfy.base_url: the config file",
        "tallyfy.organization_id: TALLYFY_ORGANIZATION_ID in the environment",
        f"tallyfy.access_token: TALLYFY_ACCESS_TOKEN in {beside}",
        "tallyfy.timeout: default",
        "tallyfy.connect_timeout: default",
        "tallyfy.request_deadline: default",
        "tallyfy.max_response_bytes: default",
        "tallyfy.max_requests_per_minute: the config file",
        "tallyfy.allow_insecure_http: default",
        f"store.url: TALLYFY_SCHEDULER_DB in {beside}",
        "store.history_retention: default",
        "scheduler.timezone: default",
        "scheduler.catch_up: default",
        "scheduler.catch_up_window: default",
        "scheduler.max_concurrent_fires: default",
        "scheduler.shutdown_grace: default",
        "scheduler.reload_interval: default",
        "scheduler.heartbeat_interval: default",
        "scheduler.dead_after: default",
        "scheduler.log_level: default",
        "scheduler.pause_after_failures: default",
        "retry.max_attempts: default",
        "retry.initial_backoff: default",
        "retry.max_backoff: default",
        "calendar.weekend: default",
        "calendar.holidays_country: default",
        "calendar.holidays: default",
        "http.listen: default",
        "http.allow_remote: default",
        "http.max_job_series: default",
        "http.tallyfy_web_url: default",
        "alerts.late_after: default",
        "alerts.uncertain_after: default",
        "alerts.store_down_after: default",
        "alerts.heartbeat_every: default",
        "alerts.template_check_every: default",
        "alerts.token_expiry_warning: default",
        "alerts.targets: default",
        "alerts.heartbeat_url: default",
        "alerts.urls.default: TALLYFY_SCHEDULER_ALERT_URLS in the environment",
        "alerts.heartbeat: not set",
        "where each target's URLs come from:",
        "default: TALLYFY_SCHEDULER_ALERT_URLS in the environment",
        "heartbeat URL: not set",
    ]
    assert "ok    organization: demo-org" in result.stdout  # not the working directory's
    assert STORE_PASSWORD not in result.output
    assert sandbox.token not in result.output


# -- item 10: a store URL whose port is not a number ---------------------------------------------

BAD_PORT_URLS = [
    pytest.param(f"postgresql://u:{STORE_PASSWORD}@127.0.0.1:notaport/db", id="port-not-a-number"),
    # An '@' or ':' left unescaped in the password shifts the rest into the "port".
    pytest.param(f"postgresql://u:p@ss:{STORE_PASSWORD}@127.0.0.1:5432/db", id="unescaped-@"),
]
BAD_PORT_LINE = (
    "store.url: not a database URL: the port is not a number (a password holding '@', ':' or "
    "'/' must be percent-encoded, e.g. '@' as %40)"
)


@pytest.mark.parametrize("url", BAD_PORT_URLS)
@pytest.mark.parametrize("args", [("init",), ("jobs", "list"), ("history",)])
def test_a_store_url_with_a_bad_port_is_one_line_without_the_password(
    url: str, args: tuple[str, ...]
) -> None:
    result = invoke(None, "--db", url, *args)

    assert (result.exit_code, result.stderr) == (1, BAD_PORT_LINE + "\n")
    assert STORE_PASSWORD not in result.output


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_doctor_reports_a_store_url_with_a_bad_port(url: str, sandbox_env: Path) -> None:
    result = invoke(None, "--db", url, "doctor")

    assert result.exit_code == 1
    assert "FAIL  store: bad URL" in result.stdout
    assert f"  store: {BAD_PORT_LINE}: fix [store] url or TALLYFY_SCHEDULER_DB" in result.stderr
    assert STORE_PASSWORD not in result.output


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_the_daemon_refuses_a_store_url_with_a_bad_port(url: str, sandbox: SandboxServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFY_")}
    env.update(
        TALLYFY_ACCESS_TOKEN=sandbox.token,
        TALLYFY_ORGANIZATION_ID=sandbox.organization_id,
        TALLYFY_BASE_URL=sandbox.url,
        TALLYFY_SCHEDULER_DB=url,
        PYTHONPATH=str(REPO),
    )
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert not TRACEBACK.search(result.stderr), result.stderr
    assert (result.returncode, result.stderr) == (1, BAD_PORT_LINE + "\n")
    assert STORE_PASSWORD not in result.stdout + result.stderr


# -- item 11: zone names that are not zones of a place -------------------------------------------

USE_IANA = "(use an IANA name such as 'Europe/London')"
NOT_A_PLACE = {
    "localtime": "'localtime' follows the host's zone setting, which can change under the job",
    "Factory": "'Factory' is a placeholder of the tz database, not the zone of a place",
    "posixrules": "'posixrules' is a template file of the tz database, not a zone",
    "right/UTC": "'right/' zones count leap seconds, which schedules and Tallyfy do not",
    "posix/Europe/London": "'posix/' zones are copies: write the name without 'posix/'",
}
ZONES = [pytest.param(name, id=name) for name in NOT_A_PLACE]


def zone_message(name: str) -> str:
    return f"{name!r}: not a zone to schedule in: {NOT_A_PLACE[name]} {USE_IANA}"


@pytest.mark.parametrize("zone", ZONES)
def test_a_job_file_in_a_zone_of_no_place_is_refused_and_nothing_is_stored(
    good_config: Path, tmp_path: Path, zone: str
) -> None:
    before = dump(tmp_path / "x.db")
    text = (EXAMPLES / f"{WEEKLY}.toml").read_text().replace('"Europe/London"', f'"{zone}"')
    job = tmp_path / "jobs" / f"{WEEKLY}.toml"
    job.parent.mkdir()
    job.write_text(text, encoding="utf-8")
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if x.startswith("timez")))

    for args in (("jobs", "validate", str(job)), ("jobs", "apply", str(job))):
        result = invoke(good_config, *args)
        assert (result.exit_code, result.stderr) == (
            1,
            f"{job}:{line}: timezone = {zone_message(zone)}\n",
        ), args
    assert dump(tmp_path / "x.db") == before


@pytest.mark.parametrize("zone", ZONES)
def test_a_config_in_a_zone_of_no_place_is_refused(tmp_path: Path, zone: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[scheduler]\ntimezone = "{zone}"\n', encoding="utf-8")

    result = invoke(config, "jobs", "validate", str(EXAMPLES))

    assert (result.exit_code, result.stderr) == (
        1,
        f"{config}: scheduler.timezone = {zone_message(zone)}\n",
    )


@pytest.mark.parametrize("zone", ZONES)
def test_next_with_a_zone_of_no_place_is_refused(zone: str) -> None:
    result = invoke(None, "next", "--cron", "0 9 * * *", "--tz", zone)

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"--tz = {zone_message(zone)}\n",
    )


# -- item 13: a token file others can read -------------------------------------------------------


def token_file_warning(path: Path, who: str, mode: int) -> str:
    return (
        f"the token file {path} is readable by {who} (mode {mode:04o}): run "
        f"`chmod 600 {path}` so that only its owner can read it"
    )


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o640, "its group"), (0o604, "others"), (0o644, "its group and others"), (0o600, None)],
    ids=["group", "others", "both", "owner-only"],
)
@pytest.mark.parametrize("how", ["TALLYFY_ACCESS_TOKEN_FILE", "systemd-credential"])
def test_doctor_warns_of_a_token_file_others_can_read(
    good_config: Path,
    tmp_path: Path,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    mode: int,
    who: str | None,
    how: str,
) -> None:
    monkeypatch.delenv("TALLYFY_ACCESS_TOKEN")
    if how == "TALLYFY_ACCESS_TOKEN_FILE":
        path = tmp_path / "token"
        monkeypatch.setenv("TALLYFY_ACCESS_TOKEN_FILE", str(path))
        source = f"TALLYFY_ACCESS_TOKEN_FILE ({path})"
    else:
        (tmp_path / "credentials").mkdir()
        path = tmp_path / "credentials" / "tallyfy-token"
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(path.parent))
        source = f"systemd credential 'tallyfy-token' ({path})"
    path.write_text(sandbox.token + "\n", encoding="utf-8")
    path.chmod(mode)

    result = invoke(good_config, "doctor")

    assert result.exit_code == 0, result.output
    assert "ok    api: " in result.stdout  # the token still works: a warning, not a refusal
    if who is None:
        assert f"ok    token: set ({source})" in result.stdout.splitlines()
        assert result.stderr == ""
        assert result.stdout.endswith("doctor: everything looks right\n")
    else:
        assert f"warn  token: set ({source})" in result.stdout.splitlines()
        assert result.stderr == f"  token: warning: {token_file_warning(path, who, mode)}\n"
        assert result.stdout.endswith("doctor: no problems; 1 warning(s)\n")
    assert sandbox.token not in result.output


def test_the_daemon_warns_of_a_token_file_others_can_read_as_it_starts(
    good_config: Path, tmp_path: Path, sandbox: SandboxServer
) -> None:
    token = tmp_path / "token"
    token.write_text(sandbox.token + "\n", encoding="utf-8")
    token.chmod(0o640)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFY_")}
    env.update(TALLYFY_ACCESS_TOKEN_FILE=str(token), PYTHONPATH=str(REPO))
    log = tmp_path / "daemon.err"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "--config", str(good_config), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while "daemon started" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    lines = log.read_text().splitlines()
    started = next(i for i, line in enumerate(lines) if " daemon started " in line)
    expected = " WARNING scheduler.cli " + token_file_warning(token, "its group", 0o640)
    warned = [i for i, line in enumerate(lines) if line.endswith(expected)]
    assert warned and warned[0] < started, lines
    assert not TRACEBACK.search(log.read_text())
    assert sandbox.token not in log.read_text()
