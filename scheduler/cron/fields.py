"""One cron field's text -> the set of values it allows, as a bitmask (bit v set = value v).

Each comma-separated item is one of (docs/schedules.md, "Fields"):

    *        */S        N        N-M        N-M/S        H        H(N-M)       H/S    H(N-M)/S
    L        (day-of-month: the last day of the month)
    NL       (day-of-week: the last N-day of the month, e.g. 5L or FRIL)
    N#K      (day-of-week: the K-th N-day of the month, K in 1-5, e.g. 5#2 or FRI#2)

Deliberate differences from croniter: `N-N` is the single value N; a reversed range is an
error (no wrap-around); the bare `N/S` form is an error; last Friday is `5L`, not `L5`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

_MONTH_NAMES = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DAY_NAMES = "SUN MON TUE WED THU FRI SAT".split()


@dataclass(frozen=True, slots=True)
class FieldKind:
    """One of the six fields: its name in messages, its range, its names and its `H` range."""

    name: str
    lo: int
    hi: int
    names: Mapping[str, int]
    hash_lo: int
    hash_hi: int


SECOND = FieldKind("second", 0, 59, MappingProxyType({}), 0, 59)
MINUTE = FieldKind("minute", 0, 59, MappingProxyType({}), 0, 59)
HOUR = FieldKind("hour", 0, 23, MappingProxyType({}), 0, 23)
# A bare `H` in day-of-month picks from 1-28 so that the job fires in every month.
DAY_OF_MONTH = FieldKind("day-of-month", 1, 31, MappingProxyType({}), 1, 28)
MONTH = FieldKind(
    "month", 1, 12, MappingProxyType({n: i + 1 for i, n in enumerate(_MONTH_NAMES)}), 1, 12
)
# 0 and 7 are both Sunday (cronie); a bare `H` picks one of the seven days, 0-6.
DAY_OF_WEEK = FieldKind(
    "day-of-week", 0, 7, MappingProxyType({n: i for i, n in enumerate(_DAY_NAMES)}), 0, 6
)


class FieldError(ValueError):
    """One bad item of one field; the expression parser turns it into a ScheduleError."""

    def __init__(self, kind: FieldKind, token: str, reason: str) -> None:
        self.kind = kind
        self.token = token
        self.reason = reason
        super().__init__(f"{kind.name} field {token!r}: {reason}")


@dataclass(frozen=True, slots=True)
class ParsedField:
    """The values one field allows.

    `mask` has bit v set for each plain value v (day-of-week: 0-6, Sunday = 0).
    `last` is day-of-month `L`. `last_weekdays` has bit w set for day-of-week `wL`;
    `nth` has bit 8*w + k set for day-of-week `w#k`.
    """

    mask: int
    last: bool = False
    last_weekdays: int = 0
    nth: int = 0


_ASCII = re.ASCII
_STAR = re.compile(r"\*(?:/([0-9]+))?", _ASCII)
_HASHED = re.compile(r"H(?:\(([0-9A-Z]+)-([0-9A-Z]+)\))?(?:/([0-9]+))?", _ASCII)
_PLAIN = re.compile(r"([0-9A-Z]+)(?:-([0-9A-Z]+))?(?:/([0-9]+))?", _ASCII)
_LAST_WEEKDAY = re.compile(r"([0-9A-Z]+?)L", _ASCII)
_NTH_WEEKDAY = re.compile(r"([0-9A-Z]+)#([0-9]+)", _ASCII)


# Parsed fields without `H` do not depend on the seed: a few hundred distinct texts ("0", "*/5",
# "MON-FRI") cover most schedules, so they are parsed once. Keyed by the field's name because
# FieldKind holds a mapping proxy (unhashable before Python 3.12); errors are never stored.
_UNSEEDED: dict[tuple[str, str], ParsedField] = {}
_UNSEEDED_MAX = 8192


def parse_field(kind: FieldKind, text: str, seed: str = "") -> ParsedField:
    """Parse one field (any case); FieldError naming the field and the offending item.

    `seed` (the job id) fixes what `H` picks: the same job always gets the same value.
    """
    if "H" in text.upper():
        return _parse_field(kind, text, seed)
    key = (kind.name, text)
    parsed = _UNSEEDED.get(key)
    if parsed is None:
        parsed = _parse_field(kind, text, "")
        if len(_UNSEEDED) >= _UNSEEDED_MAX:
            _UNSEEDED.clear()  # crude but bounded; refilled by the texts in use
        _UNSEEDED[key] = parsed
    return parsed


def _parse_field(kind: FieldKind, text: str, seed: str) -> ParsedField:
    mask = 0
    last = False
    last_weekdays = 0
    nth = 0
    for raw in text.split(","):
        item = raw.upper()
        if item == "L" and kind is DAY_OF_MONTH:
            last = True
            continue
        if kind is DAY_OF_WEEK:
            m = _NTH_WEEKDAY.fullmatch(item)
            if m:
                weekday = _weekday(kind, raw, m.group(1))
                k = int(m.group(2))
                if not 1 <= k <= 5:
                    raise FieldError(kind, raw, f"#{k}: the week of the month must be 1-5")
                nth |= 1 << (8 * weekday + k)
                continue
            m = _LAST_WEEKDAY.fullmatch(item)
            if m and not item.startswith("H"):
                last_weekdays |= 1 << _weekday(kind, raw, m.group(1))
                continue
        mask |= _parse_item(kind, raw, item, seed)
    if kind is DAY_OF_WEEK and mask >> 7 & 1:
        mask = (mask | 1) & 0x7F  # 7 is Sunday too
    return ParsedField(mask, last, last_weekdays, nth)


def _parse_item(kind: FieldKind, raw: str, item: str, seed: str) -> int:
    """One list item that denotes plain values -> bitmask."""
    if item == "":
        raise FieldError(kind, raw, "empty list item")
    if kind is DAY_OF_MONTH and "L" in item:
        raise FieldError(kind, raw, "only a bare L (the last day of the month) is allowed")
    m = _STAR.fullmatch(item)
    if m:
        step = _step(kind, raw, m.group(1))
        return _span(kind.lo, kind.hi, step)
    m = _HASHED.fullmatch(item)
    if m:
        return _hashed(kind, raw, m.group(1), m.group(2), m.group(3), seed)
    m = _PLAIN.fullmatch(item)
    if not m:
        raise FieldError(kind, raw, "not a value, range, step, * or H")
    start = _value(kind, raw, m.group(1))
    if m.group(2) is None:
        if m.group(3) is not None:
            hint = f"write {m.group(1)}-{kind.hi}/{m.group(3)} or */{m.group(3)}"
            raise FieldError(kind, raw, f"a step needs a range or * ({hint})")
        return 1 << start
    end = _value(kind, raw, m.group(2))
    if end < start:
        raise FieldError(kind, raw, f"range {start}-{end} is reversed (ranges do not wrap around)")
    return _span(start, end, _step(kind, raw, m.group(3)))


def _hashed(
    kind: FieldKind,
    raw: str,
    lo_text: str | None,
    hi_text: str | None,
    step_text: str | None,
    seed: str,
) -> int:
    """`H`, `H(N-M)`, `H/S`, `H(N-M)/S`: a value (or a phase of the step) fixed by the seed."""
    lo, hi = kind.hash_lo, kind.hash_hi
    if lo_text is not None and hi_text is not None:
        lo = _value(kind, raw, lo_text)
        hi = _value(kind, raw, hi_text)
        if hi < lo:
            raise FieldError(kind, raw, f"range {lo}-{hi} is reversed (ranges do not wrap around)")
    # sha256, never hash(): the value must be the same in every process and Python version.
    digest = hashlib.sha256(f"{seed}|{kind.name}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    if step_text is None:
        return 1 << (lo + number % (hi - lo + 1))
    step = _step(kind, raw, step_text)
    # Jenkins-style: the phase is picked within the first step, then every step to the end.
    phase = number % min(step, hi - lo + 1)
    return _span(lo + phase, hi, step)


def _span(start: int, end: int, step: int) -> int:
    """Bitmask of start, start+step, ... <= end."""
    mask = 0
    for v in range(start, end + 1, step):
        mask |= 1 << v
    return mask


def _step(kind: FieldKind, raw: str, text: str | None) -> int:
    if text is None:
        return 1
    step = int(text)
    if step < 1:
        raise FieldError(kind, raw, "step must be at least 1")
    return step


def _value(kind: FieldKind, raw: str, text: str) -> int:
    """A number or a name in this field's range."""
    if text.isdigit():
        value = int(text)
    elif text in kind.names:
        value = kind.names[text]
    elif kind.names:
        raise FieldError(kind, raw, f"unknown name {text!r}")
    else:
        raise FieldError(kind, raw, f"{text!r} is not a number")
    if not kind.lo <= value <= kind.hi:
        raise FieldError(kind, raw, f"{value} is out of range {kind.lo}-{kind.hi}")
    return value


def _weekday(kind: FieldKind, raw: str, text: str) -> int:
    """A day-of-week number or name, 0-6 (7 is Sunday)."""
    return _value(kind, raw, text) % 7
