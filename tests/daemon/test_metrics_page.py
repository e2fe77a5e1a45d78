"""The `/metrics` page on its own: `Metrics` with fake sources, and the client's request hook.

The per-job families are written by `Metrics` itself (the library's `generate_latest` is too
slow at 10,000 jobs: scheduler/daemon/metrics.py); here they are checked against what the
library writes for the same samples, through the library's parser.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_helpers import job_toml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from scheduler.client import endpoint_of
from scheduler.config import Settings, StoreSettings
from scheduler.cron import jitter_delay
from scheduler.daemon.metrics import Metrics, Sources
from scheduler.daemon.planner import JobTimes
from scheduler.definitions import job_from_document
from scheduler.errors import StoreUnavailable
from scheduler.job import Job
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import Fire

NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)
ODD = 'we"ird\\job\nid'  # never a valid job id, but the writer must not care


def a_job(jitter: str = "0s") -> Job:
    document = tomllib.loads(job_toml("* * * * *", jitter=jitter)) | {"id": "j"}
    return job_from_document(document, Settings(store=StoreSettings(url="sqlite://")))


def fire(job_id: str, status: FireStatus, at: datetime = NOW, **kw: object) -> Fire:
    values: dict[str, object] = {
        "id": 1,
        "job_id": job_id,
        "scheduled_for": at,
        "trigger": Trigger.SCHEDULE,
        "status": status,
        "attempts": 1,
        "next_attempt_at": None,
        "first_attempt_at": None,
        "remote_id": None,
        "http_status": None,
        "error": None,
        "field_errors": None,
        "skipped_count": None,
        "skipped_until": None,
        "claimed_by": None,
        "created_at": at,
        "updated_at": at,
    }
    values.update(kw)
    return Fire(**values)  # type: ignore[arg-type]


@dataclass
class FakeDaemon:
    """What a daemon's parts would publish; each field may be changed between scrapes."""

    times: tuple[JobTimes, ...] | None = ()
    paused: frozenset[str] = frozenset()
    ready: bool = True
    open_fires: Mapping[FireStatus, int] | None = None
    successes: Mapping[str, datetime] = field(default_factory=dict)
    store_down: bool = False
    success_reads: int = 0
    incidents: Mapping[str, int] = field(default_factory=dict)

    def last_successes(self) -> Mapping[str, datetime]:
        self.success_reads += 1
        if self.store_down:
            raise StoreUnavailable("down")
        return self.successes

    def open_counts(self) -> Mapping[FireStatus, int]:
        if self.store_down or self.open_fires is None:
            raise StoreUnavailable("down")
        return self.open_fires

    def open_incidents(self) -> Mapping[str, int]:
        if self.store_down:
            raise StoreUnavailable("down")
        return self.incidents

    def metrics(self, max_job_series: int = 100) -> Metrics:
        return Metrics(
            Sources(
                job_times=lambda: self.times,
                paused=lambda: self.paused,
                job_count=lambda: len(self.times or ()),
                ready=lambda: self.ready,
                open_fires=self.open_counts,
                last_successes=self.last_successes,
                open_incidents=self.open_incidents,
            ),
            max_job_series=max_job_series,
        )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parsed(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def per_job(samples: Samples) -> Samples:
    return {key: v for key, v in samples.items() if any(k == "job" for k, _ in key[1])}


def test_the_per_job_families_read_as_the_library_would_write_them() -> None:
    fake = FakeDaemon(
        times=(
            ("daily", (NOW + timedelta(hours=3)).timestamp(), NOW - timedelta(hours=21)),
            (ODD, 1777896000.25, None),
            ("ended", None, NOW),
        ),
        paused=frozenset({"off"}),
        successes={"daily": NOW - timedelta(hours=21), "gone": NOW},
    )
    metrics = fake.metrics()
    metrics.recorded([fire("daily", FireStatus.SUCCEEDED, NOW), fire(ODD, FireStatus.FAILED)])
    metrics.recorded([fire(ODD, FireStatus.UNCERTAIN), fire("daily", FireStatus.RETRYING)])
    metrics.skipped([fire("off", FireStatus.SKIPPED, skipped_count=7)])
    metrics.skipped([fire("gone", FireStatus.SKIPPED)])  # not a job now: no series

    class Expected:
        def collect(self) -> Iterable[Metric]:
            prefix = "tallyfy_scheduler_"
            gauges = {
                "job_next_fire_timestamp_seconds": {
                    "daily": (NOW + timedelta(hours=3)).timestamp(),
                    ODD: 1777896000.25,
                },
                "job_interval_seconds": {"daily": 86400.0},
                "job_last_success_timestamp_seconds": {"daily": NOW.timestamp()},
                "job_paused": {"daily": 0, ODD: 0, "ended": 0, "off": 1},
            }
            for name, values in gauges.items():
                gauge = GaugeMetricFamily(prefix + name, "-", labels=["job"])
                for job_id, v in values.items():
                    gauge.add_metric([job_id], v)
                yield gauge
            counter = CounterMetricFamily(prefix + "fires", "-", labels=["job", "outcome"])
            for job_id, outcome, n in [
                ("daily", "succeeded", 1),
                ("daily", "retrying", 1),
                (ODD, "failed", 1),
                (ODD, "uncertain", 1),
                ("off", "skipped", 7),
            ]:
                counter.add_metric([job_id, outcome], n)
            yield counter

    library = CollectorRegistry()
    library.register(Expected())
    assert per_job(parsed(metrics.render())) == parsed(generate_latest(library))


def test_successes_are_read_from_the_store_once_and_the_newest_of_both_wins() -> None:
    fake = FakeDaemon(times=(("a", None, None), ("b", None, None)), store_down=True)
    metrics = fake.metrics()
    metrics.recorded([fire("a", FireStatus.SUCCEEDED, NOW)])
    name = "tallyfy_scheduler_job_last_success_timestamp_seconds"
    first = parsed(metrics.render())
    assert first[(name, frozenset({("job", "a")}))] == NOW.timestamp()  # the store is down
    fake.store_down = False
    fake.successes = {"a": NOW - timedelta(days=1), "b": NOW - timedelta(days=2)}
    second = parsed(metrics.render())
    assert second[(name, frozenset({("job", "a")}))] == NOW.timestamp()  # ours is newer
    assert second[(name, frozenset({("job", "b")}))] == (NOW - timedelta(days=2)).timestamp()
    metrics.render()
    assert fake.success_reads == 2  # once it answered, never again


def test_a_planner_that_does_not_answer_leaves_its_last_answer_in_place() -> None:
    fake = FakeDaemon(times=(("a", NOW.timestamp(), None),))
    metrics = fake.metrics()
    name = "tallyfy_scheduler_job_next_fire_timestamp_seconds"
    assert parsed(metrics.render())[(name, frozenset({("job", "a")}))] == NOW.timestamp()
    fake.times = None  # busy: no answer in time
    assert parsed(metrics.render())[(name, frozenset({("job", "a")}))] == NOW.timestamp()


def test_open_fires_and_readiness_come_from_their_sources_and_a_store_down_leaves_a_gap() -> None:
    fake = FakeDaemon(open_fires={FireStatus.PENDING: 2, FireStatus.UNCERTAIN: 1}, ready=False)
    samples = parsed(fake.metrics().render())
    assert samples[("tallyfy_scheduler_ready", frozenset())] == 0
    assert samples[("tallyfy_scheduler_open_fires", frozenset({("status", "pending")}))] == 2
    assert samples[("tallyfy_scheduler_open_fires", frozenset({("status", "uncertain")}))] == 1
    fake.store_down = True
    down = parsed(fake.metrics().render())
    assert not [key for key in down if key[0] == "tallyfy_scheduler_open_fires"]


@pytest.mark.parametrize(
    ("trigger", "attempts", "observed"),
    [
        (Trigger.SCHEDULE, 1, 2.5),
        (Trigger.CATCH_UP, 1, 2.5),
        (Trigger.SCHEDULE, 2, None),  # a retry: its wait is the backoff's
        (Trigger.BACKFILL, 1, None),  # an old instant on purpose
        (Trigger.MANUAL, 1, None),
    ],
)
def test_the_fire_delay_is_measured_at_a_scheduled_fire_first_attempt(
    trigger: Trigger, attempts: int, observed: float | None
) -> None:
    metrics = FakeDaemon().metrics()
    started = fire("j", FireStatus.SENDING, NOW, trigger=trigger, attempts=attempts)
    metrics.sending(a_job(), started, NOW + timedelta(seconds=2.5))
    samples = parsed(metrics.render())
    count = samples[("tallyfy_scheduler_fire_delay_seconds_count", frozenset())]
    total = samples[("tallyfy_scheduler_fire_delay_seconds_sum", frozenset())]
    assert (count, total) == ((0, 0) if observed is None else (1, observed))


def test_the_jitter_of_a_fire_is_not_counted_as_delay() -> None:
    metrics = FakeDaemon().metrics()
    due = NOW + jitter_delay("j", NOW, timedelta(seconds=30))
    assert due > NOW
    started = fire("j", FireStatus.SENDING, NOW)
    metrics.sending(a_job(jitter="30s"), started, due + timedelta(seconds=1))
    samples = parsed(metrics.render())
    assert samples[("tallyfy_scheduler_fire_delay_seconds_sum", frozenset())] == pytest.approx(1)


@pytest.mark.parametrize(
    ("method", "target", "endpoint"),
    [
        ("POST", "/organizations/demo-org/runs", "POST /runs"),
        ("GET", "/organizations/demo-org/runs?q=x&page=2", "GET /runs"),
        ("GET", "/organizations/demo-org/checklists/beeffbdd", "GET /checklists/{id}"),
        ("GET", "/organizations/o/checklists/c/steps/s", "GET /checklists/{id}/steps/{id}"),
        ("GET", "/me/organizations", "GET /me/organizations"),
    ],
)
def test_an_endpoint_leaves_out_the_organization_the_ids_and_the_query(
    method: str, target: str, endpoint: str
) -> None:
    assert endpoint_of(method, target) == endpoint


def test_each_request_reaches_the_hook_with_its_endpoint_status_and_time() -> None:
    metrics = FakeDaemon().metrics()
    metrics.api_request("POST /tasks", 201, 0.2)
    metrics.api_request("POST /tasks", 201, 0.3)
    metrics.api_request("POST /tasks", None, 60.0)
    samples = parsed(metrics.render())
    requests = "tallyfy_scheduler_api_requests_total"
    assert samples[(requests, frozenset({("endpoint", "POST /tasks"), ("code", "201")}))] == 2
    assert samples[(requests, frozenset({("endpoint", "POST /tasks"), ("code", "none")}))] == 1
    duration = "tallyfy_scheduler_api_request_duration_seconds"
    by_endpoint = frozenset({("endpoint", "POST /tasks")})
    assert samples[(f"{duration}_sum", by_endpoint)] == pytest.approx(60.5)
    assert samples[(f"{duration}_bucket", by_endpoint | {("le", "0.25")})] == 1


def test_open_incidents_by_kind_and_alerts_sent_by_type() -> None:
    fake = FakeDaemon(incidents={"failed": 2, "late": 1, "store": 0})
    metrics = fake.metrics()
    sent = "tallyfy_scheduler_alerts_sent_total"
    before = parsed(metrics.render())
    # Every notify type the daemon sends is on the page from the start, at 0.
    for notify_type in ("failure", "warning", "success"):
        assert before[(sent, frozenset({("type", notify_type)}))] == 0
    metrics.alert_sent("failure")
    metrics.alert_sent("failure")
    metrics.alert_sent("success")
    samples = parsed(metrics.render())
    assert samples[(sent, frozenset({("type", "failure")}))] == 2
    assert samples[(sent, frozenset({("type", "success")}))] == 1
    assert samples[(sent, frozenset({("type", "warning")}))] == 0
    incidents = "tallyfy_scheduler_open_incidents"
    assert samples[(incidents, frozenset({("kind", "failed")}))] == 2
    assert samples[(incidents, frozenset({("kind", "late")}))] == 1
    assert samples[(incidents, frozenset({("kind", "store")}))] == 0
    fake.store_down = True
    down = parsed(fake.metrics().render())
    assert not [key for key in down if key[0] == incidents]


def test_every_family_on_the_page_is_in_the_metrics_reference() -> None:
    fake = FakeDaemon(
        times=(("daily", NOW.timestamp(), NOW - timedelta(days=1)),),
        paused=frozenset({"off"}),
        open_fires={FireStatus.PENDING: 0},
        incidents={"failed": 0},
        successes={"daily": NOW},
    )
    metrics = fake.metrics()
    metrics.recorded([fire("daily", FireStatus.SUCCEEDED)])
    metrics.sending(a_job(), fire("j", FireStatus.SENDING), NOW)
    metrics.api_request("POST /tasks", 201, 0.1)
    families = {family.name for family in text_string_to_metric_families(metrics.render().decode())}
    # The library's `*_created` series (a counter's or histogram's start time) aside.
    ours = {
        name
        for name in families
        if name.startswith("tallyfy_scheduler_") and not name.endswith("_created")
    }
    assert len(ours) == 12
    reference = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    # The parser names a counter without its `_total`; the page and the reference have it.
    written = {f"{n}_total" if f"`{n}_total`" in reference else n for n in ours}
    assert sorted(n for n in written if f"`{n}`" not in reference) == []


@pytest.mark.parametrize("seed", range(5))
def test_the_per_job_lines_kept_between_scrapes_always_say_what_a_fresh_page_would(
    seed: int,
) -> None:
    # The per-job lines are rewritten only for what changed since the last scrape: after any
    # sequence of changes, the page must read as if written whole from the state now.
    rng = random.Random(seed)
    ids = [f"j{i}" for i in range(30)] + [ODD]
    fake = FakeDaemon(successes={"j1": NOW - timedelta(days=3), "j29": NOW})
    times: dict[str, JobTimes] = {}
    paused: set[str] = set()
    outcomes: dict[str, dict[str, int]] = {}
    successes = {job_id: at.timestamp() for job_id, at in fake.successes.items()}
    metrics = fake.metrics()
    for _step in range(60):
        for _change in range(rng.randint(0, 6)):
            job_id = rng.choice(ids)
            what = rng.choice(["times", "times", "ended", "remove", "pause", "resume", "fire"])
            if what == "times":
                latest = rng.choice([None, NOW - timedelta(seconds=rng.randint(1, 99))])
                times[job_id] = (job_id, NOW.timestamp() + rng.randint(0, 99), latest)
                paused.discard(job_id)
            elif what == "ended":
                times[job_id] = (job_id, None, NOW)
            elif what == "remove":
                times.pop(job_id, None)
                paused.discard(job_id)
            elif what == "pause":
                times.pop(job_id, None)
                paused.add(job_id)
            elif what == "resume" and job_id in paused:
                paused.discard(job_id)
                times[job_id] = (job_id, NOW.timestamp(), None)
            elif what == "fire":
                status = rng.choice([FireStatus.SUCCEEDED, FireStatus.FAILED, FireStatus.RETRYING])
                at = NOW + timedelta(seconds=rng.randint(-99, 99))
                metrics.recorded([fire(job_id, status, at)])
                counts = outcomes.setdefault(job_id, {})
                counts[status.value] = counts.get(status.value, 0) + 1
                if status is FireStatus.SUCCEEDED:
                    successes[job_id] = max(successes.get(job_id, -1e18), at.timestamp())
        fake.times, fake.paused = tuple(times.values()), frozenset(paused)
        on_page = set(times) | paused
        expected: Samples = {}
        for job_id, at, latest in times.values():
            label = frozenset({("job", job_id)})
            if at is not None:
                expected[("tallyfy_scheduler_job_next_fire_timestamp_seconds", label)] = at
                if latest is not None:
                    interval = at - latest.timestamp()
                    expected[("tallyfy_scheduler_job_interval_seconds", label)] = interval
        for job_id in on_page:
            label = frozenset({("job", job_id)})
            expected[("tallyfy_scheduler_job_paused", label)] = 1 if job_id in paused else 0
            if job_id in successes:
                name = "tallyfy_scheduler_job_last_success_timestamp_seconds"
                expected[(name, label)] = successes[job_id]
            for outcome, n in outcomes.get(job_id, {}).items():
                key = label | {("outcome", outcome)}
                expected[("tallyfy_scheduler_fires_total", key)] = n
        assert per_job(parsed(metrics.render())) == expected
