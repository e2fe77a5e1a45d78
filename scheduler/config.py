"""Configuration: the only module that reads config files, `.env` files and the environment.

Each setting is the last of these that gives it (docs/configuration.md, "Precedence"):

1. the built-in default (the constants below, mirrored in `config.example.toml`);
2. the TOML config file: `--config PATH`, else `$TALLYFY_SCHEDULER_CONFIG`, else
   `./config.toml`, else `/etc/tallyfy-scheduler/config.toml`;
3. the `.env` beside that config file (in the working directory only when no config file is
   used: a `.env` wherever the command happens to run must not redirect a chosen config);
4. the process environment (`TALLYFY_BASE_URL`, `TALLYFY_ORGANIZATION_ID`,
   `TALLYFY_SCHEDULER_DB`); `--db URL` beats all four for the store.

The access token is never read from the TOML file (that is an error). It is the first of:
`TALLYFY_ACCESS_TOKEN`, then `TALLYFY_ACCESS_TOKEN_FILE`, in the process environment; the
systemd credential `$CREDENTIALS_DIRECTORY/tallyfy-token`; `TALLYFY_ACCESS_TOKEN`, then
`TALLYFY_ACCESS_TOKEN_FILE`, in the `.env`. So the environment beats the credential (an
operator can override the unit's token for one run), and the credential beats a `.env` (a
stale `.env` left beside the config cannot shadow what the unit loads). It is wrapped in
`Secret`, whose repr never shows it; a file it was read from that its group or others can
read gets a warning (`doctor`, and the daemon as it starts). `Settings.origins` says where
each setting came from, never its value.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from scheduler.durations import format_duration, parse_duration
from scheduler.errors import ConfigError, Problems, problem

# -- defaults (each mirrored in config.example.toml) -------------------------------------------
DEFAULT_BASE_URL = "https://go.tallyfy.com/api"
DEFAULT_TIMEOUT = timedelta(seconds=30)  # read timeout of one request
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=10)  # a connect failure means "not sent": retry
# The whole exchange (connect, send, status line, headers, body): a server that trickles its
# answer a byte at a time never trips the read timeout, and would hold a send worker forever.
DEFAULT_REQUEST_DEADLINE = timedelta(seconds=60)
# The API's answers are a few KiB (a page of 100 runs: well under 1 MiB); a larger one is
# not read (memory), and the request's outcome is uncertain.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_REQUESTS_PER_MINUTE = 100  # the lower of the published figures (100/min per org)
DEFAULT_TIMEZONE = "UTC"
DEFAULT_CATCH_UP_WINDOW = timedelta(days=1)
DEFAULT_HISTORY_RETENTION = timedelta(days=400)
DEFAULT_MAX_CONCURRENT_FIRES = 8
DEFAULT_SHUTDOWN_GRACE = timedelta(seconds=30)  # guarantees.md: in-flight requests get 30 s
DEFAULT_RELOAD_INTERVAL = timedelta(seconds=2)  # CLI changes are picked up within 5 s
DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=5)
DEFAULT_LOG_LEVEL = "INFO"  # the daemon's; `run --log-level` overrides it
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_DEAD_AFTER = timedelta(seconds=30)  # a daemon silent this long is presumed dead
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_INITIAL_BACKOFF = timedelta(seconds=2)
DEFAULT_MAX_BACKOFF = timedelta(minutes=10)
DEFAULT_WEEKEND = ("Sat", "Sun")
# Above this many jobs, /metrics leaves out the per-job families (a series per job each).
DEFAULT_MAX_JOB_SERIES = 10_000
SYSTEM_CONFIG_PATH = Path("/etc/tallyfy-scheduler/config.toml")
CREDENTIAL_NAME = "tallyfy-token"
# Alerts (docs/configuration.md, "[alerts]"): the default target's URLs and the heartbeat URL
# are secrets, read like the token; `[alerts.targets]` and `heartbeat_url` only name where.
DEFAULT_TARGET = "default"
ALERT_URLS_VARIABLE = "TALLYFY_SCHEDULER_ALERT_URLS"
ALERT_URLS_CREDENTIAL = "alert-urls"
HEARTBEAT_URL_VARIABLE = "TALLYFY_SCHEDULER_HEARTBEAT_URL"
HEARTBEAT_URL_CREDENTIAL = "heartbeat-url"
# The dashboard's tokens (docs/dashboard.md): secrets read like the API token, never in TOML.
ADMIN_TOKEN_VARIABLE = "TALLYFY_SCHEDULER_ADMIN_TOKEN"
ADMIN_TOKEN_CREDENTIAL = "admin-token"
READ_TOKEN_VARIABLE = "TALLYFY_SCHEDULER_READ_TOKEN"
READ_TOKEN_CREDENTIAL = "read-token"
DEFAULT_LATE_AFTER = timedelta(minutes=5)
DEFAULT_UNCERTAIN_AFTER = timedelta(minutes=10)
DEFAULT_STORE_DOWN_AFTER = timedelta(minutes=1)
DEFAULT_HEARTBEAT_EVERY = timedelta(minutes=1)
DEFAULT_TEMPLATE_CHECK_EVERY = timedelta(days=1)  # "0s": never
# Tallyfy's personal tokens live six months; two weeks is time to renew one unhurried.
DEFAULT_TOKEN_EXPIRY_WARNING = timedelta(days=14)
TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# An environment variable or a systemd credential: no URL, no path.
SECRET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# The variables that override a key of the file (`doctor` says which one a setting came from).
ENV_OVERRIDES = {
    "tallyfy.base_url": "TALLYFY_BASE_URL",
    "tallyfy.organization_id": "TALLYFY_ORGANIZATION_ID",
    "store.url": "TALLYFY_SCHEDULER_DB",
}

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # date.weekday() order
# About ten years: instants computed from `now` with any duration stay representable dates.
MAX_DURATION = timedelta(days=3660)
# Zero would mean: every request times out at once, or every other daemon counts as dead.
POSITIVE_DURATIONS = frozenset(
    {
        "tallyfy.timeout",
        "tallyfy.connect_timeout",
        "tallyfy.request_deadline",
        "scheduler.reload_interval",
        "scheduler.heartbeat_interval",
        "scheduler.dead_after",
        "alerts.late_after",
        "alerts.uncertain_after",
        "alerts.store_down_after",
        "alerts.heartbeat_every",
    }
)


# Fields of a section that are not keys of the file but what its keys named, read from the
# environment or a credential (`_origins` says where they came from on their own lines).
_RESOLVED: Mapping[str, bool] = {"resolved": True}


class CatchUpPolicy(StrEnum):
    """What to do with scheduled instants missed while the daemon was not running."""

    ALL = "all"  # fire each missed instant inside the window, oldest first
    LATEST = "latest"  # fire the newest missed instant, record the rest as skipped
    NONE = "none"  # record every missed instant as skipped


DEFAULT_CATCH_UP = CatchUpPolicy.LATEST


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class TallyfySettings:
    base_url: str = DEFAULT_BASE_URL
    organization_id: str | None = None
    access_token: Secret | None = field(default=None, repr=False)
    # Where the token came from (`doctor` shows this, never the token itself).
    access_token_source: str | None = field(default=None, compare=False)
    # Set when the file holding the token can be read by its group or others.
    access_token_warning: str | None = field(default=None, compare=False)
    timeout: timedelta = DEFAULT_TIMEOUT
    connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT
    request_deadline: timedelta = DEFAULT_REQUEST_DEADLINE
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_requests_per_minute: int = DEFAULT_MAX_REQUESTS_PER_MINUTE
    # Plain http:// to a host other than this machine sends the token in clear text: refused
    # unless this says so (the sandbox on 127.0.0.1 needs no such permission).
    allow_insecure_http: bool = False


@dataclass(frozen=True)
class StoreSettings:
    url: str
    # Terminal history rows older than this are pruned by the daemon; 0 keeps all of them
    # (docs/configuration.md, "[store]").
    history_retention: timedelta = DEFAULT_HISTORY_RETENTION


@dataclass(frozen=True)
class SchedulerSettings:
    timezone: str = DEFAULT_TIMEZONE
    catch_up: CatchUpPolicy = DEFAULT_CATCH_UP
    catch_up_window: timedelta = DEFAULT_CATCH_UP_WINDOW
    max_concurrent_fires: int = DEFAULT_MAX_CONCURRENT_FIRES
    shutdown_grace: timedelta = DEFAULT_SHUTDOWN_GRACE
    reload_interval: timedelta = DEFAULT_RELOAD_INTERVAL
    heartbeat_interval: timedelta = DEFAULT_HEARTBEAT_INTERVAL
    dead_after: timedelta = DEFAULT_DEAD_AFTER
    log_level: str = DEFAULT_LOG_LEVEL
    # A job's `pause_after_failures` when its file does not say (0: no breaker).
    pause_after_failures: int = 0


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    initial_backoff: timedelta = DEFAULT_INITIAL_BACKOFF
    max_backoff: timedelta = DEFAULT_MAX_BACKOFF


@dataclass(frozen=True)
class CalendarSettings:
    """Business days for `bd` offsets: weekend weekdays (0 = Monday) and holidays."""

    weekend: frozenset[int] = frozenset({5, 6})
    holidays_country: str | None = None
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class AlertSettings:
    """`[alerts]`: when incidents open, and where their messages go.

    `targets` maps each named target to the environment variable or systemd credential that
    holds its Apprise URLs (never a URL); `heartbeat_url` names the one holding the heartbeat
    URL. `urls` (target name -> its URLs, space separated; the default target as
    `DEFAULT_TARGET`) and `heartbeat` are what those names held when the settings loaded:
    secrets, never shown (`url_sources` and `heartbeat_source` say where they came from).
    """

    late_after: timedelta = DEFAULT_LATE_AFTER
    uncertain_after: timedelta = DEFAULT_UNCERTAIN_AFTER
    store_down_after: timedelta = DEFAULT_STORE_DOWN_AFTER
    heartbeat_every: timedelta = DEFAULT_HEARTBEAT_EVERY
    template_check_every: timedelta = DEFAULT_TEMPLATE_CHECK_EVERY
    token_expiry_warning: timedelta = DEFAULT_TOKEN_EXPIRY_WARNING
    targets: Mapping[str, str] = field(default_factory=dict)
    heartbeat_url: str = HEARTBEAT_URL_VARIABLE
    urls: Mapping[str, Secret] = field(default_factory=dict, repr=False, metadata=_RESOLVED)
    url_sources: Mapping[str, str] = field(default_factory=dict, compare=False, metadata=_RESOLVED)
    heartbeat: Secret | None = field(default=None, repr=False, metadata=_RESOLVED)
    heartbeat_source: str | None = field(default=None, compare=False, metadata=_RESOLVED)
    # Files holding these secrets that their group or others can read.
    warnings: tuple[str, ...] = field(default=(), compare=False, metadata=_RESOLVED)

    @property
    def target_names(self) -> list[str]:
        """Every target a job may name: the default one and those of `[alerts.targets]`."""
        return [DEFAULT_TARGET, *sorted(self.targets)]

    @property
    def enabled(self) -> bool:
        """Whether any target has a URL: without one, alerts are off."""
        return bool(self.urls)


@dataclass(frozen=True)
class HttpSettings:
    """The daemon's HTTP listener (`/metrics`, `/healthz`, `/readyz`); off while `listen` is
    empty. `listen` is checked when the settings load: `host:port` (`[::1]:9477` for IPv6),
    on this machine only unless `allow_remote` (`listen_address` splits it)."""

    listen: str = ""
    allow_remote: bool = False
    max_job_series: int = DEFAULT_MAX_JOB_SERIES
    # The dashboard links a fire's remote id to Tallyfy through this pattern ({remote_id},
    # {organization_id}); empty: no link.
    tallyfy_web_url: str = ""

    def listen_address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when the listener is off."""
        return split_listen(self.listen) if self.listen else None


@dataclass(frozen=True)
class DashboardTokens:
    """The dashboard's tokens (docs/dashboard.md): `admin` signs in for actions, `read` only
    reads (needed for every page with `[http] allow_remote`). Secrets: `*_source` says where
    each came from, never the value."""

    admin: Secret | None = field(default=None, repr=False)
    admin_source: str | None = field(default=None, compare=False)
    read: Secret | None = field(default=None, repr=False)
    read_source: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Settings:
    """Every setting, validated; built once by `load_settings` and passed down."""

    store: StoreSettings
    tallyfy: TallyfySettings = TallyfySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    retry: RetrySettings = RetrySettings()
    calendar: CalendarSettings = CalendarSettings()
    alerts: AlertSettings = AlertSettings()
    http: HttpSettings = HttpSettings()
    dashboard: DashboardTokens = DashboardTokens()
    config_file: Path | None = None
    # "tallyfy.base_url" -> "the config file", "TALLYFY_BASE_URL in /etc/x/.env", "default",
    # ...: where each setting came from, for `doctor`; never a value (it may be a secret).
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)


def default_store_url(environ: Mapping[str, str]) -> str:
    """SQLite in systemd's StateDirectory, else in the XDG state directory."""
    state = environ.get("STATE_DIRECTORY")
    if state:
        base = Path(state.split(":")[0])
    else:
        xdg = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME", "~")) / ".local/state")
        base = Path(xdg).expanduser() / "tallyfy-scheduler"
    return f"sqlite:///{base / 'scheduler.db'}"


def find_config_file(explicit: Path | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """Where the config file is, by the documented search order; None means built-in defaults."""
    if explicit is not None:
        return explicit
    if environ.get("TALLYFY_SCHEDULER_CONFIG"):
        return Path(environ["TALLYFY_SCHEDULER_CONFIG"])
    for candidate in (cwd / "config.toml", SYSTEM_CONFIG_PATH):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    config_path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    db_url: str | None = None,
) -> Settings:
    """Build the frozen Settings from file, `.env` and environment.

    ConfigError lists every fault, each naming the file, key and value.
    """
    environ = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    path = find_config_file(config_path, environ, cwd)
    data = {} if path is None else _read_config_file(path)
    problems = Problems(str(path) if path else "<defaults>")
    from_dotenv = _read_dotenv(path, cwd, environ, problems)
    reader = _Reader(data, problems)
    tallyfy = reader.tallyfy(environ, from_dotenv)
    store_url = reader.store_url(environ, db_url)
    history_retention = reader.history_retention()
    scheduler = reader.scheduler()
    retry = reader.retry()
    calendar = reader.calendar()
    alerts = reader.alerts(environ, from_dotenv)
    dashboard = _dashboard_tokens(environ, from_dotenv, problems)
    http = reader.http()
    reader.no_unknown(
        data, "", {"tallyfy", "store", "scheduler", "retry", "calendar", "alerts", "http"}
    )
    problems.raise_if_any(ConfigError)
    return Settings(
        store=StoreSettings(url=store_url, history_retention=history_retention),
        tallyfy=tallyfy,
        scheduler=scheduler,
        retry=retry,
        calendar=calendar,
        alerts=alerts,
        http=http,
        dashboard=dashboard,
        config_file=path,
        origins=_origins(data, environ, from_dotenv, db_url, tallyfy.access_token_source, alerts),
    )


def _read_config_file(path: Path) -> dict[str, Any]:
    """The parsed TOML file; a file that cannot be read or parsed is a ConfigError at once."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(problem("config file not found", file=str(path))) from None
    except OSError as exc:
        raise ConfigError(problem(f"cannot read: {exc.strerror}", file=str(path))) from None
    except UnicodeDecodeError:
        raise ConfigError(problem("cannot read: not UTF-8 text", file=str(path))) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(problem(f"invalid TOML: {exc}", file=str(path))) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(
            problem("invalid TOML: arrays or tables nested too deeply", file=str(path))
        ) from None


def _read_dotenv(
    path: Path | None, cwd: Path, environ: dict[str, str], problems: Problems
) -> dict[str, Path]:
    """Fill `environ` from the `.env` beside the config file, or in `cwd` when there is none.

    Never the one in `cwd` when a config file is used: a `.env` wherever the command happens
    to run must not redirect an explicitly chosen config (issue 11: it sent the token to the
    `TALLYFY_BASE_URL` it named). It never overrides what the environment already says.
    Returns the variables it set, each with the file it came from.
    """
    env_file = path.parent / ".env" if path is not None else cwd / ".env"
    if not env_file.is_file():
        return {}
    try:
        values = dotenv_values(env_file, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problems.add(None, f"cannot read: {reason}", file=str(env_file))
        return {}
    from_dotenv: dict[str, Path] = {}
    for k, v in values.items():
        if v is not None and k not in environ:
            environ[k] = v
            from_dotenv[k] = env_file
    return from_dotenv


def _origins(
    data: Mapping[str, Any],
    environ: Mapping[str, str],
    from_dotenv: Mapping[str, Path],
    db_url: str | None,
    token_source: str | None,
    alerts: AlertSettings | None = None,
) -> dict[str, str]:
    """Where each setting came from, by the precedence of the module docstring.

    Every field of the section dataclasses is a key of the file, except the two that describe
    the token; a new key shows up here without being listed.
    """
    sections: dict[str, type] = {
        "tallyfy": TallyfySettings,
        "store": StoreSettings,
        "scheduler": SchedulerSettings,
        "retry": RetrySettings,
        "calendar": CalendarSettings,
        "http": HttpSettings,
        "alerts": AlertSettings,  # last: the alerts' secrets follow its keys
    }
    origins: dict[str, str] = {}
    for section, kind in sections.items():
        table = data.get(section, {})
        for f in fields(kind):
            if f.name in ("access_token_source", "access_token_warning") or f.metadata:
                continue
            key = f"{section}.{f.name}"
            variable = ENV_OVERRIDES.get(key)
            if key == "tallyfy.access_token":
                origins[key] = token_source or "not set"
            elif key == "store.url" and db_url:
                origins[key] = "--db"
            elif variable and environ.get(variable):
                dotenv = from_dotenv.get(variable)
                origins[key] = f"{variable} in {dotenv or 'the environment'}"
            else:
                origins[key] = "the config file" if f.name in table else "default"
    if alerts is not None:
        # Where each target's URLs came from (never the URLs: they hold secrets).
        for name in alerts.target_names:
            origins[f"alerts.urls.{name}"] = alerts.url_sources.get(name, "not set")
        origins["alerts.heartbeat"] = alerts.heartbeat_source or "not set"
    return origins


# -- zones --------------------------------------------------------------------------------------
UNKNOWN_ZONE = "unknown time zone (use an IANA name such as 'Europe/London')"
# Files of the tz database that load as zones but are the zone of no place. `zoneinfo`'s own
# list already leaves out `posixrules`, `right/` and `posix/`; they are named here too so that
# the refusal says why rather than "unknown".
_NOT_A_PLACE = {
    "localtime": "'localtime' follows the host's zone setting, which can change under the job",
    "Factory": "'Factory' is a placeholder of the tz database, not the zone of a place",
    "posixrules": "'posixrules' is a template file of the tz database, not a zone",
}
_NOT_A_PLACE_PREFIXES = {
    "right/": "'right/' zones count leap seconds, which schedules and Tallyfy do not",
    "posix/": "'posix/' zones are copies: write the name without 'posix/'",
}


@cache
def _known_zones() -> frozenset[str]:
    """The IANA names this machine's tz database (or the tzdata package) holds; read once."""
    return frozenset(zoneinfo.available_timezones())


def zone_problem(name: object) -> str | None:
    """Why `name` is not a zone a job may be scheduled in, or None when it is one.

    The one rule, for job files' `timezone`, `[scheduler] timezone` and `next --tz` (docs/
    jobs.md): a name of `zoneinfo.available_timezones()` (the IANA names this machine knows,
    links such as `US/Eastern` and fixed zones such as `Etc/GMT+5` included), except
    `localtime` and `Factory`, which it lists but which are the zone of no place.
    """
    if isinstance(name, str):
        why = _NOT_A_PLACE.get(name) or next(
            (why for prefix, why in _NOT_A_PLACE_PREFIXES.items() if name.startswith(prefix)),
            None,
        )
        if why:
            return f"not a zone to schedule in: {why} (use an IANA name such as 'Europe/London')"
        if name in _known_zones():
            return None
    return UNKNOWN_ZONE


def is_loopback(host: str) -> bool:
    """Whether `host` (a URL's host name) is this machine: `localhost` (and names under it,
    RFC 6761), or a loopback address (127.0.0.0/8, ::1). Names are not resolved."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(text: str) -> tuple[str, int]:
    """`host:port` as (host, port); `[::1]:9477` for an IPv6 address; an empty host (`:9477`)
    is every address. ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, such as 127.0.0.1:9477 or [::1]:9477")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets, such as [::1]:9477")
    return host, int(port)


def is_insecure(settings: TallyfySettings) -> bool:
    """Whether requests go over plain http:// to another machine (allowed, or not loaded)."""
    parts = urlsplit(settings.base_url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def _without_userinfo(url: str) -> str:
    """`url` with any user name and password before the host shown as `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***@" + url.rpartition("@")[2] if "@" in url else url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def is_valid_zone(name: object) -> bool:
    """True for a zone a job may be scheduled in (`zone_problem` says why not)."""
    return zone_problem(name) is None


# -- the token ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    secret: Secret | None = None
    source: str | None = None  # where it came from, safe to print
    warning: str | None = None  # the file holding it can be read by others


@dataclass(frozen=True)
class _TokenSource:
    key: str  # the variable a problem names
    label: str  # where the token came from, safe to print
    value: str | None = None  # the token itself, for a variable
    path: Path | None = None  # the file to read it from
    holder: Path | None = None  # the file that holds it (warned about when others can read it)


def _token_sources(
    environ: Mapping[str, str], from_dotenv: Mapping[str, Path]
) -> list[_TokenSource]:
    """Where the token may come from, in the order of the module docstring."""
    return _secret_sources("TALLYFY_ACCESS_TOKEN", CREDENTIAL_NAME, environ, from_dotenv)


def _secret_sources(
    variable: str, credential: str, environ: Mapping[str, str], from_dotenv: Mapping[str, Path]
) -> list[_TokenSource]:
    """Where a secret may come from, in the token's order (module docstring): `variable`, then
    `variable_FILE`, in the environment; the systemd credential `credential`; the two in the
    `.env` file."""
    file_variable = f"{variable}_FILE"

    def variables(in_dotenv: bool) -> list[_TokenSource]:
        found = []
        for name, value in (
            (variable, environ.get(variable)),
            (file_variable, environ.get(file_variable)),
        ):
            if not value or (name in from_dotenv) != in_dotenv:
                continue
            where = f" in {from_dotenv[name]}" if in_dotenv else ""
            if name == variable:
                label = f"{name}{where or ' in the environment'}"
                found.append(_TokenSource(name, label, value=value, holder=from_dotenv.get(name)))
            else:
                found.append(_TokenSource(name, f"{name}{where} ({value})", path=Path(value)))
        return found

    found_credential = []
    if environ.get("CREDENTIALS_DIRECTORY") and "/" not in credential:
        cred = Path(environ["CREDENTIALS_DIRECTORY"]) / credential
        if cred.exists():
            label = f"systemd credential '{credential}' ({cred})"
            found_credential.append(_TokenSource("CREDENTIALS_DIRECTORY", label, path=cred))
    return [*variables(in_dotenv=False), *found_credential, *variables(in_dotenv=True)]


def _read_token(
    environ: Mapping[str, str], problems: Problems, from_dotenv: Mapping[str, Path]
) -> _Token:
    """The token, where it came from, and a warning about the file holding it, if any.

    A source that holds only whitespace is passed over; a file that cannot be read is a
    problem naming it (and no token); so is a token that cannot be sent in an HTTP header,
    naming where it came from and never the token.
    """
    found = _read_secret(_token_sources(environ, from_dotenv), problems, what="token")
    if found.secret is None:
        return found
    fault = unsendable(found.secret.reveal())
    if fault:
        problems.add(
            found.source,
            f"the access token cannot be sent in an HTTP header: {fault} (only visible "
            "ASCII characters can be); set it again",
        )
        return _Token()
    return found


def _read_secret(sources: list[_TokenSource], problems: Problems, *, what: str) -> _Token:
    """The first source that holds something (surrounding whitespace stripped), where it came
    from, and a warning when the file holding it can be read by others; a file that cannot be
    read is a problem naming it (and nothing is read)."""
    for source in sources:
        if source.path is None:
            text = (source.value or "").strip()
        else:
            try:
                text = source.path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                reason = f"cannot read the {what} file: {exc.strerror}"
                problems.add(source.key, reason, file=str(source.path))
                return _Token()
        if text:
            holder = source.holder or source.path
            warning = _readable_by_others(holder, source.path is None, what) if holder else None
            return _Token(Secret(text), source.label, warning)
    return _Token()


def _dashboard_tokens(
    environ: Mapping[str, str], from_dotenv: Mapping[str, Path], problems: Problems
) -> DashboardTokens:
    """The dashboard's admin and read tokens, each read like the API token (module docstring)."""
    admin = _read_secret(
        _secret_sources(ADMIN_TOKEN_VARIABLE, ADMIN_TOKEN_CREDENTIAL, environ, from_dotenv),
        problems,
        what="admin token",
    )
    read = _read_secret(
        _secret_sources(READ_TOKEN_VARIABLE, READ_TOKEN_CREDENTIAL, environ, from_dotenv),
        problems,
        what="read token",
    )
    return DashboardTokens(
        admin=admin.secret,
        admin_source=admin.source,
        read=read.secret,
        read_source=read.source,
        warnings=tuple(w for w in (admin.warning, read.warning) if w),
    )


def unsendable(token: str) -> str | None:
    """Why `token` cannot go in an `Authorization: Bearer` header (RFC 6750's token is
    visible ASCII), naming the first bad character by position and kind, never by value;
    None if it can be sent."""
    for position, char in enumerate(token, start=1):
        if "!" <= char <= "~":
            continue
        if char in "\r\n":
            kind = "a line break"
        elif char.isspace() and char.isascii():
            kind = "white space"
        elif not char.isascii():
            kind = "not ASCII"
        else:
            kind = "a control character"
        return f"character {position} is {kind}"
    return None


def _readable_by_others(path: Path, dotenv: bool, what: str = "token") -> str | None:
    """A warning when users other than the file's owner may read it (mode & 0o044)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None  # it was read a moment ago; gone since is not worth a warning
    who = [
        name for bit, name in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "others")) if mode & bit
    ]
    if not who:
        return None
    holder = (
        f"the .env file {path}, which holds the {what}," if dotenv else f"the {what} file {path}"
    )
    return (
        f"{holder} is readable by {' and '.join(who)} (mode {mode:04o}): run `chmod 600 {path}` "
        "so that only its owner can read it"
    )


T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class _Reader:
    """Typed reads from the parsed TOML that record a Problem (file, key, value) per fault.

    One method per section of the file, each returning that section's settings.
    """

    def __init__(self, data: dict[str, Any], problems: Problems) -> None:
        self.data = data
        self.problems = problems

    def _bad(self, key: str, value: Any, message: str) -> None:
        self.problems.add(key, message, value)

    # - the sections -

    def tallyfy(
        self, environ: Mapping[str, str], from_dotenv: Mapping[str, Path]
    ) -> TallyfySettings:
        tallyfy = self.table("tallyfy")
        if "access_token" in tallyfy:
            self.problems.add(
                "tallyfy.access_token",
                "the token is never read from the config file: set TALLYFY_ACCESS_TOKEN "
                "(environment or .env) or a systemd credential 'tallyfy-token'",
            )
        token = _read_token(environ, self.problems, from_dotenv)
        # Read (and type-check) the file's values even when the environment overrides them.
        file_base_url = self.get(tallyfy, "tallyfy", "base_url", str, DEFAULT_BASE_URL)
        file_organization_id = self.get(tallyfy, "tallyfy", "organization_id", str, None)
        allow_insecure_http = self.get(tallyfy, "tallyfy", "allow_insecure_http", bool, False)
        base_url = environ.get("TALLYFY_BASE_URL") or file_base_url
        self.base_url(
            base_url,
            "TALLYFY_BASE_URL" if environ.get("TALLYFY_BASE_URL") else "tallyfy.base_url",
            allow_insecure_http,
        )
        settings = TallyfySettings(
            base_url=base_url,
            organization_id=environ.get("TALLYFY_ORGANIZATION_ID") or file_organization_id,
            access_token=token.secret,
            access_token_source=token.source,
            access_token_warning=token.warning,
            timeout=self.duration(tallyfy, "tallyfy", "timeout", DEFAULT_TIMEOUT),
            connect_timeout=self.duration(
                tallyfy, "tallyfy", "connect_timeout", DEFAULT_CONNECT_TIMEOUT
            ),
            request_deadline=self.duration(
                tallyfy, "tallyfy", "request_deadline", DEFAULT_REQUEST_DEADLINE
            ),
            max_response_bytes=self.positive_int(
                tallyfy, "tallyfy", "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES
            ),
            max_requests_per_minute=self.positive_int(
                tallyfy, "tallyfy", "max_requests_per_minute", DEFAULT_MAX_REQUESTS_PER_MINUTE
            ),
            allow_insecure_http=allow_insecure_http,
        )
        self.no_unknown(
            tallyfy,
            "tallyfy",
            {
                "base_url",
                "organization_id",
                "timeout",
                "connect_timeout",
                "request_deadline",
                "max_response_bytes",
                "max_requests_per_minute",
                "allow_insecure_http",
                "access_token",
            },
        )
        return settings

    def base_url(self, url: str, key: str, allow_insecure_http: bool) -> None:
        """The API root: http(s), no credentials in it (they would be shown wherever the URL
        is: history, `preview`, error messages), and plain http:// only to this machine
        unless allowed (the token would cross the network in clear text)."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            self._bad(key, _without_userinfo(url), "not a URL")
            return
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self._bad(key, _without_userinfo(url), "must be an http:// or https:// URL")
        elif "@" in parts.netloc:
            self._bad(
                key,
                _without_userinfo(url),
                "must not hold a user name or password (the access token is what authenticates)",
            )
        elif parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
            self._bad(
                key,
                url,
                "plain http:// to a host other than this machine sends the access token "
                "unencrypted: use https://, or set [tallyfy] allow_insecure_http = true",
            )

    def store_url(self, environ: Mapping[str, str], db_url: str | None) -> str:
        store = self.table("store")
        file_store_url = self.get(store, "store", "url", str, None)
        self.no_unknown(store, "store", {"url", "history_retention"})
        return (
            db_url
            or environ.get("TALLYFY_SCHEDULER_DB")
            or file_store_url
            or default_store_url(environ)
        )

    def history_retention(self) -> timedelta:
        return self.duration(
            self.table("store"), "store", "history_retention", DEFAULT_HISTORY_RETENTION
        )

    def not_negative_int(self, table: Mapping[str, Any], prefix: str, key: str) -> int:
        value = self.get(table, prefix, key, int, 0)
        if value < 0:
            self._bad(f"{prefix}.{key}", value, "must be 0 (off) or a whole number above 0")
            return 0
        return value

    def scheduler(self) -> SchedulerSettings:
        sched = self.table("scheduler")
        zone = self.get(sched, "scheduler", "timezone", str, DEFAULT_TIMEZONE)
        zone_fault = zone_problem(zone)
        if zone_fault:
            self._bad("scheduler.timezone", zone, zone_fault)
        settings = SchedulerSettings(
            timezone=zone,
            catch_up=self.choice(sched, "scheduler", "catch_up", CatchUpPolicy, DEFAULT_CATCH_UP),
            catch_up_window=self.duration(
                sched, "scheduler", "catch_up_window", DEFAULT_CATCH_UP_WINDOW
            ),
            max_concurrent_fires=self.positive_int(
                sched, "scheduler", "max_concurrent_fires", DEFAULT_MAX_CONCURRENT_FIRES
            ),
            shutdown_grace=self.duration(
                sched, "scheduler", "shutdown_grace", DEFAULT_SHUTDOWN_GRACE
            ),
            reload_interval=self.duration(
                sched, "scheduler", "reload_interval", DEFAULT_RELOAD_INTERVAL
            ),
            heartbeat_interval=self.duration(
                sched, "scheduler", "heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL
            ),
            dead_after=self.duration(sched, "scheduler", "dead_after", DEFAULT_DEAD_AFTER),
            log_level=self._convert(sched, "scheduler", "log_level", DEFAULT_LOG_LEVEL, _log_level),
            pause_after_failures=self.not_negative_int(sched, "scheduler", "pause_after_failures"),
        )
        if settings.dead_after < 2 * settings.heartbeat_interval:
            self._bad(
                "scheduler.dead_after",
                format_duration(settings.dead_after),
                "must be at least twice scheduler.heartbeat_interval: a live daemon whose "
                "heartbeat is a little late must not be taken for dead (its fires would be "
                "adopted by another daemon)",
            )
        self.no_unknown(
            sched,
            "scheduler",
            {
                "timezone",
                "catch_up",
                "catch_up_window",
                "max_concurrent_fires",
                "shutdown_grace",
                "reload_interval",
                "heartbeat_interval",
                "dead_after",
                "log_level",
                "pause_after_failures",
            },
        )
        return settings

    def retry(self) -> RetrySettings:
        retry = self.table("retry")
        settings = RetrySettings(
            max_attempts=self.positive_int(retry, "retry", "max_attempts", DEFAULT_MAX_ATTEMPTS),
            initial_backoff=self.duration(
                retry, "retry", "initial_backoff", DEFAULT_INITIAL_BACKOFF
            ),
            max_backoff=self.duration(retry, "retry", "max_backoff", DEFAULT_MAX_BACKOFF),
        )
        self.no_unknown(retry, "retry", {"max_attempts", "initial_backoff", "max_backoff"})
        return settings

    def calendar(self) -> CalendarSettings:
        cal = self.table("calendar")
        settings = CalendarSettings(
            weekend=self.weekdays(cal, "calendar", "weekend", DEFAULT_WEEKEND),
            holidays_country=self.holidays_country(cal),
            holidays=self.dates(cal, "calendar", "holidays"),
        )
        self.no_unknown(cal, "calendar", {"weekend", "holidays_country", "holidays"})
        return settings

    def alerts(self, environ: Mapping[str, str], from_dotenv: Mapping[str, Path]) -> AlertSettings:
        alerts = self.table("alerts")
        targets: dict[str, str] = {}
        raw_targets = alerts.get("targets", {})
        if not isinstance(raw_targets, dict):
            self._bad("alerts.targets", raw_targets, 'must be a table: name = "VARIABLE"')
            raw_targets = {}
        for name, variable in raw_targets.items():
            key = f"alerts.targets.{name}"
            if not TARGET_NAME.fullmatch(name) or name == DEFAULT_TARGET:
                self._bad(
                    key,
                    variable,
                    f"a target's name is lowercase letters, digits, '_' and '-' (at most 32), "
                    f"and not {DEFAULT_TARGET!r}, the name of the target "
                    f"{ALERT_URLS_VARIABLE} sets",
                )
            elif self._secret_name(key, variable, "its Apprise URLs"):
                targets[name] = variable
        heartbeat_url = self.get(alerts, "alerts", "heartbeat_url", str, HEARTBEAT_URL_VARIABLE)
        if not self._secret_name("alerts.heartbeat_url", heartbeat_url, "the heartbeat URL"):
            heartbeat_url = HEARTBEAT_URL_VARIABLE
        # The secrets themselves: read like the token (environment, credential, .env).
        urls: dict[str, Secret] = {}
        sources: dict[str, str] = {}
        warnings: list[str] = []
        wanted = [(DEFAULT_TARGET, ALERT_URLS_VARIABLE, ALERT_URLS_CREDENTIAL)]
        wanted += [(name, variable, variable) for name, variable in targets.items()]
        for name, variable, credential in wanted:
            found = _read_secret(
                _secret_sources(variable, credential, environ, from_dotenv),
                self.problems,
                what="alert URLs",
            )
            if found.secret is not None and found.source is not None:
                urls[name], sources[name] = found.secret, found.source
                warnings += [found.warning] if found.warning else []
        heartbeat_credential = (
            HEARTBEAT_URL_CREDENTIAL if heartbeat_url == HEARTBEAT_URL_VARIABLE else heartbeat_url
        )
        heartbeat = _read_secret(
            _secret_sources(heartbeat_url, heartbeat_credential, environ, from_dotenv),
            self.problems,
            what="heartbeat URL",
        )
        warnings += [heartbeat.warning] if heartbeat.warning else []
        settings = AlertSettings(
            late_after=self.duration(alerts, "alerts", "late_after", DEFAULT_LATE_AFTER),
            uncertain_after=self.duration(
                alerts, "alerts", "uncertain_after", DEFAULT_UNCERTAIN_AFTER
            ),
            store_down_after=self.duration(
                alerts, "alerts", "store_down_after", DEFAULT_STORE_DOWN_AFTER
            ),
            heartbeat_every=self.duration(
                alerts, "alerts", "heartbeat_every", DEFAULT_HEARTBEAT_EVERY
            ),
            template_check_every=self.duration(
                alerts, "alerts", "template_check_every", DEFAULT_TEMPLATE_CHECK_EVERY
            ),
            token_expiry_warning=self.duration(
                alerts, "alerts", "token_expiry_warning", DEFAULT_TOKEN_EXPIRY_WARNING
            ),
            targets=targets,
            heartbeat_url=heartbeat_url,
            urls=urls,
            url_sources=sources,
            heartbeat=heartbeat.secret,
            heartbeat_source=heartbeat.source,
            warnings=tuple(warnings),
        )
        self.no_unknown(
            alerts,
            "alerts",
            {
                "late_after",
                "uncertain_after",
                "store_down_after",
                "heartbeat_every",
                "heartbeat_url",
                "template_check_every",
                "token_expiry_warning",
                "targets",
            },
        )
        return settings

    def _secret_name(self, key: str, value: Any, holds: str) -> bool:
        """Whether `value` names an environment variable or a credential (it must never be
        the secret itself: the config file is copied around, and a URL holds secrets)."""
        if isinstance(value, str) and SECRET_NAME.fullmatch(value):
            return True
        if isinstance(value, str) and ("://" in value or "@" in value):
            # Never echoed: it is a URL, whose user, password or token must not be shown.
            self.problems.add(
                key,
                f"must name the environment variable or systemd credential holding {holds}, "
                "never hold a URL: put the URL in that variable or credential",
            )
        else:
            self._bad(
                key,
                value,
                f"must name the environment variable or systemd credential holding {holds} "
                "(letters, digits, '_', '.', '-')",
            )
        return False

    def http(self) -> HttpSettings:
        table = self.table("http")
        listen = self.get(table, "http", "listen", str, "").strip()
        allow_remote = self.get(table, "http", "allow_remote", bool, False)
        settings = HttpSettings(
            listen=listen,
            allow_remote=allow_remote,
            max_job_series=self.positive_int(
                table, "http", "max_job_series", DEFAULT_MAX_JOB_SERIES
            ),
            tallyfy_web_url=self.web_url_pattern(table),
        )
        if listen:
            try:
                host, _port = split_listen(listen)
            except ValueError as exc:
                self._bad("http.listen", listen, str(exc))
            else:
                if not allow_remote and not is_loopback(host):
                    # /metrics names every job, and the next pages will show more: only this
                    # machine may ask unless someone decided otherwise.
                    self._bad(
                        "http.listen",
                        listen,
                        "not an address of this machine only (127.0.0.1, [::1], localhost): "
                        "other hosts could read the job names and the health; set "
                        "[http] allow_remote = true to allow it",
                    )
        # The dashboard's tokens are secrets, like the API token: refused unshown.
        for key, variable, credential in (
            ("admin_token", ADMIN_TOKEN_VARIABLE, ADMIN_TOKEN_CREDENTIAL),
            ("read_token", READ_TOKEN_VARIABLE, READ_TOKEN_CREDENTIAL),
        ):
            if key in table:
                self.problems.add(
                    f"http.{key}",
                    f"a token is never read from the config file: set {variable} "
                    f"(environment or .env), {variable}_FILE or a systemd credential "
                    f"'{credential}'",
                )
        self.no_unknown(
            {k: v for k, v in table.items() if k not in ("admin_token", "read_token")},
            "http",
            {"listen", "allow_remote", "max_job_series", "tallyfy_web_url"},
        )
        return settings

    def web_url_pattern(self, table: Mapping[str, Any]) -> str:
        """`[http] tallyfy_web_url`: an http(s) URL holding `{remote_id}` (or empty)."""
        pattern = self.get(table, "http", "tallyfy_web_url", str, "").strip()
        if not pattern:
            return ""
        if not pattern.startswith(("https://", "http://")) or "{remote_id}" not in pattern:
            self._bad(
                "http.tallyfy_web_url",
                pattern,
                "must be an http(s) URL holding {remote_id} (and may hold {organization_id}), "
                "e.g. https://go.tallyfy.com/{organization_id}/process/{remote_id}",
            )
            return ""
        return pattern

    # - typed reads -

    def table(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            self._bad(name, value, "must be a table")
            return {}
        return value

    def no_unknown(self, table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                full = f"{prefix}.{key}" if prefix else key
                self._bad(full, table[key], f"unknown key (known: {', '.join(sorted(known))})")

    def get(self, table: Mapping[str, Any], prefix: str, key: str, kind: type[T], default: T) -> T:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            self._bad(f"{prefix}.{key}", value, f"must be a {kind.__name__}")
            return default
        return value

    def positive_int(self, table: Mapping[str, Any], prefix: str, key: str, default: int) -> int:
        value = self.get(table, prefix, key, int, default)
        if value <= 0:
            self._bad(f"{prefix}.{key}", value, "must be a whole number greater than 0")
            return default
        return value

    def duration(
        self, table: Mapping[str, Any], prefix: str, key: str, default: timedelta
    ) -> timedelta:
        value = self._convert(table, prefix, key, default, parse_duration)
        name = f"{prefix}.{key}"
        if value > MAX_DURATION:
            self._bad(name, table[key], f"at most {format_duration(MAX_DURATION)}")
            return default
        if not value and name in POSITIVE_DURATIONS:
            self._bad(name, table[key], "must be longer than 0s")
            return default
        return value

    def choice(
        self, table: Mapping[str, Any], prefix: str, key: str, kind: type[E], default: E
    ) -> E:
        def convert(text: str) -> E:
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"must be one of {', '.join(m.value for m in kind)}") from None

        return self._convert(table, prefix, key, default, convert)

    def _convert(
        self,
        table: Mapping[str, Any],
        prefix: str,
        key: str,
        default: T,
        convert: Callable[[str], T],
    ) -> T:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, str):
            self._bad(f"{prefix}.{key}", value, "must be a string")
            return default
        try:
            return convert(value)
        except ValueError as exc:
            self._bad(f"{prefix}.{key}", value, str(exc))
            return default

    def weekdays(
        self, table: Mapping[str, Any], prefix: str, key: str, default: tuple[str, ...]
    ) -> frozenset[int]:
        value = table.get(key, list(default))
        names = {n.lower(): i for i, n in enumerate(WEEKDAY_NAMES)}
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._bad(
                f"{prefix}.{key}", value, "must be a list of day names such as ['Sat', 'Sun']"
            )
            return frozenset({5, 6})
        out = set()
        for v in value:
            if v[:3].lower() not in names or len(v) < 3:
                self._bad(f"{prefix}.{key}", v, "not a day name (Mon, Tue, ..., Sun)")
            else:
                out.add(names[v[:3].lower()])
        if len(out) == 7:
            self._bad(f"{prefix}.{key}", value, "every day is a weekend: no business days remain")
        return frozenset(out)

    def dates(self, table: Mapping[str, Any], prefix: str, key: str) -> frozenset[date]:
        value = table.get(key, [])
        if not isinstance(value, list):
            self._bad(f"{prefix}.{key}", value, "must be a list of dates such as ['2026-12-24']")
            return frozenset()
        out = set()
        for v in value:
            # A TOML date, or a string of one; not a date-time (a datetime is a date subclass,
            # and would never equal a day), nor a number that happens to parse (20261224).
            if isinstance(v, date) and not isinstance(v, datetime):
                out.add(v)
                continue
            try:
                if not isinstance(v, str):
                    raise ValueError(v)
                out.add(date.fromisoformat(v))
            except ValueError:
                self._bad(f"{prefix}.{key}", v, "not a date (YYYY-MM-DD)")
        return frozenset(out)

    def holidays_country(self, table: Mapping[str, Any]) -> str | None:
        value = self.get(table, "calendar", "holidays_country", str, None)
        if value is None:
            return None
        import holidays

        if value.upper() not in holidays.list_supported_countries():
            self._bad(
                "calendar.holidays_country",
                value,
                "not a country code the 'holidays' package knows (e.g. 'US', 'GB', 'DE')",
            )
            return None
        return value.upper()


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level
