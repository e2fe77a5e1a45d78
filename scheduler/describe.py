"""A schedule in plain words: "At 09:00, Monday through Friday" (docs/schedules.md, "In words").

cron-descriptor words the time of day and the month. It is wrong or silent for parts of our
dialect, so the days are worded here, from the fields as the engine parses them
(`scheduler/cron/fields.py`), never from a second reading of the text:

- `0-7` and `7` (Sunday twice): cron-descriptor says "Sunday through Sunday";
- `L` in a day-of-month list (`1,L`): it says "day 1 and L";
- `nL`, `n#k` in a day-of-week list (`MON#1,FRIL`): it drops the days;
- `H`: it refuses the expression; the words name the values the job's id picks;
- aliases (`@daily`): it refuses them;
- the day-of-month / day-of-week rule: when either day field starts with `*` a day must match
  both (`0 0 */2 * FRI`: odd days that are Fridays), where it says "or";
- steps in the day fields (`*/2`): "every 2 days" reads as a period, where the engine counts
  from the first of each month (31 then 1) and, in day-of-week, from Sunday.

Six fields put seconds first, as the engine does; cron-descriptor reads them the same way.
"""

from __future__ import annotations

from functools import lru_cache

from cron_descriptor import DescriptionTypeEnum, ExpressionDescriptor, Options

from scheduler.cron import parse_schedule
from scheduler.cron.expression import ALIASES
from scheduler.cron.fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOUR,
    MINUTE,
    MONTH,
    SECOND,
    FieldKind,
    ParsedField,
    parse_field,
)

__all__ = ["describe"]

DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
ORDINALS = ("first", "second", "third", "fourth", "fifth")


def describe(expression: str, *, job_id: str = "") -> str:
    """The schedule in plain English, with `H` resolved for `job_id` (as the engine does).

    Raises ScheduleError for an expression the engine refuses (the same message).
    """
    # Only `H` reads the job's id: every job at "0 9 * * MON-FRI" shares one cached answer
    # (cron-descriptor reads its locale file at each construction, ~1 ms).
    return _describe(expression, job_id if "H" in expression.upper() else "")


@lru_cache(maxsize=16_384)
def _describe(expression: str, job_id: str) -> str:
    parse_schedule(expression, "UTC", job_id=job_id)  # the engine's verdict first
    texts = _texts(expression)
    kinds: tuple[FieldKind, ...] = (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)
    if len(texts) == 5:
        kinds = kinds[1:]
    parsed = [parse_field(kind, text, job_id) for kind, text in zip(kinds, texts, strict=True)]
    # cron-descriptor gets the time and month fields (H replaced by the values it picks) and
    # `*` for both day fields, which are worded here.
    shown = [
        _mask_text(field.mask, kind) if "H" in text.upper() else text
        for kind, text, field in zip(kinds, texts, parsed, strict=True)
    ]
    dom_at, dow_at = len(texts) - 3, len(texts) - 1
    shown[dom_at] = shown[dow_at] = "*"
    descriptor = ExpressionDescriptor(" ".join(shown), _OPTIONS)
    # The full words of time + month (cron-descriptor drops "every hour" and the like there
    # only), with the day words put back where cron-descriptor would put its own.
    words = str(descriptor.get_description())
    month_words = str(descriptor.get_description(DescriptionTypeEnum.MONTH))
    time_words = words[: len(words) - len(month_words)] if month_words else words
    days = _days(texts[dom_at], parsed[dom_at], texts[dow_at], parsed[dow_at])
    return time_words + (f", {days}" if days else "") + month_words


_OPTIONS = Options()
_OPTIONS.use_24hour_time_format = True  # 09:00 and 21:00: no AM/PM to misread across zones
_OPTIONS.verbose = False


def _texts(expression: str) -> list[str]:
    text = expression.strip()
    if text.startswith("@"):
        return ALIASES[text.lower()].split()
    return text.split()


def _values(mask: int, lo: int, hi: int) -> list[int]:
    return [v for v in range(lo, hi + 1) if mask >> v & 1]


def _mask_text(mask: int, kind: FieldKind) -> str:
    """Cron text for the values of a mask (what an `H` item picked): `37`, `7-59/15`, `1,3`."""
    values = _values(mask, kind.lo, kind.hi)
    if len(values) >= 3:
        step = values[1] - values[0]
        evenly = all(b - a == step for a, b in zip(values, values[1:], strict=False))
        if evenly and values[-1] + step > kind.hi:
            return f"{values[0]}-{kind.hi}/{step}" if step > 1 else f"{values[0]}-{kind.hi}"
    return ",".join(str(v) for v in values)


def _join(words: list[str], last: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" {last} " + words[-1]


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _dom_words(text: str, field: ParsedField) -> str | None:
    """Day-of-month, or None when it allows every day."""
    values = _values(field.mask, 1, 31)
    if len(values) == 31:
        return None
    last = ["the last day"] if field.last else []
    if not values:
        return "on the last day of the month"
    if "/" in text and len(values) >= 3:
        step = values[1] - values[0]
        if all(b - a == step for a, b in zip(values, values[1:], strict=False)):
            days = f"days {values[0]}, {values[1]}, ..., {values[-1]}"
            return f"on {_join([days, *last])} of the month"
    parts = [str(a) if a == b else f"{a} through {b}" for a, b in _runs(values)]
    if len(parts) == 1 and " " not in parts[0]:
        days = f"day {parts[0]}"
    else:
        days = f"days {_join(parts)}"
    return f"on {_join([days, *last])} of the month"


# Weeks are read Monday first, so that Friday-Sunday is one run ("Friday through Sunday").
_WEEK = (1, 2, 3, 4, 5, 6, 0)


def _dow_words(field: ParsedField) -> tuple[list[str], bool] | None:
    """Day-of-week as (alternatives, any month-relative), or None when it allows every
    weekday. The alternatives read "Monday through Friday", "the last Friday of the month"."""
    plain = [w for w in _WEEK if field.mask >> w & 1]  # the parser folds 7 into 0
    if len(plain) == 7:
        return None  # every weekday already, whatever `nL` and `n#k` add
    words: list[str] = []
    run: list[int] = []
    for w in [*plain, -1]:
        if run and (w == -1 or _WEEK.index(w) != _WEEK.index(run[-1]) + 1):
            if len(run) >= 3:
                words.append(f"{DAY_NAMES[run[0]]} through {DAY_NAMES[run[-1]]}")
            else:
                words.extend(DAY_NAMES[v] for v in run)
            run = []
        if w != -1:
            run.append(w)
    specials = [
        (f"the {ORDINALS[k - 1]} {DAY_NAMES[w]}" if k else f"the last {DAY_NAMES[w]}")
        for w in _WEEK
        for k in range(6)
        if (field.nth >> (8 * w + k) & 1 if k else field.last_weekdays >> w & 1)
    ]
    if specials:
        words.append(f"{_join(specials, 'or')} of the month")
    return words, bool(specials)


def _days(dom_text: str, dom: ParsedField, dow_text: str, dow: ParsedField) -> str:
    """The day part, with the engine's rule for the two day fields (schedules.md)."""
    dom_words = _dom_words(dom_text, dom)
    found = _dow_words(dow)
    # Vixie/cronie: when either day field starts with `*`, a day must match both.
    day_and = dom_text.startswith("*") or dow_text.startswith("*")
    if found is None:
        return "" if (dom_words is None or not day_and) else dom_words
    alternatives, month_relative = found
    if dom_words is None:
        if not day_and:
            return ""  # both restricted, day-of-month allows every day: either matches
        if len(alternatives) == 1 and " through " in alternatives[0]:
            return alternatives[0]
        return f"{'on' if month_relative else 'only on'} {_join(alternatives, 'or')}"
    if day_and:
        article = "" if month_relative or len(alternatives) > 1 else "a "
        return f"{dom_words}, if it is {article}{_join(alternatives, 'or')}"
    return f"{dom_words}, or on {_join(alternatives, 'or')}"
