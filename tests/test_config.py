"""Configuration: discovery order, file + .env + environment, and errors that say where."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

import scheduler.config as config
from scheduler.config import (
    CatchUpPolicy,
    Secret,
    Settings,
    find_config_file,
    load_settings,
)
from scheduler.errors import ConfigError, Problem

TOKEN = "tok-123-secret"


@pytest.fixture
def no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the /etc path at a file under tmp_path that does not exist yet."""
    path = tmp_path / "etc" / "config.toml"
    monkeypatch.setattr(config, "SYSTEM_CONFIG_PATH", path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, environ: dict[str, str] | None = None, **kw: object) -> Settings:
    return load_settings(environ=environ or {}, cwd=tmp_path, **kw)  # type: ignore[arg-type]


def problems(tmp_path: Path, environ: dict[str, str] | None = None, **kw: object) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, environ, **kw)
    return caught.value.problems


# -- where the file is ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "explicit", "env", "expected"),
    [
        ({"explicit", "env", "cwd", "system"}, True, True, "explicit"),
        ({"env", "cwd", "system"}, False, True, "env"),
        ({"cwd", "system"}, False, False, "cwd"),
        ({"system"}, False, False, "system"),
        (set(), False, False, None),
    ],
    ids=["--config-first", "then-the-variable", "then-./config.toml", "then-/etc", "else-defaults"],
)
def test_it_finds_the_config_file_in_the_documented_order(
    tmp_path: Path,
    no_system_config: Path,
    present: set[str],
    explicit: bool,
    env: bool,
    expected: str | None,
) -> None:
    paths = {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "from-env.toml",
        "cwd": tmp_path / "work" / "config.toml",
        "system": no_system_config,
    }
    for name in present:
        write(paths[name], "")
    environ = {"TALLYFY_SCHEDULER_CONFIG": str(paths["env"])} if env else {}
    found = find_config_file(paths["explicit"] if explicit else None, environ, tmp_path / "work")
    assert found == (paths[expected] if expected else None)


def test_without_a_file_the_built_in_defaults_apply(tmp_path: Path, no_system_config: Path) -> None:
    settings = load(tmp_path, {"HOME": str(tmp_path / "home")})
    assert settings.config_file is None
    assert settings.tallyfy.base_url == "https://go.tallyfy.com/api"
    assert settings.tallyfy.organization_id is None
    assert settings.tallyfy.access_token is None
    assert settings.scheduler.timezone == "UTC"
    assert settings.scheduler.catch_up is CatchUpPolicy.LATEST
    assert settings.scheduler.catch_up_window == timedelta(days=1)
    assert settings.retry.max_attempts == 8
    assert settings.tallyfy.request_deadline == timedelta(seconds=60)
    assert settings.tallyfy.max_response_bytes == 4 * 1024 * 1024
    assert settings.tallyfy.allow_insecure_http is False
    assert settings.calendar.weekend == frozenset({5, 6})
    assert (
        settings.store.url
        == f"sqlite:///{tmp_path}/home/.local/state/tallyfy-scheduler/scheduler.db"
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/tallyfy-scheduler:/other"}, "/var/lib/tallyfy-scheduler"),
        ({"XDG_STATE_HOME": "/xdg/state", "HOME": "/home/u"}, "/xdg/state/tallyfy-scheduler"),
    ],
    ids=["systemd-state-directory", "xdg-state-home"],
)
def test_the_default_store_lives_in_the_state_directory(
    tmp_path: Path, no_system_config: Path, environ: dict[str, str], expected: str
) -> None:
    assert load(tmp_path, environ).store.url == f"sqlite:///{expected}/scheduler.db"


def test_it_reads_every_section_of_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        """
[tallyfy]
base_url = "http://127.0.0.1:8080/api"
organization_id = "org-1"
timeout = "45s"
request_deadline = "2m"
max_response_bytes = 1048576
allow_insecure_http = true
max_requests_per_minute = 60
[store]
url = "sqlite:////tmp/x.db"
[scheduler]
timezone = "Europe/London"
catch_up = "all"
catch_up_window = "6h"
max_concurrent_fires = 4
[retry]
max_attempts = 3
initial_backoff = "1s"
max_backoff = "1m"
[calendar]
weekend = ["Fri", "Sat"]
holidays_country = "gb"
holidays = ["2026-12-24", 2026-12-31]
""",
    )
    settings = load(tmp_path, config_path=path)
    assert settings.config_file == path
    assert settings.tallyfy.base_url == "http://127.0.0.1:8080/api"
    assert settings.tallyfy.organization_id == "org-1"
    assert settings.tallyfy.timeout == timedelta(seconds=45)
    assert settings.tallyfy.request_deadline == timedelta(minutes=2)
    assert settings.tallyfy.max_response_bytes == 1048576
    assert settings.tallyfy.allow_insecure_http is True
    assert settings.tallyfy.max_requests_per_minute == 60
    assert settings.store.url == "sqlite:////tmp/x.db"
    assert settings.scheduler.timezone == "Europe/London"
    assert settings.scheduler.catch_up is CatchUpPolicy.ALL
    assert settings.scheduler.catch_up_window == timedelta(hours=6)
    assert settings.scheduler.max_concurrent_fires == 4
    assert (settings.retry.max_attempts, settings.retry.max_backoff) == (3, timedelta(minutes=1))
    assert settings.calendar.weekend == frozenset({4, 5})
    assert settings.calendar.holidays_country == "GB"
    assert settings.calendar.holidays == frozenset({date(2026, 12, 24), date(2026, 12, 31)})


# -- environment and .env ------------------------------------------------------------------------


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        '[tallyfy]\nbase_url = "https://file.example/api"\norganization_id = "from-file"\n'
        '[store]\nurl = "sqlite:////file.db"\n',
    )
    environ = {
        "TALLYFY_BASE_URL": "https://env.example/api",
        "TALLYFY_ORGANIZATION_ID": "from-env",
        "TALLYFY_SCHEDULER_DB": "sqlite:////env.db",
    }
    settings = load(tmp_path, environ, config_path=path)
    assert settings.tallyfy.base_url == "https://env.example/api"
    assert settings.tallyfy.organization_id == "from-env"
    assert settings.store.url == "sqlite:////env.db"
    # --db beats both
    assert load(tmp_path, environ, config_path=path, db_url="sqlite:////cli.db").store.url == (
        "sqlite:////cli.db"
    )


def test_a_dotenv_beside_the_config_beats_the_file_but_never_the_environment(
    tmp_path: Path,
) -> None:
    conf = write(
        tmp_path / "etc" / "config.toml", '[tallyfy]\nbase_url = "https://file.example/api"\n'
    )
    write(
        tmp_path / "etc" / ".env",
        f"TALLYFY_ACCESS_TOKEN={TOKEN}\nTALLYFY_ORGANIZATION_ID=from-dotenv\n"
        "TALLYFY_BASE_URL=https://dotenv.example/api\n",
    )
    settings = load(tmp_path, {"TALLYFY_ORGANIZATION_ID": "from-env"}, config_path=conf)
    assert settings.tallyfy.organization_id == "from-env"  # the environment wins
    assert settings.tallyfy.access_token == Secret(TOKEN)  # .env beside the config file
    assert settings.tallyfy.base_url == "https://dotenv.example/api"  # ... beats the file


def test_with_a_config_file_the_dotenv_in_the_working_directory_is_not_read(
    tmp_path: Path,
) -> None:
    # Issue 11 item 6: a .env wherever the command runs redirected an explicit --config.
    conf = write(
        tmp_path / "etc" / "config.toml", '[tallyfy]\nbase_url = "https://good.example/api"\n'
    )
    write(
        tmp_path / ".env",
        "TALLYFY_BASE_URL=http://evil.example/api\nTALLYFY_ORGANIZATION_ID=evil-org\n"
        "TALLYFY_ACCESS_TOKEN=evil-token\nTALLYFY_SCHEDULER_DB=sqlite:////evil.db\n",
    )
    settings = load(tmp_path, {"HOME": str(tmp_path / "home")}, config_path=conf)
    assert settings.tallyfy.base_url == "https://good.example/api"
    assert settings.tallyfy.organization_id is None
    assert settings.tallyfy.access_token is None
    assert settings.store.url != "sqlite:////evil.db"


def test_without_a_config_file_the_dotenv_in_the_working_directory_is_read(
    tmp_path: Path, no_system_config: Path
) -> None:
    write(tmp_path / ".env", f"TALLYFY_ACCESS_TOKEN={TOKEN}\nTALLYFY_ORGANIZATION_ID=quick\n")
    settings = load(tmp_path)
    assert settings.config_file is None
    assert (settings.tallyfy.access_token, settings.tallyfy.organization_id) == (
        Secret(TOKEN),
        "quick",
    )


def test_settings_say_where_each_came_from_and_never_what(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "etc" / "config.toml",
        '[tallyfy]\nbase_url = "https://file.example/api"\ntimeout = "5s"\n'
        '[store]\nurl = "sqlite:////file.db"\n[calendar]\nholidays = []\n',
    )
    dotenv = write(
        tmp_path / "etc" / ".env",
        "TALLYFY_ORGANIZATION_ID=org-9\nTALLYFY_SCHEDULER_DB=postgresql://u:pw-77@h/db\n",
    )
    credential = write(tmp_path / "creds" / "tallyfy-token", f"{TOKEN}\n")
    environ = {
        "TALLYFY_BASE_URL": "https://env.example/api",
        "CREDENTIALS_DIRECTORY": str(tmp_path / "creds"),
    }
    origins = load(tmp_path, environ, config_path=conf).origins
    assert {k: v for k, v in origins.items() if v != "default"} == {
        "tallyfy.base_url": "TALLYFY_BASE_URL in the environment",
        "tallyfy.organization_id": f"TALLYFY_ORGANIZATION_ID in {dotenv}",
        "tallyfy.access_token": f"systemd credential 'tallyfy-token' ({credential})",
        "tallyfy.timeout": "the config file",
        "store.url": f"TALLYFY_SCHEDULER_DB in {dotenv}",
        "calendar.holidays": "the config file",
        "alerts.urls.default": "not set",
        "alerts.heartbeat": "not set",
    }
    assert "scheduler.timezone" in origins and "retry.max_backoff" in origins
    assert not any(secret in " ".join(origins.values()) for secret in (TOKEN, "pw-77"))
    with_db = load(tmp_path, environ, config_path=conf, db_url="sqlite:////cli.db")
    assert with_db.origins["store.url"] == "--db"


# -- the token -----------------------------------------------------------------------------------


def test_the_token_is_never_read_from_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", f'[tallyfy]\naccess_token = "{TOKEN}"\n')
    (found,) = problems(tmp_path, config_path=path)
    assert (found.file, found.key) == (str(path), "tallyfy.access_token")
    assert "TALLYFY_ACCESS_TOKEN" in found.message
    assert TOKEN not in str(found)  # and the error does not echo it


TOKEN_SOURCES = ["env", "env-file", "credential", "dotenv", "dotenv-file"]


@pytest.mark.parametrize(
    "first",
    range(len(TOKEN_SOURCES) + 1),
    ids=[f"{s}-first" for s in TOKEN_SOURCES] + ["else-none"],
)
def test_the_token_comes_from_the_environment_then_the_credential_then_the_dotenv(
    tmp_path: Path, first: int
) -> None:
    """Every source from `first` on is set; the first of them must win (configuration.md)."""
    conf = write(tmp_path / "etc" / "config.toml", "")
    environ: dict[str, str] = {}
    dotenv: list[str] = []
    present = TOKEN_SOURCES[first:]
    if "env" in present:
        environ["TALLYFY_ACCESS_TOKEN"] = "from-env"
    if "env-file" in present:
        environ["TALLYFY_ACCESS_TOKEN_FILE"] = str(write(tmp_path / "t1", "from-env-file\n"))
    if "credential" in present:
        write(tmp_path / "creds" / "tallyfy-token", "from-credential\n")
        environ["CREDENTIALS_DIRECTORY"] = str(tmp_path / "creds")
    if "dotenv" in present:
        dotenv.append("TALLYFY_ACCESS_TOKEN=from-dotenv")
    if "dotenv-file" in present:
        dotenv.append(f"TALLYFY_ACCESS_TOKEN_FILE={write(tmp_path / 't2', 'from-dotenv-file')}")
    write(tmp_path / "etc" / ".env", "\n".join(dotenv) + "\n")
    token = load(tmp_path, environ, config_path=conf).tallyfy.access_token
    assert (token.reveal() if token else None) == (
        f"from-{TOKEN_SOURCES[first]}" if present else None
    )


def test_the_token_never_shows_itself(tmp_path: Path) -> None:
    settings = load(tmp_path, {"TALLYFY_ACCESS_TOKEN": TOKEN})
    assert TOKEN not in repr(settings)
    assert TOKEN not in repr(settings.tallyfy.access_token)
    assert TOKEN not in str(settings.tallyfy.access_token)


def test_an_unreadable_token_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    (found,) = problems(tmp_path, {"TALLYFY_ACCESS_TOKEN_FILE": str(missing)})
    assert (found.file, found.key) == (str(missing), "TALLYFY_ACCESS_TOKEN_FILE")


@pytest.mark.parametrize(
    ("token", "fault"),
    [
        ("qx7\nzk9-wv3", "character 4 is a line break"),
        ("qx7\rzk9-wv3", "character 4 is a line break"),
        ("qx7 zk9-wv3", "character 4 is white space"),
        ("qx7\x00zk9-wv3", "character 4 is a control character"),
        ("qx7\x7fzk9-wv3", "character 4 is a control character"),
        ("qx7déf-wv3", "character 5 is not ASCII"),
        ("qx7\u2028zk9", "character 4 is not ASCII"),
    ],
    ids=["line-feed", "carriage-return", "space", "nul", "del", "latin-1", "line-separator"],
)
def test_a_token_that_cannot_be_sent_is_refused_naming_where_it_came_from_not_itself(
    tmp_path: Path, token: str, fault: str
) -> None:
    path = write(tmp_path / "token", token + "\n")
    for environ, source in (
        ({"TALLYFY_ACCESS_TOKEN": token}, "TALLYFY_ACCESS_TOKEN in the environment"),
        ({"TALLYFY_ACCESS_TOKEN_FILE": str(path)}, f"TALLYFY_ACCESS_TOKEN_FILE ({path})"),
    ):
        (found,) = problems(tmp_path, environ)
        assert found.key == source
        assert found.message.startswith(
            f"the access token cannot be sent in an HTTP header: {fault}"
        )
        for part in ("qx7", "zk9", "wv3"):
            assert part not in str(found)


def test_a_token_of_visible_ascii_is_taken_as_it_is(tmp_path: Path) -> None:
    token = "eyJ0eXAi.OiJKV1Qi-_~+/=!#$%&'*"
    assert load(tmp_path, {"TALLYFY_ACCESS_TOKEN": f"  {token}\n"}).tallyfy.access_token == Secret(
        token
    )


# -- the API's address ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://go.tallyfy.com/api",
        "https://10.0.0.5/api",  # https anywhere
        "http://127.0.0.1:8765/api",
        "http://127.1.2.3/api",
        "http://localhost:8765/api",
        "http://LOCALHOST./api",
        "http://sandbox.localhost/api",
        "http://[::1]:8765/api",
    ],
)
def test_https_anywhere_and_plain_http_to_this_machine_are_accepted(
    tmp_path: Path, url: str
) -> None:
    assert load(tmp_path, {"TALLYFY_BASE_URL": url}).tallyfy.base_url == url


@pytest.mark.parametrize(
    "url",
    ["http://go.tallyfy.com/api", "http://10.0.0.5/api", "http://[::ffff:127.0.0.1]/api"],
    ids=["a-name", "a-private-address", "ipv4-mapped"],
)
def test_plain_http_to_another_machine_is_refused_unless_allowed(tmp_path: Path, url: str) -> None:
    path = write(tmp_path / "config.toml", f'[tallyfy]\nbase_url = "{url}"\n')
    (found,) = problems(tmp_path, config_path=path)
    assert (found.key, found.value) == ("tallyfy.base_url", url)
    assert "allow_insecure_http = true" in found.message

    write(path, f'[tallyfy]\nbase_url = "{url}"\nallow_insecure_http = true\n')
    assert load(tmp_path, config_path=path).tallyfy.base_url == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ops:pw-1c9e@go.tallyfy.com/api", "https://***@go.tallyfy.com/api"),
        ("https://pw-1c9e@go.tallyfy.com/api", "https://***@go.tallyfy.com/api"),
        ("https://ops:pw-1c9e@evil@go.tallyfy.com/api", "https://***@go.tallyfy.com/api"),
        ("http://ops:pw-1c9e@127.0.0.1:8765/api", "http://***@127.0.0.1:8765/api"),
    ],
    ids=["user-and-password", "user-only", "two-ats", "loopback"],
)
def test_credentials_in_the_base_url_are_refused_and_never_echoed(
    tmp_path: Path, url: str, shown: str
) -> None:
    (found,) = problems(tmp_path, {"TALLYFY_BASE_URL": url})
    assert (found.key, found.value) == ("TALLYFY_BASE_URL", shown)
    assert "pw-1c9e" not in str(found)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://go.tallyfy.com/api", "must be an http:// or https:// URL"),
        ("go.tallyfy.com/api", "must be an http:// or https:// URL"),
        ("https:///api", "must be an http:// or https:// URL"),
        ("https://go.tallyfy.com:port/api", "not a URL"),
    ],
    ids=["ftp", "no-scheme", "no-host", "bad-port"],
)
def test_a_base_url_that_is_no_http_url_is_refused(tmp_path: Path, url: str, message: str) -> None:
    path = write(tmp_path / "config.toml", f'[tallyfy]\nbase_url = "{url}"\n')
    (found,) = problems(tmp_path, config_path=path)
    assert (found.key, found.value, found.message) == ("tallyfy.base_url", url, message)


# -- bad values ----------------------------------------------------------------------------------

BAD_VALUES = [
    pytest.param(
        '[scheduler]\ntimezone = "Mars/Olympus"', "scheduler.timezone", "Mars/Olympus", id="zone"
    ),
    pytest.param('[scheduler]\ncatch_up = "most"', "scheduler.catch_up", "most", id="catch-up"),
    pytest.param(
        '[scheduler]\ncatch_up_window = "1 day"',
        "scheduler.catch_up_window",
        "1 day",
        id="duration",
    ),
    pytest.param(
        "[scheduler]\nmax_concurrent_fires = 0", "scheduler.max_concurrent_fires", 0, id="zero"
    ),
    pytest.param("[retry]\nmax_attempts = true", "retry.max_attempts", True, id="bool-for-int"),
    pytest.param("[tallyfy]\ntimeout = 30", "tallyfy.timeout", 30, id="duration-not-string"),
    pytest.param(
        '[tallyfy]\nrequest_deadline = "0s"', "tallyfy.request_deadline", "0s", id="no-deadline"
    ),
    pytest.param(
        "[tallyfy]\nmax_response_bytes = 0", "tallyfy.max_response_bytes", 0, id="no-body"
    ),
    pytest.param(
        '[tallyfy]\nallow_insecure_http = "yes"',
        "tallyfy.allow_insecure_http",
        "yes",
        id="bool-not-string",
    ),
    pytest.param(
        '[calendar]\nweekend = ["Sat", "Caturday"]', "calendar.weekend", "Caturday", id="day"
    ),
    pytest.param(
        '[calendar]\nholidays = ["24/12/2026"]', "calendar.holidays", "24/12/2026", id="date"
    ),
    pytest.param(
        '[calendar]\nholidays_country = "XX"', "calendar.holidays_country", "XX", id="country"
    ),
    pytest.param('[scheduler]\ntimezon = "UTC"', "scheduler.timezon", "UTC", id="unknown-key"),
    pytest.param(
        '[sheduler]\ntimezone = "UTC"', "sheduler", {"timezone": "UTC"}, id="unknown-table"
    ),
    pytest.param('tallyfy = "x"', "tallyfy", "x", id="table-not-a-table"),
]


@pytest.mark.parametrize(("text", "key", "value"), BAD_VALUES)
def test_a_bad_value_names_the_file_the_key_and_the_value(
    tmp_path: Path, text: str, key: str, value: object
) -> None:
    path = write(tmp_path / "config.toml", text + "\n")
    found = [p for p in problems(tmp_path, config_path=path) if p.key == key]
    assert found, key
    assert all(p.file == str(path) for p in found)
    assert value in [p.value for p in found]
    assert repr(value) in str(found[0]) or repr(value) in " ".join(str(p) for p in found)


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        '[scheduler]\ntimezone = "Nowhere"\ncatch_up = "most"\n[retry]\nmax_attempts = -1\n',
    )
    assert {p.key for p in problems(tmp_path, config_path=path)} == {
        "scheduler.timezone",
        "scheduler.catch_up",
        "retry.max_attempts",
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [(None, "not found"), ("[scheduler\n", "invalid TOML")],
    ids=["missing-file", "toml-syntax"],
)
def test_an_unusable_config_file_is_an_error_naming_it(
    tmp_path: Path, text: str | None, fragment: str
) -> None:
    path = tmp_path / "config.toml"
    if text is not None:
        write(path, text)
    (found,) = problems(tmp_path, config_path=path)
    assert found.file == str(path) and fragment in found.message


@pytest.mark.parametrize(
    "zone", ["localtime", "Factory", "posixrules", "right/UTC", "posix/Europe/London", "Nowhere"]
)
def test_a_zone_of_no_place_is_not_valid(zone: str) -> None:
    assert not config.is_valid_zone(zone)
    assert config.zone_problem(zone)


@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "US/Eastern", "Etc/GMT+5", "EST5EDT"])
def test_iana_names_and_their_links_are_valid_zones(zone: str) -> None:
    assert config.is_valid_zone(zone)
    assert config.zone_problem(zone) is None


def test_a_variable_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    (found,) = problems(tmp_path, {"TALLYFY_SCHEDULER_CONFIG": str(missing)})
    assert found.file == str(missing) and "not found" in found.message
