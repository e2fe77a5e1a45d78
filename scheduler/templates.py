"""Safe templates for names, titles, summaries and kick-off values (docs/jobs.md).

Syntax: literal text with placeholders `{NAME}` or `{NAME:FORMAT}`; `{{` and `}}` are literal
braces. NAME is one of the allowed names (`FIRE_NAMES` by default). FORMAT is a strftime
pattern, allowed only on instants (`fire`, `fire_utc`, `deadline`), made of literal text and
the directives in `STRFTIME_DIRECTIVES`, at most `MAX_FORMAT_LENGTH` characters.

Templates are user text, so they are never given to `str.format`/`format_map` (which can
reach attributes and globals: `{0.__globals__}`) or to `datetime.strftime` (whose `%a`/`%b`
follow the process locale and whose directive set varies by platform). `parse_template`
tokenizes the text itself and rejects, when the job is applied, everything but the grammar
above; `Template.render` then substitutes values from its own directive table, with fixed
English day and month names, so output is the same on every host.

Without a FORMAT an instant renders as ISO 8601 with its offset (`2026-11-26T09:00:00-05:00`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from scheduler.clock import to_utc
from scheduler.errors import TemplateError, problem

FIRE_NAMES: frozenset[str] = frozenset({"fire", "fire_utc", "job", "iso_week", "seq", "deadline"})
INSTANT_NAMES: frozenset[str] = frozenset({"fire", "fire_utc", "deadline"})
MAX_FORMAT_LENGTH = 100  # a date pattern is short; this bounds the work and the output per field
# The API's longest text (a textarea holds 30,000 characters); bounds parsing and rendering work.
MAX_TEMPLATE_LENGTH = 30_000

_DAYS = tuple("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())
_MONTHS = tuple(
    "January February March April May June July August September October November December".split()
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SNIPPET = 40  # longest piece of a template quoted back in an error


def _offset(value: datetime) -> str:
    """`%z` as CPython writes it: +HHMM, with :SS (no colon) when the offset has seconds."""
    off = value.utcoffset()
    if off is None:
        return ""
    seconds = int(off.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


# Our own strftime: the C library's is locale- and platform-dependent (%e, %u, %V, %G are not
# portable), and these are all a schedule's titles need.
STRFTIME_DIRECTIVES: Mapping[str, Callable[[datetime], str]] = {
    "a": lambda v: _DAYS[v.weekday()][:3],
    "A": lambda v: _DAYS[v.weekday()],
    "b": lambda v: _MONTHS[v.month - 1][:3],
    "B": lambda v: _MONTHS[v.month - 1],
    "d": lambda v: f"{v.day:02d}",
    "e": lambda v: f"{v.day:2d}",
    "H": lambda v: f"{v.hour:02d}",
    "I": lambda v: f"{(v.hour % 12) or 12:02d}",
    "j": lambda v: f"{v.timetuple().tm_yday:03d}",
    "m": lambda v: f"{v.month:02d}",
    "M": lambda v: f"{v.minute:02d}",
    "p": lambda v: "AM" if v.hour < 12 else "PM",
    "S": lambda v: f"{v.second:02d}",
    "u": lambda v: str(v.isoweekday()),
    "V": lambda v: f"{v.isocalendar().week:02d}",
    "G": lambda v: f"{v.isocalendar().year:04d}",
    "w": lambda v: str(v.isoweekday() % 7),
    "y": lambda v: f"{v.year % 100:02d}",
    "Y": lambda v: f"{v.year:04d}",
    "z": _offset,
    "Z": lambda v: v.tzname() or "",
    "%": lambda v: "%",
}
_DIRECTIVE_LIST = " ".join(f"%{d}" for d in STRFTIME_DIRECTIVES)

# A compiled FORMAT: (directive, "") or ("", literal text).
_Format = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Field:
    """One placeholder: `raw` is how it was written, for messages."""

    name: str
    fmt: _Format | None
    raw: str


@dataclass(frozen=True, slots=True)
class Template:
    """A validated template; rendering cannot run code or read attributes.

    Build it with `parse_template`. `text` is the template as written; `names` the
    placeholder names it uses.
    """

    text: str
    names: frozenset[str]
    _parts: tuple[str | _Field, ...] = ()

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def render(self, values: Mapping[str, object]) -> str:
        """The text with each placeholder replaced by its value (see `fire_values`).

        TemplateError if a placeholder has no value here (`{deadline}` in a launch) or a
        value of a kind templates cannot show.
        """
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part.name)
            if value is None:
                raise _error(self.text, f"'{part.raw}' has no value here")
            out.append(_show(self.text, part, value))
        return "".join(out)


def _show(text: str, part: _Field, value: object) -> str:
    if part.fmt is not None:
        if not isinstance(value, datetime):
            raise _error(text, f"'{part.raw}' needs an instant, got {type(value).__name__}")
        return "".join(STRFTIME_DIRECTIVES[d](value) if d else lit for d, lit in part.fmt)
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise _error(text, f"'{part.raw}' cannot show a value of type {type(value).__name__}")


def _error(text: str, message: str) -> TemplateError:
    return TemplateError(problem(message, value=text))


def _quote(raw: str) -> str:
    return raw if len(raw) <= _SNIPPET else raw[: _SNIPPET - 3] + "..."


def parse_template(text: str, allowed: frozenset[str] = FIRE_NAMES) -> Template:
    """Validate `text`; TemplateError for unknown names, attribute/index access, conversions.

    Also rejected, each with a message quoting the placeholder: positional fields (`{}`,
    `{0}`), a FORMAT on a non-instant (`{seq:05}`), strftime directives not in
    `STRFTIME_DIRECTIVES`, a FORMAT longer than `MAX_FORMAT_LENGTH`, and unbalanced braces;
    and a template longer than `MAX_TEMPLATE_LENGTH`.
    """
    if not isinstance(text, str):
        raise _error(text, "a template must be a string")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise _error(text, f"{len(text)} characters: at most {MAX_TEMPLATE_LENGTH}")
    parts: list[str | _Field] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "}":
            if text.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            where = _quote(text[max(0, i - 20) : i + 1])
            raise _error(text, f"single '}}' in '{where}' (write '}}}}' for a literal brace)")
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        if text.startswith("{{", i):
            literal.append("{")
            i += 2
            continue
        end = text.find("}", i + 1)
        nested = text.find("{", i + 1)
        if end < 0:
            where = _quote(text[i:])
            raise _error(text, f"'{where}' is not closed (write '{{{{' for a literal brace)")
        if 0 <= nested < end:
            raise _error(text, f"'{_quote(text[i : end + 1])}': a placeholder cannot contain '{{'")
        if literal:
            parts.append("".join(literal))
            literal.clear()
        parts.append(_parse_field(text, text[i : end + 1], allowed))
        i = end + 1
    if literal:
        parts.append("".join(literal))
    names = frozenset(p.name for p in parts if isinstance(p, _Field))
    return Template(text, names, tuple(parts))


def _parse_field(text: str, raw: str, allowed: frozenset[str]) -> _Field:
    """`raw` is `{...}` with no braces inside."""
    name, colon, spec = raw[1:-1].partition(":")
    shown = _quote(raw)
    choices = ", ".join(sorted(allowed))
    if "!" in name:
        raise _error(text, f"'{shown}': conversions such as '!r' are not allowed")
    if any(c in name for c in ".[]"):
        raise _error(
            text,
            f"'{shown}': attribute and index access are not allowed "
            "(for parts of an instant use a format, e.g. '{fire:%Y}')",
        )
    if not name or name.isdigit():
        raise _error(text, f"'{shown}': positional placeholders are not allowed ({choices})")
    if not _NAME.fullmatch(name):
        raise _error(text, f"'{shown}': not a placeholder name ({choices})")
    if name not in allowed:
        raise _error(text, f"'{shown}': unknown name '{name}' (allowed: {choices})")
    if not colon:
        return _Field(name, None, raw)
    if name not in INSTANT_NAMES:
        instants = ", ".join(sorted(INSTANT_NAMES & allowed))
        raise _error(text, f"'{shown}': a format is allowed only on instants ({instants})")
    return _Field(name, _parse_format(text, shown, spec), raw)


def _parse_format(text: str, shown: str, spec: str) -> _Format:
    if not spec:
        raise _error(text, f"'{shown}': empty format (drop the ':' or write e.g. '%d %b %Y')")
    if len(spec) > MAX_FORMAT_LENGTH:
        raise _error(text, f"'{shown}': format longer than {MAX_FORMAT_LENGTH} characters")
    out: list[tuple[str, str]] = []
    literal: list[str] = []
    i = 0
    while i < len(spec):
        if spec[i] != "%":
            literal.append(spec[i])
            i += 1
            continue
        directive = spec[i + 1 : i + 2]
        if directive not in STRFTIME_DIRECTIVES:
            bad = f"'%{directive}'" if directive else "a lone '%' at the end"
            raise _error(text, f"'{shown}': {bad} is not an allowed directive ({_DIRECTIVE_LIST})")
        if literal:
            out.append(("", "".join(literal)))
            literal.clear()
        out.append((directive, ""))
        i += 2
    if literal:
        out.append(("", "".join(literal)))
    return tuple(out)


def fire_values(
    job_id: str,
    scheduled_for: datetime,
    zone: ZoneInfo,
    seq: int,
    deadline: datetime | None = None,
) -> dict[str, object]:
    """The values a fire's templates see (docs/jobs.md, "Templates").

    `fire` is the scheduled instant in the job's zone, `fire_utc` the same in UTC,
    `iso_week` the ISO week of `fire` in the zone (`2026-W48`), `seq` 1 + the number of
    successful fires; `deadline` (in the zone) is present only when given.
    """
    fire_utc = to_utc(scheduled_for)  # refuses a naive instant rather than guess its zone
    fire = fire_utc.astimezone(zone)
    iso = fire.isocalendar()
    values: dict[str, object] = {
        "fire": fire,
        "fire_utc": fire_utc,
        "job": job_id,
        "iso_week": f"{iso.year:04d}-W{iso.week:02d}",
        "seq": seq,
    }
    if deadline is not None:
        values["deadline"] = deadline.astimezone(zone)
    return values
