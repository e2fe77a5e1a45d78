"""`status` and `backfill`, through click's CliRunner at a fixed instant (a FakeClock).

`backfill` sends over real HTTP to an in-process sandbox; `status` reads what a daemon (or a
test, standing in for one) wrote to the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from daemon_helpers import audit, write_job

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import Outcome, Skip, Store
from tallyfy_sandbox import SandboxServer

NOW = datetime(2026, 5, 4, 12, 0, 30, tzinfo=UTC)  # a Monday


def hour(h: int, minute: int = 0) -> datetime:
    return datetime(2026, 5, 4, h, minute, tzinfo=UTC)


class Cli:
    """`tallyfy-scheduler --config ... --db ... ARGS` at NOW, against one sandbox."""

    def __init__(self, tmp_path: Path, sandbox: SandboxServer) -> None:
        self.tmp_path = tmp_path
        self.sandbox = sandbox
        self.db_url = f"sqlite:///{tmp_path / 'cli.db'}"
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            f'[tallyfy]\nbase_url = "{sandbox.url}"\norganization_id = "{sandbox.organization_id}"'
            "\n"
        )
        self.now = NOW

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(
            cli,
            ["--config", str(self.config), "--db", self.db_url, *args],
            obj=App(clock=FakeClock(self.now)),
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def apply(self, job_id: str, schedule: str, **kw: Any) -> None:
        path = write_job(self.tmp_path / "jobs" / job_id, job_id, schedule, **kw)
        self("jobs", "apply", str(path))

    def store(self) -> Store:
        return Store.open(self.db_url)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    with SandboxServer() as sandbox:
        monkeypatch.setenv("TALLYFY_ACCESS_TOKEN", sandbox.token)
        runner = Cli(tmp_path, sandbox)
        runner("init")
        yield runner


@pytest.fixture
def store(run: Cli) -> Iterator[Store]:
    store = run.store()
    yield store
    store.close()


# -- backfill -----------------------------------------------------------------------------------
def test_backfill_fires_each_instant_of_the_range_once(run: Cli, store: Store) -> None:
    run.apply("hourly", "0 * * * *")
    out = run("backfill", "hourly", "--from", "2026-05-04T06:00:00Z", "--to", "2026-05-04T09:00Z")
    assert "4 of 4 instants are fired" in out.stdout
    report = audit(store, run.sandbox, "hourly", hour(5), hour(9)).assert_ok()
    assert report.sent == [hour(h) for h in (6, 7, 8, 9)]
    assert {report.rows[s].trigger for s in report.sent} == {Trigger.BACKFILL}
    # Again over a wider range: only the instants history does not hold are sent.
    out = run("backfill", "hourly", "--from", "2026-05-04T05:00:00Z", "--to", "2026-05-04T10:00Z")
    assert "2 of 6 instants are fired" in out.stdout
    assert audit(store, run.sandbox, "hourly", hour(4), hour(10)).assert_ok().sent == [
        hour(h) for h in range(5, 11)
    ]


def test_backfill_dry_run_says_what_it_would_fire_and_sends_nothing(run: Cli, store: Store) -> None:
    run.apply("hourly", "0 * * * *")
    store.claim([("hourly", hour(7), Trigger.SCHEDULE)], now=NOW)
    out = run(
        "backfill",
        "hourly",
        "--from",
        "2026-05-04T06:00Z",
        "--to",
        "2026-05-04T08:00Z",
        "--dry-run",
    ).stdout.splitlines()
    assert out == [
        "2026-05-04T06:00:00+00:00  to fire",
        "2026-05-04T07:00:00+00:00  in history (pending)",
        "2026-05-04T08:00:00+00:00  to fire",
        "2 of 3 instants would be fired",
    ]
    assert run.sandbox.tasks() == []


def test_backfill_sends_again_what_failed_or_was_skipped_alone(run: Cli, store: Store) -> None:
    run.apply("hourly", "0 * * * *")
    (failed,) = store.claim([("hourly", hour(6), Trigger.SCHEDULE)], now=NOW)
    assert failed is not None
    store.finish([Outcome(failed.id, FireStatus.FAILED, error="HTTP 422")], now=NOW)
    store.record_skips([Skip("hourly", hour(7), reason="missed")], now=NOW)
    run("backfill", "hourly", "--from", "2026-05-04T06:00Z", "--to", "2026-05-04T07:00Z")
    report = audit(store, run.sandbox, "hourly", hour(5), hour(7)).assert_ok()
    assert report.sent == [hour(6), hour(7)]


def test_backfill_leaves_instants_still_to_come_to_the_daemon(run: Cli, store: Store) -> None:
    run.apply("hourly", "0 * * * *")
    result = run("backfill", "hourly", "--from", "2026-05-04T11:00Z", "--to", "2026-05-04T15:00Z")
    assert "backfilling up to now" in result.stderr
    assert [f.scheduled_for for f in store.history("hourly")] == [hour(12), hour(11)]


def test_backfill_refuses_a_range_too_large_without_enumerating_it(run: Cli) -> None:
    run.apply("every-second", "* * * * * *")
    result = run(
        "backfill", "every-second", "--from", "2020-01-01T00:00Z", "--to", "2026-05-04T00:00Z",
        code=1,
    )  # fmt: skip
    assert "more than 100000 instants in one backfill" in result.stderr


# -- status -------------------------------------------------------------------------------------
def test_status_without_a_daemon_says_none_is_alive(run: Cli) -> None:
    run.apply("hourly", "0 * * * *")
    report = run.json("status")
    assert report["alive"] is False
    assert "no daemon is alive" in run("status").stdout


def test_status_shows_the_heartbeat_next_fires_and_open_fires(run: Cli, store: Store) -> None:
    run.apply("hourly", "0 * * * *")
    run.apply("paused", "*/5 * * * *")
    run("jobs", "pause", "paused")
    store.heartbeat(
        "host:1:abc",
        hostname="host",
        pid=1,
        started_at=NOW - timedelta(hours=1),
        now=NOW - timedelta(seconds=3),
        next_fire_at=hour(13),
        state="running",
    )
    done, retry, unsure = store.claim(
        [
            ("hourly", hour(11), Trigger.SCHEDULE),
            ("paused", hour(11, 55), Trigger.SCHEDULE),
            ("hourly", hour(12), Trigger.SCHEDULE),
        ],
        now=NOW,
    )
    assert done is not None and retry is not None and unsure is not None
    store.start_attempts([done.id, retry.id, unsure.id], now=NOW)
    store.finish(
        [
            Outcome(done.id, FireStatus.SUCCEEDED, remote_id="r1"),
            Outcome(retry.id, FireStatus.RETRYING, error="HTTP 429", next_attempt_at=hour(12, 5)),
            Outcome(unsure.id, FireStatus.UNCERTAIN, error="HTTP 502", http_status=502),
        ],
        now=NOW,
    )

    report = run.json("status")
    assert report["alive"] is True
    (daemon,) = report["daemons"]
    assert (daemon["id"], daemon["next_fire_at"]) == ("host:1:abc", "2026-05-04T13:00:00+00:00")
    jobs = {job["id"]: job for job in report["jobs"]}
    assert jobs["hourly"]["next_fire"] == "2026-05-04T13:00:00+00:00"
    assert jobs["hourly"]["last_outcome"]["status"] == "uncertain"
    assert (jobs["paused"]["enabled"], jobs["paused"]["next_fire"]) == (False, None)
    assert [(f["job_id"], f["next_attempt_at"]) for f in report["retrying"]] == [
        ("paused", "2026-05-04T12:05:00+00:00")
    ]
    assert [(f["job_id"], f["error"]) for f in report["uncertain"]] == [("hourly", "HTTP 502")]
    assert report["credentials_problem"] is False

    text = run("status").stdout
    assert "daemon host:1:abc alive" in text
    assert "retrying: paused 2026-05-04T11:55:00+00:00 attempts=1" in text
    assert "uncertain: hourly 2026-05-04T12:00:00+00:00 attempts=1" in text


def test_status_says_a_silent_daemon_is_dead_and_flags_a_rejected_token(
    run: Cli, store: Store
) -> None:
    run.apply("hourly", "0 * * * *")
    store.heartbeat(
        "gone",
        hostname="host",
        pid=1,
        started_at=NOW - timedelta(hours=1),
        now=NOW - timedelta(minutes=5),
        next_fire_at=None,
        state="running",
    )
    (fire,) = store.claim([("hourly", hour(12), Trigger.SCHEDULE)], now=NOW)
    assert fire is not None
    store.start_attempts([fire.id], now=NOW)
    outcome = Outcome(fire.id, FireStatus.FAILED, http_status=401, error="HTTP 401")
    store.finish([outcome], now=NOW)
    report = run.json("status")
    assert report["alive"] is False and report["daemons"][0]["alive"] is False
    assert report["credentials_problem"] is True
    assert "CREDENTIALS" in run("status").stdout
