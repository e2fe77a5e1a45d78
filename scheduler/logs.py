"""Logging: one event per line for journald, and a filter that keeps secrets out of every line.

A line reads ``ts level logger message key=value ...``::

    2026-03-08T07:00:00.123Z INFO scheduler.runner fire sent job=weekly-review status=201

`ts` is UTC with milliseconds; values with spaces, quotes or `=` are JSON-quoted; newlines and
other control characters are escaped (`escape_controls`, which every human output of the CLI
uses too), so a traceback stays on its line (`exc="..."`), journald never splits one event
into several, and no text from outside paints a terminal. There are no colours.

`RedactingFilter`, installed on the handler `configure_logging` puts on the root logger, sees
every record that reaches it, including those propagated from `urllib3` and `requests`. It
replaces each registered secret, and anything shaped like ``Bearer <x>`` or
``access_token=<x>``, with ``***`` in the message, its arguments, extra fields, tracebacks and
stack traces. `register_secret` adds to the process-wide list every such filter consults; the
API client registers its token when it is built, so no code path has to remember to.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "***"

# `Bearer <token>` in any case, as in an Authorization header or a curl command line.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[^\s'\",;]+")
# OAuth-style keys in JSON bodies, form bodies or query strings.
_KEYED = re.compile(
    r"(?i)(\"?\b(?:access_token|refresh_token|client_secret)\"?\s*[:=]\s*\"?)([^\"&\s,;}]+)"
)

_registry: set[str] = set()
_registry_lock = threading.Lock()

# Attributes every LogRecord has; anything else on a record came from `extra=` and is shown
# as key=value.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# What must never reach a terminal or a journal raw: it breaks a line, moves the cursor,
# paints the screen or reorders what is shown. The C0 controls, DEL, the C1 controls (0x9b is
# a CSI on its own), the Unicode line and paragraph separators, and the bidirectional
# embeddings, overrides and isolates.
UNSAFE_CHARACTERS = frozenset(
    [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F)]
    + [*range(0x2066, 0x206A)]
)
_SHOWN = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in UNSAFE_CHARACTERS} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
_SHOWN_KEEPING_TABS = {c: v for c, v in _SHOWN.items() if c != ord("\t")}
# In JSON text, as JSON writes them: json.dumps escapes the C0 controls inside strings itself,
# and the others outside strings are its own layout (the line breaks of `indent=2`).
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in UNSAFE_CHARACTERS if c >= 0x20}
_BARE_VALUE = re.compile(r"[^\s=\"\\]+")


# Shorter values are not secrets worth the damage: hiding "t" would mangle every log line.
MIN_SECRET_LENGTH = 6


def register_secret(value: str) -> None:
    """Have every RedactingFilter hide `value` from now on (shorter than 6 chars: ignored)."""
    if len(value) >= MIN_SECRET_LENGTH:
        with _registry_lock:
            _registry.add(value)


def registered_secrets() -> frozenset[str]:
    """The secrets registered so far (for tests and diagnostics; never log these)."""
    with _registry_lock:
        return frozenset(_registry)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with registered and given secrets, and bearer-shaped credentials, as `***`."""
    known = registered_secrets().union(s for s in secrets if s)
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted(known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(rf"\1\2{REDACTED}", text)
    return _KEYED.sub(rf"\1{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record so that no secret reaches any output.

    The message is formatted once (`msg % args`) and redacted, and `args` cleared, so a
    secret passed as an argument is caught too. String extras, the formatted traceback and the
    stack trace are redacted as well. The filter never drops a record.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = frozenset(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A broken format string: keep everything visible, but redacted.
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)


class LineFormatter(logging.Formatter):
    """``ts level logger message key=value ...`` on one line, control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        message = escape_controls(record.getMessage(), keep_tabs=False)
        ts = datetime.fromtimestamp(record.created, UTC)
        parts = [
            ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            record.levelname,
            record.name,
            message,
        ]
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                parts.append(f"{key}={_value(value)}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(f"exc={_value(record.exc_text)}")
        if record.stack_info:
            parts.append(f"stack={_value(record.stack_info)}")
        return " ".join(p for p in parts if p)


# The name of the handler `configure_logging` installs (so a second call replaces it).
HANDLER_NAME = "tallyfy-scheduler"


def parse_level(level: int | str) -> int:
    """`"debug"`, `"INFO"`, `20` -> a logging level; ValueError names the accepted names."""
    if isinstance(level, int):
        return level
    value = logging.getLevelNamesMapping().get(level.strip().upper())
    if value is None:
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING or ERROR)")
    return value


def configure_logging(
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    *,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Send every log record to `stream` (default stderr) as one redacted line.

    Replaces the handler a previous call installed, so calling it twice is harmless. Returns
    the handler (tests read what it wrote).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(LineFormatter())
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    return handler


def escape_controls(text: str, *, keep_tabs: bool = True) -> str:
    """`text` as one line safe to show: every character of UNSAFE_CHARACTERS written as its
    escape (`\\n`, `\\x1b`, `\\u2028`), so that text from outside (an API's error message, a
    file) can neither split a line nor paint the terminal. Tabs are kept unless told (a log
    line escapes them too). Every human output, error message and log line goes through it.
    """
    return text.translate(_SHOWN_KEEPING_TABS if keep_tabs else _SHOWN)


def escape_json_controls(json_text: str) -> str:
    """JSON text (json.dumps with ensure_ascii=False) with the UNSAFE_CHARACTERS that JSON
    leaves raw (DEL, C1, separators, bidirectional controls) written as `\\uXXXX`: the same
    JSON value, which no terminal acts on."""
    return json_text.translate(_JSON_ESCAPES)


def _value(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if _BARE_VALUE.fullmatch(text) and text.isprintable():
        return text
    return escape_json_controls(json.dumps(text, ensure_ascii=False))
