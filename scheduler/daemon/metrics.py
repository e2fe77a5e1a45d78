"""The daemon's metrics: what `GET /metrics` says, in Prometheus' text format (docs/metrics.md).

The only module that imports `prometheus_client`, through its documented surface: a
`CollectorRegistry` of the daemon's own (never the process-wide default, so that two daemons
in one process, as in the tests, count apart), `Counter` and `Histogram` objects, a custom
collector yielding metric families, the library's process, platform and GC collectors, and
`generate_latest`.

Where each figure comes from, and on which thread (docs/design.md, "The daemon"):

- **counted as it happens**: fire outcomes (the runner's `FireEvents`, on the send workers;
  the planner's skip rows, on its thread), fire delays (`FireEvents.sending`), API requests
  (the client's request hook, on the thread that made the request), alert messages sent
  (the alerts' `on_sent`, on their courier's or monitor's thread). A counter is a dict
  entry under a lock, or a library metric (thread-safe): a few microseconds a fire;
- **asked at scrape time**: each loaded job's next fire time and newest instant from the planner,
  which builds the answer on its own thread (`Planner.job_times`; a planner busy for longer
  than `ASK_TIMEOUT` leaves the previous answer in place), the paused jobs the loader
  published last, readiness, and the ledger's open fires and open incidents (each
  `OPEN_FIRES_TTL` cached);
- **read from the store once**, at the first scrape: each job's newest success; this
  process's successes update it from then on.

The per-job families are written here (`_JobSeries`), not by `generate_latest`: the library
formats a sample in ~8 us (label sorting, escaping and a name check per sample), 0.4 s for
the ~50,000 samples of 10,000 jobs, against a 100 ms budget for the whole scrape; and they
are kept between scrapes, each scrape rewriting only the lines of jobs that changed. They
follow the same text format (0.0.4), and tests parse the whole page with the library's
parser. Above `max_job_series` jobs they are left out, with one log line.

**Extension point** (for families of later features): `Metrics.registry` takes any
`prometheus_client` metric (`Counter("tallyfy_scheduler_x", ..., registry=
daemon.metrics.registry)`) or custom collector (`daemon.metrics.registry.register(c)`,
`c.collect()` yielding metric families, asked at each scrape).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from scheduler.cron import jitter_delay
from scheduler.daemon.planner import JobTimes
from scheduler.errors import StoreError
from scheduler.job import Job
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import Fire

log = logging.getLogger(__name__)

PREFIX = "tallyfy_scheduler_"
# The page is the classic text format, whatever newer format the library calls "latest".
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# How long a scrape waits for the planner's answer before it uses the previous one.
ASK_TIMEOUT = 1.0
# Open fires are counted in the ledger at most this often (seconds), whoever asks.
OPEN_FIRES_TTL = 1.0
# Seconds; a fire's delay is usually milliseconds, and after downtime, hours.
DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# Seconds; a request is bounded by `request_deadline` (60 s by default).
API_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Apprise's notify types of the daemon's messages (`alerts test`'s `info` is the CLI's): each
# series is on the page from the start, so that `increase()` sees the first message.
ALERT_TYPES = ("failure", "warning", "success")
# Fires whose instant is not a moment the schedule came due: no delay to measure.
NOT_SCHEDULED = frozenset({Trigger.MANUAL, Trigger.BACKFILL})


@dataclass(frozen=True)
class Sources:
    """Where the figures asked at scrape time come from: the daemon's parts (or fakes).

    `job_times`: every loaded job's `JobTimes`, or None without an answer in time;
    `paused`: the ids of stored jobs not enabled; `job_count`: the number of loaded jobs
    (published by the planner); `ready`: whether the daemon is ready; `open_fires`: the
    ledger's open fires by status; `last_successes`: per job, the instant of its newest
    success in the ledger; `open_incidents`: open alert incidents by kind. The last three
    raise StoreError when the store does not answer.
    """

    job_times: Callable[[], tuple[JobTimes, ...] | None]
    paused: Callable[[], frozenset[str]]
    job_count: Callable[[], int]
    ready: Callable[[], bool]
    open_fires: Callable[[], Mapping[FireStatus, int]]
    last_successes: Callable[[], Mapping[str, datetime]]
    open_incidents: Callable[[], Mapping[str, int]]


class Metrics:
    """Counts what the daemon does and renders `/metrics` (module docstring).

    Implements the runner's `FireEvents` (`sending`, `recorded`), the planner's skip hook
    (`skipped`), the client's request hook (`api_request`) and the alerts' `on_sent`
    (`alert_sent`).
    """

    def __init__(
        self,
        sources: Sources,
        *,
        max_job_series: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = sources
        self.monotonic = monotonic  # the daemon's clock: what the caches' ages are read from
        self.max_job_series = max_job_series
        self.registry = CollectorRegistry()
        self.fire_delay = Histogram(
            "tallyfy_scheduler_fire_delay_seconds",
            "Seconds from a fire's scheduled instant (its jitter added) to the start of its "
            "first request; fires of `fire` and `backfill` are left out",
            buckets=DELAY_BUCKETS,
            registry=self.registry,
        )
        self.api_requests = Counter(
            "tallyfy_scheduler_api_requests",
            "Requests to the Tallyfy API by endpoint and HTTP status ('none': no answer)",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.api_duration = Histogram(
            "tallyfy_scheduler_api_request_duration_seconds",
            "Seconds a request to the Tallyfy API took, its rate-limit wait left out",
            ["endpoint"],
            buckets=API_BUCKETS,
            registry=self.registry,
        )
        self.alerts_sent = Counter(
            "tallyfy_scheduler_alerts_sent",
            "Alert messages a receiver took, by Apprise notify type (one per URL)",
            ["type"],
            registry=self.registry,
        )
        for notify_type in ALERT_TYPES:
            self.alerts_sent.labels(notify_type)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_StateCollector(self))
        self._lock = threading.Lock()  # guards the two dicts below
        self._outcomes: dict[str, dict[str, int]] = {}  # job -> outcome -> count
        self._last_success: dict[str, float] = {}  # job -> timestamp of its newest instant
        self._changed: set[str] = set()  # jobs whose two dicts above changed since a scrape
        self._successes_read = False  # the ledger's were read (at the first scrape)
        self._render_lock = threading.Lock()  # one scrape renders at a time
        self._times: tuple[JobTimes, ...] = ()  # the planner's last answer
        self._dropped = False  # per-job families left out at the last scrape
        self._series = _JobSeries()  # the per-job lines, kept between scrapes
        self._open_fires: tuple[float, Mapping[FireStatus, int] | None] = (-1e18, None)
        self._open_incidents: tuple[float, Mapping[str, int] | None] = (-1e18, None)

    # -- counting (any thread) ------------------------------------------------------------------
    def sending(self, job: Job, fire: Fire, now: datetime) -> None:
        """A fire's request goes out: its delay, at its first attempt."""
        if fire.attempts != 1 or fire.trigger in NOT_SCHEDULED:
            return
        due = fire.scheduled_for
        if job.jitter:
            due += jitter_delay(job.id, fire.scheduled_for, job.jitter)
        self.fire_delay.observe(max(0.0, (now - due).total_seconds()))

    def recorded(self, fires: Sequence[Fire]) -> None:
        """Outcomes written: one count each; a success moves its job's last success."""
        with self._lock:
            for fire in fires:
                self._count(fire.job_id, fire.status.value, 1)
                if fire.status is FireStatus.SUCCEEDED:
                    self._succeeded(fire.job_id, fire.scheduled_for.timestamp())

    def skipped(self, rows: Sequence[Fire]) -> None:
        """Skip rows recorded: each counts the instants it stands for."""
        with self._lock:
            for row in rows:
                self._count(row.job_id, FireStatus.SKIPPED.value, row.skipped_count or 1)

    def api_request(self, endpoint: str, status: int | None, seconds: float) -> None:
        """One exchange with the API ended (the client's request hook)."""
        self.api_requests.labels(endpoint, "none" if status is None else str(status)).inc()
        self.api_duration.labels(endpoint).observe(seconds)

    def alert_sent(self, notify_type: str) -> None:
        """A receiver took one alert message (the alerts' `on_sent`)."""
        self.alerts_sent.labels(str(notify_type)).inc()

    def _count(self, job_id: str, outcome: str, n: int) -> None:
        counts = self._outcomes.setdefault(job_id, {})
        counts[outcome] = counts.get(outcome, 0) + n
        self._changed.add(job_id)

    def _succeeded(self, job_id: str, at: float) -> None:
        if at > self._last_success.get(job_id, -1e18):
            self._last_success[job_id] = at
            self._changed.add(job_id)

    # -- scraping (the listener's threads) ------------------------------------------------------
    def render(self) -> bytes:
        """The `/metrics` page."""
        with self._render_lock:
            return generate_latest(self.registry) + self._per_job()

    def open_fires(self) -> Mapping[FireStatus, int] | None:
        """The ledger's open fires by status (None: the store did not answer), at most
        `OPEN_FIRES_TTL` old."""
        at, counts = self._open_fires
        now = self.monotonic()
        if now - at >= OPEN_FIRES_TTL:
            try:
                counts = self.sources.open_fires()
            except StoreError as exc:
                log.debug("metrics: open fires not counted: %s", exc)
                counts = None
            self._open_fires = (now, counts)
        return counts

    def open_incidents(self) -> Mapping[str, int] | None:
        """Open alert incidents by kind (None: the store did not answer), at most
        `OPEN_FIRES_TTL` old."""
        at, counts = self._open_incidents
        now = self.monotonic()
        if now - at >= OPEN_FIRES_TTL:
            try:
                counts = self.sources.open_incidents()
            except StoreError as exc:
                log.debug("metrics: open incidents not counted: %s", exc)
                counts = None
            self._open_incidents = (now, counts)
        return counts

    def _per_job(self) -> bytes:
        paused = self.sources.paused()
        jobs = self.sources.job_count() + len(paused)
        if jobs > self.max_job_series:
            if not self._dropped:
                log.warning(
                    "metrics: %d jobs, more than [http] max_job_series (%d): the per-job "
                    "series are left out of /metrics until there are fewer",
                    jobs,
                    self.max_job_series,
                )
            self._dropped = True
            self._series = _JobSeries()  # its memory goes; rebuilt whole when they come back
            return b""
        if self._dropped:
            log.info("metrics: %d jobs: the per-job series are back in /metrics", jobs)
            self._dropped = False
        times = self.sources.job_times()
        if times is None:
            log.debug("metrics: the planner did not answer in time; its last answer is used")
        else:
            self._times = times
        self._read_successes()
        series = self._series
        with self._lock:
            changed, self._changed = self._changed, set()
        added = series.move_to(self._times, paused)
        with self._lock:
            # Only the jobs counted since the last scrape, and those new on the page.
            counts = {
                job_id: (self._last_success.get(job_id), dict(self._outcomes.get(job_id, {})))
                for job_id in (changed | added) & series.jobs
            }
        series.count(counts)
        return series.text().encode()

    def _read_successes(self) -> None:
        """Each job's newest success from the ledger, once (merged with this process's)."""
        if self._successes_read:
            return
        try:
            found = self.sources.last_successes()
        except StoreError as exc:
            log.debug("metrics: last successes not read yet: %s", exc)
            return
        with self._lock:
            for job_id, instant in found.items():
                self._succeeded(job_id, instant.timestamp())
        self._successes_read = True


class _StateCollector:
    """The small gauges asked at each scrape: readiness, the ledger's open fires and the open
    alert incidents."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        ready = GaugeMetricFamily(
            f"{PREFIX}ready", "1 once the startup catch-up is planned and the store answers"
        )
        ready.add_metric([], 1.0 if self._metrics.sources.ready() else 0.0)
        yield ready
        counts = self._metrics.open_fires()
        if counts is not None:
            family = GaugeMetricFamily(
                f"{PREFIX}open_fires",
                "Fires in the ledger not settled yet, by status (every daemon's)",
                labels=["status"],
            )
            for status, n in sorted(counts.items()):
                family.add_metric([status.value], float(n))
            yield family
        incidents = self._metrics.open_incidents()
        if incidents is not None:
            family = GaugeMetricFamily(
                f"{PREFIX}open_incidents",
                "Alert incidents open now, by kind (every daemon's)",
                labels=["kind"],
            )
            for kind, n in sorted(incidents.items()):
                family.add_metric([kind], float(n))
            yield family


class _JobSeries:
    """The per-job families' lines, kept between scrapes: each scrape rewrites the lines of
    what changed since the one before, and joins the rest as they are.

    Writing every line at every scrape cost ~40-90 ms at 10,000 jobs (~50,000 lines of
    f-strings and float reprs) and held the GIL that long; a scrape changes few of them (the
    jobs that fired). What changed is found without a loop in Python where it can be: the
    planner's answer as a set difference against the previous one (its tuples compare and
    hash in C), the paused jobs as a symmetric difference; the counters and last successes
    say which jobs they moved (`Metrics._changed`). Each family is a dict job -> its
    line(s), in the order jobs first appeared, joined at each scrape.
    """

    def __init__(self) -> None:
        self.jobs: set[str] = set()  # every job with series: loaded or paused
        self._loaded: set[str] = set()  # the jobs in the planner's answer
        self._times: frozenset[JobTimes] = frozenset()
        self._paused: frozenset[str] = frozenset()
        self._labels: dict[str, str] = {}  # job -> `job="id"`, escaped
        self._next: dict[str, str] = {}
        self._interval: dict[str, str] = {}
        self._success: dict[str, str] = {}
        self._paused_lines: dict[str, str] = {}
        self._fires: dict[str, str] = {}  # job -> its lines, one per outcome

    def move_to(self, times: Sequence[JobTimes], paused: frozenset[str]) -> set[str]:
        """Take the planner's answer and the paused jobs; the jobs new on the page (their
        counters are the caller's to give to `count`)."""
        now = frozenset(times)
        fresh = now - self._times  # the loaded jobs whose times changed, or new
        loaded = {job_id for job_id, _at, _latest in times} if now != self._times else self._loaded
        jobs = loaded | paused
        added, removed = jobs - self.jobs, self.jobs - jobs
        for job_id in self._loaded - loaded:  # no longer loaded: no next fire, no period
            self._next.pop(job_id, None)
            self._interval.pop(job_id, None)
        for job_id in removed:
            for family in (self._success, self._paused_lines, self._fires):
                family.pop(job_id, None)
            del self._labels[job_id]
        for job_id in added:
            self._labels[job_id] = _job_label(job_id)
        labels = self._labels
        next_name = f"{PREFIX}job_next_fire_timestamp_seconds"
        interval_name = f"{PREFIX}job_interval_seconds"
        for job_id, at, latest in fresh:
            label = labels[job_id]
            if at is None:
                self._next.pop(job_id, None)
                self._interval.pop(job_id, None)
                continue
            self._next[job_id] = f"{next_name}{{{label}}} {at!r}\n"
            if latest is None:
                self._interval.pop(job_id, None)
            else:
                self._interval[job_id] = f"{interval_name}{{{label}}} {at - latest.timestamp()!r}\n"
        paused_name = f"{PREFIX}job_paused"
        for job_id in (added | (paused ^ self._paused)) & jobs:
            flag = 1 if job_id in paused else 0
            self._paused_lines[job_id] = f"{paused_name}{{{labels[job_id]}}} {flag}\n"
        self.jobs, self._loaded, self._times, self._paused = jobs, loaded, now, paused
        return added

    def count(self, counts: Mapping[str, tuple[float | None, Mapping[str, int]]]) -> None:
        """Rewrite the last-success and outcome lines of these jobs (all of them on the page):
        job -> (its newest success or None, its counts by outcome)."""
        success_name = f"{PREFIX}job_last_success_timestamp_seconds"
        fires_name = f"{PREFIX}fires_total"
        for job_id, (success, outcomes) in counts.items():
            label = self._labels[job_id]
            if success is not None:
                self._success[job_id] = f"{success_name}{{{label}}} {success!r}\n"
            if outcomes:
                self._fires[job_id] = "".join(
                    f'{fires_name}{{{label},outcome="{o}"}} {n}\n' for o, n in outcomes.items()
                )

    def text(self) -> str:
        """The per-job families in the text format, each family's HELP and TYPE lines first."""
        name = f"{PREFIX}job_next_fire_timestamp_seconds"
        out = _head(name, "gauge", "When the job fires next (Unix time, jitter included)")
        out += self._next.values()
        out += _head(
            f"{PREFIX}job_interval_seconds",
            "gauge",
            "Seconds from the job's newest instant in the history to its next fire: its period now",
        )
        out += self._interval.values()
        out += _head(
            f"{PREFIX}job_last_success_timestamp_seconds",
            "gauge",
            "The scheduled instant of the job's newest successful fire (Unix time)",
        )
        out += self._success.values()
        out += _head(
            f"{PREFIX}job_paused", "gauge", "1 while the job is paused (not enabled), else 0"
        )
        out += self._paused_lines.values()
        out += _head(
            f"{PREFIX}fires_total",
            "counter",
            "Fire outcomes this process recorded (skipped: instants)",
        )
        out += self._fires.values()
        return "".join(out)


def _head(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {name} {text}\n", f"# TYPE {name} {kind}\n"]


def _job_label(job_id: str) -> str:
    """`job="ID"`, escaped as the text format wants (job ids need none: `[a-z0-9._-]`)."""
    if "\\" in job_id or '"' in job_id or "\n" in job_id:
        job_id = job_id.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return f'job="{job_id}"'
