"""`next` (the one schedule engine, as users check it) and `preview` (the exact request)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import Outcome, Store

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # Monday 2026-03-02, 12:00 UTC
WEEKLY = "weekly-client-review"
DAILY = "daily-approvals-follow-up"
RUN_ID = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def invoke(args: list[str], *, code: int = 0, now: datetime = NOW) -> Result:
    result = CliRunner().invoke(cli, args, obj=App(clock=FakeClock(now)))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug, never an answer
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


@pytest.fixture
def base(tmp_path: Path, sqlite_url: str) -> list[str]:
    """Global options: a config naming the demo organization, and an initialized store."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[tallyfy]\norganization_id = "demo-org"\nbase_url = "http://127.0.0.1:9/api/"\n'
    )
    args = ["--config", str(config), "--db", sqlite_url]
    invoke([*args, "init"])
    invoke([*args, "jobs", "apply", str(EXAMPLES)])
    return args


def succeed(db_url: str, job_id: str, scheduled_for: datetime, remote_id: str) -> None:
    store = Store.open(db_url)
    try:
        (fire,) = store.claim([(job_id, scheduled_for, Trigger.SCHEDULE)], now=scheduled_for)
        assert fire is not None
        store.start_attempts([fire.id], now=scheduled_for)
        outcome = Outcome(fire.id, FireStatus.SUCCEEDED, remote_id=remote_id)
        store.finish([outcome], now=scheduled_for)
    finally:
        store.close()


# -- next ----------------------------------------------------------------------------------------


def test_next_prints_exactly_the_documented_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No config file and no store: `next --cron` needs neither, and creates nothing.
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "never" / "created.db"
    result = invoke(
        ["--db", f"sqlite:///{db}", "next", "--cron", "30 2 * * *", "--tz", "America/New_York"]
        + ["--after", "2026-03-07T12:00:00-05:00", "--count", "2", "--json"]
    )
    assert result.stdout == (
        '{"schedule": "30 2 * * *", "timezone": "America/New_York", "words": "At 02:30", '
        '"instants": ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]}\n'
    )
    assert not db.parent.exists()


# cronie's rules on both DST changes, as `next` shows them (America/New_York, 2026:
# clocks go 02:00 EST -> 03:00 EDT on 03-08 and 02:00 EDT -> 01:00 EST on 11-01).
NEXT_CASES = [
    pytest.param(
        "30 2 * * *", "2026-03-07T12:00:00-05:00", 3,
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"],
        id="fixed-time-in-the-gap-fires-once-after-it",
    ),
    pytest.param(
        "30 1 * * *", "2026-10-31T12:00:00-04:00", 2,
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        id="fixed-time-in-the-overlap-fires-once-first",
    ),
    pytest.param(
        "30 * * * *", "2026-11-01T00:00:00-04:00", 3,
        ["2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"],
        id="interval-fires-in-both-occurrences",
    ),
    pytest.param(
        "0 0 13 * FRI", "2026-03-01T00:00:00-05:00", 3,
        ["2026-03-06T00:00:00-05:00", "2026-03-13T00:00:00-04:00", "2026-03-20T00:00:00-04:00"],
        id="day-of-month-or-day-of-week",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("expression", "after", "count", "expected"), NEXT_CASES)
def test_next_follows_the_engine_across_dst(
    expression: str, after: str, count: int, expected: list[str]
) -> None:
    data = json.loads(
        invoke(
            ["next", "--cron", expression, "--tz", "America/New_York", "--after", after]
            + ["--count", str(count), "--json"]
        ).stdout
    )
    assert data["instants"] == expected


def test_next_prints_one_instant_per_line_with_its_utc_form() -> None:
    result = invoke(
        ["next", "--cron", "30 2 * * *", "--tz", "America/New_York"]
        + ["--after", "2026-03-07T12:00:00-05:00", "--count", "2"]
    )
    assert result.stdout == (
        "2026-03-08T03:00:00-04:00  (2026-03-08T07:00:00Z)\n"
        "2026-03-09T02:30:00-04:00  (2026-03-09T06:30:00Z)\n"
    )


def test_next_defaults_to_five_instants_after_now_in_the_configured_zone(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[scheduler]\ntimezone = "Asia/Kathmandu"\n')
    data = json.loads(
        invoke(["--config", str(config), "next", "--cron", "0 9 * * *", "--json"]).stdout
    )
    assert data["timezone"] == "Asia/Kathmandu"
    assert data["instants"] == [f"2026-03-0{d}T09:00:00+05:45" for d in range(3, 8)]


@pytest.mark.parametrize(
    ("expression", "fragments"),
    [
        ("61 * * * *", ("61", "minute")),
        ("* * 32 * *", ("32", "day")),
        ("0 0 30 2 *", ("never",)),
        ("", ()),
    ],
    ids=["minute-out-of-range", "day-out-of-range", "never-fires", "empty"],
)
def test_next_with_an_invalid_expression_fails_naming_the_field(
    expression: str, fragments: tuple[str, ...]
) -> None:
    result = invoke(["next", "--cron", expression, "--tz", "UTC"], code=1)
    assert result.stdout == "" and result.stderr.strip()
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr.lower(), result.stderr


def test_next_with_an_unknown_zone_fails_naming_it() -> None:
    result = invoke(["next", "--cron", "0 9 * * *", "--tz", "Europe/Lundon"], code=1)
    assert result.stderr == (
        "--tz = 'Europe/Lundon': unknown time zone (use an IANA name such as 'Europe/London')\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["next"],
        ["next", WEEKLY, "--cron", "0 9 * * *"],
        ["next", WEEKLY, "--tz", "UTC"],
        ["next", "--cron", "0 9 * * *", "--after", "2026-03-07T12:00:00"],
        ["next", "--cron", "0 9 * * *", "--count", "0"],
    ],
    ids=["neither-id-nor-cron", "both", "tz-without-cron", "after-without-offset", "count-zero"],
)
def test_next_usage_errors_exit_2(args: list[str]) -> None:
    assert invoke(args, code=2).stdout == ""


def test_next_of_a_stored_job_uses_its_schedule_and_zone(base: list[str]) -> None:
    data = json.loads(
        invoke(
            [*base, "next", DAILY, "--after", "2026-03-06T13:00:00Z", "--count", "3", "--json"]
        ).stdout
    )
    assert data == {
        "schedule": "0 8 * * MON-FRI",
        "timezone": "America/New_York",
        "words": "At 08:00, Monday through Friday",
        "instants": [
            "2026-03-09T08:00:00-04:00",  # Monday, the first day of daylight time
            "2026-03-10T08:00:00-04:00",
            "2026-03-11T08:00:00-04:00",
        ],
    }
    assert invoke([*base, "next", "nope"], code=1).stderr == "error: no job with id 'nope'\n"


# -- preview -------------------------------------------------------------------------------------

WEEKLY_PREVIEW = {
    "job_id": WEEKLY,
    "scheduled_for": "2026-03-30T09:00:00+01:00",
    "method": "POST",
    "url": "http://127.0.0.1:9/api/organizations/demo-org/runs",
    "body": {
        "checklist_id": "beeffbdddf558869a18556731b2da7c2",
        "name": "Weekly client review 30 Mar 2026",
        "summary": "Opened by the scheduler for week 2026-W14",
        "prerun": {  # keyed by field id, in id order
            "15b4e12ebb73d350509df79e2acd216c": {"id": 2, "text": "Normal"},
            "16e27d901362e3abffae5c18ea1a8d12": "Acme Corporation",
            "2024ec22c6346de494cc419191bb01aa": "2026-04-01T16:00:00Z",
        },
        "tasks": {
            "2f09054af7c94eda191606832f6775b8": {"deadline": "2026-03-31T11:00:00Z"},
            "3c1b61a847f413f1c2e306633fa6580d": {"deadline": "2026-04-01T16:00:00Z"},
        },
        "users": [1002],
        "tags": ["f70ac12a815df7fa31f7cc57986f21c7"],
    },
}

DAILY_PREVIEW = {
    "job_id": DAILY,
    "scheduled_for": "2026-03-09T08:00:00-04:00",
    "method": "POST",
    "url": "http://127.0.0.1:9/api/organizations/demo-org/tasks",
    "body": {
        "title": "Follow up on open approvals (Mon 09 Mar)",
        "task_type": "task",
        "owners": {"users": [1001], "guests": [], "groups": []},
        "deadline": "2026-03-09T21:00:00Z",
        "started_at": "2026-03-09T12:00:00Z",
        "summary": "Check the approvals queue and chase owners.",
        "description": "Check the approvals queue and chase owners.",
        "run_id": RUN_ID,
    },
}


def test_preview_of_the_weekly_launch(base: list[str]) -> None:
    # Monday 30 March 2026, the day after London moved to BST; +2bd@17:00 is Wednesday.
    result = invoke([*base, "preview", WEEKLY, "--at", "2026-03-30T09:00:00+01:00", "--json"])
    assert json.loads(result.stdout) == WEEKLY_PREVIEW
    assert result.stdout == json.dumps(WEEKLY_PREVIEW) + "\n"  # keys in this order, one line


def test_preview_of_the_daily_task_attaches_it_to_the_launch_of_its_day(
    base: list[str], sqlite_url: str
) -> None:
    succeed(sqlite_url, WEEKLY, datetime(2026, 2, 23, 9, tzinfo=UTC), "0" * 32)
    succeed(sqlite_url, WEEKLY, datetime(2026, 3, 2, 9, tzinfo=UTC), "1" * 32)
    succeed(sqlite_url, WEEKLY, datetime(2026, 3, 9, 9, tzinfo=UTC), RUN_ID)
    succeed(sqlite_url, WEEKLY, datetime(2026, 3, 16, 9, tzinfo=UTC), "2" * 32)  # backfilled
    result = invoke([*base, "preview", DAILY, "--at", "2026-03-09T12:00:00Z", "--json"])
    assert result.stdout == json.dumps(DAILY_PREVIEW) + "\n"


def test_preview_of_a_task_whose_launch_is_still_to_come_says_it_would_wait(
    base: list[str], sqlite_url: str
) -> None:
    succeed(sqlite_url, WEEKLY, datetime(2026, 3, 2, 9, tzinfo=UTC), RUN_ID)
    result = invoke([*base, "preview", DAILY, "--at", "2026-03-09T12:00:00Z", "--json"])
    waiting = (
        "waiting: 'weekly-client-review' has not claimed its launch scheduled for "
        "2026-03-09T09:00:00Z yet"
    )
    assert json.loads(result.stdout) == {**DAILY_PREVIEW, "waiting": waiting}
    human = invoke([*base, "preview", DAILY, "--at", "2026-03-09T12:00:00Z"])
    assert human.stdout.splitlines()[1] == (
        f"# {waiting}: when fired, it waits for it; shown with the latest run so far"
    )


def test_preview_of_a_task_whose_launch_has_not_happened_fails_saying_why(
    base: list[str],
) -> None:
    result = invoke([*base, "preview", DAILY, "--at", "2026-03-09T12:00:00Z"], code=1)
    assert result.stderr == (
        "error: waiting: 'weekly-client-review' has not claimed its launch scheduled for "
        "2026-03-09T09:00:00Z yet\n"
    )


def test_preview_of_a_task_without_any_launch_to_wait_for_fails_saying_why(
    base: list[str],
) -> None:
    # 2 March, 13:00 UTC: the weekly job's Monday 09:00 came before it was applied (NOW).
    result = invoke([*base, "preview", DAILY, "--at", "2026-03-02T13:00:00Z"], code=1)
    assert result.stderr == (
        "action.run_from_job = 'weekly-client-review': 'weekly-client-review' has no "
        "successful launch yet: no run to attach the task to\n"
    )


def test_preview_defaults_to_the_next_fire_and_prints_the_request(base: list[str]) -> None:
    result = invoke([*base, "preview", WEEKLY], now=datetime(2026, 3, 29, 12, tzinfo=UTC))
    lines = result.stdout.splitlines()
    assert lines[0] == f"# {WEEKLY}, fire scheduled for 2026-03-30T09:00:00+01:00"
    assert lines[1] == "POST http://127.0.0.1:9/api/organizations/demo-org/runs"
    assert json.loads("\n".join(lines[2:])) == WEEKLY_PREVIEW["body"]


def test_preview_counts_only_the_successes_scheduled_before_the_instant(
    tmp_path: Path, base: list[str], sqlite_url: str
) -> None:
    job = tmp_path / "numbered.toml"
    job.write_text((EXAMPLES / f"{WEEKLY}.toml").read_text().replace("{fire:%d %b %Y}", "#{seq}"))
    invoke([*base, "jobs", "apply", str(job)])
    monday = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for week, status in enumerate([FireStatus.SUCCEEDED, FireStatus.FAILED, FireStatus.SUCCEEDED]):
        scheduled = monday + timedelta(weeks=week)
        store = Store.open(sqlite_url)
        try:
            (fire,) = store.claim([("numbered", scheduled, Trigger.SCHEDULE)], now=scheduled)
            assert fire is not None
            store.start_attempts([fire.id], now=scheduled)
            store.finish([Outcome(fire.id, status, remote_id=f"r{week}")], now=scheduled)
        finally:
            store.close()

    def name_at(instant: str) -> Any:
        out = invoke([*base, "preview", "numbered", "--at", instant, "--json"]).stdout
        return json.loads(out)["body"]["name"]

    assert name_at("2026-03-02T09:00:00Z") == "Weekly client review #1"  # a retry of week 0
    assert name_at("2026-03-16T09:00:00Z") == "Weekly client review #2"
    assert name_at("2026-03-23T09:00:00Z") == "Weekly client review #3"


def test_preview_without_an_organization_fails_naming_the_setting(
    tmp_path: Path, base: list[str]
) -> None:
    (tmp_path / "config.toml").write_text("")
    result = invoke([*base, "preview", WEEKLY], code=1)
    assert result.stderr.startswith("tallyfy.organization_id: not set")


def test_preview_of_an_unknown_job_fails(base: list[str]) -> None:
    assert invoke([*base, "preview", "nope"], code=1).stderr == "error: no job with id 'nope'\n"
