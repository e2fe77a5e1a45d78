"""Request dates as the sandbox accepts them, and the one form it answers with.

Written from the Tallyfy API's documented date formats (summed up in docs/sandbox.md, "Dates"
in requests), independently of the product's client (`scheduler.client`), so that each
checks the other: a differential test (tests/sandbox/test_sandbox_dates.py) compares the two
on generated dates. It is a hand-written scanner over fixed positions, not a regular
expression, and it checks every range itself.

Accepted, after trimming ASCII whitespace (space, tab, CR, LF, VT, FF) at either end:

- ``2026-03-08T07:00:00Z``: ISO 8601 in UTC, the form the docs' task and launch examples send
  (D-task, D-launch); optionally with a decimal fraction, ``2026-03-08T07:00:00.000Z`` (the
  form of kick-off date values);
- ``2026-03-08 07:00:00``: the "RequestDate" form of the API guide, the legacy Swagger and
  the SDK (D-guide, PPC), read as UTC; no fraction, no zone;
- ``2026-03-08T02:00:00-05:00``: ISO 8601 with a numeric offset ``+HH:MM`` or ``-HH:MM``
  (``-00:00`` is UTC), optionally with a fraction.

Everything else is refused, the API answering 422: the product decided so ("Decisions")
where the digest of section 9 item 6 would also take an ISO instant without a zone, because
the real server may read such a value in the organization's zone, and a client that sends
one should find out here rather than in production. Also refused: lower-case ``t``/``z``,
offsets without the colon or without minutes, a date alone, hour 24, leap second 60, digits
other than ASCII 0-9, and instants outside years 1-9999 once the offset is applied.

A fraction may have any number of digits (ISO 8601 sets no limit; .NET's round-trip format
sends seven); the instant keeps microseconds and drops the rest, as PHP does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# What Laravel's TrimStrings middleware strips from every request string (PCRE `\s` without
# Unicode properties): the sandbox trims the same, and nothing else.
_TRIMMED = " \t\r\n\x0b\x0c"
_DIGITS = "0123456789"
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class InvalidDate(ValueError):
    """A request date the API does not accept; the message says what is wrong."""


def format_response_date(instant: datetime) -> str:
    """`2026-03-08T07:00:00.000Z`: the form the API answers with (section 9 item 6)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_request_date(value: Any) -> datetime:
    """A request date (module docstring) -> an aware datetime in UTC; InvalidDate otherwise."""
    if not isinstance(value, str):
        raise InvalidDate(f"not a string: {value!r}")
    text = value.strip(_TRIMMED)
    scan = _Scanner(text)
    year = scan.number(4)
    scan.literal("-")
    month = scan.number(2)
    scan.literal("-")
    day = scan.number(2)
    separator = scan.one_of("T ")
    hour = scan.number(2)
    scan.literal(":")
    minute = scan.number(2)
    scan.literal(":")
    second = scan.number(2)

    micro = 0
    offset_minutes = 0
    if separator == " ":
        scan.end()  # the RequestDate form: UTC, nothing more
    else:
        if scan.peek() == ".":
            scan.literal(".")
            micro = scan.fraction()
        zone = scan.one_of("Z+-")
        if zone != "Z":
            off_hours = scan.number(2)
            scan.literal(":")
            off_mins = scan.number(2)
            if off_hours > 23 or off_mins > 59:
                raise InvalidDate(f"offset out of range in {text!r}")
            offset_minutes = (off_hours * 60 + off_mins) * (1 if zone == "+" else -1)
        scan.end()

    if not 1 <= year <= 9999 or not 1 <= month <= 12:
        raise InvalidDate(f"no such month in {text!r}")
    if not 1 <= day <= _days_in(year, month):
        raise InvalidDate(f"no such day in {text!r}")
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidDate(f"no such time of day in {text!r}")
    try:
        # Cannot fail after the checks above; guarded so that no other error ever escapes.
        wall = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidDate(f"{exc}: {text!r}") from None
    try:
        return wall - timedelta(minutes=offset_minutes)
    except OverflowError:
        raise InvalidDate(f"outside years 1-9999 in UTC: {text!r}") from None


def _days_in(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


class _Scanner:
    """Reads `text` left to right; every mismatch raises InvalidDate naming the position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _fail(self, wanted: str) -> InvalidDate:
        return InvalidDate(f"expected {wanted} at position {self.pos} of {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def literal(self, char: str) -> None:
        if self.peek() != char:
            raise self._fail(repr(char))
        self.pos += 1

    def one_of(self, chars: str) -> str:
        char = self.peek()
        if not char or char not in chars:
            raise self._fail(f"one of {chars!r}")
        self.pos += 1
        return char

    def number(self, width: int) -> int:
        """Exactly `width` ASCII digits as an int."""
        value = 0
        for _ in range(width):
            char = self.peek()
            if not char or char not in _DIGITS:
                raise self._fail(f"{width} digits 0-9")
            value = value * 10 + _DIGITS.index(char)
            self.pos += 1
        return value

    def fraction(self) -> int:
        """One or more ASCII digits after the decimal point, as microseconds (truncated)."""
        start = self.pos
        while self.peek() and self.peek() in _DIGITS:
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits:
            raise self._fail("a digit after the decimal point")
        micro = 0
        for char in (digits + "000000")[:6]:
            micro = micro * 10 + _DIGITS.index(char)
        return micro

    def end(self) -> None:
        if self.pos != len(self.text):
            raise self._fail("the end")
