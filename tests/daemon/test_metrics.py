"""`/metrics`, `/healthz` and `/readyz` of a running daemon (issue 12, "Metrics and health").

The daemon runs in this process, with its threads (the planner, the timer, the send workers,
the HTTP listener on a free port), against a sandbox over real HTTP. Per-second jobs with an
`end_at` a few seconds ahead fire a known set of instants; once the ledger holds every one of
them settled, the page is scraped, parsed with prometheus-client's own parser, and every
counter is compared with what the ledger says happened, and the alert families with what a
real receiver (an HTTP server for Apprise's `json://`) took.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from alerts.receivers import JsonReceiver
from daemon_helpers import history_settled, wait_until, write_job
from prometheus_client.parser import text_string_to_metric_families

from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import (
    DEFAULT_TARGET,
    AlertSettings,
    HttpSettings,
    SchedulerSettings,
    Secret,
    Settings,
    StoreSettings,
    TallyfySettings,
)
from scheduler.cron import parse_schedule
from scheduler.daemon import Daemon
from scheduler.definitions import load_job_files
from scheduler.errors import ConfigError
from scheduler.lifecycle import FireStatus
from scheduler.operations import apply_jobs
from scheduler.store import Store
from scheduler.transport import exchange
from tallyfy_sandbox import SandboxServer

# (family, labels) -> value, for every sample of the page.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


class Running:
    """A daemon built in this process, run on a thread by `start`, stopped at teardown."""

    def __init__(
        self, tmp_path: Path, sandbox: SandboxServer, alert_urls: str | None = None, **http: Any
    ) -> None:
        alerts = (
            AlertSettings(
                urls={DEFAULT_TARGET: Secret(alert_urls)}, template_check_every=timedelta(0)
            )
            if alert_urls
            else AlertSettings()
        )
        self.settings = Settings(
            store=StoreSettings(url=f"sqlite:///{tmp_path / 'metrics.db'}"),
            tallyfy=TallyfySettings(
                base_url=sandbox.url,
                organization_id=sandbox.organization_id,
                access_token=Secret(sandbox.token),
                max_requests_per_minute=6000,
            ),
            scheduler=SchedulerSettings(shutdown_grace=timedelta(seconds=5)),
            http=HttpSettings(listen="127.0.0.1:0", **http),
            alerts=alerts,
        )
        self.tmp_path = tmp_path
        self.store = Store.open(self.settings.store.url)
        self.store.init_schema()
        self.client = TallyfyClient.from_settings(self.settings.tallyfy)
        self.daemon: Daemon | None = None
        self.thread: threading.Thread | None = None

    def apply(self, job_id: str, schedule: str, **keys: Any) -> None:
        folder = self.tmp_path / "jobs"
        write_job(folder, job_id, schedule, **keys)
        now = datetime.now(UTC)
        apply_jobs(self.store, load_job_files([folder], self.settings, now), now=now)

    def build(self) -> Daemon:
        self.daemon = Daemon(self.settings, self.store, self.client)
        return self.daemon

    def start(self) -> str:
        """Run the daemon on a thread; its listener's URL once it is ready."""
        daemon = self.daemon or self.build()
        self.thread = threading.Thread(target=daemon.run, name="test-daemon")
        self.thread.start()
        listener = wait_until(lambda: daemon.listener, 10, message="the listener is open")
        wait_until(lambda: daemon.not_ready_reason() is None, 20, message="the daemon is ready")
        return listener.url

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.request_stop()
        if self.thread is not None:
            self.thread.join(30)
            assert not self.thread.is_alive()
        self.client.close()
        self.store.close()


@pytest.fixture
def running(tmp_path: Path, sandbox: SandboxServer) -> Iterator[Running]:
    run = Running(tmp_path, sandbox)
    yield run
    run.stop()


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    with JsonReceiver() as r:
        yield r


def ledger(store: Store, job_id: str) -> dict[str, int]:
    """The ledger's outcomes of one job, as `fires_total` counts them (skips by instant)."""
    counts: dict[str, int] = {}
    for fire in store.history(job_id, limit=None):
        n = (fire.skipped_count or 1) if fire.status is FireStatus.SKIPPED else 1
        counts[fire.status.value] = counts.get(fire.status.value, 0) + n
    return counts


@pytest.mark.slow
def test_metrics_parse_and_their_counters_match_what_the_ledger_holds(
    tmp_path: Path, sandbox: SandboxServer, receiver: JsonReceiver
) -> None:
    running = Running(tmp_path, sandbox, alert_urls=receiver.url)
    try:
        check_the_page(running, receiver)
    finally:
        running.stop()


def check_the_page(running: Running, receiver: JsonReceiver) -> None:
    now = datetime.now(UTC)
    end = (now + timedelta(seconds=5)).replace(microsecond=0)
    # Instants from now to `end`, those before the daemon starts included: "steady" fires
    # them all (catch-up), "missed" skips those (catch_up = "none"), "refused" fails each
    # with a 422 (its owner is no member); "later" fires next year; "off" is paused.
    running.apply("steady", "* * * * * *", end_at=end, catch_up="all")
    running.apply("missed", "* * * * * *", end_at=end, catch_up="none")
    no_member = {"owners": {"users": [9]}}
    running.apply("refused", "*/2 * * * * *", end_at=end, catch_up="all", action_keys=no_member)
    running.apply("later", "0 0 1 1 *")
    running.apply("off", "* * * * *", enabled=False)
    wait_until(lambda: datetime.now(UTC) >= now + timedelta(seconds=2), 5)  # "missed" misses
    url = running.start()
    store = running.store
    jobs = ("steady", "missed", "refused")
    wait_until(lambda: datetime.now(UTC) > end + timedelta(seconds=1), 15)
    wait_until(lambda: all(history_settled(store, j) for j in jobs), 20, message="settled")

    samples = scrape(url)

    fires = named(samples, "tallyfy_scheduler_fires_total")
    for job_id in jobs:
        counted = {
            dict(labels)["outcome"]: v for labels, v in fires.items() if ("job", job_id) in labels
        }
        assert counted == ledger(store, job_id), job_id
    assert ledger(store, "steady").keys() == {"succeeded"}
    assert ledger(store, "refused").keys() == {"failed"}
    assert ledger(store, "missed").get("skipped", 0) >= 1
    succeeded = sum(ledger(store, j).get("succeeded", 0) for j in jobs)
    failed = ledger(store, "refused")["failed"]
    assert (
        value(samples, "tallyfy_scheduler_api_requests_total", endpoint="POST /tasks", code="201")
        == succeeded
    )
    assert (
        value(samples, "tallyfy_scheduler_api_requests_total", endpoint="POST /tasks", code="422")
        == failed
    )
    assert (
        value(
            samples, "tallyfy_scheduler_api_request_duration_seconds_count", endpoint="POST /tasks"
        )
        == succeeded + failed
    )
    # Every fire here is scheduled and sent once: one delay each, none of them long.
    assert value(samples, "tallyfy_scheduler_fire_delay_seconds_count") == succeeded + failed
    assert (
        value(samples, "tallyfy_scheduler_fire_delay_seconds_bucket", le="5.0")
        == succeeded + failed
    )

    newest = max(
        f.scheduled_for for f in store.history("steady", status=FireStatus.SUCCEEDED, limit=1)
    )
    assert (
        value(samples, "tallyfy_scheduler_job_last_success_timestamp_seconds", job="steady")
        == newest.timestamp()
    )
    assert (
        value(samples, "tallyfy_scheduler_job_last_success_timestamp_seconds", job="refused")
        is None
    )
    next_year = parse_schedule("0 0 1 1 *", "UTC").next_after(datetime.now(UTC))
    assert next_year is not None
    assert (
        value(samples, "tallyfy_scheduler_job_next_fire_timestamp_seconds", job="later")
        == next_year.timestamp()
    )
    assert (
        value(samples, "tallyfy_scheduler_job_next_fire_timestamp_seconds", job="steady") is None
    )  # ended
    assert (
        value(samples, "tallyfy_scheduler_job_interval_seconds", job="later") is None
    )  # no instant yet
    assert value(samples, "tallyfy_scheduler_job_paused", job="off") == 1
    assert value(samples, "tallyfy_scheduler_job_paused", job="steady") == 0
    assert named(samples, "tallyfy_scheduler_open_fires") == {
        frozenset({("status", s)}): 0.0
        for s in ("pending", "sending", "retrying", "uncertain", "held")
    }
    assert value(samples, "tallyfy_scheduler_ready") == 1
    assert value(samples, "process_resident_memory_bytes")  # the library's process metrics

    # The alerts: "refused" opened a `failed` incident, "missed" a `skipped` one (told once,
    # never open); each message the receiver took is counted by its notify type.
    def delivered() -> Samples | None:
        page = scrape(url)
        sent = named(page, "tallyfy_scheduler_alerts_sent_total")
        queued = store.notifications()
        settled = queued and all(n.status.value == "sent" for n in queued)
        settled = settled and any(m["type"] == "failure" for m in receiver.messages)
        return page if settled and sum(sent.values()) == len(receiver.messages) else None

    samples = wait_until(delivered, 20, interval=0.2, message="the alerts delivered and counted")
    took: dict[str, float] = {}
    for message in receiver.messages:
        took[message["type"]] = took.get(message["type"], 0) + 1
    assert took.get("failure") == 1  # the 422s of "refused": one message
    assert named(samples, "tallyfy_scheduler_alerts_sent_total") == {
        frozenset({("type", t)}): took.get(t, 0.0) for t in ("failure", "warning", "success")
    }
    incidents = named(samples, "tallyfy_scheduler_open_incidents")
    assert incidents[frozenset({("kind", "failed")})] == 1
    assert incidents[frozenset({("kind", "skipped")})] == 0
    assert sum(incidents.values()) == len(store.incidents())


@pytest.mark.slow
def test_the_period_of_a_firing_job_and_its_last_success_move_with_its_fires(
    running: Running,
) -> None:
    running.apply("every-two", "*/2 * * * * *")
    url = running.start()
    assert running.daemon is not None

    def two_successes() -> Samples | None:
        samples = scrape(url)
        done = value(samples, "tallyfy_scheduler_fires_total", job="every-two", outcome="succeeded")
        return samples if done and done >= 2 else None

    samples = wait_until(two_successes, 10, interval=0.2)
    assert value(samples, "tallyfy_scheduler_job_interval_seconds", job="every-two") == 2.0
    last = value(samples, "tallyfy_scheduler_job_last_success_timestamp_seconds", job="every-two")
    following = value(samples, "tallyfy_scheduler_job_next_fire_timestamp_seconds", job="every-two")
    assert last is not None and following is not None and following - last in (2.0, 4.0)


@pytest.mark.slow
def test_healthz_turns_503_while_a_request_is_stuck_past_its_deadline_and_back(
    running: Running,
) -> None:
    url = running.start()
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    # A request of this process whose deadline passed 20 s ago and has not returned: stuck
    # where no socket timeout reaches (tests/daemon/test_notify.py feeds the watchdog the same).
    with exchange(-20.0):
        stuck = requests.get(f"{url}/healthz", timeout=5)
    assert stuck.status_code == 503
    assert "past its deadline" in stuck.text
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert value(scrape(url), "tallyfy_scheduler_ready") == 1


@pytest.mark.slow
def test_readyz_answers_503_until_the_catch_up_is_planned_and_while_stopping(
    running: Running,
) -> None:
    daemon = running.build()
    listener = daemon.listen()  # what `run` does first
    assert listener is not None
    before = requests.get(f"{listener.url}/readyz", timeout=5)
    assert (before.status_code, before.text) == (503, "the startup catch-up is not planned yet\n")
    assert value(scrape(listener.url), "tallyfy_scheduler_ready") == 0
    assert running.start() == listener.url
    assert requests.get(f"{listener.url}/readyz", timeout=5).status_code == 200
    daemon.stop_event.set()  # what SIGTERM sets first
    stopping = requests.get(f"{listener.url}/readyz", timeout=5)
    assert (stopping.status_code, stopping.text) == (503, "stopping\n")


@pytest.mark.slow
def test_above_max_job_series_the_per_job_families_are_left_out_with_one_log_line(
    tmp_path: Path, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    run = Running(tmp_path, sandbox, max_job_series=2)
    try:
        run.apply("one", "0 0 1 1 *")
        run.apply("two", "0 0 1 1 *")
        url = run.start()
        assert value(scrape(url), "tallyfy_scheduler_job_paused", job="one") == 0  # 2 jobs: in
        run.apply("three", "0 0 1 1 *", enabled=False)  # paused jobs count too
        assert run.daemon is not None
        wait_until(lambda: run.daemon is not None and run.daemon.loader.paused, 10)
        with caplog.at_level(logging.WARNING, logger="scheduler.daemon.metrics"):
            first, second = scrape(url), scrape(url)
    finally:
        run.stop()
    for samples in (first, second):
        per_job = [name for name, labels in samples if any(k == "job" for k, _v in labels)]
        assert per_job == []
        assert value(samples, "tallyfy_scheduler_ready") == 1  # the rest is still there
    dropped = [r for r in caplog.records if "max_job_series" in r.getMessage()]
    assert len(dropped) == 1
    assert "3 jobs" in dropped[0].getMessage()


def test_a_daemon_without_http_listen_opens_no_listener(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    run = Running(tmp_path, sandbox)
    run.settings = replace(run.settings, http=HttpSettings())
    try:
        assert run.build().listen() is None
    finally:
        run.stop()


def test_healthz_turns_503_while_the_main_loop_is_stalled_and_back(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    # A daemon without threads under a FakeClock: the test is its main loop (`tick`), and
    # the listener's thread asks `/healthz` over HTTP meanwhile.
    clock = FakeClock(datetime(2026, 5, 4, 10, tzinfo=UTC))
    run = Running(tmp_path, sandbox)
    daemon = Daemon(run.settings, run.store, run.client, clock=clock, threaded=False)
    run.daemon = daemon
    try:
        listener = daemon.listen()
        assert listener is not None
        daemon.prepare()
        daemon.tick()
        assert requests.get(f"{listener.url}/healthz", timeout=5).status_code == 200
        clock.advance(timedelta(seconds=31))  # no pass for 31 s: stuck somewhere
        stalled = requests.get(f"{listener.url}/healthz", timeout=5)
        assert (stalled.status_code, stalled.text) == (503, "the main loop has not run for 31s\n")
        daemon.tick()  # it runs again
        assert requests.get(f"{listener.url}/healthz", timeout=5).text == "ok\n"
    finally:
        daemon.shutdown()
        run.stop()


def test_a_daemon_never_listens_where_other_hosts_reach_it_without_allow_remote(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    # Settings built in code skip the loading's check: the daemon holds them to it too.
    run = Running(tmp_path, sandbox)
    run.settings = replace(run.settings, http=HttpSettings(listen="0.0.0.0:0"))
    try:
        with pytest.raises(ConfigError, match=r"http\.listen = '0\.0\.0\.0:0'.*allow_remote"):
            run.build().listen()
        assert run.daemon is not None and run.daemon.listener is None
    finally:
        run.stop()
