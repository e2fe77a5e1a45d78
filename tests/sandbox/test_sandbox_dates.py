"""The sandbox's request-date parser against the client's: two readings of one contract.

`tallyfy_sandbox.dates.parse_request_date` was written from tallyfy-api.md, independently of
`scheduler.client.parse_request_date` (a scanner over fixed positions, not the client's
regular expressions and `fromisoformat`), so that a mistake in one shows as a disagreement,
the way croniter checks the schedule engine. Both must:

- read every documented form (`...Z` with or without a fraction, `YYYY-MM-DD HH:MM:SS` as
  UTC, ISO 8601 with a `+HH:MM`/`-HH:MM` offset) as the same instant;
- agree on every near miss (a documented form with a few characters replaced, inserted or
  deleted, padded with whitespace) and on arbitrary text: both accept it as the same
  instant, or both refuse it with a ValueError. Any other exception fails the test.

The one deliberate difference (`_deliberate_difference`): a fraction of more than six digits.
ISO 8601 sets no limit and .NET's round-trip format sends seven, so the sandbox, modelling the
API, accepts it and keeps microseconds as PHP does; the client refuses it, because it checks
values the user wrote (templatecheck) and a value it cannot hold exactly is better flagged.
A false alarm there costs a user one edit; the other way round would cost a failed fire.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scheduler.client import parse_request_date as client_parse
from tallyfy_sandbox.dates import InvalidDate
from tallyfy_sandbox.dates import parse_request_date as sandbox_parse

Outcome = tuple[str, datetime | None]
REFUSED: Outcome = ("refused", None)
MAX_OFFSET_MINUTES = 23 * 60 + 59
# Interesting characters for near misses: the grammar's own, their look-alikes, other digits
# (Arabic-Indic, fullwidth), ASCII and non-ASCII spaces, a NUL.
NEAR_MISS_CHARS = "0123456789-:T Zz+.t,/\t\n\x0b\x00\x1c\x85\xa0\u2003\u3000\u0663\uff11"
PADDING = ["", " ", "\t", "\r\n", "\x0b\x0c", "\x1c", "\x85", "\xa0", "\u2003", "\ufeff"]


def outcome(parse: Callable[[Any], datetime], value: Any) -> Outcome:
    """Accepted with its instant, or refused; any other exception propagates.

    The client refuses with ValueError; the sandbox with its InvalidDate (a ValueError),
    the one error its validation turns into a 422: anything else would be a 500.
    """
    refusal = InvalidDate if parse is sandbox_parse else ValueError
    try:
        return ("accepted", parse(value))
    except refusal:
        return REFUSED


# --- documented forms -------------------------------------------------------------------


def _truncate(dt: datetime, digits: int) -> datetime:
    unit = 10 ** (6 - digits)
    return dt.replace(microsecond=dt.microsecond // unit * unit)


def _fraction(dt: datetime, digits: int) -> str:
    return "" if digits == 0 else "." + f"{dt.microsecond:06d}"[:digits]


def _offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


@st.composite
def documented_dates(draw: st.DrawFn) -> tuple[str, datetime]:
    """(text in one documented form, the instant it names)."""
    # Years 2-9998 keep every offset's UTC instant in range; the edges have their own test.
    wall = draw(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)))
    stamp = (
        f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d}"
        f"T{wall.hour:02d}:{wall.minute:02d}:{wall.second:02d}"
    )
    form = draw(st.sampled_from(["zulu", "spaced", "offset"]))
    if form == "spaced":
        return stamp.replace("T", " "), wall.replace(microsecond=0, tzinfo=UTC)
    digits = draw(st.integers(0, 6))
    instant = _truncate(wall, digits).replace(tzinfo=UTC)
    if form == "zulu":
        return stamp + _fraction(wall, digits) + "Z", instant
    minutes = draw(st.integers(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES))
    if draw(st.booleans()):
        minutes -= minutes % (60 if minutes >= 0 else -60)  # whole hours, the common case
    text = stamp + _fraction(wall, digits) + _offset(minutes)
    return text, instant - timedelta(minutes=minutes)


@settings(max_examples=400, deadline=None)
@given(documented_dates())
@example(("2026-03-08T07:00:00Z", datetime(2026, 3, 8, 7, tzinfo=UTC)))
@example(("2026-03-08T07:00:00.000Z", datetime(2026, 3, 8, 7, tzinfo=UTC)))
@example(("2026-03-08 07:00:00", datetime(2026, 3, 8, 7, tzinfo=UTC)))
@example(("2026-03-08T02:00:00-05:00", datetime(2026, 3, 8, 7, tzinfo=UTC)))
@example(("2024-02-29T23:59:59.999999-00:00", datetime(2024, 2, 29, 23, 59, 59, 999999, UTC)))
def test_both_read_every_documented_form_as_the_same_instant(case: tuple[str, datetime]) -> None:
    text, instant = case
    assert sandbox_parse(text) == instant
    assert client_parse(text) == instant
    assert sandbox_parse(text).utcoffset() == client_parse(text).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+00:01",
        "0001-01-01T00:59:59+01:00",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:30:00.5-23:59",
    ],
    ids=["year1-plus-minute", "year1-plus-hour", "year9999-minus-minute", "year9999-minus-day"],
)
def test_both_refuse_an_instant_the_offset_moves_out_of_years_1_to_9999(text: str) -> None:
    """Both must refuse with a ValueError (the 422 path), not crash with an OverflowError."""
    assert outcome(sandbox_parse, text) == REFUSED
    assert outcome(client_parse, text) == REFUSED


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T01:00:00+01:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)),
        ("9999-12-31T22:59:59-01:00", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
    ids=["first", "first-via-offset", "last", "last-via-offset"],
)
def test_both_accept_the_first_and_last_representable_instants(
    text: str, instant: datetime
) -> None:
    assert sandbox_parse(text) == client_parse(text) == instant


# --- near misses and arbitrary text -----------------------------------------------------


def _deliberate_difference(text: str, client: Outcome, sandbox: Outcome) -> bool:
    """The sandbox accepts a fraction of more than six digits, the client refuses it (above)."""
    if client != REFUSED or sandbox == REFUSED:
        return False
    long_fraction = re.search(r"\.([0-9]{7,})(?=[Z+-])", text, flags=re.ASCII)
    if long_fraction is None:
        return False
    # Cut to six digits, the client must read the instant the sandbox read.
    shortened = text[: long_fraction.start(1) + 6] + text[long_fraction.end(1) :]
    return outcome(client_parse, shortened) == sandbox


def _assert_agree(text: str) -> None:
    client, sandbox = outcome(client_parse, text), outcome(sandbox_parse, text)
    if _deliberate_difference(text, client, sandbox):
        return
    assert client == sandbox, f"{text!r}: client {client}, sandbox {sandbox}"


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A documented form with one to three characters replaced, inserted or deleted, padded."""
    chars = list(draw(documented_dates())[0])
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        at = draw(st.integers(0, len(chars) - (0 if op == "insert" else 1)))
        if op == "delete":
            del chars[at]
        else:
            char = draw(st.sampled_from(NEAR_MISS_CHARS))
            chars[at : at + (op == "replace")] = [char]
    if draw(st.booleans()):  # a long fraction, the deliberate difference
        at = "".join(chars).find(".")
        if at > 0:
            chars[at + 1 : at + 1] = list(draw(st.text("0123456789", min_size=6, max_size=12)))
    return draw(st.sampled_from(PADDING)) + "".join(chars) + draw(st.sampled_from(PADDING))


@settings(max_examples=1500, deadline=None)
@given(near_misses())
@example("٢٠٢٦-03-08 07:00:00")  # Arabic-Indic digits: the API reads ASCII digits only
@example("2026-03-08T07:00:00\u0663Z")
@example("\xa02026-03-08 07:00:00")  # a no-break space is not trimmed
@example("2026-03-08T07:00:00Z\x1c")  # nor an ASCII "file separator"
@example(" \t2026-03-08 07:00:00\r\n")  # ASCII whitespace is
@example("2026-03-08T07:00:00.1234567Z")  # the deliberate difference
@example("2026-03-08t07:00:00z")
@example("2026-03-08T07:00:00")  # no zone: refused (Decisions)
@example("2026-03-08T07:00:00+0100")
@example("2026-03-08T07:00:00+01")
@example("2026-03-08T07:00:00+24:00")
@example("2026-03-08T07:00:00+23:60")
@example("2026-03-08T24:00:00Z")
@example("2026-03-08T23:59:60Z")
@example("2026-02-29 07:00:00")
@example("2026-03-08 07:00:00.5")
@example("2026-03-08T07:00:00.Z")
@example("2026-03-08")
def test_both_agree_on_near_misses(text: str) -> None:
    _assert_agree(text)


@st.composite
def field_values(draw: st.DrawFn) -> str:
    """A documented form's shape with each field drawn around and beyond its range.

    Biased towards the calendar's edges (century years, February, days 28-31), where a
    hand-written day count goes wrong.
    """
    year = draw(st.integers(0, 9999) | st.sampled_from([1, 4, 100, 400, 1900, 2000, 2100, 9999]))
    month = draw(st.integers(0, 13) | st.just(2))
    day = draw(st.integers(0, 32) | st.integers(28, 31))
    hour, minute, second = (draw(st.integers(0, hi)) for hi in (25, 61, 61))
    date = f"{year:04d}-{month:02d}-{day:02d}"
    clock = f"{hour:02d}:{minute:02d}:{second:02d}"
    form = draw(st.sampled_from(["zulu", "spaced", "offset"]))
    if form == "spaced":
        return f"{date} {clock}"
    zone = "Z"
    if form == "offset":
        sign = draw(st.sampled_from("+-"))
        zone = f"{sign}{draw(st.integers(0, 25)):02d}:{draw(st.integers(0, 61)):02d}"
    return f"{date}T{clock}{zone}"


@settings(max_examples=1500, deadline=None)
@given(field_values())
@example("1900-02-29 12:00:00")
@example("2000-02-29T12:00:00Z")
@example("2026-04-31T12:00:00Z")
@example("0000-01-01T12:00:00Z")
def test_both_agree_on_every_field_value(text: str) -> None:
    _assert_agree(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40) | st.text(NEAR_MISS_CHARS, max_size=40))
def test_both_agree_on_arbitrary_text(text: str) -> None:
    _assert_agree(text)


@pytest.mark.parametrize(
    "value", [None, 0, 1772953200, 1.5, True, b"2026-03-08 07:00:00", ["2026-03-08 07:00:00"]]
)
def test_both_refuse_what_is_not_a_string(value: Any) -> None:
    assert outcome(sandbox_parse, value) == outcome(client_parse, value) == REFUSED


def test_the_deliberate_difference_is_real() -> None:
    """Pinned both ways, so it cannot go away (or spread) without this file changing."""
    text = "2026-03-08T07:00:00.1234567+01:00"
    assert sandbox_parse(text) == datetime(2026, 3, 8, 6, 0, 0, 123456, UTC)
    with pytest.raises(ValueError):
        client_parse(text)
    with pytest.raises(InvalidDate):
        sandbox_parse("2026-03-08T07:00:00.Z")
