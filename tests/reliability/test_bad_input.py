"""Bad input beyond job files: config files, a missing token, a read-only or too-new store.

Every case must end the way cli.md says: exit 1, one line per problem on stderr naming the
file (or the environment variable, or the store) and the key and value at fault, never a
traceback; and nothing in the store may change.

- config files with a wrong type for every key, unknown keys, an unknown zone, a token in the
  TOML (refused without ever being echoed), and config files that cannot be read at all;
- no token: `fire`, `run` and `doctor` fail naming TALLYFY_ACCESS_TOKEN;
- a read-only store (a read-only bind mount when running as root, which chmod cannot stop;
  chmod of the file and its folder otherwise): `jobs apply` and `run` fail saying so;
- a store from a newer version (meta schema_version = 99): every command that uses the store
  refuses, `init` included, and the store is left exactly as it was.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from scheduler.store.schema import SCHEMA_VERSION

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WEEKLY = "weekly-client-review"
LEAKY_TOKEN = "tok-CONFIG-LEAK-3b9e07"
TRACEBACK = re.compile(r"Traceback|^\s+File \"", re.M)


def invoke(
    config: Path | None, db_url: str | None, *args: str, env: Mapping[str, str] | None = None
) -> Result:
    """`tallyfy-scheduler [--config C] [--db URL] ARGS` in-process, at NOW; crashes re-raised."""
    argv = [*(["--config", str(config)] if config else []), *(["--db", db_url] if db_url else [])]
    result = CliRunner().invoke(cli, [*argv, *args], obj=App(clock=FakeClock(NOW)), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a crash, never an answer
    assert not TRACEBACK.search(result.output), result.output
    return result


def subprocess_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m scheduler ARGS` (for `run`, whose logging setup is process-wide)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFY_")}
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert not TRACEBACK.search(result.stderr), result.stderr
    return result


def dump(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        return "\n".join(conn.iterdump())


# -- config files: a wrong type for every key -----------------------------------------------------
TEXT, DURATION, COUNT, ZONE, FLAG = "text", "duration", "count", "zone", "flag"
# Every key of the config file (config.example.toml) and the kind of value it takes.
CONFIG_KEYS: list[tuple[str, str, str]] = [
    ("tallyfy", "base_url", TEXT),
    ("tallyfy", "organization_id", TEXT),
    ("tallyfy", "timeout", DURATION),
    ("tallyfy", "connect_timeout", DURATION),
    ("tallyfy", "request_deadline", DURATION),
    ("tallyfy", "max_response_bytes", COUNT),
    ("tallyfy", "max_requests_per_minute", COUNT),
    ("tallyfy", "allow_insecure_http", FLAG),
    ("store", "url", TEXT),
    ("scheduler", "timezone", ZONE),
    ("scheduler", "catch_up", "policy"),
    ("scheduler", "catch_up_window", DURATION),
    ("scheduler", "max_concurrent_fires", COUNT),
    ("scheduler", "shutdown_grace", DURATION),
    ("scheduler", "reload_interval", DURATION),
    ("scheduler", "heartbeat_interval", DURATION),
    ("scheduler", "dead_after", DURATION),
    ("retry", "max_attempts", COUNT),
    ("retry", "initial_backoff", DURATION),
    ("retry", "max_backoff", DURATION),
    ("calendar", "weekend", "weekdays"),
    ("calendar", "holidays_country", "country"),
    ("calendar", "holidays", "dates"),
    ("http", "listen", TEXT),
    ("http", "allow_remote", FLAG),
    ("http", "max_job_series", COUNT),
]
# TOML values of the wrong type (or an impossible value) for each kind of key.
WRONG: dict[str, list[str]] = {
    TEXT: ["5", "true", "[]", "{ a = 1 }", "1.5", "2026-01-01"],
    DURATION: ["30", '"30 seconds"', '"-1s"', '""', "true", '["30s"]', '"99999999999999999999w"'],
    COUNT: ['"8"', "8.0", "true", "0", "-1", "[8]"],
    ZONE: ["5", '"Mars/Olympus"', '"../../etc/passwd"', '""', '" UTC"', '"utc"'],
    FLAG: ['"true"', "1", "[true]"],
    "policy": ['"sometimes"', "1", '["all"]'],
    "weekdays": [
        '"Sat"',
        "[1, 2]",
        '["Caturday"]',
        '["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]',
    ],
    "country": ["5", '"XX"', "true"],
    "dates": ['"2026-12-24"', "[20261224]", '["2026-13-01"]', "[true]", "[2026-12-24T00:00:00Z]"],
}
WRONG_CASES = [
    pytest.param(table, key, value, id=f"{table}.{key}={value}")
    for table, key, kind in CONFIG_KEYS
    for value in WRONG[kind]
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


def assert_config_refused(result: Result, config: Path, key: str, *, shown: str | None) -> None:
    """Exit 1; every line names the config file; one names `key` (and its value, if shown)."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.rstrip("\n").split("\n")
    assert all(line.startswith(f"{config}: ") for line in lines), lines
    prefix = f"{config}: {key}" + (f" = {shown}" if shown is not None else "")
    assert any(line.startswith(prefix) for line in lines), (prefix, lines)


@pytest.mark.parametrize(("table", "key", "value"), WRONG_CASES)
def test_a_wrong_value_for_any_config_key_is_refused_naming_file_key_and_value(
    config: Path, sqlite_url: str, table: str, key: str, value: str
) -> None:
    config.write_text(f"[{table}]\n{key} = {value}\n", encoding="utf-8")

    # --db given: a key the command line overrides is still checked in the file.
    result = invoke(config, sqlite_url, "jobs", "validate", str(EXAMPLES))

    assert_config_refused(result, config, f"{table}.{key}", shown="")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tallyfy = 5\n", "tallyfy"),
        ("scheduler = []\n", "scheduler"),
        ("[[retry]]\nmax_attempts = 3\n", "retry"),
        ("[tallyfy]\ntokne = 'x'\n", "tallyfy.tokne"),
        ("[schedular]\ntimezone = 'UTC'\n", "schedular"),
        ("[store]\nurl = 'sqlite:///x.db'\npath = 'x.db'\n", "store.path"),
        ("[calendar]\nholiday = []\n", "calendar.holiday"),
        ("timezone = 'UTC'\n", "timezone"),
        (
            "[scheduler]\nheartbeat_interval = '20s'\ndead_after = '30s'\n",
            "scheduler.dead_after",
        ),
    ],
    ids=[
        "section-not-a-table",
        "section-a-list",
        "section-an-array-of-tables",
        "misspelt-key",
        "misspelt-section",
        "unknown-store-key",
        "unknown-calendar-key",
        "key-outside-any-section",
        "dead-after-not-twice-the-heartbeat",
    ],
)
def test_unknown_keys_and_misplaced_sections_are_refused(config: Path, text: str, key: str) -> None:
    config.write_text(text, encoding="utf-8")

    result = invoke(config, None, "jobs", "validate", str(EXAMPLES))

    assert_config_refused(result, config, key, shown=None)


def test_every_problem_of_a_config_file_is_reported_at_once(config: Path) -> None:
    config.write_text(
        "[tallyfy]\ntimeout = 30\n[scheduler]\ntimezone = 'Mars/Olympus'\ncatch_up = 'some'\n"
        "[retry]\nmax_attempts = 0\n[typo]\n",
        encoding="utf-8",
    )

    result = invoke(config, None, "jobs", "validate", str(EXAMPLES))

    assert result.exit_code == 1
    keys = [line.split(": ")[1].split(" = ")[0] for line in result.stderr.strip().split("\n")]
    assert sorted(keys) == [
        "retry.max_attempts",
        "scheduler.catch_up",
        "scheduler.timezone",
        "tallyfy.timeout",
        "typo",
    ]


def test_a_token_in_the_config_file_is_refused_and_never_echoed(
    config: Path, sqlite_url: str
) -> None:
    config.write_text(f'[tallyfy]\naccess_token = "{LEAKY_TOKEN}"\n', encoding="utf-8")

    for args, env in (
        (("jobs", "validate", str(EXAMPLES)), None),
        (("doctor",), {"TALLYFY_ACCESS_TOKEN": "tok-from-env"}),  # refused even with one set
        (("init",), None),
    ):
        result = invoke(config, sqlite_url, *args, env=env)
        assert result.exit_code == 1, (args, result.output)
        assert "tallyfy.access_token" in result.stderr
        assert "TALLYFY_ACCESS_TOKEN" in result.stderr  # where the token belongs instead
        assert LEAKY_TOKEN not in result.output


@pytest.fixture
def unreadable(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """(a config path that cannot be read, the reason the message must give)."""
    kind = request.param
    path = tmp_path / "config.toml"
    reason = "cannot read"
    if kind == "a-folder":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b"[tallyfy]\ntimeout = '\xff\xfe'\n")
    elif kind == "under-a-file":
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "config.toml"
    elif kind == "missing":
        path = tmp_path / "nowhere" / "config.toml"
        reason = "config file not found"
    elif kind == "invalid-toml":
        path.write_text("[tallyfy\n")
        reason = "invalid TOML"
    elif kind == "nested-too-deeply":
        path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
        reason = "invalid TOML: arrays or tables nested too deeply"
    elif kind == "no-permission":
        # Root reads a file whatever its mode, so root gets a file it may not open: a socket.
        if os.geteuid() == 0:
            path.unlink(missing_ok=True)
            holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            holder.bind(str(path))
            request.addfinalizer(holder.close)
        else:
            path.write_text("[tallyfy]\n")
            path.chmod(0)
    yield path, reason
    if path.exists() and not path.is_dir():
        path.chmod(0o600)


@pytest.mark.parametrize(
    "unreadable",
    [
        "a-folder",
        "not-utf8",
        "under-a-file",
        "missing",
        "invalid-toml",
        "nested-too-deeply",
        "no-permission",
    ],
    indirect=True,
)
@pytest.mark.parametrize("how", ["--config", "TALLYFY_SCHEDULER_CONFIG"])
def test_a_config_file_that_cannot_be_read_is_refused_naming_it(
    unreadable: tuple[Path, str], how: str
) -> None:
    path, reason = unreadable
    if how == "--config" and path.is_dir():
        # click refuses a folder itself: a usage error (exit 2), before any of our code runs.
        result = invoke(path, None, "jobs", "validate", str(EXAMPLES))
        assert result.exit_code == 2 and "is a directory" in result.stderr
        return
    if how == "--config":
        result = invoke(path, None, "jobs", "validate", str(EXAMPLES))
    else:
        result = invoke(None, None, "jobs", "validate", str(EXAMPLES), env={how: str(path)})

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"{path}: {reason}"), result.stderr


def test_an_unreadable_env_file_beside_the_config_is_refused_naming_it(
    config: Path, tmp_path: Path
) -> None:
    config.write_text("[tallyfy]\n", encoding="utf-8")
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"TALLYFY_ORGANIZATION_ID=\xff\xfe\n")

    result = invoke(config, None, "jobs", "validate", str(EXAMPLES))

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"{env_file}: cannot read: not UTF-8 text")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "store.url: not a database URL"),
        ("mysql://u@h/db", "unsupported database"),
        ("postgresql+asyncpg://u@127.0.0.1/db", "unsupported PostgreSQL driver"),
        ("sqlite:////proc/forbidden/scheduler.db", "cannot create the SQLite database"),
        ("postgresql://u:pw-4e1c9@127.0.0.1:1/db", "u:***@127.0.0.1:1/db is unavailable"),
    ],
    ids=["not-a-url", "another-database", "another-driver", "uncreatable", "unreachable"],
)
@pytest.mark.parametrize("how", ["--db", "TALLYFY_SCHEDULER_DB"])
def test_a_bad_store_url_is_refused_without_echoing_a_password(
    url: str, reason: str, how: str
) -> None:
    if how == "--db":
        result = invoke(None, url, "init")
    else:
        result = invoke(None, None, "init", env={how: url})

    assert result.exit_code == 1, result.output
    assert reason in result.stderr
    assert "pw-4e1c9" not in result.output


# -- no token -------------------------------------------------------------------------------------


@pytest.fixture
def applied(tmp_path: Path, sqlite_url: str) -> tuple[Path, str]:
    """A config with an organization id (but no token) and a store holding the examples."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[tallyfy]\norganization_id = "demo-org"\nbase_url = "http://127.0.0.1:9/api"\n'
    )
    assert invoke(config, sqlite_url, "init").exit_code == 0
    assert invoke(config, sqlite_url, "jobs", "apply", str(EXAMPLES)).exit_code == 0
    return config, sqlite_url


@pytest.mark.parametrize("args", [("fire", WEEKLY), ("doctor",)], ids=["fire", "doctor"])
def test_without_a_token_it_fails_naming_the_variable_to_set(
    applied: tuple[Path, str], args: tuple[str, ...]
) -> None:
    config, url = applied
    before = dump(Path(url.removeprefix("sqlite:///")))

    result = invoke(config, url, *args)

    assert result.exit_code == 1, result.output
    assert "TALLYFY_ACCESS_TOKEN" in result.stderr
    assert dump(Path(url.removeprefix("sqlite:///"))) == before  # `fire` claimed nothing


def test_the_daemon_without_a_token_exits_1_naming_the_variable(
    applied: tuple[Path, str],
) -> None:
    config, url = applied

    result = subprocess_cli("--config", str(config), "--db", url, "run", timeout=30)

    assert result.returncode == 1, result.stderr
    assert "TALLYFY_ACCESS_TOKEN" in result.stderr


# -- a read-only store ---------------------------------------------------------------------------


@pytest.fixture
def read_only_store(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(config, URL) of an initialized store, with the examples, that this process cannot write.

    As root, chmod stops nothing: the store's folder is bind-mounted read-only instead.
    """
    source = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text('[tallyfy]\norganization_id = "demo-org"\n')
    url = f"sqlite:///{source / 'scheduler.db'}"
    assert invoke(config, url, "init").exit_code == 0
    assert invoke(config, url, "jobs", "apply", str(EXAMPLES)).exit_code == 0
    if os.geteuid() != 0:
        (source / "scheduler.db").chmod(0o400)
        source.chmod(0o500)
        try:
            yield config, url
        finally:
            source.chmod(0o700)
            (source / "scheduler.db").chmod(0o600)
        return
    mount = tmp_path / "read-only"
    mount.mkdir()
    bound = subprocess.run(["mount", "--bind", str(source), str(mount)], check=False)
    if bound.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("cannot bind-mount a read-only store: CI runs as root")
        pytest.skip("cannot bind-mount here (no CAP_SYS_ADMIN)")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(mount)], check=True, capture_output=True
        )
        yield config, f"sqlite:///{mount / 'scheduler.db'}"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _assert_read_only_message(stderr: str, url: str) -> None:
    path = url.removeprefix("sqlite:///")
    lines = stderr.rstrip("\n").split("\n")
    assert any(
        line.startswith("error: store ") and "read-only" in line and path in line for line in lines
    ), stderr


def test_jobs_apply_on_a_read_only_store_fails_saying_so(
    read_only_store: tuple[Path, str], tmp_path: Path
) -> None:
    config, url = read_only_store
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in EXAMPLES.glob("*.toml"):
        (changed / path.name).write_text(path.read_text().replace("Acme", "Acme Ltd"))
    before = Path(url.removeprefix("sqlite:///")).read_bytes()

    result = invoke(config, url, "jobs", "apply", str(changed))

    assert result.exit_code == 1, result.output
    _assert_read_only_message(result.stderr, url)
    assert Path(url.removeprefix("sqlite:///")).read_bytes() == before


def test_the_daemon_on_a_read_only_store_exits_1_saying_so(
    read_only_store: tuple[Path, str],
) -> None:
    config, url = read_only_store
    env = {"TALLYFY_ACCESS_TOKEN": "tok-read-only", "TALLYFY_ORGANIZATION_ID": "demo-org"}

    result = subprocess_cli("--config", str(config), "--db", url, "run", env=env, timeout=60)

    assert result.returncode == 1, result.stderr
    _assert_read_only_message(result.stderr, url)


# -- a store from a newer version -----------------------------------------------------------------
NEWER_COMMANDS: list[tuple[str, ...]] = [
    ("init",),
    ("jobs", "apply", str(EXAMPLES)),
    ("jobs", "apply", "--dry-run", str(EXAMPLES)),
    ("jobs", "list"),
    ("jobs", "show", WEEKLY),
    ("jobs", "pause", WEEKLY),
    ("jobs", "resume", WEEKLY),
    ("jobs", "remove", WEEKLY),
    ("next", WEEKLY),
    ("preview", WEEKLY),
    ("fire", WEEKLY),
    ("backfill", WEEKLY, "--from", "2026-02-02T00:00:00Z", "--to", "2026-03-02T00:00:00Z"),
    ("history",),
    ("status",),
    ("doctor",),
]


@pytest.fixture
def newer_store(applied: tuple[Path, str]) -> tuple[Path, str, Path]:
    config, url = applied
    db_path = Path(url.removeprefix("sqlite:///"))
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    return config, url, db_path


@pytest.mark.parametrize("args", NEWER_COMMANDS, ids=[" ".join(a[:2]) for a in NEWER_COMMANDS])
def test_every_command_refuses_a_store_from_a_newer_version(
    newer_store: tuple[Path, str, Path], args: tuple[str, ...]
) -> None:
    config, url, db_path = newer_store
    before = dump(db_path)
    env = {"TALLYFY_ACCESS_TOKEN": "tok-newer"}

    result = invoke(config, url, *args, env=env)

    assert result.exit_code == 1, result.output
    assert f"newer tallyfy-scheduler (schema 99 > {SCHEMA_VERSION})" in result.stderr
    assert "upgrade" in result.stderr
    assert dump(db_path) == before


def test_the_daemon_refuses_a_store_from_a_newer_version(
    newer_store: tuple[Path, str, Path],
) -> None:
    config, url, db_path = newer_store
    before = dump(db_path)
    env = {"TALLYFY_ACCESS_TOKEN": "tok-newer"}

    result = subprocess_cli("--config", str(config), "--db", url, "run", env=env, timeout=30)

    assert result.returncode == 1, result.stderr
    assert f"newer tallyfy-scheduler (schema 99 > {SCHEMA_VERSION})" in result.stderr
    assert dump(db_path) == before
