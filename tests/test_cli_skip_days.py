"""`next`, `preview`, `backfill` and `jobs list` for a job with `skip_on` (issue 13): instants on
holidays and blackout dates are shown as skipped, never fired."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import App, cli
from scheduler.clock import FakeClock

NOW = datetime(2026, 12, 21, 12, 0, tzinfo=UTC)  # a Monday
CHECKLIST = "beeffbdddf558869a18556731b2da7c2"
JOB = f"""\
schedule = "0 9 * * *"
timezone = "Europe/London"
skip_on = ["holidays", "2026-12-24", "2026-12-28/2026-12-29"]

[action]
type = "launch_process"
checklist_id = "{CHECKLIST}"
name = "Daily check {{fire:%d %b}}"
"""
HOLIDAY = "skip_on: 2026-12-25 is a holiday"
BLACKOUT = "skip_on: 2026-12-24 is a blackout date"
BREAK = "skip_on: 2026-12-28 to 2026-12-29 are blackout dates"


def invoke(args: list[str], *, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, args, obj=App(clock=FakeClock(NOW)))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


@pytest.fixture
def base(tmp_path: Path, sqlite_url: str) -> list[str]:
    """A config with Christmas as a holiday, a store holding the job `daily`."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[tallyfy]\norganization_id = "demo-org"\nbase_url = "http://127.0.0.1:9/api/"\n'
        '[calendar]\nholidays = ["2026-12-25"]\n'
    )
    args = ["--config", str(config), "--db", sqlite_url]
    invoke([*args, "init"])
    (tmp_path / "daily.toml").write_text(JOB)
    invoke([*args, "jobs", "apply", str(tmp_path / "daily.toml")])
    return args


def test_next_lists_skipped_instants_with_their_reason(base: list[str]) -> None:
    result = invoke([*base, "next", "daily", "--after", "2026-12-23T12:00:00Z", "--count", "5"])
    assert result.stdout.splitlines() == [
        f"2026-12-24T09:00:00+00:00  (2026-12-24T09:00:00Z)  skipped: {BLACKOUT}",
        f"2026-12-25T09:00:00+00:00  (2026-12-25T09:00:00Z)  skipped: {HOLIDAY}",
        "2026-12-26T09:00:00+00:00  (2026-12-26T09:00:00Z)",
        "2026-12-27T09:00:00+00:00  (2026-12-27T09:00:00Z)",
        f"2026-12-28T09:00:00+00:00  (2026-12-28T09:00:00Z)  skipped: {BREAK}",
    ]


def test_next_json_names_the_skipped_instants(base: list[str]) -> None:
    result = invoke(
        [*base, "next", "daily", "--after", "2026-12-24T12:00:00Z", "--count", "2", "--json"]
    )
    assert json.loads(result.stdout) == {
        "schedule": "0 9 * * *",
        "timezone": "Europe/London",
        "words": "At 09:00",
        "instants": ["2026-12-25T09:00:00+00:00", "2026-12-26T09:00:00+00:00"],
        "skipped": {"2026-12-25T09:00:00+00:00": HOLIDAY},
    }


def test_preview_of_a_skipped_instant_says_so_and_sends_nothing(base: list[str]) -> None:
    human = invoke([*base, "preview", "daily", "--at", "2026-12-25T09:00:00Z"])
    assert human.stdout.splitlines() == [
        "# daily, fire scheduled for 2026-12-25T09:00:00+00:00",
        f"skipped: {HOLIDAY}; nothing is sent",
    ]
    as_json = invoke([*base, "preview", "daily", "--at", "2026-12-25T09:00:00Z", "--json"])
    assert json.loads(as_json.stdout) == {
        "job_id": "daily",
        "scheduled_for": "2026-12-25T09:00:00+00:00",
        "method": None,
        "url": None,
        "body": None,
        "skipped": HOLIDAY,
    }


def test_preview_of_a_day_that_fires_shows_its_request(base: list[str]) -> None:
    result = invoke([*base, "preview", "daily", "--at", "2026-12-26T09:00:00Z", "--json"])
    assert json.loads(result.stdout)["body"]["name"] == "Daily check 26 Dec"


def test_backfill_passes_over_skip_days(base: list[str]) -> None:
    late = App(clock=FakeClock(datetime(2026, 12, 30, tzinfo=UTC)))
    args = ["backfill", "daily", "--from", "2026-12-24T00:00:00Z", "--to", "2026-12-26T23:00:00Z"]
    result = CliRunner().invoke(cli, [*base, *args, "--dry-run"], obj=late)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"2026-12-24T09:00:00+00:00  skipped: {BLACKOUT}",
        f"2026-12-25T09:00:00+00:00  skipped: {HOLIDAY}",
        "2026-12-26T09:00:00+00:00  to fire",
        "1 of 3 instants would be fired",
    ]


def test_jobs_list_shows_the_next_instant_that_fires(base: list[str]) -> None:
    late = App(clock=FakeClock(datetime(2026, 12, 23, 12, tzinfo=UTC)))
    result = CliRunner().invoke(cli, [*base, "jobs", "list", "--json"], obj=late)
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)["jobs"]
    assert row["next_fire"] == "2026-12-26T09:00:00+00:00"  # past the 24th and the 25th
