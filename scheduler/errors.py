"""One error tree for the whole package.

::

    SchedulerError
    ├── InvalidInput (ValueError)        bad user input; carries one or more Problems
    │   ├── ConfigError                  config file, .env or environment
    │   ├── DefinitionError              job files (TOML, keys, types, values)
    │   ├── ScheduleError                a cron expression (names the field and value)
    │   ├── TimeExpressionError          `+2bd@17:00` and friends
    │   ├── TemplateError                `{fire:%d %b}` and friends
    │   └── FireRejected                 a fire's request cannot be built (run_from_job: no launch)
    ├── NotReady                         a fire cannot be sent yet (its launch is still open)
    ├── FireFailed                       a manual fire or backfill did not succeed; one line each
    ├── StoreError                       the database
    │   ├── SchemaError                  store missing, too old or from a newer version
    │   ├── StoreUnavailable             locked, disk full, unreachable (transient)
    │   ├── JobNotFound (LookupError)
    │   └── FireNotFound (LookupError)
    └── ApiError                         one request to Tallyfy, classified once in client.py
        ├── NotSent                      connect failure: nothing left us, safe to retry
        ├── RateLimited                  429: not applied; retry after `retry_after`
        ├── Uncertain                    5xx / read timeout / dropped after sending: read back first
        └── PermanentApiError            other 4xx: the request is wrong; never retried
            └── AuthenticationFailed     401: the token is missing, expired or revoked

Whether to retry is data on the error (`ApiError.transient`), never decided by catching
`requests` exceptions outside `client.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler.logs import escape_controls


@dataclass(frozen=True)
class Problem:
    """One fault in user input: where it is, which key, which value, what is wrong."""

    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None
    value: Any = None
    has_value: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        where = self.file or ""
        if self.file and self.line is not None:
            where = f"{self.file}:{self.line}"
        parts = [p for p in (where, self.key) if p]
        head = ": ".join(parts)
        if self.has_value:
            head = f"{head} = {self.value!r}" if head else repr(self.value)
        text = f"{head}: {self.message}" if head else self.message
        # One problem is one line (cli.md): user text quoted in a message or a key may hold
        # line breaks, which must not split it into lines that name no file (nor escapes
        # that paint the terminal).
        return escape_controls(text)


def problem(
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    key: str | None = None,
    value: Any = ...,
) -> Problem:
    """Build a Problem; pass `value` to have it shown (even when it is None)."""
    if value is ...:
        return Problem(message, file, line, key)
    return Problem(message, file, line, key, value, has_value=True)


KeyPath = tuple[str, ...]  # a key inside a document, one part per table: ("action", "owners")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted_key(path: KeyPath) -> str:
    """A key path as TOML writes it: bare parts as they are, others quoted (`a."b.c"`), so a
    key holding a dot, a space or a line break is still one unambiguous key in a message."""
    return ".".join(
        part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False) for part in path
    )


class Problems(list[Problem]):
    """The one way faults in user input are collected: config, job definitions, template checks.

    Holds the Problems found in one input, in the order found. `file` names the input (one
    Problem may name another file); `lines` maps key paths to their line in it
    (`definitions.key_lines`), so that a Problem at a key gets the line of that key or of its
    nearest enclosing table; a string value longer than `shown_max` characters is shown cut
    short (the file has it all). It is a plain list of Problems too, so `len()` stays cheap
    on the validator's hot path and `InvalidInput` takes it as it is.
    """

    __slots__ = ("file", "lines", "shown_max")

    def __init__(
        self,
        file: str | None = None,
        *,
        lines: Mapping[KeyPath, int] | None = None,
        shown_max: int | None = None,
    ) -> None:
        # (list.__init__ is not called: a new list is already empty.)
        self.file = file
        self.lines = lines
        self.shown_max = shown_max

    def add(
        self,
        key: KeyPath | str | None,
        message: str,
        value: Any = ...,
        *,
        file: str | None = None,
    ) -> None:
        """Record one Problem at `key`: a key path (placed on its line), a dotted key as it is
        to be shown, or None; pass `value` to have it shown (even when it is None)."""
        line = None
        if isinstance(key, tuple):
            line = self.line_of(key)
            key = dotted_key(key)
        shown_max = self.shown_max
        if shown_max is not None and isinstance(value, str) and len(value) > shown_max:
            value = f"{value[: shown_max // 2]}... ({len(value)} characters)"
        self.append(problem(message, file=file or self.file, line=line, key=key, value=value))

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of the nearest table holding it; None when not known."""
        if not self.lines:
            return None
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def raise_if_any(self, error: type[InvalidInput]) -> None:
        """Raise `error` with every Problem collected, if there is one."""
        if self:
            raise error(list(self))


class SchedulerError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInput(SchedulerError, ValueError):
    """User input that cannot be accepted; `problems` lists every fault found."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def located(self, *, file: str | None = None, key: str | None = None) -> InvalidInput:
        """The same error with `file` (and a key prefix) filled in where missing."""
        out: list[Problem] = []
        for p in self.problems:
            k = p.key
            if key:
                k = f"{key}.{k}" if k else key
            out.append(
                Problem(p.message, p.file or file, p.line, k, p.value, has_value=p.has_value)
            )
        return type(self)(out)


class ConfigError(InvalidInput):
    """A bad configuration value: names the file, key and value."""


class DefinitionError(InvalidInput):
    """One or more bad job files."""


class ScheduleError(InvalidInput):
    """An invalid or never-firing cron expression; the message names the field and value."""


class TimeExpressionError(InvalidInput):
    """An invalid time expression such as `+2xd`."""


class TemplateError(InvalidInput):
    """A template that is not allowed: unknown name, attribute/index access, conversion."""


class FireRejected(InvalidInput):
    """The request for this fire cannot be built (e.g. run_from_job has no launch yet)."""


class NotReady(SchedulerError):
    """A fire that cannot be sent yet, but may be later: what it needs is still on its way (a
    one-off task waiting for the launch it attaches to). The message says what it waits for."""


class FireFailed(SchedulerError):
    """A manual fire or backfill did not succeed (exit 1); one line per fire, saying why."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = tuple(lines)
        super().__init__("\n".join(self.lines))


class StoreError(SchedulerError):
    """The store failed."""


class SchemaError(StoreError):
    """The store's schema is missing, older than this version (run `init`), or newer."""


class StoreUnavailable(StoreError):
    """The database is locked, full or unreachable; try again later, claim nothing meanwhile."""


class JobNotFound(StoreError, LookupError):
    """No stored job has this id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


class FireNotFound(StoreError, LookupError):
    """No fire has this id."""

    def __init__(self, fire_id: int) -> None:
        self.fire_id = fire_id
        super().__init__(f"no fire with id {fire_id}")


class ApiError(SchedulerError):
    """The outcome of one request that did not succeed.

    `transient` says whether the same request may succeed later; `status` is the HTTP status
    when there was a response. Messages never contain the access token.
    """

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        field_errors: dict[str, list[str]] | None = None,
        raw_body: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.field_errors = dict(field_errors or {})
        self.raw_body = raw_body
        self.request_id = request_id
        super().__init__(self.describe())

    def describe(self) -> str:
        text = f"HTTP {self.status}: {self.message}" if self.status else self.message
        for name, msgs in self.field_errors.items():
            text += f"; {name}: {', '.join(msgs)}"
        return text


class NotSent(ApiError):
    """The request never left (connection refused, DNS, connect timeout): safe to send again."""

    transient = True


class RateLimited(ApiError):
    """429: the server did not apply the request; retry after `retry_after` seconds."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class Uncertain(ApiError):
    """The request may have been applied (5xx, read timeout, connection dropped after sending).

    Never resend before reading back: see guarantees.md, "Reconcile".
    """

    transient = True


class PermanentApiError(ApiError):
    """A 4xx other than 429: the request is wrong and will stay wrong."""


class AuthenticationFailed(PermanentApiError):
    """401: the access token is missing, expired or revoked."""
