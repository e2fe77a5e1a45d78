"""Schedules in plain words (scheduler/describe.py, docs/schedules.md "In words").

Two kinds of proof: tables of the exact words, and the words of every schedule example in
docs/, README.md and jobs/ read back as claims and checked against the engine's own next
instants (every instant satisfies the words; and for the day part, every day the words allow
in the span has an instant, so the words are not merely true but complete).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler.cron import parse_schedule
from scheduler.describe import describe
from scheduler.errors import ScheduleError

ROOT = Path(__file__).resolve().parent.parent
UTC = ZoneInfo("UTC")
START = datetime(2026, 1, 1, tzinfo=UTC)

WORDS = [
    ("0 9 * * MON-FRI", "At 09:00, Monday through Friday"),
    ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
    ("*/15 * * * *", "Every 15 minutes"),
    ("*/5 * * * * *", "Every 5 seconds"),
    ("30 0 9 * * *", "At 09:00:30"),
    ("*/2 * * * * 1", "Every 2 seconds, only on Monday"),
    ("0 17 L * *", "At 17:00, on the last day of the month"),
    ("0 0 1,L * *", "At 00:00, on day 1 and the last day of the month"),
    ("0 9 L 2 *", "At 09:00, on the last day of the month, only in February"),
    ("0 9 * * 5L", "At 09:00, on the last Friday of the month"),
    ("0 9 * * FRIL", "At 09:00, on the last Friday of the month"),
    ("0 9 * * 5#2", "At 09:00, on the second Friday of the month"),
    ("0 9 * * MON#1,FRIL", "At 09:00, on the first Monday or the last Friday of the month"),
    ("0 9 * * MON,FRIL", "At 09:00, on Monday or the last Friday of the month"),
    ("0 9 * * 5-7", "At 09:00, Friday through Sunday"),
    ("0 9 * * 0-7", "At 09:00"),
    ("0 9 * * 7", "At 09:00, only on Sunday"),
    ("0 9 * * SAT,SUN", "At 09:00, only on Saturday or Sunday"),
    ("0 9 15 * 0-7", "At 09:00"),  # both restricted: either matches, and 0-7 is every day
    ("0 0 13 * FRI", "At 00:00, on day 13 of the month, or on Friday"),
    ("0 0 */2 * FRI", "At 00:00, on days 1, 3, ..., 31 of the month, if it is a Friday"),
    ("0 9 * * */2", "At 09:00, only on Tuesday, Thursday, Saturday or Sunday"),
    ("0 9 1-7 * MON", "At 09:00, on days 1 through 7 of the month, or on Monday"),
    ("0 9 * JAN-MAR MON-FRI", "At 09:00, Monday through Friday, January through March"),
    ("@daily", "At 00:00"),
    ("@weekly", "At 00:00, only on Sunday"),
    ("@hourly", "Every hour"),
    ("@monthly", "At 00:00, on day 1 of the month"),
]


@pytest.mark.parametrize(("expression", "words"), WORDS)
def test_words(expression: str, words: str) -> None:
    assert describe(expression) == words


# `H` is worded as the values the engine picks for that job: read them from its instants.
@pytest.mark.parametrize("job_id", ["a", "weekly-client-review", "x" * 40])
def test_h_words_name_the_values_the_engine_picks(job_id: str) -> None:
    first = parse_schedule("H H(8-10) * * *", "UTC", job_id=job_id).next_after(START)
    assert first is not None
    assert describe("H H(8-10) * * *", job_id=job_id) == f"At {first:%H:%M}"
    step = parse_schedule("H/15 * * * *", "UTC", job_id=job_id).next_after(START)
    assert step is not None
    assert describe("H/15 * * * *", job_id=job_id) == (
        f"Every 15 minutes, minutes {step.minute} through 59 past the hour"
    )


@pytest.mark.parametrize("expression", ["60 * * * *", "0 9 ? * *", "@reboot", "0 0 30 2 *"])
def test_words_refuse_what_the_engine_refuses(expression: str) -> None:
    with pytest.raises(ScheduleError):
        describe(expression)


def test_the_words_table_in_the_docs_is_what_describe_says() -> None:
    text = (ROOT / "docs" / "schedules.md").read_text()
    section = text.split("## In words", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|$", section, re.M)
    assert len(rows) >= 10
    for expression, words in rows:
        assert describe(expression) == words.split(" (")[0], expression


# -- the words read back as claims, checked against the engine ------------------------------

MONTHS = {name: i for i, name in enumerate(calendar.month_name) if name}
DAYS = {name: (i + 1) % 7 for i, name in enumerate(calendar.day_name)}  # Sunday = 0
ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}

DayTest = Callable[[date], bool]


def _cron_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7


def _is_last(day: date) -> bool:
    return day.day == calendar.monthrange(day.year, day.month)[1]


def _weekday_alternative(words: str) -> DayTest:
    """ "Monday", "Friday through Sunday", "the second Friday", "the last Friday"."""
    m = re.fullmatch(r"the (\w+) (\w+)", words)
    if m:
        which, weekday = m.group(1), DAYS[m.group(2)]
        if which == "last":
            return lambda d: _cron_weekday(d) == weekday and d.day + 7 > _month_len(d)
        k = ORDINAL[which]
        return lambda d: _cron_weekday(d) == weekday and (d.day - 1) // 7 + 1 == k
    m = re.fullmatch(r"(\w+) through (\w+)", words)
    if m:
        week = [1, 2, 3, 4, 5, 6, 0]
        first, last = week.index(DAYS[m.group(1)]), week.index(DAYS[m.group(2)])
        allowed = set(week[first : last + 1])
        return lambda d: _cron_weekday(d) in allowed
    weekday = DAYS[words]
    return lambda d: _cron_weekday(d) == weekday


def _month_len(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _alternatives(words: str) -> DayTest:
    """ "A, B or C" / "A or the last Friday of the month": any of them."""
    words = words.removesuffix(" of the month")
    parts = [p for p in re.split(r", | or ", words) if p]
    tests = [_weekday_alternative(p.removesuffix(" of the month")) for p in parts]
    return lambda d: any(t(d) for t in tests)


def _days_of_month(words: str) -> DayTest:
    """ "on day 15 of the month", "on days 1 through 7 ...", "on days 1, 3, ..., 31 ...",
    "on day 1 and the last day of the month", "on the last day of the month"."""
    body = re.fullmatch(r"on (?:the )?(?:days? )?(.*) of the month", words)
    assert body, words
    tests: list[DayTest] = []
    text = body.group(1)
    m = re.fullmatch(r"(\d+), (\d+), \.\.\., (\d+)(?: and the last day)?", text)
    if m:
        a, b, z = (int(g) for g in m.groups())
        tests.append(lambda d: a <= d.day <= z and (d.day - a) % (b - a) == 0)
        text = "the last day" if text.endswith("the last day") else ""
    for part in [p for p in re.split(r", | and ", text) if p]:
        if part in ("the last day", "last day"):
            tests.append(_is_last)
        elif " through " in part:
            lo, hi = (int(x) for x in part.split(" through "))
            tests.append(lambda d, lo=lo, hi=hi: lo <= d.day <= hi)
        else:
            tests.append(lambda d, n=int(part): d.day == n)
    return lambda d: any(t(d) for t in tests)


def _day_claim(words: str) -> DayTest:
    if not words:
        return lambda d: True
    if ", if it is " in words:
        dom, dow = words.split(", if it is ")
        dom_test, dow_test = _days_of_month(dom), _alternatives(dow.removeprefix("a "))
        return lambda d: dom_test(d) and dow_test(d)
    if ", or on " in words:
        dom, dow = words.split(", or on ")
        dom_test, dow_test = _days_of_month(dom), _alternatives(dow)
        return lambda d: dom_test(d) or dow_test(d)
    if re.match(r"on (the last day|days? \d)", words):
        return _days_of_month(words)
    return _alternatives(words.removeprefix("only on ").removeprefix("on "))


def _month_claim(words: str) -> tuple[str, Callable[[int], bool]]:
    """Strip and read the month part: ", only in February", ", January through March"."""
    m = re.search(r", only in (\w+)$", words)
    if m:
        month = MONTHS[m.group(1)]
        return words[: m.start()], lambda n: n == month
    m = re.search(r", (\w+) through (\w+)$", words)
    if m and m.group(1) in MONTHS:
        lo, hi = MONTHS[m.group(1)], MONTHS[m.group(2)]
        return words[: m.start()], lambda n: lo <= n <= hi
    return words, lambda n: True


TimeTest = Callable[[datetime], bool]


def _time_claim(words: str) -> tuple[str, TimeTest | None]:
    """The time part's claim when it is a plain one ("At 09:00 and 21:00", "Every 15
    minutes", "Every 5 seconds"); None when the words are cron-descriptor's own longer forms."""
    m = re.match(r"At ((?:\d\d:\d\d(?::\d\d)?(?:, | and |, and )?)+)", words)
    if m:
        times = set(re.findall(r"\d\d:\d\d(?::\d\d)?", m.group(1)))
        rest = words[m.end() :].removeprefix(", ")
        return rest, lambda t: (f"{t:%H:%M}" in times and t.second == 0) or f"{t:%H:%M:%S}" in times
    m = re.match(r"Every (?:(\d+) )?(second|minute|hour)s?(?:, |$)", words)
    if m:
        n, unit = int(m.group(1) or 1), m.group(2)
        rest = words[m.end() :]

        def every(t: datetime) -> bool:
            if unit == "second":
                return t.second % n == 0
            if unit == "minute":
                return t.second == 0 and t.minute % n == 0
            return t.second == 0 and t.minute == 0 and t.hour % n == 0

        return rest, every
    return words, None


def _claims(words: str) -> tuple[TimeTest | None, DayTest]:
    rest, month_test = _month_claim(words)
    rest, time_test = _time_claim(rest)
    # cron-descriptor's further time words ("minutes 5 through 59 past the hour", "between
    # 02:00 and 02:59") narrow the time (not checked beyond the plain claim); the day part
    # after them is ours and is checked.
    pieces = rest.split(", ") if rest else []
    ours = ("on ", "only on ", *DAYS)
    starts = [i for i, p in enumerate(pieces) if p.startswith(ours)]
    first_day_piece = starts[0] if starts else len(pieces)
    if first_day_piece:
        time_test = None  # "Every 10 seconds, seconds 5 through 59 ...": not the plain claim
    rest = ", ".join(pieces[first_day_piece:])
    day_test = _day_claim(rest)
    return time_test, lambda d: month_test(d.month) and day_test(d)


def _doc_examples() -> set[str]:
    found: set[str] = set()
    texts = [p.read_text() for p in (ROOT / "docs").glob("*.md")] + [
        (ROOT / "README.md").read_text()
    ]
    for text in texts:
        for quoted in re.findall(r"`([^`\n]+)`|--cron '([^']+)'", text):
            candidate = next(q for q in quoted if q) if any(quoted) else ""
            found.add(candidate)
    for path in (ROOT / "jobs").glob("*.toml"):
        found.update(re.findall(r'^schedule = "([^"]+)"', path.read_text(), re.M))
    examples = set()
    for candidate in found:
        looks_like_cron = candidate.startswith("@") or len(candidate.split()) in (5, 6)
        if not looks_like_cron or not re.fullmatch(r"[@\w*/,#()\- ]+", candidate):
            continue
        try:
            parse_schedule(candidate, "UTC")
        except ScheduleError:
            continue  # the "Rejected" table
        examples.add(candidate)
    return examples


EXAMPLES = sorted(_doc_examples())


def test_the_docs_have_examples_of_every_form() -> None:
    joined = " | ".join(EXAMPLES)
    for form in (" L ", "5L", "#2", "H ", "0-7", "*/15", "@weekly"):
        assert form in joined, form
    assert any(len(e.split()) == 6 for e in EXAMPLES)


@pytest.mark.parametrize("expression", EXAMPLES)
def test_the_words_of_every_docs_example_agree_with_the_engine(expression: str) -> None:
    words = describe(expression)
    time_test, day_test = _claims(words)
    schedule = parse_schedule(expression, UTC)
    # Enough instants to cover two years of day claims, never enumerating seconds for long.
    instants = list(islice(schedule.iter_after(START), 400))
    assert instants, expression
    for instant in instants:
        assert day_test(instant.date()), (expression, words, instant)
        if time_test is not None:
            assert time_test(instant), (expression, words, instant)
    # Complete as well as true: every day the words allow in the span has an instant (the
    # span ends the day before the last instant's, which may be cut short by the count).
    fired = {i.date() for i in instants}
    day = instants[0].date()
    while day < instants[-1].date():
        if day_test(day) and day >= START.date():
            assert day in fired, (expression, words, day)
        day += timedelta(days=1)


# The claims reader itself can fail: words that lie are caught.
@pytest.mark.parametrize(
    ("expression", "lie"),
    [
        ("0 17 L * *", "At 17:00, on day 30 of the month"),
        ("0 9 * * 5L", "At 09:00, on the first Friday of the month"),
        ("0 9 * * 0-7", "At 09:00, only on Sunday"),
        ("0 0 */2 * FRI", "At 00:00, on days 1, 3, ..., 31 of the month, or on Friday"),
        ("*/5 * * * * *", "Every 10 seconds"),
        ("0 9 * * 1-5", "At 09:00, only on Monday"),
    ],
)
def test_a_wrong_wording_fails_the_check(expression: str, lie: str) -> None:
    time_test, day_test = _claims(lie)
    instants = list(islice(parse_schedule(expression, UTC).iter_after(START), 400))
    fired = {i.date() for i in instants}
    sound = all(day_test(i.date()) and (time_test is None or time_test(i)) for i in instants)
    days = [instants[0].date() + timedelta(days=n) for n in range(60)]
    complete = all(d in fired for d in days if day_test(d) and d < instants[-1].date())
    assert not (sound and complete)
