"""`init`, `jobs validate|apply|list|show|pause|resume|remove` and `history`, end to end.

Every command runs through click's CliRunner against a SQLite store under tmp_path; the
clock is a FakeClock handed in through the App context object.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scheduler import __version__
from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import SCHEMA_VERSION, Outcome, Store

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # Monday 2026-03-02, 12:00 UTC
WEEKLY = "weekly-client-review"
DAILY = "daily-approvals-follow-up"


class Cli:
    """Runs `tallyfy-scheduler --config ... --db ... ARGS` at a fixed instant."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.db_url = db_url
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            '[tallyfy]\norganization_id = "demo-org"\nbase_url = "http://127.0.0.1:9/api"\n'
        )
        self.now = NOW

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(
            cli,
            ["--config", str(self.config), "--db", self.db_url, *args],
            obj=App(clock=FakeClock(self.now)),
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is a bug, never an answer
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store.open(self.db_url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def run(tmp_path: Path, sqlite_url: str) -> Cli:
    runner = Cli(tmp_path, sqlite_url)
    runner("init")
    return runner


@pytest.fixture
def applied(run: Cli) -> Cli:
    run("jobs", "apply", str(EXAMPLES))
    return run


def copy_examples(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in EXAMPLES.glob("*.toml"):
        shutil.copy(path, folder / path.name)
    return folder


def record_fire(
    store: Store, job_id: str, scheduled_for: datetime, status: FireStatus, **kw: Any
) -> None:
    (fire,) = store.claim([(job_id, scheduled_for, Trigger.SCHEDULE)], now=scheduled_for)
    assert fire is not None
    store.start_attempts([fire.id], now=scheduled_for)
    store.finish([Outcome(fire.id, status, **kw)], now=scheduled_for + timedelta(seconds=1))


# -- init and the schema ------------------------------------------------------------------------


def test_init_is_safe_to_run_again(run: Cli) -> None:
    assert f"schema version {SCHEMA_VERSION}" in run("init").stdout


def test_a_store_that_was_never_initialized_says_to_run_init(tmp_path: Path) -> None:
    run = Cli(tmp_path, f"sqlite:///{tmp_path / 'new.db'}")
    result = run("jobs", "list", code=1)
    assert "tallyfy-scheduler init" in result.stderr
    assert "Traceback" not in result.output


def test_version_and_help(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "jobs" in result.stdout and "preview" in result.stdout


def test_a_missing_config_file_fails_naming_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "jobs", "list"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.toml'}: config file not found" in result.stderr


# -- validate and apply --------------------------------------------------------------------------


def test_validate_accepts_the_example_jobs_and_stores_nothing(run: Cli) -> None:
    result = run("jobs", "validate", str(EXAMPLES))
    assert result.stdout == f"2 job(s) valid: {DAILY}, {WEEKLY}\n"
    assert run.json("jobs", "list") == {"jobs": []}


def test_apply_adds_then_finds_nothing_to_change(run: Cli) -> None:
    assert run("jobs", "apply", str(EXAMPLES)).stdout == (
        f"added: {DAILY}, {WEEKLY}\nchanged: -\nremoved: -\nunchanged: -\n"
    )
    assert run("jobs", "apply", str(EXAMPLES)).stdout == (
        f"added: -\nchanged: -\nremoved: -\nunchanged: {DAILY}, {WEEKLY}\n"
    )


def test_apply_reports_a_changed_job(run: Cli, tmp_path: Path) -> None:
    folder = copy_examples(tmp_path / "jobs")
    run("jobs", "apply", str(folder))
    weekly = folder / f"{WEEKLY}.toml"
    weekly.write_text(weekly.read_text().replace('"0 9 * * MON"', '"0 10 * * MON"'))
    assert run("jobs", "apply", str(folder)).stdout == (
        f"added: -\nchanged: {WEEKLY}\nremoved: -\nunchanged: {DAILY}\n"
    )
    assert run.json("jobs", "show", WEEKLY)["job"]["schedule"] == "0 10 * * MON"


def test_dry_run_prints_the_changes_and_writes_nothing(applied: Cli, tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(
        (EXAMPLES / f"{WEEKLY}.toml").read_text().replace('"0 9 * * MON"', '"0 9 * * TUE"')
    )
    before = applied.json("jobs", "list")
    result = applied("jobs", "apply", str(EXAMPLES), str(extra), "--dry-run")
    assert result.stdout == (
        f"dry run: nothing was written\nadded: extra\nchanged: -\nremoved: -\n"
        f"unchanged: {DAILY}, {WEEKLY}\n"
    )
    assert applied.json("jobs", "list") == before


def test_prune_removes_the_jobs_no_file_defines(applied: Cli) -> None:
    weekly = str(EXAMPLES / f"{WEEKLY}.toml")
    dry = applied("jobs", "apply", weekly, "--prune", "--dry-run").stdout
    assert f"removed: {DAILY}\n" in dry
    assert len(applied.json("jobs", "list")["jobs"]) == 2
    assert applied("jobs", "apply", weekly, "--prune").stdout == (
        f"added: -\nchanged: -\nremoved: {DAILY}\nunchanged: {WEEKLY}\n"
    )
    assert [job["id"] for job in applied.json("jobs", "list")["jobs"]] == [WEEKLY]
    # without --prune, stored jobs that no file names stay
    assert "removed: -" in applied("jobs", "apply", str(EXAMPLES / f"{DAILY}.toml")).stdout


def test_run_from_job_may_name_a_job_already_in_the_store(applied: Cli) -> None:
    result = applied("jobs", "apply", str(EXAMPLES / f"{DAILY}.toml"))
    assert f"unchanged: {DAILY}" in result.stdout


def test_a_prune_that_would_orphan_run_from_job_fails(applied: Cli) -> None:
    result = applied("jobs", "apply", str(EXAMPLES / f"{DAILY}.toml"), "--prune", code=1)
    assert "action.run_from_job = 'weekly-client-review': no job has this id" in result.stderr


# -- bad input: exit 1, one line per problem, nothing stored ------------------------------------

TASK_TOP = 'schedule = "0 8 * * *"\n'
LAUNCH = (
    'schedule = "0 9 * * MON"\ntimezone = "Europe/London"\n[action]\ntype = "launch_process"\n'
    'checklist_id = "beeffbdddf558869a18556731b2da7c2"\nname = "Review {fire:%d %b}"\n'
)


def bad(text: str, *fragments: str, name: str = "bad.toml", id: str) -> Any:
    return pytest.param(name, text, fragments, id=id)


BAD_FILES = [
    bad('schedule = "0 9 * * *"\n[action\n', "bad.toml:2: invalid TOML", id="toml-syntax"),
    bad(
        LAUNCH + 'nmae = "x"\n',
        "bad.toml:7: action.nmae = 'x': unknown key: did you mean 'name'?",
        id="unknown-key",
    ),
    bad(LAUNCH + "users = 1002\n", "bad.toml:7: action.users = 1002: must be a list", id="type"),
    bad(
        LAUNCH.replace("0 9 * * MON", "0 9 * * MOON"),
        "bad.toml:1: schedule = '0 9 * * MOON'",
        id="cron",
    ),
    bad(
        LAUNCH.replace("0 9 * * MON", "0 0 31 4 *"),
        "schedule = '0 0 31 4 *'",
        "never",
        id="never-fires",
    ),
    bad(
        LAUNCH.replace("Europe/London", "Europe/Lundon"),
        "bad.toml:2: timezone = 'Europe/Lundon': unknown time zone",
        id="zone",
    ),
    bad(
        'jitter = "5 minutes"\n' + LAUNCH,
        "bad.toml:1: jitter = '5 minutes': not a duration",
        id="duration",
    ),
    bad(
        LAUNCH + '[action.tasks."2f09054af7c94eda191606832f6775b8"]\ndeadline = "+1bx@12:00"\n',
        "bad.toml:8: action.tasks.2f09054af7c94eda191606832f6775b8.deadline = '+1bx@12:00': ",
        id="time-expression",
    ),
    bad(
        LAUNCH.replace("Review {fire:%d %b}", "Review {fire.day}"),
        "bad.toml:6: action.name = 'Review {fire.day}': ",
        id="template",
    ),
    bad(
        LAUNCH.replace("beeffbdddf558869a18556731b2da7c2", "Weekly-template"),
        "bad.toml:5: action.checklist_id = 'Weekly-template': must be a 32-character",
        id="hex-id",
    ),
    bad(
        LAUNCH + 'groups = ["ops team"]\n',
        "action.groups = 'ops team': each must be a 32-character",
        id="group-id",
    ),
    bad(
        TASK_TOP + '[action]\ntype = "create_task"\ntitle = "T"\nowners = { guests = ["ops"] }\n'
        'deadline = "+0@17:00"\n',
        "bad.toml:5: action.owners.guests = 'ops': each must be an email address",
        id="guest-email",
    ),
    bad(
        TASK_TOP + '[action]\ntype = "create_task"\ntitle = "T"\nowners = { users = ["1001"] }\n'
        'deadline = "+0@17:00"\n',
        "action.owners.users = '1001': each must be a user id",
        id="user-id",
    ),
    bad(
        TASK_TOP + '[action]\ntype = "create_task"\ntitle = "T"\nowners = { users = [1001] }\n',
        "bad.toml:2: action.deadline: required",
        id="missing-deadline",
    ),
    bad(
        LAUNCH.replace('name = "Review {fire:%d %b}"\n', ""),
        "action.name: required",
        id="missing-name",
    ),
    bad(TASK_TOP, "bad.toml: action: required", id="missing-action"),
    bad(
        LAUNCH.replace("0 9 * * MON", "0 9 * * TUE"),
        f"z-dup.toml:1: id = '{WEEKLY}': duplicate job id: ",
        f"{WEEKLY}.toml defines it too",
        name="z-dup.toml",
        id="duplicate-id",
    ),
    bad(
        TASK_TOP + '[action]\ntype = "create_task"\ntitle = "T"\nowners = { users = [1001] }\n'
        'deadline = "+0@17:00"\nrun_from_job = "no-such-job"\n',
        "bad.toml: action.run_from_job = 'no-such-job': no job has this id",
        id="run-from-job-unknown",
    ),
]


@pytest.mark.parametrize(("name", "text", "fragments"), BAD_FILES)
def test_bad_input_fails_naming_file_key_and_value_and_stores_nothing(
    applied: Cli, tmp_path: Path, name: str, text: str, fragments: tuple[str, ...]
) -> None:
    folder = copy_examples(tmp_path / "jobs")
    path = folder / name
    if name == "z-dup.toml":  # a second file that reuses an example's id
        text = f'id = "{WEEKLY}"\n' + text
    path.write_text(text)
    # A changed example in the same apply must not be stored either.
    daily = folder / f"{DAILY}.toml"
    daily.write_text(daily.read_text().replace('"0 8 * * MON-FRI"', '"0 7 * * MON-FRI"'))
    before = applied.json("jobs", "list")
    for command in ("validate", "apply"):
        if command == "validate" and "no job has this id" in fragments[0]:
            continue  # validate accepts the id format; apply checks the target exists
        result = applied("jobs", command, str(folder), code=1)
        for fragment in fragments:
            assert fragment in result.stderr, result.stderr
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert all(line.startswith(str(folder)) for line in lines), lines
    assert applied.json("jobs", "list") == before


def test_every_problem_of_every_file_is_one_line(run: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "a.toml").write_text(LAUNCH.replace("Europe/London", "Nowhere") + "tags = [1]\n")
    (folder / "b.toml").write_text('schedule = "*/0 * * * *"\n' + LAUNCH.split("\n", 1)[1])
    result = run("jobs", "apply", str(folder), code=1)
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"{folder / 'a.toml'}:2", "timezone = 'Nowhere'"],
        [f"{folder / 'a.toml'}:7", "action.tags = 1"],
        [f"{folder / 'b.toml'}:1", "schedule = '*/0 * * * *'"],
    ]
    assert run.json("jobs", "list") == {"jobs": []}


# -- list, show, pause, resume, remove ----------------------------------------------------------


def test_list_shows_each_jobs_next_fire_in_its_zone_and_last_outcome(applied: Cli) -> None:
    with applied.store() as store:
        record_fire(
            store,
            WEEKLY,
            datetime(2026, 2, 23, 9, tzinfo=UTC),
            FireStatus.SUCCEEDED,
            remote_id="r1",
        )
    assert applied.json("jobs", "list") == {
        "jobs": [
            {
                "id": DAILY,
                "enabled": True,
                "schedule": "0 8 * * MON-FRI",
                "schedule_words": "At 08:00, Monday through Friday",
                "timezone": "America/New_York",
                "action": "create_task",
                "next_fire": "2026-03-02T08:00:00-05:00",  # 07:00 EST now
                "paused_by": None,
                "pause_reason": None,
                "last_outcome": None,
            },
            {
                "id": WEEKLY,
                "enabled": True,
                "schedule": "0 9 * * MON",
                "schedule_words": "At 09:00, only on Monday",
                "timezone": "Europe/London",
                "action": "launch_process",
                "next_fire": "2026-03-09T09:00:00+00:00",
                "paused_by": None,
                "pause_reason": None,
                "last_outcome": {
                    "status": "succeeded",
                    "scheduled_for": "2026-02-23T09:00:00+00:00",
                    "error": None,
                },
            },
        ]
    }
    text = applied("jobs", "list").stdout.splitlines()
    assert text[0].split() == [
        "ID",
        "ENABLED",
        "SCHEDULE",
        "ZONE",
        "NEXT",
        "FIRE",
        "LAST",
        "OUTCOME",
    ]
    assert text[2].split() == [
        WEEKLY, "yes", "0", "9", "*", "*", "MON", "Europe/London", "2026-03-09T09:00:00+00:00",
        "succeeded", "(2026-02-23T09:00:00+00:00)",
    ]  # fmt: skip


def test_pause_and_resume(applied: Cli) -> None:
    assert applied("jobs", "pause", WEEKLY).stdout == f"paused {WEEKLY}\n"
    (weekly,) = [j for j in applied.json("jobs", "list")["jobs"] if j["id"] == WEEKLY]
    assert (weekly["enabled"], weekly["next_fire"]) == (False, None)
    assert "paused" in applied("jobs", "list").stdout
    applied.now = NOW + timedelta(days=10)
    assert "fires from now on" in applied("jobs", "resume", WEEKLY).stdout
    show = applied.json("jobs", "show", WEEKLY)["job"]
    assert (show["enabled"], show["next_fire"]) == (True, "2026-03-16T09:00:00+00:00")
    assert show["active_since"] == "2026-03-12T12:00:00+00:00"  # no replay of the pause


def test_remove_keeps_the_history(applied: Cli) -> None:
    with applied.store() as store:
        record_fire(
            store, DAILY, datetime(2026, 3, 2, 13, tzinfo=UTC), FireStatus.FAILED, error="x"
        )
    assert applied("jobs", "remove", DAILY).stdout == f"removed {DAILY} (its history stays)\n"
    assert [j["id"] for j in applied.json("jobs", "list")["jobs"]] == [WEEKLY]
    (fire,) = applied.json("history", DAILY)["fires"]
    assert (fire["job_id"], fire["status"], fire["scheduled_for"]) == (
        DAILY,
        "failed",
        "2026-03-02T13:00:00+00:00",  # the job is gone, so its zone is: UTC
    )


@pytest.mark.parametrize("command", ["pause", "resume", "remove", "show"])
def test_an_unknown_job_id_fails_with_a_message(applied: Cli, command: str) -> None:
    result = applied("jobs", command, "nope", code=1)
    assert result.stderr == "error: no job with id 'nope'\n"


def test_show_gives_the_stored_definition_and_recent_history(applied: Cli) -> None:
    with applied.store() as store:
        record_fire(
            store,
            WEEKLY,
            datetime(2026, 2, 23, 9, tzinfo=UTC),
            FireStatus.SUCCEEDED,
            remote_id="r1",
        )
    data = applied.json("jobs", "show", WEEKLY)
    assert data["job"]["source"] == str(EXAMPLES / f"{WEEKLY}.toml")
    assert data["job"]["definition"]["action"]["name"] == "Weekly client review {fire:%d %b %Y}"
    assert data["job"]["next_fire"] == "2026-03-09T09:00:00+00:00"
    assert [(f["status"], f["remote_id"]) for f in data["history"]] == [("succeeded", "r1")]
    text = applied("jobs", "show", WEEKLY).stdout
    assert f"id: {WEEKLY}" in text and "succeeded" in text and '"checklist_id"' in text


# -- history -------------------------------------------------------------------------------------


def test_history_lists_fires_newest_first_in_each_jobs_zone(applied: Cli) -> None:
    with applied.store() as store:
        record_fire(
            store, WEEKLY, datetime(2026, 2, 16, 9, tzinfo=UTC), FireStatus.SUCCEEDED, remote_id="a"
        )
        record_fire(
            store, DAILY, datetime(2026, 2, 17, 13, tzinfo=UTC), FireStatus.FAILED, error="422"
        )
        record_fire(
            store, WEEKLY, datetime(2026, 2, 23, 9, tzinfo=UTC), FireStatus.SUCCEEDED, remote_id="b"
        )
    fires = applied.json("history")["fires"]
    assert [(f["job_id"], f["scheduled_for"], f["status"]) for f in fires] == [
        (WEEKLY, "2026-02-23T09:00:00+00:00", "succeeded"),
        (DAILY, "2026-02-17T08:00:00-05:00", "failed"),
        (WEEKLY, "2026-02-16T09:00:00+00:00", "succeeded"),
    ]
    assert set(fires[0]) >= {
        "job_id", "scheduled_for", "trigger", "status", "attempts", "remote_id", "http_status",
        "error", "created_at", "updated_at",
    }  # fmt: skip
    assert fires[1]["error"] == "422" and fires[1]["trigger"] == "schedule"
    assert [f["remote_id"] for f in applied.json("history", WEEKLY)["fires"]] == ["b", "a"]
    assert [f["job_id"] for f in applied.json("history", "--status", "failed")["fires"]] == [DAILY]
    assert len(applied.json("history", "--limit", "1")["fires"]) == 1
    since = applied.json("history", "--since", "2026-02-17T00:00:00Z")["fires"]
    assert [f["remote_id"] for f in since] == ["b", None]
    lines = applied("history").stdout.splitlines()
    assert lines[0].split()[:4] == ["2026-02-23T09:00:00+00:00", WEEKLY, "schedule", "succeeded"]


@pytest.mark.parametrize(
    "args",
    [["--status", "lost"], ["--since", "yesterday"], ["--limit", "0"]],
    ids=["unknown-status", "since-not-iso", "limit-zero"],
)
def test_history_rejects_bad_options_as_usage_errors(applied: Cli, args: list[str]) -> None:
    assert applied("history", *args, code=2).stdout == ""
