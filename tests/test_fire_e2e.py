"""`tallyfy-scheduler fire`, end to end: a fresh store, the example jobs, real HTTP to a sandbox.

The commands run in-process through click's CliRunner, configured as a user would (environment
variables and a `config.toml` in the working directory); the sandbox is a real HTTP server on
a free port, so every request crosses a socket. What the sandbox created is read back from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from tallyfy_sandbox import SandboxServer

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WEEKLY = "weekly-client-review"
DAILY = "daily-approvals-follow-up"
MONDAY_9AM_LONDON = "2026-03-02T09:00:00+00:00"  # London is on GMT until 29 March
MONDAY_8AM_NEW_YORK = "2026-03-02T08:00:00-05:00"  # New York is on EST until 8 March

REVIEW = "beeffbdddf558869a18556731b2da7c2"
CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"
REVIEW_DUE = "2024ec22c6346de494cc419191bb01aa"
PRIORITY = "15b4e12ebb73d350509df79e2acd216c"
STEP_PREPARE = "2f09054af7c94eda191606832f6775b8"
STEP_MEET = "3c1b61a847f413f1c2e306633fa6580d"
TAG_SCHEDULED = "f70ac12a815df7fa31f7cc57986f21c7"

# The weekly example fired for Monday 2 March 2026, 09:00 in London: `+1bd@12:00` is Tuesday
# noon, `+2bd@17:00` Wednesday 17:00, both GMT.
WEEKLY_BODY = {
    "checklist_id": REVIEW,
    "name": "Weekly client review 02 Mar 2026",
    "summary": "Opened by the scheduler for week 2026-W10",
    "prerun": {
        PRIORITY: {"id": 2, "text": "Normal"},
        REVIEW_DUE: "2026-03-04T17:00:00Z",
        CLIENT_NAME: "Acme Corporation",
    },
    "tasks": {
        STEP_PREPARE: {"deadline": "2026-03-03T12:00:00Z"},
        STEP_MEET: {"deadline": "2026-03-04T17:00:00Z"},
    },
    "users": [1002],
    "tags": [TAG_SCHEDULED],
}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def applied(
    sandbox: SandboxServer, sandbox_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh store, initialized, holding the example jobs; the sandbox as the API."""
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{tmp_path / 'state' / 'x.db'}")
    Path("config.toml").write_text("[tallyfy]\nmax_requests_per_minute = 60000\n")
    assert invoke("init").code == 0
    assert invoke("jobs", "apply", str(EXAMPLES)).code == 0
    assert sandbox.runs() == []
    return tmp_path


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


def test_fire_launches_the_weekly_review_with_the_exact_body(
    applied: Path, sandbox: SandboxServer
) -> None:
    preview = invoke("preview", WEEKLY, "--at", MONDAY_9AM_LONDON, "--json")
    assert json.loads(preview.stdout)["body"] == WEEKLY_BODY

    outcome = invoke("fire", WEEKLY, "--at", MONDAY_9AM_LONDON)

    assert (outcome.code, outcome.stderr) == (0, "")
    [run] = sandbox.runs()
    assert outcome.stdout == f"{WEEKLY} {MONDAY_9AM_LONDON}: succeeded, remote id {run['id']}\n"
    sent = {
        "checklist_id": run["checklist_id"],
        "name": run["name"],
        "summary": run["summary"],
        "prerun": run["prerun"],  # what the API kept: an unknown key would have been dropped
        "users": run["users"],
        "tags": [tag["id"] for tag in sandbox.state.tags_of(run["id"])],
    }
    assert sent == {k: v for k, v in WEEKLY_BODY.items() if k != "tasks"}
    deadlines = {t["step_id"]: t["deadline"] for t in sandbox.tasks() if t["run_id"] == run["id"]}
    assert deadlines[STEP_PREPARE] == "2026-03-03T12:00:00.000Z"
    assert deadlines[STEP_MEET] == "2026-03-04T17:00:00.000Z"

    [fire] = history(WEEKLY)
    assert {k: fire[k] for k in ("scheduled_for", "trigger", "status", "attempts")} == {
        "scheduled_for": MONDAY_9AM_LONDON,
        "trigger": "manual",
        "status": "succeeded",
        "attempts": 1,
    }
    assert (fire["remote_id"], fire["http_status"], fire["error"]) == (run["id"], 201, None)


def test_firing_the_same_instant_twice_sends_once(applied: Path, sandbox: SandboxServer) -> None:
    assert invoke("fire", WEEKLY, "--at", MONDAY_9AM_LONDON).code == 0

    again = invoke("fire", WEEKLY, "--at", MONDAY_9AM_LONDON)

    assert (again.code, again.stdout) == (1, "")
    assert again.stderr == (
        f"error: {WEEKLY} 2026-03-02T09:00:00Z: already in the history; not sent again\n"
    )
    assert len(sandbox.runs()) == 1
    assert [f["status"] for f in history(WEEKLY)] == ["succeeded"]


def test_a_422_fails_the_fire_with_the_apis_message_and_field_errors(
    applied: Path, sandbox: SandboxServer
) -> None:
    # The weekly job without "Review due": valid offline, refused by the API.
    text = (EXAMPLES / f"{WEEKLY}.toml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith(f'"{REVIEW_DUE}"')]
    Path("no-due-date.toml").write_text("\n".join(lines) + "\n")
    assert invoke("jobs", "apply", "no-due-date.toml").code == 0

    outcome = invoke("fire", "no-due-date", "--at", MONDAY_9AM_LONDON)

    api_says = (
        "HTTP 422: POST /organizations/demo-org/runs: Review due is required; "
        f"prerun.{REVIEW_DUE}: Review due is required"
    )
    assert outcome.code == 1
    assert outcome.stdout == f"no-due-date {MONDAY_9AM_LONDON}: failed ({api_says})\n"
    assert outcome.stderr == f"error: no-due-date 2026-03-02T09:00:00Z: failed: {api_says}\n"
    assert sandbox.runs() == []
    [fire] = history("no-due-date")
    assert (fire["status"], fire["http_status"], fire["error"]) == ("failed", 422, api_says)


def test_the_follow_up_task_attaches_to_the_weekly_run(
    applied: Path, sandbox: SandboxServer
) -> None:
    assert invoke("fire", WEEKLY, "--at", MONDAY_9AM_LONDON).code == 0
    [run] = sandbox.runs()

    outcome = invoke("fire", DAILY, "--at", MONDAY_8AM_NEW_YORK)

    assert outcome.code == 0, outcome.stderr
    [task] = [t for t in sandbox.tasks() if t["is_oneoff_task"]]
    assert outcome.stdout == f"{DAILY} {MONDAY_8AM_NEW_YORK}: succeeded, remote id {task['id']}\n"
    assert task["run_id"] == run["id"]
    assert task["title"] == "Follow up on open approvals (Mon 02 Mar)"
    assert task["deadline"] == "2026-03-02T22:00:00.000Z"  # 17:00 in New York
    assert task["owners"] == {"users": [1001], "guests": [], "groups": []}
    [fire] = history(DAILY)
    assert (fire["status"], fire["remote_id"]) == ("succeeded", task["id"])


def test_the_follow_up_task_fails_before_any_weekly_launch(
    applied: Path, sandbox: SandboxServer
) -> None:
    outcome = invoke("fire", DAILY, "--at", MONDAY_8AM_NEW_YORK)

    assert outcome.code == 1
    assert outcome.stderr.startswith(f"error: {DAILY} 2026-03-02T13:00:00Z: failed: ")
    assert f"'{WEEKLY}' has no successful launch yet" in outcome.stderr
    assert sandbox.tasks() == []
    assert sandbox.request_count("POST") == 0
    [fire] = history(DAILY)
    assert (fire["status"], fire["attempts"]) == ("failed", 0)  # refused before any attempt
