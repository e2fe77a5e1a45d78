"""History retention end to end: the CLI, a fresh store, and real HTTP to a sandbox.

A weekly launch (its name carries `{seq}`) and a task attached to its latest launch
(`run_from_job`) build up 60 weeks of history through `backfill`; `history prune` deletes the
older half. `seq`, the cursor and `run_from_job` answer exactly as before; instants below the
watermark are refused by `fire` and `backfill` with a clear message; `--dry-run` deletes nothing.
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
from scheduler.store import Store
from tallyfy_sandbox import SandboxServer

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LAUNCH = """
schedule = "0 9 * * MON"
timezone = "UTC"

[action]
type = "launch_process"
# The weekly client review: its template takes one-off tasks on its runs (can_add_oot), which
# the task below adds to them.
checklist_id = "beeffbdddf558869a18556731b2da7c2"
name = "Close #{seq} {fire:%Y-%m-%d}"

[action.prerun]
16e27d901362e3abffae5c18ea1a8d12 = "Acme {fire:%B %Y}"
2024ec22c6346de494cc419191bb01aa = { at = "+2d@17:00" }
"""
TASK = """
schedule = "0 10 * * MON"
timezone = "UTC"

[action]
type = "create_task"
title = "Check the close {fire:%Y-%m-%d}"
owners = { users = [1001], groups = [], guests = [] }
deadline = "+0@17:00"
run_from_job = "close"
"""

_ticks = itertools.count()


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(*args: str) -> Outcome:
    clock = FakeClock(NOW + timedelta(seconds=next(_ticks)))
    result = CliRunner().invoke(cli, list(args), obj=App(clock=clock))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def db(
    sandbox: SandboxServer, sandbox_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    url = f"sqlite:///{tmp_path / 'state' / 'x.db'}"
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", url)
    Path("config.toml").write_text("[tallyfy]\nmax_requests_per_minute = 60000\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "close.toml").write_text(LAUNCH)
    (tmp_path / "jobs" / "check.toml").write_text(TASK)
    assert invoke("init").code == 0
    applied = invoke("jobs", "apply", "jobs")
    assert applied.code == 0, applied.stderr
    return url


def preview(job_id: str, at: str) -> dict[str, Any]:
    outcome = invoke("preview", job_id, "--at", at, "--json")
    assert outcome.code == 0, outcome.stderr
    body: dict[str, Any] = json.loads(outcome.stdout)["body"]
    return body


def engine_answers(url: str) -> dict[str, Any]:
    store = Store.open(url, create=False)
    try:
        cursor = store.accounted_until()
    finally:
        store.close()
    return {
        "next_launch": preview("close", "2026-03-09T09:00:00Z")["name"],
        "next_task_run": preview("check", "2026-03-09T10:00:00Z")["run_id"],
        "cursor": cursor,
        "list": {
            j["id"]: j["next_fire"]
            for j in json.loads(invoke("jobs", "list", "--json").stdout)["jobs"]
        },
    }


def test_pruning_half_the_history_changes_no_answer(db: str, sandbox: SandboxServer) -> None:
    filled = invoke(
        "backfill", "close", "--from", "2025-01-06T00:00:00Z", "--to", "2026-03-01T00:00:00Z"
    )
    assert filled.code == 0, filled.stderr
    filled = invoke(
        "backfill", "check", "--from", "2026-02-01T00:00:00Z", "--to", "2026-03-01T00:00:00Z"
    )
    assert filled.code == 0, filled.stderr
    launches = len(sandbox.runs())
    assert launches == 60
    before = engine_answers(db)
    assert before["next_launch"] == "Close #61 2026-03-09"

    dry = invoke("history", "prune", "--older-than", "210d", "--dry-run")
    assert dry.code == 0 and "31 history rows older than 30w would be deleted" in dry.stdout
    assert (
        len(json.loads(invoke("history", "close", "--limit", "1000", "--json").stdout)["fires"])
        == 60
    )

    pruned = invoke("history", "prune", "--older-than", "210d")
    assert pruned.code == 0, pruned.stderr
    assert "close: 31 rows" in pruned.stdout
    fires = json.loads(invoke("history", "close", "--limit", "1000", "--json").stdout)["fires"]
    assert len(fires) == 29  # half the history is gone ...
    assert engine_answers(db) == before  # ... and every answer is the same

    # Below the watermark, history no longer knows: refused, naming the option and why.
    refused = invoke("fire", "close", "--at", "2025-03-03T09:00:00Z")
    assert refused.code == 1
    assert "--at" in refused.stderr and "history was pruned" in refused.stderr
    refused = invoke(
        "backfill", "close", "--from", "2025-01-06T00:00:00Z", "--to", "2025-12-01T00:00:00Z"
    )
    assert (
        refused.code == 1 and "--from" in refused.stderr and "history was pruned" in refused.stderr
    )
    assert len(sandbox.runs()) == launches  # nothing was sent

    # Above it, a backfill still works and counts on from the kept totals.
    invoke("fire", "close", "--at", "2026-03-01T09:00:00Z")  # a manual fire on a Sunday
    assert preview("close", "2026-03-09T09:00:00Z")["name"] == "Close #62 2026-03-09"
