"""Safe templates (docs/jobs.md, "Templates" and "Validation").

Calendar facts used below: 2026-11-26 is a Thursday (ISO week 2026-W48); 2026-12-31 is a
Thursday, so ISO week 53 of 2026 runs Mon 2026-12-28 to Sun 2027-01-03 and 2027-W01 starts
Mon 2027-01-04; Mon 2025-12-29 is in 2026-W01. New York is at -05:00 (EST) in winter.
"""

from __future__ import annotations

import locale
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.errors import TemplateError
from scheduler.templates import (
    FIRE_NAMES,
    MAX_FORMAT_LENGTH,
    Template,
    fire_values,
    parse_template,
)

NY = ZoneInfo("America/New_York")
SCHEDULED = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)  # Thu 09:00 EST
DEADLINE = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # Mon 17:00 EST
VALUES = fire_values("weekly-review", SCHEDULED, NY, 7, deadline=DEADLINE)


RENDERS = [
    ("Weekly client review {fire:%d %b %Y}", "Weekly client review 26 Nov 2026"),
    ("Follow up on open approvals ({fire:%a %d %b})", "Follow up on open approvals (Thu 26 Nov)"),
    ("Opened by the scheduler for week {iso_week}", "Opened by the scheduler for week 2026-W48"),
    ("{job} #{seq}", "weekly-review #7"),
    ("{fire}", "2026-11-26T09:00:00-05:00"),
    ("{fire_utc}", "2026-11-26T14:00:00+00:00"),
    ("{fire_utc:%H:%M %Z}", "14:00 UTC"),
    ("{fire:%H:%M %Z (%z)}", "09:00 EST (-0500)"),
    ("Due {deadline:%a %d %b, %I:%M %p}", "Due Mon 30 Nov, 05:00 PM"),
    ("{deadline}", "2026-11-30T17:00:00-05:00"),
    ("{{literal}} {{{job}}}", "{literal} {weekly-review}"),
    ("}}{{", "}{"),
    ("100% done, {seq}%", "100% done, 7%"),
    ("{fire:%%Y}", "%Y"),
    ("{fire:%Y-%m-%d}{fire:%H}", "2026-11-2609"),
    ("{fire:week %V of %G, day %u}", "week 48 of 2026, day 4"),
    ("no placeholders at all", "no placeholders at all"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), RENDERS, ids=[t or "empty" for t, _ in RENDERS])
def test_it_renders(text: str, expected: str) -> None:
    assert parse_template(text).render(VALUES) == expected


# Each directive on two instants: Sun 2027-01-03 00:05:09 EST and Sat 2026-07-04 13:45:00 EDT.
SUNDAY = datetime(2027, 1, 3, 0, 5, 9, tzinfo=NY)
SATURDAY = datetime(2026, 7, 4, 13, 45, 0, tzinfo=NY)
DIRECTIVES = [
    ("a", "Sun", "Sat"),
    ("A", "Sunday", "Saturday"),
    ("b", "Jan", "Jul"),
    ("B", "January", "July"),
    ("d", "03", "04"),
    ("e", " 3", " 4"),
    ("H", "00", "13"),
    ("I", "12", "01"),
    ("j", "003", "185"),
    ("m", "01", "07"),
    ("M", "05", "45"),
    ("p", "AM", "PM"),
    ("S", "09", "00"),
    ("u", "7", "6"),
    ("V", "53", "27"),
    ("G", "2026", "2026"),
    ("w", "0", "6"),
    ("y", "27", "26"),
    ("Y", "2027", "2026"),
    ("z", "-0500", "-0400"),
    ("Z", "EST", "EDT"),
    ("%", "%", "%"),
]


@pytest.mark.parametrize(
    ("directive", "on_sunday", "on_saturday"), DIRECTIVES, ids=[f"%{d}" for d, _, _ in DIRECTIVES]
)
def test_each_allowed_directive_renders_in_fixed_english(
    directive: str, on_sunday: str, on_saturday: str
) -> None:
    tpl = parse_template(f"{{fire:%{directive}}}")
    assert tpl.render({"fire": SUNDAY}) == on_sunday
    assert tpl.render({"fire": SATURDAY}) == on_saturday


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 11, 26, 12, 0, tzinfo=NY), "12 PM"),
        (datetime(2026, 11, 26, 0, 30, tzinfo=NY), "12 AM"),
        (datetime(2026, 11, 26, 23, 59, tzinfo=NY), "11 PM"),
    ],
    ids=["noon", "half-past-midnight", "last-minute"],
)
def test_twelve_hour_clock_has_no_hour_zero(instant: datetime, expected: str) -> None:
    assert parse_template("{fire:%I %p}").render({"fire": instant}) == expected


def test_a_45_minute_zone_shows_its_offset() -> None:
    values = fire_values("j", SCHEDULED, ZoneInfo("Asia/Kathmandu"), 1)
    assert parse_template("{fire:%H:%M %z %Z}").render(values) == "19:45 +0545 +0545"


ALL_DIRECTIVES = "%a %A %b %B %d %e %H %I %j %m %M %p %S %u %V %G %w %y %Y %z %Z %%"


@settings(max_examples=200, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(NY)
    )
)
def test_it_agrees_with_the_c_library_strftime_in_the_c_locale(instant: datetime) -> None:
    # Python sets only LC_CTYPE at start-up, so the test process formats times in the C locale.
    got = parse_template("{fire:" + ALL_DIRECTIVES + "}").render({"fire": instant})
    assert got == instant.strftime(ALL_DIRECTIVES)


@pytest.fixture
def foreign_time_locale() -> Iterator[str]:
    saved = locale.setlocale(locale.LC_TIME)
    for name in ("de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "es_ES.UTF-8"):
        try:
            locale.setlocale(locale.LC_TIME, name)
        except locale.Error:
            continue
        try:
            yield name
        finally:
            locale.setlocale(locale.LC_TIME, saved)
        return
    message = "no non-English locale installed (.ci/run generates de_DE.UTF-8 with localedef)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_rendering_ignores_the_process_locale(foreign_time_locale: str) -> None:
    tpl = parse_template("{fire:%a %A %b %B %p}")
    assert tpl.render({"fire": SATURDAY}) == "Sat Saturday Jul July PM"


ISO_WEEKS = [
    ("2026-11-23T12:00:00+00:00", "UTC", "2026-W48"),
    ("2026-12-31T12:00:00+00:00", "UTC", "2026-W53"),
    ("2027-01-01T12:00:00+00:00", "UTC", "2026-W53"),
    ("2027-01-03T12:00:00+00:00", "UTC", "2026-W53"),
    ("2027-01-04T12:00:00+00:00", "UTC", "2027-W01"),
    ("2025-12-29T12:00:00+00:00", "UTC", "2026-W01"),
    ("2021-01-03T12:00:00+00:00", "UTC", "2020-W53"),
    ("2027-01-04T03:00:00+00:00", "America/New_York", "2026-W53"),  # still Sunday in New York
    ("2026-12-27T23:30:00+00:00", "Asia/Kathmandu", "2026-W53"),  # already Monday there
]


@pytest.mark.parametrize(
    ("scheduled", "zone", "expected"), ISO_WEEKS, ids=[f"{s[:13]}-{z}" for s, z, _ in ISO_WEEKS]
)
def test_iso_week_is_the_week_of_the_fire_in_the_jobs_zone(
    scheduled: str, zone: str, expected: str
) -> None:
    values = fire_values("j", datetime.fromisoformat(scheduled), ZoneInfo(zone), 1)
    assert values["iso_week"] == expected
    assert parse_template("{iso_week}").render(values) == expected


def test_fire_values_without_a_deadline_have_no_deadline() -> None:
    values = fire_values("job-1", SCHEDULED, NY, 3)
    assert set(values) == FIRE_NAMES - {"deadline"}
    assert values["fire"] == SCHEDULED
    assert isinstance(values["fire"], datetime) and values["fire"].tzinfo is NY
    assert isinstance(values["fire_utc"], datetime) and values["fire_utc"].tzinfo is UTC
    assert (values["job"], values["seq"]) == ("job-1", 3)


def test_fire_values_show_the_deadline_in_the_jobs_zone() -> None:
    deadline = VALUES["deadline"]
    assert isinstance(deadline, datetime)
    assert deadline.tzinfo is NY
    assert deadline == DEADLINE


def test_fire_values_refuse_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="naive"):
        fire_values("j", datetime(2026, 11, 26, 9, 0), NY, 1)


def test_a_template_knows_its_text_and_names() -> None:
    tpl = parse_template("{job}: {fire:%d %b} / {fire_utc} {{seq}}")
    assert isinstance(tpl, Template)
    assert tpl.text == "{job}: {fire:%d %b} / {fire_utc} {{seq}}"
    assert tpl.names == frozenset({"job", "fire", "fire_utc"})
    assert tpl == parse_template("{job}: {fire:%d %b} / {fire_utc} {{seq}}")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_escaped_text_renders_back_to_itself(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert parse_template(escaped).render({}) == text


# -- rejected when the job is applied ----------------------------------------------------------

REJECTED = [
    ("{fire.year}", "attribute", "{fire.year}"),
    ("{job[0]}", "attribute and index", "{job[0]}"),
    ("{fire.__class__}", "attribute", "{fire.__class__}"),
    ("{0.__globals__}", "attribute", "{0.__globals__}"),
    ("{fire.__class__.__init__.__globals__}", "attribute", "{fire.__class__.__init__._"),
    ("{job[__class__]}", "index", "{job[__class__]}"),
    ("x {0}", "positional", "{0}"),
    ("x {}", "positional", "{}"),
    ("{1:%Y}", "positional", "{1:%Y}"),
    ("{job!r}", "conversion", "{job!r}"),
    ("{job!s}", "conversion", "{job!s}"),
    ("{fire!a:%Y}", "conversion", "{fire!a:%Y}"),
    ("{job:>999999999}", "format is allowed only on instants", "{job:>999999999}"),
    ("{seq:05}", "format is allowed only on instants", "{seq:05}"),
    ("{iso_week:x}", "format is allowed only on instants", "{iso_week:x}"),
    ("{fire:%c}", "'%c' is not an allowed directive", "{fire:%c}"),
    ("{fire:%x}", "'%x' is not an allowed directive", "{fire:%x}"),
    ("{fire:%s}", "'%s' is not an allowed directive", "{fire:%s}"),
    ("{fire:%-d}", "'%-' is not an allowed directive", "{fire:%-d}"),
    ("{fire:%f}", "'%f' is not an allowed directive", "{fire:%f}"),
    ("{fire:%}", "lone '%'", "{fire:%}"),
    ("{fire:%Y%}", "lone '%'", "{fire:%Y%}"),
    ("{fire:" + "x" * (MAX_FORMAT_LENGTH + 1) + "}", "format longer than", "{fire:xxxxx"),
    ("{fire:}", "empty format", "{fire:}"),
    ("{jbo}", "unknown name 'jbo'", "{jbo}"),
    ("{Fire}", "unknown name 'Fire'", "{Fire}"),
    ("{ fire }", "not a placeholder name", "{ fire }"),
    ("{fire-utc}", "not a placeholder name", "{fire-utc}"),
    ("Review {fire", "is not closed", "{fire"),
    ("Review {fire:%d %b", "is not closed", "{fire:%d %b"),
    ("fire}", "single '}'", "fire}"),
    ("{{fire}", "single '}'", "fire}"),
    ("{a{fire}}", "cannot contain '{'", "{a{fire}"),
    ("{fire:{fmt}}", "cannot contain '{'", "{fire:{fmt}"),
]


@pytest.mark.parametrize(
    ("text", "reason", "placeholder"), REJECTED, ids=[t[:40] for t, _, _ in REJECTED]
)
def test_it_rejects_with_a_message_naming_the_placeholder(
    text: str, reason: str, placeholder: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(text)
    (only,) = caught.value.problems
    assert only.value == text
    assert reason in only.message
    assert placeholder in only.message


def test_a_name_outside_the_allowed_set_is_unknown() -> None:
    launch_names = FIRE_NAMES - {"deadline"}  # a launch has no deadline
    with pytest.raises(TemplateError, match="unknown name 'deadline'"):
        parse_template("Due {deadline:%d %b}", allowed=launch_names)
    assert parse_template("{client}", allowed=frozenset({"client"})).render({"client": "Acme"}) == (
        "Acme"
    )


@pytest.mark.parametrize(
    ("text", "values", "reason"),
    [
        ("Due {deadline:%d %b}", fire_values("j", SCHEDULED, NY, 1), "'{deadline:%d %b}' has no"),
        ("{job}", {"job": None}, "'{job}' has no value"),
        ("{fire:%Y}", {"fire": "2026"}, "'{fire:%Y}' needs an instant"),
        ("{job}", {"job": ["a"]}, "cannot show a value of type list"),
        ("{seq}", {"seq": True}, "cannot show a value of type bool"),
    ],
    ids=["missing-deadline", "none", "format-on-a-string", "list", "bool"],
)
def test_rendering_a_value_that_is_missing_or_unshowable_is_an_error(
    text: str, values: dict[str, object], reason: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(text).render(values)
    assert reason in str(caught.value)
