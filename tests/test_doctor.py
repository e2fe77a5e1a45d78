"""`tallyfy-scheduler doctor`: one line per check, each problem with its fix, exit 1 if any.

Every test starts from a good setup (a sandbox, the environment variables, an initialized
SQLite store holding the example jobs) and breaks one piece of it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from scheduler.config import Settings, StoreSettings
from scheduler.definitions import load_job_files
from scheduler.store import SCHEMA_VERSION, JobDocument, Store
from tallyfy_sandbox import SandboxServer, jwt_token

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"
CHECKS = ["config", "token", "organization", "store", "jobs", "api", "templates", "alerts"]
ALERT_URL = "json://127.0.0.1:9/alerts-of-the-doctor-tests"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def statuses(self) -> dict[str, str]:
        """Check name -> ok | FAIL | skip, from the stdout lines."""
        out = {}
        for line in self.stdout.splitlines():
            if line.startswith(" "):
                continue  # a detail under a check (where each setting came from)
            status, _, rest = line.partition("  ")
            if rest and ":" in rest:
                out[rest.split(":")[0].strip()] = status.strip()
        return out

    def line(self, name: str) -> str:
        return next(line for line in self.stdout.splitlines() if line.split()[1:2] == [f"{name}:"])


@pytest.fixture
def setup(sandbox_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A good setup in the working directory: env vars, an initialized store, the examples."""
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("TALLYFY_SCHEDULER_ALERT_URLS", ALERT_URL)
    invoke("init")
    invoke("jobs", "apply", str(EXAMPLES))
    return tmp_path


def invoke(*args: str) -> Outcome:
    result = CliRunner().invoke(cli, list(args), obj=App(clock=FakeClock(NOW)))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug, never an answer
    return Outcome(result.exit_code, result.stdout, result.stderr)


def doctor() -> Outcome:
    return invoke("doctor")


def store_job(folder: Path, definition: dict[str, Any]) -> None:
    """Write a job straight into the store, as an older version or a hand edit might have."""
    store = Store.open(f"sqlite:///{folder / 'state.db'}")
    try:
        doc = JobDocument(definition["id"], definition, schedule_key="0" * 32)
        store.apply([doc], prune=False, now=NOW)
    finally:
        store.close()


def weekly_definition() -> dict[str, Any]:
    settings = Settings(store=StoreSettings(url="sqlite://"))
    [job] = load_job_files([EXAMPLES / "weekly-client-review.toml"], settings, NOW)
    return job.to_document()


def test_a_good_setup_passes_every_check(setup: Path, sandbox: SandboxServer) -> None:
    outcome = doctor()
    assert (outcome.code, outcome.stderr) == (0, "")
    assert outcome.statuses == dict.fromkeys(CHECKS, "ok")
    checks = [line for line in outcome.stdout.splitlines() if not line.startswith(" ")]
    assert checks[1:] == [
        "ok    token: set (TALLYFY_ACCESS_TOKEN in the environment)",
        "ok    organization: demo-org",
        f"ok    store: sqlite:///{setup / 'state.db'} (schema version {SCHEMA_VERSION})",
        "ok    jobs: 2 stored, all valid",
        f"ok    api: {sandbox.url} answers; token of Olive Ops <ops@demo.example> (user 1001)",
        "ok    templates: 2 job(s) checked against 1 template(s): all match",
        "ok    alerts: on: default (1 URL(s): JSON) (`tallyfy-scheduler alerts test` sends a "
        "test message)",
        "doctor: everything looks right",
    ]
    assert ALERT_URL not in outcome.stdout  # where it came from, never what


def test_without_an_alert_target_it_says_alerts_are_off(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TALLYFY_SCHEDULER_ALERT_URLS")
    outcome = doctor()
    assert outcome.code == 0  # a warning, not a problem
    assert outcome.line("alerts") == (
        "warn  alerts: off: no target has a URL; nobody hears of a failed fire"
    )
    assert "TALLYFY_SCHEDULER_ALERT_URLS" in outcome.stderr


def test_it_says_when_the_token_expires_and_warns_when_it_is_near(
    setup: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox refuses a token past its expiry by the real clock; doctor judges by its own
    # (NOW): the far one is valid for both, the near one only expires soon for doctor.
    far_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1000)
    near, far = jwt_token(NOW + timedelta(days=3)), jwt_token(far_at)
    for token in (near, far):
        sandbox.add_token(token)
    monkeypatch.setenv("TALLYFY_ACCESS_TOKEN", far)
    outcome = doctor()
    assert outcome.code == 0, outcome.stderr
    assert outcome.line("token").endswith(f"; expires {far_at:%Y-%m-%dT%H:%M:%SZ})")
    monkeypatch.setenv("TALLYFY_ACCESS_TOKEN", near)
    outcome = doctor()
    assert outcome.line("token").startswith("warn  token: expires soon")
    assert "the access token expires in 3 day(s)" in outcome.stderr
    assert near not in outcome.stdout + outcome.stderr
    assert outcome.line("config").startswith("ok    config: no config file")


def test_it_says_which_file_the_config_and_the_token_came_from(
    setup: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TALLYFY_ACCESS_TOKEN")
    (setup / ".env").write_text(f"TALLYFY_ACCESS_TOKEN={sandbox.token}\n")
    (setup / ".env").chmod(0o600)
    (setup / "config.toml").write_text("[scheduler]\ntimezone = 'Europe/London'\n")
    outcome = doctor()
    assert outcome.code == 0, outcome.stderr
    assert outcome.line("config") == f"ok    config: {setup / 'config.toml'} (valid)"
    assert outcome.line("token") == f"ok    token: set (TALLYFY_ACCESS_TOKEN in {setup / '.env'})"
    assert sandbox.token not in outcome.stdout + outcome.stderr


def test_it_says_where_each_setting_came_from_under_the_config_check(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (setup / "config.toml").write_text("[scheduler]\ntimezone = 'Europe/London'\n")
    outcome = doctor()
    lines = outcome.stdout.splitlines()
    assert lines[0] == f"ok    config: {setup / 'config.toml'} (valid)"
    assert lines[1] == "      where each setting came from:"
    assert lines[2:5] == [
        "        tallyfy.base_url: TALLYFY_BASE_URL in the environment",
        "        tallyfy.organization_id: TALLYFY_ORGANIZATION_ID in the environment",
        "        tallyfy.access_token: TALLYFY_ACCESS_TOKEN in the environment",
    ]
    assert "        store.url: TALLYFY_SCHEDULER_DB in the environment" in lines
    assert "        scheduler.timezone: the config file" in lines
    assert "        retry.max_attempts: default" in lines


def test_a_dotenv_holding_the_token_that_others_can_read_gets_a_warning(
    setup: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TALLYFY_ACCESS_TOKEN")
    dotenv = setup / ".env"
    dotenv.write_text(f"TALLYFY_ACCESS_TOKEN={sandbox.token}\n")
    dotenv.chmod(0o644)
    outcome = doctor()
    assert outcome.code == 0, outcome.stderr
    assert outcome.line("token") == f"warn  token: set (TALLYFY_ACCESS_TOKEN in {dotenv})"
    assert outcome.stderr == (
        f"  token: warning: the .env file {dotenv}, which holds the token, is readable by its "
        f"group and others (mode 0644): run `chmod 600 {dotenv}` so that only its owner can "
        "read it\n"
    )
    assert outcome.statuses["api"] == "ok"
    assert sandbox.token not in outcome.stdout + outcome.stderr


def test_a_token_file_is_named_not_shown(
    setup: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TALLYFY_ACCESS_TOKEN")
    (setup / "token").write_text(sandbox.token + "\n")
    (setup / "token").chmod(0o600)
    monkeypatch.setenv("TALLYFY_ACCESS_TOKEN_FILE", str(setup / "token"))
    outcome = doctor()
    assert outcome.code == 0, outcome.stderr
    assert outcome.line("token") == (
        f"ok    token: set (TALLYFY_ACCESS_TOKEN_FILE ({setup / 'token'}))"
    )


def test_no_token(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALLYFY_ACCESS_TOKEN")
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.statuses == {
        **dict.fromkeys(CHECKS, "ok"),
        "token": "FAIL",
        "api": "skip",
        "templates": "skip",
        "alerts": "ok",
    }
    assert outcome.stderr.splitlines() == [
        "  token: no access token: set TALLYFY_ACCESS_TOKEN (environment or .env), "
        "TALLYFY_ACCESS_TOKEN_FILE, or the systemd credential 'tallyfy-token'",
        "doctor: 1 problem(s) found",
    ]
    assert outcome.line("api") == "skip  api: needs a token"


def test_an_expired_token(setup: Path, sandbox: SandboxServer) -> None:
    sandbox.expire_token(sandbox.token)
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.statuses["api"] == "FAIL"
    assert outcome.statuses["templates"] == "skip"
    assert outcome.stderr.splitlines() == [
        "  api: the API refused the token (HTTP 401: GET /me: Unauthenticated.): it is expired, "
        "revoked or wrong: create a new personal access token in Tallyfy (Settings > "
        "Integrations > REST API) and put it in TALLYFY_ACCESS_TOKEN (environment or .env), "
        "TALLYFY_ACCESS_TOKEN_FILE, or the systemd credential 'tallyfy-token'",
        "doctor: 1 problem(s) found",
    ]


def test_a_wrong_organization(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLYFY_ORGANIZATION_ID", "other-org")
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.statuses["api"] == "FAIL"
    assert outcome.statuses["templates"] == "skip"
    assert outcome.stderr.splitlines()[0] == (
        "  api: organization 'other-org' is not one of the token's organizations "
        "(demo-org ('Demo Organization')): set [tallyfy] organization_id in the config file or "
        "TALLYFY_ORGANIZATION_ID"
    )


def test_no_organization(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALLYFY_ORGANIZATION_ID")
    outcome = doctor()
    assert outcome.code == 1
    # The token can still be checked: GET /me needs no organization.
    assert outcome.statuses["api"] == "ok"
    assert outcome.line("templates") == "skip  templates: needs an organization"
    assert outcome.stderr.splitlines()[0] == (
        "  organization: not set: set [tallyfy] organization_id in the config file or "
        "TALLYFY_ORGANIZATION_ID"
    )


def test_a_store_that_was_never_initialized(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{setup / 'fresh.db'}")
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.statuses["store"] == "FAIL"
    assert outcome.line("jobs") == "skip  jobs: needs the store"
    assert outcome.line("templates") == "skip  templates: needs the store"
    # doctor never makes a store: it says there is none (only `init` creates one).
    assert outcome.stderr.splitlines()[0] == (
        f"  store: no store at {setup / 'fresh.db'}: run `tallyfy-scheduler init` to create it"
    )
    assert not (setup / "fresh.db").exists()


def test_an_api_that_is_down(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("TALLYFY_BASE_URL", f"http://127.0.0.1:{port}/api")
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.statuses["api"] == "FAIL"
    assert outcome.statuses["templates"] == "skip"
    first = outcome.stderr.splitlines()[0]
    assert first.startswith("  api: cannot connect (GET /me: could not connect: ")
    assert first.endswith(
        "): check [tallyfy] base_url or TALLYFY_BASE_URL, and that this machine can reach it"
    )


def test_plain_http_to_another_machine_when_allowed_is_a_warning_not_a_problem(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("config.toml").write_text("[tallyfy]\nallow_insecure_http = true\n")
    monkeypatch.setenv("TALLYFY_BASE_URL", "http://tallyfy.invalid/api")
    with socket.socket() as sock:  # every request goes to a closed local port, never out
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    outcome = doctor()

    assert outcome.statuses["config"] == "warn"
    assert outcome.line("config") == f"warn  config: {setup / 'config.toml'} (valid)"
    assert (
        "  config: [tallyfy] base_url 'http://tallyfy.invalid/api' is plain http:// to a host "
        "other than this machine: the access token travels unencrypted (allowed by "
        "allow_insecure_http = true); use https://"
    ) in outcome.stderr.splitlines()
    assert outcome.statuses["api"] == "FAIL"  # the proxy's port is closed
    assert outcome.stderr.splitlines()[-1] == "doctor: 1 problem(s) found"  # the warning is not one


def test_a_base_url_without_the_api_prefix(
    setup: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLYFY_BASE_URL", sandbox.base_url)
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.stderr.splitlines()[0] == (
        "  api: GET /me failed (HTTP 404: GET /me: API endpoint not found (ENDPOINT_NOT_FOUND)): "
        "check [tallyfy] base_url (it ends in /api, e.g. https://go.tallyfy.com/api); if it is "
        "right, try again later"
    )


def test_a_stored_job_with_an_alias_key(setup: Path) -> None:
    definition = weekly_definition()
    prerun = definition["action"]["prerun"]
    prerun["client_name"] = prerun.pop(CLIENT_NAME)
    store_job(setup, definition)
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.statuses["jobs"] == "FAIL"
    assert outcome.statuses["templates"] == "FAIL"
    assert outcome.line("jobs") == (
        "FAIL  jobs: 1 of 2 stored job(s) cannot be loaded and never fire: fix their files, "
        "then `tallyfy-scheduler jobs apply PATH`"
    )
    assert outcome.stderr.splitlines() == [
        "  jobs: <stored job weekly-client-review>: action.prerun.client_name = "
        "'Acme Corporation': kick-off values are keyed by the field's 32-character hex id "
        "(not its alias or label)",
        "  templates: <stored job weekly-client-review>: action.prerun.client_name = "
        "'Acme Corporation': prerun key 'client_name' is the alias of kick-off field "
        f"'Client name': use its id {CLIENT_NAME}",
        "doctor: 2 problem(s) found",
    ]


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        (
            "Mars/Olympus_Mons",
            "this machine does not know the zone: install or update tzdata (`pip install -U "
            "tzdata`) or change the job's timezone",
        ),
        # Refused since issue 11 (an older version may have stored it): the rule's own reason.
        (
            "localtime",
            "not a zone to schedule in: 'localtime' follows the host's zone setting, which can "
            "change under the job (use an IANA name such as 'Europe/London')",
        ),
    ],
    ids=["unknown-here", "follows-the-host"],
)
def test_a_stored_job_in_a_zone_it_cannot_fire_in(setup: Path, zone: str, message: str) -> None:
    definition = weekly_definition()
    definition["timezone"] = zone
    store_job(setup, definition)
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.stderr.splitlines() == [
        f"  jobs: <stored job weekly-client-review>: timezone = {zone!r}: {message}",
        "doctor: 1 problem(s) found",
    ]
    assert outcome.statuses["templates"] == "ok"  # the action itself still fits its template


def test_a_stored_job_whose_template_was_deleted(setup: Path) -> None:
    definition = weekly_definition()
    definition["action"]["checklist_id"] = "0123456789abcdef0123456789abcdef"
    store_job(setup, definition)
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.stderr.splitlines() == [
        "  templates: <stored job weekly-client-review>: action.checklist_id = "
        "'0123456789abcdef0123456789abcdef': template 0123456789abcdef0123456789abcdef not "
        "found (deleted or archived?)",
        "doctor: 1 problem(s) found",
    ]


def test_a_broken_config_skips_everything_else(setup: Path) -> None:
    (setup / "config.toml").write_text("[scheduler]\nmax_concurrent_fires = 0\n")
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.statuses == {"config": "FAIL", **dict.fromkeys(CHECKS[1:], "skip")}
    assert outcome.stderr.splitlines()[0] == (
        f"  config: {setup / 'config.toml'}: scheduler.max_concurrent_fires = 0: must be a whole "
        "number greater than 0 (fix the config file or the environment)"
    )
