"""SIGHUP: the settings loaded again, taken live where they may be, never fatal (issue 11, 7).

`merge` is a pure function (a table of cases); the daemon's side is driven without threads,
through `request_reload()` and `tick()`, with a reload function the test controls.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_helpers import DaemonEnv, config_toml, wait_until, write_job

from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import (
    RetrySettings,
    SchedulerSettings,
    Secret,
    Settings,
    StoreSettings,
    TallyfySettings,
)
from scheduler.daemon import Daemon
from scheduler.daemon.reload import merge
from scheduler.definitions import load_job_files
from scheduler.errors import ConfigError, problem
from scheduler.lifecycle import FireStatus
from scheduler.notify import Notifier
from scheduler.ratelimit import RateLimiter
from scheduler.store import JobDocument, Store
from tallyfy_sandbox import SandboxServer

START = datetime(2026, 5, 4, 10, 0, 0, 500000, tzinfo=UTC)
BASE = Settings(
    store=StoreSettings(url="sqlite:////tmp/a.db"),
    tallyfy=TallyfySettings(
        base_url="https://a.example/api", organization_id="org", access_token=Secret("one")
    ),
)


def tallyfy(**changes: object) -> Settings:
    return dataclasses.replace(BASE, tallyfy=dataclasses.replace(BASE.tallyfy, **changes))


def scheduler(**changes: object) -> Settings:
    return dataclasses.replace(BASE, scheduler=dataclasses.replace(BASE.scheduler, **changes))


@pytest.mark.parametrize(
    ("fresh", "live", "restart"),
    [
        (tallyfy(access_token=Secret("two")), True, []),
        (tallyfy(max_requests_per_minute=600), True, []),
        (dataclasses.replace(BASE, retry=RetrySettings(max_attempts=3)), True, []),
        (scheduler(log_level="DEBUG"), True, []),
        (scheduler(catch_up_window=timedelta(hours=2)), True, []),
        (
            dataclasses.replace(BASE, store=StoreSettings(url="sqlite:////tmp/b.db")),
            False,
            ["store.url"],
        ),
        (tallyfy(base_url="https://b.example/api"), False, ["tallyfy.base_url"]),
        (tallyfy(organization_id="other"), False, ["tallyfy.organization_id"]),
        (scheduler(max_concurrent_fires=2), False, ["scheduler.max_concurrent_fires"]),
    ],
    ids=[
        "token",
        "rate",
        "retry",
        "log level",
        "catch-up window",
        "store url",
        "base url",
        "organization",
        "workers",
    ],
)
def test_a_reload_takes_what_may_change_live_and_names_the_rest(
    fresh: Settings, live: bool, restart: list[str]
) -> None:
    merged, needs_restart = merge(BASE, fresh)
    assert needs_restart == restart
    assert merged == (fresh if live else BASE)


def test_live_and_restart_changes_together_split_as_they_should() -> None:
    fresh = dataclasses.replace(
        tallyfy(access_token=Secret("two"), base_url="https://b.example/api"),
        scheduler=dataclasses.replace(BASE.scheduler, log_level="ERROR", max_concurrent_fires=1),
    )
    merged, restart = merge(BASE, fresh)
    assert restart == ["tallyfy.base_url", "scheduler.max_concurrent_fires"]
    assert merged.tallyfy.access_token == Secret("two")
    assert merged.tallyfy.base_url == BASE.tallyfy.base_url
    assert (merged.scheduler.log_level, merged.scheduler.max_concurrent_fires) == ("ERROR", 8)


# -- the daemon ---------------------------------------------------------------------------------
class Rig:
    def __init__(self, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock) -> None:
        self.clock = clock
        self.store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
        self.store.init_schema()
        self.settings = Settings(
            store=StoreSettings(url=self.store.url),
            tallyfy=TallyfySettings(
                base_url=sandbox.url,
                organization_id=sandbox.organization_id,
                access_token=Secret(sandbox.token),
                max_requests_per_minute=6000,
            ),
            scheduler=SchedulerSettings(log_level="INFO"),
        )
        path = write_job(tmp_path / "jobs", "j", "* * * * * *")
        (job,) = load_job_files([path], self.settings, clock.now())
        doc = JobDocument(job.id, job.to_document(), job.schedule_key, True, job.source)
        self.store.apply([doc], prune=False, now=clock.now())
        self.next: Settings | Exception = self.settings
        self.limiter = RateLimiter(6000, clock=clock)
        self.client = TallyfyClient(
            sandbox.url,
            sandbox.organization_id,
            Secret(sandbox.token),
            clock=clock,
            rate_limiter=self.limiter,
        )
        self.daemon = Daemon(
            self.settings,
            self.store,
            self.client,
            clock=clock,
            notifier=Notifier({}),
            threaded=False,
            reload_settings=self.load,
        )
        self.daemon.prepare()

    def load(self) -> Settings:
        if isinstance(self.next, Exception):
            raise self.next
        return self.next

    def reload(self, fresh: Settings | Exception) -> None:
        self.next = fresh
        self.daemon.request_reload()
        self.daemon.tick()

    def fire(self, seconds: int) -> None:
        self.clock.set(
            datetime(2026, 5, 4, 10, tzinfo=UTC) + timedelta(seconds=seconds, milliseconds=5)
        )
        self.daemon.wake()

    def statuses(self) -> list[FireStatus]:
        return [f.status for f in self.store.history("j", limit=None)]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = FakeClock(START)
    with SandboxServer(clock=clock) as sandbox:
        made = Rig(tmp_path, sandbox, clock)
        yield made
        made.daemon.shutdown()
        made.client.close()
        made.store.close()


def test_settings_that_do_not_load_change_nothing_and_the_daemon_fires_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.fire(1)
    rig.reload(ConfigError([problem("invalid TOML", file="config.toml", line=3)]))
    assert any("did not load, keeping the current ones" in r.getMessage() for r in caplog.records)
    rig.fire(2)
    assert rig.statuses() == [FireStatus.SUCCEEDED] * 2
    assert rig.daemon.settings == rig.settings


def test_a_reload_without_a_token_keeps_the_current_settings(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.reload(
        dataclasses.replace(
            rig.settings, tallyfy=dataclasses.replace(rig.settings.tallyfy, access_token=None)
        )
    )
    assert any("no access token" in r.getMessage() for r in caplog.records)
    rig.fire(1)
    assert rig.statuses() == [FireStatus.SUCCEEDED]


def test_live_settings_take_effect_at_once(rig: Rig) -> None:
    fresh = dataclasses.replace(
        rig.settings,
        tallyfy=dataclasses.replace(rig.settings.tallyfy, max_requests_per_minute=60),
        retry=RetrySettings(max_attempts=2),
        scheduler=dataclasses.replace(rig.settings.scheduler, log_level="WARNING"),
    )
    root = logging.getLogger()
    level = root.level
    try:
        rig.reload(fresh)
        assert rig.limiter.per_minute == 60
        assert rig.daemon.runner.retry.max_attempts == 2
        assert root.level == logging.WARNING
        assert rig.daemon.settings == fresh
    finally:
        root.setLevel(level)


def test_a_change_that_needs_a_restart_is_logged_and_not_taken(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = dataclasses.replace(rig.settings, store=StoreSettings(url="sqlite:////elsewhere.db"))
    rig.reload(fresh)
    assert any(
        "store.url changed; it takes effect at the next restart" in r.getMessage()
        for r in caplog.records
    )
    assert rig.daemon.settings.store.url == rig.settings.store.url
    rig.fire(1)
    assert rig.statuses() == [FireStatus.SUCCEEDED]


# -- the real daemon, and `systemctl reload`'s check -------------------------------------------
@pytest.mark.slow
def test_a_broken_config_or_a_missing_token_file_on_sighup_never_stops_the_daemon(
    denv: DaemonEnv, dstore: Store, sandbox: SandboxServer, daemons
) -> None:
    config = denv.workdir / "config.toml"
    good = config_toml(tallyfy={"max_requests_per_minute": 6000})
    config.write_text(good)
    denv.config = config
    token = denv.workdir / "token"
    token.write_text(sandbox.token)
    token.chmod(0o600)
    denv.apply(write_job(denv.workdir / "jobs", "j", "* * * * * *"))
    daemon = (
        daemons(extra_env={"TALLYFY_ACCESS_TOKEN": "", "TALLYFY_ACCESS_TOKEN_FILE": str(token)})
        .start()
        .wait_started()
    )
    wait_until(lambda: len(sandbox.tasks()) >= 1, 10, message="a first fire")

    config.write_text("[tallyfy\nmax_requests_per_minute = ")  # broken TOML
    check = denv.cli("doctor", "--config-only")  # what ExecReload runs first
    assert check.returncode == 1 and "config" in check.stderr
    daemon.send(signal.SIGHUP)  # as if it ran anyway (the file broke between the two)
    daemon.wait_for_log(r"reload: the settings did not load, keeping the current ones")

    config.write_text(good)
    token.unlink()
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log(r"reload: the settings did not load.*TALLYFY_ACCESS_TOKEN_FILE")
    before = len(sandbox.tasks())
    wait_until(lambda: len(sandbox.tasks()) >= before + 2, 10, message="fires go on")
    assert daemon.running
    assert daemon.term() == 0
    assert sandbox.token not in daemon.log()
