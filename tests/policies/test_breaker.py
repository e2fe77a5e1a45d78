"""The failure breaker (`pause_after_failures`), end to end: the CLI, a fresh store, and real
HTTP to a sandbox that rejects the job's launches (its template does not exist: 404).

N consecutive rejected fires pause the job by the breaker, with one history row holding the
reason and the last error; `jobs list`, `jobs show` and `status` (and their JSON) say who
paused it and why; `jobs resume` clears it and the count starts again. A fire that never
reached the API (transport failure, retries exhausted) never counts.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from tallyfy_sandbox import SandboxServer
from tallyfy_sandbox.faults import FaultRule

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MISSING_TEMPLATE = "0123456789abcdef0123456789abcdef"  # the sandbox has no such template
MONTHLY_CLOSE = "705c13739dc06c6dda2accd933846ccc"  # a template of the sandbox's demo org
JOB = f"""
schedule = "0 9 * * *"
timezone = "UTC"
pause_after_failures = 2

[action]
type = "launch_process"
checklist_id = "{MISSING_TEMPLATE}"
name = "Breaker {{fire:%Y-%m-%d %H:%M}}"
"""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


_ticks = itertools.count()


def invoke(*args: str) -> Outcome:
    # Each command a second after the one before (a resume comes after the failures it clears).
    clock = FakeClock(NOW + timedelta(seconds=next(_ticks)))
    result = CliRunner().invoke(cli, list(args), obj=App(clock=clock))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def json_of(*args: str) -> Any:
    outcome = invoke(*args, "--json")
    assert outcome.code == 0, outcome.stderr
    return json.loads(outcome.stdout)


@pytest.fixture
def applied(
    sandbox: SandboxServer, sandbox_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{tmp_path / 'state' / 'x.db'}")
    Path("config.toml").write_text(
        "[tallyfy]\nmax_requests_per_minute = 60000\n[retry]\nmax_attempts = 1\n"
    )
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "nightly.toml").write_text(JOB)
    assert invoke("init").code == 0
    applied = invoke("jobs", "apply", "jobs")
    assert applied.code == 0, applied.stderr
    return tmp_path


def fire(at: str) -> Outcome:
    return invoke("fire", "nightly", "--at", at)


def job_entry(listing: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [job for job in listing["jobs"] if job["id"] == "nightly"]
    return entry


def test_n_rejections_pause_the_job_by_the_breaker_and_resume_clears_it(
    applied: Path, sandbox: SandboxServer
) -> None:
    first = fire("2026-03-01T09:00:00Z")
    assert first.code == 1 and "HTTP 404" in first.stdout
    assert job_entry(json_of("jobs", "list"))["enabled"] is True  # one rejection: not yet

    second = fire("2026-03-02T09:00:00Z")
    assert second.code == 1

    entry = job_entry(json_of("jobs", "list"))
    assert entry["enabled"] is False
    assert entry["paused_by"] == "breaker"
    assert "2 consecutive fires rejected by the API" in entry["pause_reason"]
    assert "HTTP 404" in entry["pause_reason"]  # the last error
    assert job_entry(json_of("status"))["paused_by"] == "breaker"
    shown = json_of("jobs", "show", "nightly")["job"]
    assert (shown["paused_by"], shown["pause_reason"]) == ("breaker", entry["pause_reason"])
    assert "paused (by breaker)" in invoke("jobs", "list").stdout
    assert "paused by the breaker" in invoke("status").stdout

    # One history row says so: the reason and the last error, nothing else added.
    fires = json_of("history", "nightly")["fires"]
    notes = [f for f in fires if f["status"] == "skipped"]
    assert [n["error"] for n in notes] == [entry["pause_reason"]]
    assert [f["status"] for f in fires].count("failed") == 2

    assert invoke("jobs", "resume", "nightly").code == 0
    entry = job_entry(json_of("jobs", "list"))
    assert (entry["enabled"], entry["paused_by"], entry["pause_reason"]) == (True, None, None)

    # The count starts again after a resume: one more rejection does not pause it.
    assert fire("2026-03-02T09:30:00Z").code == 1
    assert job_entry(json_of("jobs", "list"))["enabled"] is True
    assert fire("2026-03-02T09:45:00Z").code == 1
    assert job_entry(json_of("jobs", "list"))["paused_by"] == "breaker"


def test_a_success_between_rejections_restarts_the_count(
    applied: Path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert fire("2026-03-01T09:00:00Z").code == 1
    # The template comes into being: the next fire succeeds.
    good = JOB.replace(MISSING_TEMPLATE, MONTHLY_CLOSE).replace(
        "[action]", '[action]\nprerun = { "0078ef3fc605082e96cff58ab46c04bc" = "March" }'
    )
    (tmp_path / "jobs" / "nightly.toml").write_text(good)
    assert invoke("jobs", "apply", "jobs").code == 0
    assert fire("2026-03-01T10:00:00Z").code == 0
    (tmp_path / "jobs" / "nightly.toml").write_text(JOB)
    assert invoke("jobs", "apply", "jobs").code == 0
    assert fire("2026-03-01T11:00:00Z").code == 1
    assert job_entry(json_of("jobs", "list"))["enabled"] is True


def test_transport_failures_and_exhausted_retries_never_trip_it(
    applied: Path, sandbox: SandboxServer
) -> None:
    sandbox.add_fault(FaultRule(kind="error_before", status=503))  # not applied, not a rejection
    for hour in range(9, 13):
        fire(f"2026-03-01T{hour:02d}:00:00Z")
    assert job_entry(json_of("jobs", "list"))["enabled"] is True
    statuses = [f["status"] for f in json_of("history", "nightly")["fires"]]
    assert "skipped" not in statuses


def test_a_person_pause_says_so_and_the_breaker_is_off_by_default(
    applied: Path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    assert invoke("jobs", "pause", "nightly").code == 0
    assert job_entry(json_of("jobs", "list"))["paused_by"] == "operator"
    assert invoke("jobs", "resume", "nightly").code == 0
    (tmp_path / "jobs" / "nightly.toml").write_text(JOB.replace("pause_after_failures = 2", ""))
    assert invoke("jobs", "apply", "jobs").code == 0
    for hour in range(9, 14):
        fire(f"2026-03-01T{hour:02d}:00:00Z")
    assert job_entry(json_of("jobs", "list"))["enabled"] is True
