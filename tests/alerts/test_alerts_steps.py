"""Alerts end to end, one step at a time: the real daemon without threads under a FakeClock,
fires over real HTTP to an in-process sandbox, messages through Apprise to real local
receivers (an HTTP server for `json://`, an aiosmtpd server for `mailto://`).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from daemon.daemon_helpers import CLIENT_NAME, REVIEW_DUE, write_job
from prometheus_client.parser import text_string_to_metric_families
from receivers import JsonReceiver, SmtpReceiver
from sqlalchemy import event

from scheduler.alerts import PASS_EVERY
from scheduler.alertstate import IncidentKind, OutboxStatus
from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import (
    AlertSettings,
    CatchUpPolicy,
    RetrySettings,
    SchedulerSettings,
    Secret,
    Settings,
    StoreSettings,
    TallyfySettings,
)
from scheduler.daemon import Daemon
from scheduler.definitions import load_job_files
from scheduler.lifecycle import FireStatus
from scheduler.notify import Notifier
from scheduler.ratelimit import RateLimiter
from scheduler.store import JobDocument, Store
from tallyfy_sandbox import SandboxServer, jwt_token

START = datetime(2026, 5, 4, 10, 0, 0, 500000, tzinfo=UTC)
BAD_PRERUN = {REVIEW_DUE: {"at": "+2d@17:00"}}  # the required client name is missing: a 422
GOOD_PRERUN = {CLIENT_NAME: "Acme", REVIEW_DUE: {"at": "+2d@17:00"}}


def at(seconds: float) -> datetime:
    return datetime(2026, 5, 4, 10, 0, tzinfo=UTC) + timedelta(seconds=seconds)


class AlertWorld:
    """A store, a sandbox, receivers, a FakeClock, and threadless daemons sharing them."""

    def __init__(self, tmp_path: Path, sandbox: SandboxServer, clock: FakeClock) -> None:
        self.tmp_path = tmp_path
        self.sandbox = sandbox
        self.clock = clock
        self.store = Store.open(f"sqlite:///{tmp_path / 'alerts.db'}")
        self.store.init_schema()
        self.json = JsonReceiver().start()
        self.smtp = SmtpReceiver().start()
        self.settings = self.make_settings(f"{self.json.url} {self.smtp.url}")
        self.daemons: list[Daemon] = []
        self.clients: list[TallyfyClient] = []
        self._ids = itertools.count(1)

    def make_settings(self, urls: str, **alerts: Any) -> Settings:
        return Settings(
            store=StoreSettings(url=self.store.url),
            tallyfy=TallyfySettings(
                base_url=self.sandbox.url,
                organization_id=self.sandbox.organization_id,
                access_token=Secret(self.sandbox.token),
            ),
            scheduler=SchedulerSettings(catch_up=CatchUpPolicy.ALL),
            retry=RetrySettings(max_attempts=3, initial_backoff=timedelta(seconds=2)),
            alerts=AlertSettings(
                urls={"default": Secret(urls)},
                **{"template_check_every": timedelta(0), **alerts},
            ),
        )

    def put(self, job_id: str, schedule: str, **kw: Any) -> None:
        path = write_job(self.tmp_path / "jobs" / job_id, job_id, schedule, **kw)
        (job,) = load_job_files([path], self.settings, self.clock.now())
        doc = JobDocument(job.id, job.to_document(), job.schedule_key, job.enabled, job.source)
        self.store.apply([doc], prune=False, now=self.clock.now())

    def daemon(self, *, rate_limiter: RateLimiter | None = None) -> Daemon:
        client = TallyfyClient(
            self.sandbox.url,
            self.sandbox.organization_id,
            Secret(self.sandbox.token),
            clock=self.clock,
            timeout=5,
            connect_timeout=2,
            rate_limiter=rate_limiter,
        )
        self.clients.append(client)
        daemon = Daemon(
            self.settings,
            self.store,
            client,
            clock=self.clock,
            notifier=Notifier({}),
            daemon_id=f"d{next(self._ids)}",
            threaded=False,
        )
        daemon.alerts.pass_every = 0  # evaluate at every tick: the tests step the clock
        self.daemons.append(daemon)
        daemon.prepare()
        return daemon

    def fire_at(self, daemon: Daemon, instant: datetime) -> None:
        """Play the timer, then the loop (which evaluates alerts and delivers them)."""
        self.clock.set(max(self.clock.now(), instant + timedelta(milliseconds=5)))
        daemon.wake()
        daemon.tick()

    def fires(self, job_id: str) -> list[Any]:
        return sorted(self.store.history(job_id, limit=None), key=lambda f: f.scheduled_for)

    def close(self) -> None:
        for daemon in self.daemons:
            if not daemon.stop_event.is_set():
                daemon.shutdown()
        for client in self.clients:
            client.close()
        self.json.stop()
        self.smtp.stop()
        self.store.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AlertWorld]:
    clock = FakeClock(START)
    with SandboxServer(clock=clock) as sandbox:
        w = AlertWorld(tmp_path, sandbox, clock)
        yield w
        w.close()


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("type", kind) == kind]


def test_a_422_gives_one_failure_message_naming_the_job_instant_and_field_then_one_success(
    world: AlertWorld,
) -> None:
    world.put("review", "* * * * * *", action="launch", action_keys={"prerun": BAD_PRERUN})
    daemon = world.daemon()
    for second in range(1, 101):  # 100 failures, one message
        world.fire_at(daemon, at(second))
    fires = world.fires("review")
    assert len(fires) == 100 and {f.status for f in fires} == {FireStatus.FAILED}
    assert {f.http_status for f in fires} == {422}
    found = world.json.wait_for(1, 5)
    assert [(m["type"], m["title"]) for m in found] == [
        ("failure", "[tallyfy-scheduler] failed: review")
    ]
    (failure,) = found
    assert "failed: review" in failure["title"]
    text = failure["message"]
    assert "2026-05-04 10:00:01 UTC (2026-05-04T10:00:01Z)" in text  # the first failed instant
    assert f"field prerun.{CLIENT_NAME}" in text and "is required" in text
    assert "tallyfy-scheduler history review" in text
    (incident,) = world.store.incidents(kind=IncidentKind.FAILED)
    assert f"Incident: {incident.ref}" in text
    (mail,) = world.smtp.wait_for(1, 5)  # the same message by email
    assert "failed: review" in mail["title"] and f"prerun.{CLIENT_NAME}" in mail["message"]

    # The fix is applied: the next fire succeeds, and one recovery message goes out.
    world.put("review", "* * * * * *", action="launch", action_keys={"prerun": GOOD_PRERUN})
    world.clock.advance(timedelta(seconds=3))
    daemon.tick()  # reloads the job
    for second in range(104, 110):
        world.fire_at(daemon, at(second))
    assert world.fires("review")[-1].status is FireStatus.SUCCEEDED
    messages = world.json.wait_for(2, 5)
    assert [m["type"] for m in messages] == ["failure", "success"]
    assert "recovered: review" in messages[1]["title"] and incident.ref in messages[1]["message"]
    for second in range(110, 115):
        world.fire_at(daemon, at(second))
    assert len(world.json.messages) == 2 and len(world.smtp.messages) == 2
    assert world.store.incidents(kind=IncidentKind.FAILED) == []


def test_a_receiver_that_is_down_gets_the_message_when_it_returns(world: AlertWorld) -> None:
    world.json.stop()  # down: connections refused
    world.put("review", "* * * * * *", action="launch", action_keys={"prerun": BAD_PRERUN})
    world.put("fine", "* * * * * *")
    daemon = world.daemon()
    for second in range(1, 11):
        world.fire_at(daemon, at(second))
    # Fires went on as scheduled meanwhile: every instant of both jobs has its outcome.
    assert [f.status for f in world.fires("fine")] == [FireStatus.SUCCEEDED] * 10
    assert [f.status for f in world.fires("review")] == [FireStatus.FAILED] * 10
    (queued,) = [
        m for m in world.store.notifications() if m.target == "default" and m.url_index == 0
    ]
    assert queued.status is OutboxStatus.PENDING and queued.attempts >= 2
    world.json.start()
    world.clock.advance(timedelta(minutes=2))  # past the backoff
    daemon.tick()
    (failure,) = world.json.wait_for(1, 5)
    assert "failed: review" in failure["title"]
    assert len(world.smtp.messages) == 1  # the other URL of the target got it once, at once


def test_the_evaluation_runs_every_pass_every_seconds(world: AlertWorld) -> None:
    assert PASS_EVERY <= 5  # a failure is told within seconds, not minutes


def test_a_store_down_past_store_down_after_is_told_from_memory_and_recorded_when_back(
    world: AlertWorld,
) -> None:
    world.settings = world.make_settings(world.json.url, store_down_after=timedelta(seconds=10))
    world.put("fine", "* * * * * *")
    daemon = world.daemon()
    down = {"on": False}

    def fail(*_args: Any) -> None:
        if down["on"]:
            raise sqlite3.OperationalError("disk I/O error")

    event.listen(world.store.engine, "before_cursor_execute", fail)
    down["on"] = True
    for _ in range(15):  # 15 s of an unreachable store
        world.clock.advance(timedelta(seconds=1))
        daemon.tick()
    (told,) = world.json.wait_for(1, 5)
    assert told["type"] == "failure" and "store unreachable" in told["title"]
    assert "sent from memory" in told["message"]
    down["on"] = False
    world.clock.advance(timedelta(seconds=1))
    daemon.tick()  # the store answers: the incident is recorded, the recovery queued
    daemon.tick()
    messages = world.json.wait_for(2, 5)
    assert [m["type"] for m in messages] == ["failure", "success"]
    (incident,) = world.store.incidents(open_only=False, kind=IncidentKind.STORE)
    assert incident.ref in told["message"] and not incident.is_open
    notes = world.store.notifications(incident.id)
    assert [(n.event, n.status) for n in notes] == [
        ("opened", OutboxStatus.SENT),  # sent from memory, recorded as such: never again
        ("cleared", OutboxStatus.SENT),
    ]


def test_a_fire_refused_for_longer_than_its_catch_up_window_is_skipped_never_failed(
    world: AlertWorld,
) -> None:
    world.settings = world.make_settings(world.json.url)
    world.put("j", "* * * * * *", catch_up_window="10s")
    daemon = world.daemon()
    world.sandbox.expire_token(world.sandbox.token)
    world.fire_at(daemon, at(1))
    (held,) = world.fires("j")
    assert (held.status, held.http_status) == (FireStatus.RETRYING, 401)
    assert held.error is not None and held.error.startswith("credentials refused; waiting")
    world.clock.set(at(30))
    daemon.tick()  # the retry is due: still refused, and now older than its window
    statuses = {f.scheduled_for: f.status for f in world.fires("j")}
    assert statuses[at(1)] is FireStatus.SKIPPED
    assert FireStatus.FAILED not in statuses.values()
    assert [m["title"] for m in world.json.wait_for(1, 5)][0].endswith(
        "credentials: the API refuses the token"
    )


def test_the_daily_template_check_opens_a_template_incident_before_the_next_fire(
    world: AlertWorld,
) -> None:
    world.settings = world.make_settings(world.json.url, template_check_every=timedelta(days=1))
    world.put("review", "0 9 * * *", action="launch", action_keys={"prerun": BAD_PRERUN})
    daemon = world.daemon()
    daemon.tick()
    (warning,) = world.json.wait_for(1, 10)
    assert warning["type"] == "warning" and "template: review" in warning["title"]
    assert "required" in warning["message"] and world.fires("review") == []  # before any fire
    world.clock.advance(timedelta(seconds=1))
    world.put("review", "0 9 * * *", action="launch", action_keys={"prerun": GOOD_PRERUN})
    world.clock.advance(timedelta(hours=12))
    daemon.tick()
    assert len(world.json.messages) == 1  # checked once a day
    world.clock.advance(timedelta(hours=12, seconds=1))
    daemon.tick()
    assert [m["type"] for m in world.json.wait_for(2, 10)] == ["warning", "success"]


def test_a_token_that_expires_soon_gives_one_warning(world: AlertWorld) -> None:
    token = jwt_token(START + timedelta(days=3))
    world.sandbox.add_token(token)
    settings = world.make_settings(world.json.url)
    world.settings = replace(
        settings, tallyfy=replace(settings.tallyfy, access_token=Secret(token))
    )
    daemon = world.daemon()
    for _ in range(3):
        world.clock.advance(timedelta(seconds=2))
        daemon.tick()
    (warning,) = world.json.wait_for(1, 5)
    assert warning["type"] == "warning"
    assert warning["title"].endswith("token expires 2026-05-07T10:00:00+00:00")
    assert token not in warning["message"]


def test_a_stored_job_that_no_longer_validates_is_one_quarantined_message(
    world: AlertWorld,
) -> None:
    world.put("j", "* * * * * *")
    stored = world.store.get_job("j").definition
    stored["timezone"] = "Mars/Olympus_Mons"  # as a hand edit or an older version left it
    world.store.apply(
        [JobDocument("j", stored, schedule_key="0" * 32)], prune=False, now=world.clock.now()
    )
    daemon = world.daemon()
    for _ in range(3):
        world.clock.advance(timedelta(seconds=3))
        daemon.tick()
    (message,) = world.json.wait_for(1, 5)
    assert "quarantined: j" in message["title"] and "Mars/Olympus_Mons" in message["message"]


def test_instants_skipped_by_catch_up_after_downtime_are_one_message_with_count_and_range(
    world: AlertWorld,
) -> None:
    world.put("j", "* * * * * *", catch_up="none")
    world.clock.advance(timedelta(seconds=30))  # the daemon was down for 30 s
    daemon = world.daemon()
    for _ in range(3):
        world.clock.advance(timedelta(seconds=2))
        daemon.tick()
    (message,) = [m for m in world.json.wait_for(1, 5) if "skipped" in m["title"]]
    assert message["type"] == "warning" and "30 scheduled instant(s)" in message["message"]
    assert "From: 2026-05-04 10:00:01 UTC" in message["message"]
    assert "To: 2026-05-04 10:00:30 UTC" in message["message"]


def alert_samples(daemon: Daemon) -> dict[tuple[str, str], float]:
    """The alert families of the daemon's `/metrics` page, read with the library's parser:
    (family, kind or type) -> value."""
    return {
        (s.name, s.labels.get("kind") or s.labels.get("type") or ""): s.value
        for family in text_string_to_metric_families(daemon.metrics.render().decode())
        for s in family.samples
        if s.name in {"tallyfy_scheduler_open_incidents", "tallyfy_scheduler_alerts_sent_total"}
    }


def test_metrics_count_open_incidents_by_kind_and_messages_sent_by_type(
    world: AlertWorld,
) -> None:
    world.put("review", "* * * * * *", action="launch", action_keys={"prerun": BAD_PRERUN})
    daemon = world.daemon()
    before = alert_samples(daemon)
    assert before[("tallyfy_scheduler_open_incidents", "failed")] == 0
    assert before[("tallyfy_scheduler_alerts_sent_total", "failure")] == 0
    for second in range(1, 6):
        world.fire_at(daemon, at(second))
    world.json.wait_for(1, 5)
    world.smtp.wait_for(1, 5)
    world.clock.advance(timedelta(seconds=2))  # past the page's 1 s cache of the store
    failing = alert_samples(daemon)
    assert failing[("tallyfy_scheduler_open_incidents", "failed")] == 1
    assert failing[("tallyfy_scheduler_open_incidents", "late")] == 0
    # One message per URL of the target: the JSON receiver's and the email.
    assert failing[("tallyfy_scheduler_alerts_sent_total", "failure")] == 2
    assert failing[("tallyfy_scheduler_alerts_sent_total", "success")] == 0

    world.put("review", "* * * * * *", action="launch", action_keys={"prerun": GOOD_PRERUN})
    world.clock.advance(timedelta(seconds=3))
    daemon.tick()
    for second in range(10, 14):
        world.fire_at(daemon, at(second))
    world.json.wait_for(2, 5)
    world.smtp.wait_for(2, 5)
    world.clock.advance(timedelta(seconds=2))
    recovered = alert_samples(daemon)
    assert recovered[("tallyfy_scheduler_open_incidents", "failed")] == 0
    assert recovered[("tallyfy_scheduler_alerts_sent_total", "failure")] == 2
    assert recovered[("tallyfy_scheduler_alerts_sent_total", "success")] == 2


def test_the_store_incident_is_counted_open_while_the_store_is_down(world: AlertWorld) -> None:
    world.settings = world.make_settings(world.json.url, store_down_after=timedelta(seconds=10))
    world.put("fine", "* * * * * *")
    daemon = world.daemon()
    down = {"on": False}

    def fail(*_args: Any) -> None:
        if down["on"]:
            raise sqlite3.OperationalError("disk I/O error")

    event.listen(world.store.engine, "before_cursor_execute", fail)
    down["on"] = True
    for _ in range(15):
        world.clock.advance(timedelta(seconds=1))
        daemon.tick()
    world.json.wait_for(1, 5)
    world.clock.advance(timedelta(seconds=2))
    # The store cannot count it: the page says so from memory, alone of the kinds.
    assert alert_samples(daemon) == {
        ("tallyfy_scheduler_open_incidents", "store"): 1,
        ("tallyfy_scheduler_alerts_sent_total", "failure"): 1,
        ("tallyfy_scheduler_alerts_sent_total", "warning"): 0,
        ("tallyfy_scheduler_alerts_sent_total", "success"): 0,
    }
    down["on"] = False
    world.clock.advance(timedelta(seconds=1))
    daemon.tick()
    daemon.tick()
    world.json.wait_for(2, 5)
    world.clock.advance(timedelta(seconds=2))
    back = alert_samples(daemon)
    assert back[("tallyfy_scheduler_open_incidents", "store")] == 0  # recorded cleared
    assert back[("tallyfy_scheduler_alerts_sent_total", "success")] == 1
