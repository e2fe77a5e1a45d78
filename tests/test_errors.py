"""The problems collector that config, job definitions and template checks all record faults in."""

from __future__ import annotations

import pytest

from scheduler.errors import ConfigError, DefinitionError, Problem, Problems, dotted_key, problem

LINES = {("schedule",): 1, ("action",): 5, ("action", "tasks", "f00"): 7}


def test_a_problem_at_a_key_path_is_placed_on_its_line_or_its_tables() -> None:
    problems = Problems("job.toml", lines=LINES)
    problems.add(("schedule",), "required")
    problems.add(("action", "tasks", "f00", "deadine"), "unknown key", "+1bd")
    problems.add(("action", "prerun", "a.b"), "not a hex id", 5)
    problems.add(("id",), "no line known")
    assert [str(p) for p in problems] == [
        "job.toml:1: schedule: required",
        "job.toml:7: action.tasks.f00.deadine = '+1bd': unknown key",
        'job.toml:5: action.prerun."a.b" = 5: not a hex id',
        "job.toml: id: no line known",
    ]


def test_a_dotted_key_is_kept_as_given_and_another_file_may_be_named() -> None:
    problems = Problems("config.toml")
    problems.add("tallyfy.foo bar", "unknown key", 1)
    problems.add(None, "cannot read: Permission denied", file=".env")
    problems.add("TALLYFY_ACCESS_TOKEN_FILE", "cannot read the token file", file="/run/token")
    assert list(problems) == [
        problem("unknown key", file="config.toml", key="tallyfy.foo bar", value=1),
        problem("cannot read: Permission denied", file=".env"),
        problem("cannot read the token file", file="/run/token", key="TALLYFY_ACCESS_TOKEN_FILE"),
    ]


def test_a_value_is_shown_when_given_even_none_and_a_long_one_cut_short() -> None:
    problems = Problems("f", shown_max=10)
    problems.add(("a",), "bad", None)
    problems.add(("b",), "bad")
    problems.add(("c",), "too long", "x" * 25)
    problems.add(("d",), "not a string", ["x" * 25])
    assert [str(p) for p in problems] == [
        "f: a = None: bad",
        "f: b: bad",
        "f: c = 'xxxxx... (25 characters)': too long",
        f"f: d = ['{'x' * 25}']: not a string",
    ]
    unlimited = Problems("f")
    unlimited.add(("c",), "kept", "x" * 25)
    assert unlimited[0].value == "x" * 25


def test_it_raises_the_error_asked_for_with_every_problem_in_order() -> None:
    problems = Problems("f")
    problems.raise_if_any(ConfigError)  # nothing collected: nothing raised
    problems.add(("a",), "first")
    problems.add(("b",), "second")
    with pytest.raises(DefinitionError) as caught:
        problems.raise_if_any(DefinitionError)
    assert caught.value.problems == [
        Problem("first", "f", None, "a"),
        Problem("second", "f", None, "b"),
    ]
    assert str(caught.value) == "f: a: first\nf: b: second"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (("action", "prerun", "16e27d90"), "action.prerun.16e27d90"),
        (("action", "tasks", "a b"), 'action.tasks."a b"'),
        (("x", "line\nbreak"), 'x."line\\nbreak"'),
        ((), ""),
    ],
    ids=["bare", "space", "line-break", "root"],
)
def test_a_key_path_is_shown_as_toml_writes_it(path: tuple[str, ...], shown: str) -> None:
    assert dotted_key(path) == shown


def test_a_problem_is_one_line_that_cannot_paint_the_terminal() -> None:
    found = problem("bad\nvalue\x1b[31m, \x9b2J \u202eright-to-left", file="f.toml", key="k")
    assert str(found) == "f.toml: k: bad\\nvalue\\x1b[31m, \\x9b2J \\u202eright-to-left"
