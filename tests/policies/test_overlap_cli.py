"""`overlap` through the CLI: a fire by hand ignores it unless `--respect-overlap`; a bad value
is an error naming the file, the key and the value (real HTTP to the sandbox)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from tallyfy_sandbox import SandboxServer

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
JOB = """
schedule = "0 9 * * *"
timezone = "UTC"
overlap = "{policy}"

[action]
type = "create_task"
title = "Follow-up {{fire:%Y-%m-%d %H:%M}}"
owners = {{ users = [1001] }}
deadline = "+0@17:00"
"""

_ticks = itertools.count()


def invoke(*args: str) -> Result:
    clock = FakeClock(NOW + timedelta(seconds=next(_ticks)))
    return CliRunner().invoke(cli, list(args), obj=App(clock=clock))


@pytest.fixture
def folder(
    sandbox: SandboxServer, sandbox_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{tmp_path / 'state' / 'x.db'}")
    Path("config.toml").write_text("[tallyfy]\nmax_requests_per_minute = 60000\n")
    (tmp_path / "jobs").mkdir()
    assert invoke("init").exit_code == 0
    return tmp_path / "jobs"


def test_a_fire_by_hand_obeys_overlap_only_when_asked(folder: Path, sandbox: SandboxServer) -> None:
    (folder / "follow.toml").write_text(JOB.format(policy="buffer_one"))
    assert invoke("jobs", "apply", str(folder)).exit_code == 0

    assert invoke("fire", "follow", "--at", "2026-03-01T09:00:00Z").exit_code == 0
    ignored = invoke("fire", "follow", "--at", "2026-03-01T10:00:00Z")
    assert ignored.exit_code == 0, ignored.output  # the first task is open: sent anyway
    assert len(sandbox.tasks()) == 2

    asked = invoke("fire", "follow", "--at", "2026-03-01T11:00:00Z", "--respect-overlap")
    assert asked.exit_code == 1
    assert "skipped" in asked.stdout and "still open" in asked.stdout
    assert len(sandbox.tasks()) == 2

    for task in sandbox.tasks():
        sandbox.set_task_status(task["id"], "completed")
    sent = invoke("fire", "follow", "--at", "2026-03-01T12:00:00Z", "--respect-overlap")
    assert sent.exit_code == 0, sent.output
    assert len(sandbox.tasks()) == 3


def test_an_unknown_overlap_is_an_error_naming_file_key_and_value(folder: Path) -> None:
    path = folder / "follow.toml"
    path.write_text(JOB.format(policy="queue"))
    done = invoke("jobs", "validate", str(path))
    assert done.exit_code == 1
    assert "follow.toml" in done.stderr and "overlap" in done.stderr and "queue" in done.stderr
    assert "allow, skip, buffer_one" in done.stderr
    applied = invoke("jobs", "apply", str(folder))
    assert applied.exit_code == 1
    assert "follow" not in invoke("jobs", "list").stdout  # nothing half-written
