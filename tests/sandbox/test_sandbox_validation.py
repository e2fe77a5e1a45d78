"""The sandbox's pure parts: request dates, blank values, step deadlines, rule round trips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tallyfy_sandbox import FAULT_KINDS, FaultRule, parse_request_date
from tallyfy_sandbox.errors import InvalidInput
from tallyfy_sandbox.faults import SlidingWindowLimit
from tallyfy_sandbox.state import step_deadline
from tallyfy_sandbox.validation import is_blank

START = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-08T07:00:00Z", "2026-03-08T07:00:00+00:00"),
        ("2026-03-08T07:00:00.5Z", "2026-03-08T07:00:00.500000+00:00"),
        ("2026-03-08 07:00:00", "2026-03-08T07:00:00+00:00"),
        ("2026-03-08T01:30:00-05:30", "2026-03-08T07:00:00+00:00"),
        ("  2026-03-08T07:00:00Z ", "2026-03-08T07:00:00+00:00"),
    ],
    ids=["zulu", "fraction", "spaced", "half-hour-offset", "surrounding-space"],
)
def test_parse_request_date_reads_the_three_forms_as_utc(text: str, expected: str) -> None:
    assert parse_request_date(text).isoformat() == expected


@pytest.mark.parametrize(
    "value",
    ["2026-03-08T07:00:00", "2026-03-08", "2026-03-08T07:00:00+0100", "", None, 0],
    ids=["naive", "date-only", "offset-no-colon", "empty", "null", "number"],
)
def test_parse_request_date_refuses_everything_else(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_request_date(value)


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        (None, True),
        ("", True),
        ([], True),
        ({}, True),
        (False, True),
        (0, True),
        (" ", False),
        ("0", False),
        ([""], False),
        (True, False),
    ],
    ids=[
        "null",
        "empty-str",
        "empty-list",
        "empty-obj",
        "false",
        "zero",
        "space",
        "str-0",
        "l",
        "t",
    ],
)
def test_is_blank_follows_php_empty_for_kick_off_values(value: Any, blank: bool) -> None:
    assert is_blank(value) is blank


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"value": 2, "unit": "hours"}, "2026-01-31T11:00:00+00:00"),
        ({"value": 1, "unit": "days"}, "2026-02-01T09:00:00+00:00"),
        ({"value": 1, "unit": "weeks"}, "2026-02-07T09:00:00+00:00"),
        ({"value": 1, "unit": "months"}, "2026-02-28T09:00:00+00:00"),
        ({"value": 30, "unit": "minutes"}, "2026-01-31T09:30:00+00:00"),
    ],
    ids=["hours", "days", "weeks", "month-clamped", "minutes"],
)
def test_step_deadlines_count_from_the_launch(rule: dict[str, Any], expected: str) -> None:
    deadline = step_deadline(rule, START)
    assert deadline is not None and deadline.isoformat() == expected


@pytest.mark.parametrize(
    "rule", [None, {}, {"value": "1", "unit": "days"}, {"value": 1, "unit": "fortnights"}]
)
def test_a_step_without_a_usable_deadline_rule_has_none(rule: Any) -> None:
    assert step_deadline(rule, START) is None


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_rule_survives_its_json_round_trip(kind: str) -> None:
    rule = FaultRule(kind, method=None, path_contains="/runs", count=3, seed=1, retry_after="5")
    assert FaultRule.from_dict(rule.to_dict()) == rule


@pytest.mark.parametrize(
    "data", [{"count": 1}, ["error_after"], {"kind": "latency", "seconds": "slow"}]
)
def test_from_dict_refuses_what_is_not_a_rule(data: Any) -> None:
    with pytest.raises(InvalidInput):
        FaultRule.from_dict(data)


def test_the_limit_answers_how_long_until_the_oldest_hit_leaves_the_window() -> None:
    limit = SlidingWindowLimit(2)
    assert limit.hit("t", 100.0) == (True, 1, 0)
    assert limit.hit("t", 110.5) == (True, 0, 0)
    assert limit.hit("t", 120.0) == (False, 0, 40)
    assert limit.hit("t", 159.9) == (False, 0, 1)
    assert limit.hit("t", 160.0) == (True, 0, 0)
