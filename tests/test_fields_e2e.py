"""Issue 13, the whole of the two endpoints, end to end: job files applied and fired through the
CLI, over real HTTP to a sandbox, and what the sandbox recorded read back from it.

Launches carry roles, folders, the owner, the starter, the parent run and two flags; one-off
tasks carry their text as `description` (the seed page) and `summary` (the clients) and a soft
start; members may be named by email; `run_from_job` attaches to the launch of the same or the
latest earlier instant, waits for one still open, and fails when the run takes no task.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from tallyfy_sandbox import FaultRule, SandboxServer

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, after the weekly launch's 09:00
WEEKLY = "weekly-client-review"
DAILY = "daily-approvals-follow-up"
REVIEW = "beeffbdddf558869a18556731b2da7c2"
CLOSE = "705c13739dc06c6dda2accd933846ccc"  # Monthly close: can_add_oot off
PERIOD = "0078ef3fc605082e96cff58ab46c04bc"
CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"
REVIEW_DUE = "2024ec22c6346de494cc419191bb01aa"
ROLE = "5a4b0c2d3e1f40718293a4b5c6d7e8f9"
FOLDER = "9b1c3f7a5e2d4c6b8a0f1e3d5c7b9a2e"
GROUP_OPS = "aefc6eb5d9bf8e1007c4c63e74107328"
TAG = "f70ac12a815df7fa31f7cc57986f21c7"  # "scheduled"
UNKNOWN = "0123456789abcdef0123456789abcdef"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(*args: str) -> Outcome:
    result = CliRunner().invoke(cli, list(args), obj=App(clock=FakeClock(NOW)))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug, never an answer
    return Outcome(result.exit_code, result.stdout, result.stderr)


def history(job_id: str) -> list[dict[str, Any]]:
    outcome = invoke("history", job_id, "--json")
    assert outcome.code == 0, outcome.stderr
    fires: list[dict[str, Any]] = json.loads(outcome.stdout)["fires"]
    return fires


def apply(name: str, text: str) -> None:
    Path(f"{name}.toml").write_text(text)
    outcome = invoke("jobs", "apply", f"{name}.toml")
    assert outcome.code == 0, outcome.stderr


@pytest.fixture
def applied(
    sandbox: SandboxServer, sandbox_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh store holding the example jobs; the sandbox as the API."""
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{tmp_path / 'state' / 'x.db'}")
    Path("config.toml").write_text("[tallyfy]\nmax_requests_per_minute = 60000\n")
    assert invoke("init").code == 0
    assert invoke("jobs", "apply", str(EXAMPLES)).code == 0
    return tmp_path


def oneoff(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [t for t in sandbox.tasks() if t["is_oneoff_task"]]


LAUNCH_FIELDS = f"""\
schedule = "0 9 * * MON"
timezone = "Europe/London"

[action]
type = "launch_process"
checklist_id = "{REVIEW}"
name = "Client review {{fire:%d %b %Y}}"
users = ["AM@demo.example"]
folders = ["{FOLDER}"]
owner_id = "am@demo.example"
user_id = 1003
parent_id = "{{parent}}"
is_public = true
starred = true

[action.prerun]
"{CLIENT_NAME}" = "Acme"
"{REVIEW_DUE}" = {{ at = "+2bd@17:00" }}

[action.roles."{ROLE}"]
users = ["lee@demo.example"]
groups = ["{GROUP_OPS}"]
"""


# -- the launch ------------------------------------------------------------------------------------
def test_a_launch_sends_every_field_and_members_named_by_email_as_ids(
    applied: Path, sandbox: SandboxServer
) -> None:
    assert invoke("fire", WEEKLY, "--at", "2026-03-02T09:00:00Z").code == 0
    [parent] = sandbox.runs()
    apply("fields", LAUNCH_FIELDS.replace("{parent}", parent["id"]))
    preview = json.loads(
        invoke("preview", "fields", "--at", "2026-03-09T09:00:00Z", "--json").stdout
    )
    assert preview["body"]["owner_id"] == "am@demo.example"  # resolved only when sent

    outcome = invoke("fire", "fields", "--at", "2026-03-09T09:00:00Z")

    assert outcome.code == 0, outcome.stderr
    run = sandbox.runs()[-1]
    assert run["name"] == "Client review 09 Mar 2026"
    assert run["users"] == [1002]
    assert run["roles"] == {ROLE: {"users": [1003], "guests": [], "groups": [GROUP_OPS]}}
    assert run["folders"] == [FOLDER]
    assert (run["owner_id"], run["started_by"], run["parent_id"]) == (1002, 1003, parent["id"])
    assert (run["is_public"], run["starred"]) == (True, True)
    assert sandbox.request_count("GET", "/users") == 1


# -- the one-off task ------------------------------------------------------------------------------
TASK_FIELDS = """\
schedule = "0 8 * * MON-FRI"
timezone = "America/New_York"

[action]
type = "create_task"
title = "Call the client ({fire:%a %d %b})"
description = "Call {fire:%A}'s client and note the outcome."
owners = { users = ["LEE@demo.example", 1001], guests = ["client@acme.example"] }
started_at = "+1d@09:00"
is_soft_start_date = true
deadline = "+1d@17:00"
"""


def test_a_task_sends_its_text_as_description_and_summary_and_a_soft_start(
    applied: Path, sandbox: SandboxServer
) -> None:
    apply("call", TASK_FIELDS)

    outcome = invoke("fire", "call", "--at", "2026-03-03T08:00:00-05:00")

    assert outcome.code == 0, outcome.stderr
    [task] = oneoff(sandbox)
    text = "Call Tuesday's client and note the outcome."
    assert (task["description"], task["summary"]) == (text, text)
    assert task["is_soft_start_date"] is True
    assert task["started_at"] == "2026-03-04T14:00:00.000Z"  # tomorrow 09:00 in New York
    assert task["owners"] == {
        "users": [1003, 1001],
        "guests": ["client@acme.example"],
        "groups": [],
    }


def test_an_email_no_member_has_fails_the_fire_naming_it_and_sends_nothing(
    applied: Path, sandbox: SandboxServer
) -> None:
    apply("call", TASK_FIELDS.replace("LEE@demo.example", "ann@demo.example"))

    outcome = invoke("fire", "call", "--at", "2026-03-03T08:00:00-05:00")

    reason = (
        "action.owners.users = 'ann@demo.example': no member of the organization has the email "
        "'ann@demo.example'"
    )
    assert outcome.code == 1
    assert outcome.stderr == f"error: call 2026-03-03T13:00:00Z: failed: {reason}\n"
    assert sandbox.request_count("POST") == 0
    [fire] = history("call")
    assert (fire["status"], fire["error"]) == ("failed", reason)


# -- run_from_job ----------------------------------------------------------------------------------
def test_a_task_attaches_to_the_launch_of_its_day_not_the_newest(
    applied: Path, sandbox: SandboxServer
) -> None:
    for monday in ("2026-03-09T09:00:00Z", "2026-03-16T09:00:00Z"):  # the 16th: a backfill
        assert invoke("fire", WEEKLY, "--at", monday).code == 0
    ninth, sixteenth = sandbox.runs()

    outcome = invoke("fire", DAILY, "--at", "2026-03-10T08:00:00-04:00")

    assert outcome.code == 0, outcome.stderr
    [task] = oneoff(sandbox)
    assert task["run_id"] == ninth["id"] != sixteenth["id"]


def test_a_task_waits_while_its_launch_is_still_open(applied: Path, sandbox: SandboxServer) -> None:
    sandbox.add_fault(FaultRule("rate_limit", path_contains="/runs", retry_after=30, count=1))
    launched = invoke("fire", WEEKLY, "--at", "2026-03-09T09:00:00Z")
    assert launched.code == 1
    assert history(WEEKLY)[0]["status"] == "retrying"

    outcome = invoke("fire", DAILY, "--at", "2026-03-09T08:00:00-04:00")

    waiting = (
        "waiting: the launch of 'weekly-client-review' scheduled for 2026-03-09T09:00:00Z is "
        "still retrying"
    )
    assert outcome.stderr == (
        f"error: {DAILY} 2026-03-09T12:00:00Z: retrying: {waiting}; will be retried by the daemon\n"
    )
    [fire] = history(DAILY)
    assert (fire["status"], fire["error"]) == ("retrying", waiting)
    assert sandbox.request_count("POST", "/tasks") == 0


def test_a_task_waits_for_a_launch_its_job_has_not_claimed_yet(
    applied: Path, sandbox: SandboxServer
) -> None:
    assert invoke("fire", WEEKLY, "--at", "2026-03-02T09:00:00Z").code == 0  # last week's run

    outcome = invoke("fire", DAILY, "--at", "2026-03-09T08:00:00-04:00")

    assert outcome.code == 1
    [fire] = history(DAILY)
    assert (fire["status"], fire["error"]) == (
        "retrying",
        "waiting: 'weekly-client-review' has not claimed its launch scheduled for "
        "2026-03-09T09:00:00Z yet",
    )
    assert oneoff(sandbox) == []


@pytest.mark.parametrize("status", ["complete", "archived"])
def test_a_task_whose_run_is_closed_fails_with_that_reason(
    applied: Path, sandbox: SandboxServer, status: str
) -> None:
    assert invoke("fire", WEEKLY, "--at", "2026-03-09T09:00:00Z").code == 0
    [run] = sandbox.runs()
    sandbox.set_run_status(run["id"], status)

    outcome = invoke("fire", DAILY, "--at", "2026-03-10T08:00:00-04:00")

    reason = (
        f"action.run_id = '{run['id']}': run {run['id']} ('Weekly client review 09 Mar 2026') "
        f"is {status}: it takes no new tasks"
    )
    assert outcome.stderr == f"error: {DAILY} 2026-03-10T12:00:00Z: failed: {reason}\n"
    assert sandbox.request_count("POST", "/tasks") == 0
    assert history(DAILY)[0]["error"] == reason


def test_a_task_on_a_template_without_one_off_tasks_fails_with_that_reason(
    applied: Path, sandbox: SandboxServer
) -> None:
    apply(
        "close",
        'schedule = "0 9 1 * *"\n[action]\ntype = "launch_process"\n'
        f'checklist_id = "{CLOSE}"\nname = "Close {{fire:%b %Y}}"\n'
        f'[action.prerun]\n"{PERIOD}" = "{{fire:%B}}"\n',
    )
    apply(
        "reminder",
        'schedule = "0 10 1 * *"\n[action]\ntype = "create_task"\ntitle = "Reminder {fire:%b}"\n'
        'owners = { users = [1001] }\ndeadline = "+0@17:00"\nrun_from_job = "close"\n',
    )
    assert invoke("fire", "close", "--at", "2026-04-01T09:00:00Z").code == 0
    [run] = sandbox.runs()

    outcome = invoke("fire", "reminder", "--at", "2026-04-01T10:00:00Z")

    reason = (
        f"action.run_id = '{run['id']}': the template of run {run['id']} ('Monthly close') does "
        "not accept one-off tasks on its processes (can_add_oot is off in its settings)"
    )
    assert outcome.stderr == f"error: reminder 2026-04-01T10:00:00Z: failed: {reason}\n"
    assert sandbox.request_count("POST", "/tasks") == 0


# -- the bodies as the seed pages show them --------------------------------------------------------
# The two Tallyfy help pages this project started from. "Create one-off task": the example body,
# field for field, and the owners structure its field list gives. "Launch via API": the sample
# body (checklist_id, name, prerun); the fields it lists in prose ("assign users, groups, and
# roles at launch time", "place them in folders") have the shapes of docs/jobs.md's table.
SEED_TASK = {
    "title": "Prepare Q3 Report",
    "task_type": "task",
    "description": "Gather data and prepare the quarterly report slides.",
    "owners": {"users": [1001, 1002], "groups": [], "guests": []},
    "deadline": "2025-07-15T17:00:00Z",
    "tags": ["a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4"],
}
SEED_OWNERS = {"users": [1001], "guests": ["email@example.com"], "groups": [GROUP_OPS]}
# Every field the one-off task page lists, and the two the API takes besides (docs/jobs.md).
SEED_TASK_FIELDS = set(
    "title task_type owners deadline description started_at separate_task_for_each_assignee "
    "max_assignable prevent_guest_comment everyone_must_complete can_complete_only_assignees "
    "tags form_fields webhook top_secret run_id summary is_soft_start_date".split()
)
SEED_LAUNCH = {
    "checklist_id": REVIEW,  # the page's "your-template-id": a template's 32-hex id
    "name": "Customer Onboarding - Acme Corporation",
    "prerun": {CLIENT_NAME: "Acme Corporation", REVIEW_DUE: "2024-01-15T00:00:00.000Z"},
    "users": [1001],
    "roles": {ROLE: SEED_OWNERS},
    "folders": [FOLDER],
    "owner_id": 1001,
    "user_id": 1001,
    "parent_id": REVIEW,
    "is_public": True,
    "starred": True,
}
HEX32 = re.compile("[0-9a-f]{32}")
# "2025-07-15T17:00:00Z" (the task page), "2024-01-15T00:00:00.000Z" (the launch page)
UTC_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")
AN_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def shape(value: Any) -> Any:
    """What a JSON value looks like to the API: types, id forms and date forms, not values."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        for name, form in (("hex id", HEX32), ("UTC instant", UTC_SECONDS), ("email", AN_EMAIL)):
            if form.fullmatch(value):
                return name
        return "string"
    if isinstance(value, list):
        return sorted({json.dumps(shape(item)) for item in value})
    if isinstance(value, dict):
        return {("<id>" if HEX32.fullmatch(k) else k): shape(v) for k, v in value.items()}
    return type(value).__name__


def assert_fits(sent: dict[str, Any], seed: dict[str, Any], owners: set[str]) -> None:
    for key, example in seed.items():
        assert key in sent, key
        if key in owners:  # an owners table: all three keys, each of its kind
            assert set(sent[key]) == {"users", "guests", "groups"}, key
            for kind, items in sent[key].items():
                assert shape(items) in ([], shape(SEED_OWNERS[kind])), (key, kind)
        elif key == "roles":
            [(role, members)] = sent[key].items()
            assert HEX32.fullmatch(role)
            assert_fits({"m": members}, {"m": SEED_OWNERS}, {"m"})
        else:
            assert shape(sent[key]) == shape(example), key


def test_the_bodies_sent_carry_each_field_as_the_seed_pages_show_it(
    applied: Path, sandbox: SandboxServer
) -> None:
    assert invoke("fire", WEEKLY, "--at", "2026-03-02T09:00:00Z").code == 0
    [parent] = sandbox.runs()
    apply("fields", LAUNCH_FIELDS.replace("{parent}", parent["id"]))
    apply("call", TASK_FIELDS.replace("deadline", f'tags = ["{TAG}"]\ndeadline'))

    assert invoke("fire", "fields", "--at", "2026-03-09T09:00:00Z").code == 0
    assert invoke("fire", "call", "--at", "2026-03-03T08:00:00-05:00").code == 0

    *_, launch = sandbox.request_bodies("runs")
    assert_fits(launch, SEED_LAUNCH, owners=set())
    [task] = sandbox.request_bodies("tasks")
    assert_fits(task, SEED_TASK, owners={"owners"})
    assert set(task) <= SEED_TASK_FIELDS
    assert task["description"] == task["summary"] == "Call Tuesday's client and note the outcome."
    assert (task["started_at"], task["is_soft_start_date"]) == ("2026-03-04T14:00:00Z", True)


# -- checked against Tallyfy before they fire ------------------------------------------------------
def validate_online(name: str, text: str) -> Outcome:
    Path(f"{name}.toml").write_text(text)
    return invoke("jobs", "validate", "--online", f"{name}.toml")


def test_validate_online_accepts_every_launch_field_that_names_what_exists(
    applied: Path, sandbox: SandboxServer
) -> None:
    assert invoke("fire", WEEKLY, "--at", "2026-03-02T09:00:00Z").code == 0
    [parent] = sandbox.runs()
    outcome = validate_online("fields", LAUNCH_FIELDS.replace("{parent}", parent["id"]))
    assert (outcome.code, outcome.stderr) == (0, "")
    assert sandbox.request_count("GET", "/folders") == 2  # process and template folders


def test_validate_online_names_each_member_folder_and_run_that_does_not_exist(
    applied: Path, sandbox: SandboxServer
) -> None:
    text = (
        LAUNCH_FIELDS.replace("{parent}", UNKNOWN)
        .replace('owner_id = "am@demo.example"', 'owner_id = "ann@demo.example"')
        .replace("user_id = 1003", "user_id = 4242")
        .replace(f'folders = ["{FOLDER}"]', f'folders = ["{UNKNOWN}"]')
        .replace('users = ["lee@demo.example"]', 'users = ["bo@demo.example"]')
    )
    outcome = validate_online("fields", text)
    assert outcome.code == 1
    assert outcome.stderr.splitlines() == [
        "fields.toml:9: action.folders = '0123456789abcdef0123456789abcdef': the "
        "organization has no folder with this id",
        "fields.toml:10: action.owner_id = 'ann@demo.example': no member of the "
        "organization has this email",
        "fields.toml:11: action.user_id = 4242: no member of the organization has this user id",
        "fields.toml:12: action.parent_id = '0123456789abcdef0123456789abcdef': the "
        "organization has no run with this id",
        f"fields.toml:21: action.roles.{ROLE}.users = 'bo@demo.example': no member of the "
        "organization has this email",
    ]


def test_apply_stays_offline_and_the_same_email_fails_online_validation(
    applied: Path, sandbox: SandboxServer
) -> None:
    text = TASK_FIELDS.replace("LEE@demo.example", "ann@demo.example")
    before = sandbox.request_count()
    apply("call", text)  # no request: emails are looked up when validated online or fired
    assert sandbox.request_count() == before

    outcome = validate_online("call", text)

    assert outcome.code == 1
    assert outcome.stderr == (
        "call.toml:8: action.owners.users = 'ann@demo.example': no member of the "
        "organization has this email\n"
    )


def test_doctor_names_a_stored_jobs_email_that_is_no_member(
    applied: Path, sandbox: SandboxServer
) -> None:
    apply("call", TASK_FIELDS.replace("LEE@demo.example", "ann@demo.example"))
    outcome = invoke("doctor")
    assert outcome.code == 1
    assert (
        "  templates: <stored job call>: action.owners.users = 'ann@demo.example': no member of "
        "the organization has this email\n"
    ) in outcome.stderr


def test_validate_online_refuses_a_task_on_a_run_that_is_closed(
    applied: Path, sandbox: SandboxServer
) -> None:
    assert invoke("fire", WEEKLY, "--at", "2026-03-02T09:00:00Z").code == 0
    [run] = sandbox.runs()
    text = (
        'schedule = "0 8 * * MON-FRI"\n[action]\ntype = "create_task"\ntitle = "Chase"\n'
        f'owners = {{ users = [1001] }}\ndeadline = "+0@17:00"\nrun_id = "{run["id"]}"\n'
    )
    assert validate_online("chase", text).code == 0
    # The daily job attaches to the weekly job's runs: the latest one is checked too.
    daily = (EXAMPLES / f"{DAILY}.toml").read_text()
    assert validate_online(DAILY, daily).code == 0

    sandbox.set_run_status(run["id"], "complete")

    refused = (
        f"run {run['id']} ('Weekly client review 02 Mar 2026') is complete: it takes no new tasks"
    )
    assert validate_online("chase", text).stderr == (
        f"chase.toml:7: action.run_id = '{run['id']}': {refused}\n"
    )
    outcome = validate_online(DAILY, daily)
    assert outcome.code == 1
    assert f"action.run_from_job = '{WEEKLY}': the run '{WEEKLY}' launched last: {refused}" in (
        outcome.stderr
    )


def test_validate_online_refuses_run_from_job_on_a_template_without_one_off_tasks(
    applied: Path, sandbox: SandboxServer
) -> None:
    apply(
        "close",
        'schedule = "0 9 1 * *"\n[action]\ntype = "launch_process"\n'
        f'checklist_id = "{CLOSE}"\nname = "Close {{fire:%b %Y}}"\n'
        f'[action.prerun]\n"{PERIOD}" = "{{fire:%B}}"\n',
    )
    outcome = validate_online(
        "reminder",
        'schedule = "0 10 1 * *"\n[action]\ntype = "create_task"\ntitle = "Reminder {fire:%b}"\n'
        'owners = { users = [1001] }\ndeadline = "+0@17:00"\nrun_from_job = "close"\n',
    )
    assert outcome.stderr == (
        "reminder.toml:7: action.run_from_job = 'close': 'close' launches template "
        "'Monthly close' (705c13739dc06c6dda2accd933846ccc), which does not accept one-off "
        "tasks on its processes (can_add_oot is off in its settings)\n"
    )


# -- the guest invite cap --------------------------------------------------------------------------
def guest_job(schedule: str) -> str:
    return (
        f'schedule = "{schedule}"\n[action]\ntype = "create_task"\ntitle = "Ask {{fire:%H:%M}}"\n'
        'owners = { guests = ["client@acme.example"] }\ndeadline = "+0@23:00"\n'
    )


def test_jobs_with_guest_owners_firing_past_the_invite_cap_get_a_warning(
    applied: Path, sandbox: SandboxServer
) -> None:
    Path("a.toml").write_text(guest_job("*/4 9 * * *"))  # 15 an hour
    Path("b.toml").write_text(guest_job("*/4 9 * * *"))
    under = invoke("jobs", "validate", "a.toml", "b.toml")
    assert (under.code, under.stderr) == (0, "")  # 30 in the hour: at the cap, not past it

    Path("b.toml").write_text(guest_job("*/3 9 * * *"))  # 20 an hour: 35 together
    over = invoke("jobs", "validate", "a.toml", "b.toml")

    assert over.code == 0  # a warning: the fires would be late, not lost
    assert over.stderr.startswith(
        "warning: one-off tasks with guest owners fire 35 times in the hour from "
        "2026-03-03T09:00:00+00:00 (jobs a, b): Tallyfy invites at most 30 guests an hour"
    )
    Path("b.toml").write_text(
        guest_job("*/3 9 * * *").replace("guests", "users").replace('"client@acme.example"', "1001")
    )
    assert invoke("jobs", "validate", "a.toml", "b.toml").stderr == ""  # members are no guests


# -- refused credentials while looking up ----------------------------------------------------------
def test_a_refused_token_while_reading_the_members_leaves_the_fire_waiting(
    applied: Path, sandbox: SandboxServer
) -> None:
    apply("call", TASK_FIELDS)
    sandbox.expire_token(sandbox.token)

    outcome = invoke("fire", "call", "--at", "2026-03-03T08:00:00-05:00")

    assert outcome.code == 1
    [fire] = history("call")
    assert fire["status"] == "retrying"  # not failed: the token, not the fire, is wrong
    assert fire["error"].startswith("credentials refused; waiting for a renewed token")
    assert sandbox.request_count("POST") == 0
