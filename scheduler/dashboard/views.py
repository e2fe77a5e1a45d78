"""What the dashboard shows, computed from the store, the settings and `now`: no HTML here.

Every function is pure over its arguments (the store is read, never written), so the pages and
the JSON routes share them and tests call them directly.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.config import Settings
from scheduler.definitions import job_from_document
from scheduler.describe import describe
from scheduler.errors import InvalidInput, SchedulerError
from scheduler.job import Job
from scheduler.status import paused_fields
from scheduler.store import Fire, JobMark, Store, StoredJob
from scheduler.store.incidents import Incident

PAGE_SIZE = 50
STRIP_LENGTH = 30  # the last fates shown per job on the jobs page
# States (docs/dashboard.md): the filter's values, in the order the filter lists them.
STATES = ("active", "paused", "paused-by-breaker", "quarantined", "ended")
STATE_WORDS = {
    "active": "active",
    "paused": "paused by a person",
    "paused-by-breaker": "paused by the failure breaker",
    "quarantined": "quarantined",
    "ended": "ended",
}
UPCOMING_DAY = timedelta(hours=24)
UPCOMING_WEEK = timedelta(days=7)
# A job firing more often than this in a day is bucketed by counting (count_between per
# minute), never by listing its instants: a per-second job has 86,400 a day.
ENUMERATE_AT_MOST = 1500
UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class JobView:
    """One job as the dashboard reads it: the stored row, its validated job (None when it
    no longer validates: quarantined), the error that says why, and the store's marks of it
    (who paused it and why: `jobs list --json`'s `paused_by` and `pause_reason`)."""

    stored: StoredJob
    job: Job | None
    error: str | None
    mark: JobMark | None = None

    @property
    def paused(self) -> dict[str, Any]:
        """`paused_by` (breaker, operator, job_file; None while enabled) and `pause_reason`."""
        return paused_fields(self.stored, self.mark)

    @property
    def definition(self) -> dict[str, Any]:
        return self.stored.definition

    @property
    def zone(self) -> ZoneInfo:
        return self.job.zone if self.job is not None else UTC


def pause_reason(view: JobView) -> str | None:
    """Why a paused job was paused (the breaker's reason and last error, `jobs pause`, or its
    job file); None while it is enabled."""
    reason = view.paused["pause_reason"]
    return reason if isinstance(reason, str) and reason else None


def view_of(stored: StoredJob, settings: Settings, mark: JobMark | None = None) -> JobView:
    try:
        return JobView(stored, job_from_document(stored.definition, settings), None, mark)
    except InvalidInput as exc:
        return JobView(stored, None, "; ".join(p.message for p in exc.problems), mark)


class Catalog:
    """The stored jobs and their validated form, kept between requests.

    The list is read again only when the store's `jobs_revision` moved (one cheap query a
    request otherwise), and a job is validated again only when its stored text changed: the
    jobs page of 10,000 jobs does not decode and validate 10,000 documents each time
    (bench/README.md, the dashboard).
    """

    def __init__(self, settings: Settings, size: int = 200_000) -> None:
        self.settings = settings
        self.size = size
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._stored: list[StoredJob] = []
        self._marks: dict[str, JobMark] = {}
        self._jobs: dict[str, tuple[Job | None, str | None]] = {}  # definition text -> validated

    def jobs(self, store: Store) -> list[StoredJob]:
        revision = store.jobs_revision()
        with self._lock:
            if revision != self._revision:
                self._stored = store.list_jobs()
                # A pause (by a person or the breaker) moves the revision: its mark is read here.
                self._marks = store.job_marks()
                self._revision = revision
                if len(self._jobs) > self.size:
                    self._jobs.clear()
            return self._stored

    def view(self, stored: StoredJob, mark: JobMark | None = None) -> JobView:
        """The job validated (cached by its text), with `mark`, or the mark read with the
        list (`jobs`)."""
        found = self._jobs.get(stored.definition_json)
        if found is None:
            fresh = view_of(stored, self.settings)
            found = self._jobs[stored.definition_json] = (fresh.job, fresh.error)
        with self._lock:
            mark = mark if mark is not None else self._marks.get(stored.id)
        return JobView(stored, *found, mark)


def state_of(view: JobView, next_fire: datetime | None) -> str:
    """One of STATES. `next_fire` is the job's next instant (None: it has none left)."""
    if view.job is None:
        return "quarantined"
    if not view.stored.enabled:
        return "paused-by-breaker" if view.paused["paused_by"] == "breaker" else "paused"
    return "active" if next_fire is not None else "ended"


def may_end(view: JobView) -> bool:
    """Whether the job can run out of instants: a valid schedule always fires again (the
    engine refuses one that never does), so only `end_at` and `max_fires` end a job."""
    return view.job is not None and (view.job.end_at is not None or view.job.max_fires is not None)


def next_fire_of(view: JobView, now: datetime, fires_so_far: int) -> datetime | None:
    if view.job is None:
        return None
    try:
        return view.job.next_fire(now, fires_so_far=fires_so_far)
    except SchedulerError:
        return None


def words_of(view: JobView) -> str | None:
    if view.job is None:
        return None
    return describe(view.job.schedule, job_id=view.job.id)


def matches_text(stored: StoredJob, text: str) -> bool:
    """The text filter: in the id or anywhere in the stored definition (title, schedule, ...)."""
    wanted = text.casefold()
    return wanted in stored.id.casefold() or wanted in stored.definition_json.casefold()


@dataclass(frozen=True)
class Page:
    """One page of a longer list: its items, its number (from 1), how many pages, the total."""

    items: list[Any]
    number: int
    pages: int
    total: int


def page_of(items: Sequence[Any], number: int, size: int = PAGE_SIZE) -> Page:
    pages = max(1, -(-len(items) // size))
    number = min(max(1, number), pages)
    start = (number - 1) * size
    return Page(list(items[start : start + size]), number, pages, len(items))


@dataclass(frozen=True)
class JobRow:
    """A row of the jobs page (and `/api/jobs`)."""

    view: JobView
    state: str
    next_fire: datetime | None
    words: str | None
    last: Fire | None
    strip: list[Fire]  # newest first


def job_rows(
    store: Store,
    catalog: Catalog,
    now: datetime,
    *,
    state: str = "",
    text: str = "",
    page: int = 1,
    size: int = PAGE_SIZE,
) -> Page:
    """The jobs page: filtered by state and text, one page of rows, each with its next fire,
    last outcome and its last fates (one query for the page's strips)."""
    stored_jobs = catalog.jobs(store)
    if text:
        stored_jobs = [s for s in stored_jobs if matches_text(s, text)]
    counts: dict[str, int] | None = None

    def fires_so_far(job_id: str) -> int:
        nonlocal counts
        if counts is None:
            counts = store.success_counts()  # only jobs with max_fires need it
        return counts.get(job_id, 0)

    def state_and_next(view: JobView, always: bool) -> tuple[str, datetime | None]:
        if not always and view.stored.enabled and not may_end(view):
            return ("active" if view.job is not None else "quarantined"), None
        needs_count = view.job is not None and view.job.max_fires is not None
        next_fire = next_fire_of(view, now, fires_so_far(view.stored.id) if needs_count else 0)
        return state_of(view, next_fire), next_fire

    if state:
        stored_jobs = [s for s in stored_jobs if state_and_next(catalog.view(s), False)[0] == state]
    shown = page_of(stored_jobs, page, size)
    strips = store.recent_fires([s.id for s in shown.items], STRIP_LENGTH)
    rows = []
    for stored in shown.items:
        view = catalog.view(stored)
        row_state, next_fire = state_and_next(view, True)
        strip = strips.get(stored.id, [])
        rows.append(
            JobRow(view, row_state, next_fire, words_of(view), strip[0] if strip else None, strip)
        )
    return Page(rows, shown.number, shown.pages, shown.total)


def row_json(row: JobRow) -> dict[str, Any]:
    """`jobs list --json`'s element (cli.md), plus `state`."""
    definition = row.view.definition
    zone = row.view.zone
    action = definition.get("action")
    data: dict[str, Any] = {
        "id": row.view.stored.id,
        "enabled": row.view.stored.enabled,
        "schedule": definition.get("schedule"),
        "schedule_words": row.words,
        "timezone": definition.get("timezone"),
        "action": action.get("type") if isinstance(action, dict) else None,
        "next_fire": iso(row.next_fire, zone) if row.view.stored.enabled else None,
    }
    if row.view.error:
        data["error"] = row.view.error
    data["last_outcome"] = (
        None
        if row.last is None
        else {
            "status": str(row.last.status),
            "scheduled_for": iso(row.last.scheduled_for, zone),
            "error": row.last.error,
        }
    )
    data["state"] = row.state
    data.update(row.view.paused)
    return data


def iso(instant: datetime | None, zone: ZoneInfo) -> str | None:
    return None if instant is None else instant.astimezone(zone).isoformat()


# -- upcoming -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """Fires due in one minute (or hour): how many per job, and how long the rate limit
    takes to send them all."""

    start: datetime
    length: timedelta
    per_job: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.per_job.values())

    def top(self, n: int = 5) -> list[tuple[str, int]]:
        return Counter(self.per_job).most_common(n)


def drain_seconds(requests: int, per_minute: int) -> float:
    """Seconds the client's rate limit (scheduler/ratelimit.py: GCRA, burst 1, a request every
    60/per_minute seconds) takes to send `requests` that are all due at once: the first goes
    at once, each next one an interval later."""
    return max(0, requests - 1) * 60.0 / per_minute


def _job_instants(job: Job, now: datetime, until: datetime) -> Iterator[datetime]:
    for instant in job.fires_after(now):
        if instant > until:
            return
        yield instant


def upcoming(store: Store, catalog: Catalog, now: datetime) -> tuple[list[Bucket], list[Bucket]]:
    """Non-empty minute buckets of the next 24 hours and hour buckets of the next 7 days,
    oldest first, counted with the engine (`count_between` for dense jobs, never a week of
    per-second instants). Jobs that share a schedule, zone and window are counted once: 10,000
    jobs at "0 9 * * MON-FRI" cost one schedule's arithmetic."""
    minutes: dict[datetime, Counter[str]] = {}
    hours: dict[datetime, Counter[str]] = {}
    day_end, week_end = now + UPCOMING_DAY, now + UPCOMING_WEEK
    shared: dict[tuple[Any, ...], tuple[dict[datetime, int], dict[datetime, int]]] = {}
    counts: dict[str, int] | None = None
    for stored in catalog.jobs(store):
        if not stored.enabled:
            continue
        job = catalog.view(stored).job
        if job is None:
            continue
        if job.max_fires is not None:
            if counts is None:
                counts = store.success_counts()
            left = job.max_fires - counts.get(job.id, 0)
            if left <= 0:
                continue
            per_minute, per_hour = _buckets(job, now, day_end, week_end, left)
        else:
            key = (
                job.cron.expression,
                job.timezone,
                job.id if "H" in job.schedule.upper() else "",
                job.start_at,
                job.end_at,
            )
            if key not in shared:
                shared[key] = _buckets(job, now, day_end, week_end, None)
            per_minute, per_hour = shared[key]
        for start, n in per_minute.items():
            minutes.setdefault(start, Counter())[job.id] += n
        for start, n in per_hour.items():
            hours.setdefault(start, Counter())[job.id] += n
    return (
        [Bucket(k, timedelta(minutes=1), dict(v)) for k, v in sorted(minutes.items())],
        [Bucket(k, timedelta(hours=1), dict(v)) for k, v in sorted(hours.items())],
    )


def _buckets(
    job: Job, now: datetime, day_end: datetime, week_end: datetime, at_most: int | None
) -> tuple[dict[datetime, int], dict[datetime, int]]:
    """(minute -> fires, hour -> fires) of one job; `at_most` caps the instants (max_fires)."""
    minutes: Counter[datetime] = Counter()
    hours: Counter[datetime] = Counter()
    week = job.cron.count_between(now, week_end)
    if week <= ENUMERATE_AT_MOST * 7 or at_most is not None:
        for n, instant in enumerate(_job_instants(job, now, week_end)):
            if at_most is not None and n >= at_most:
                break
            hours[instant.replace(minute=0, second=0, microsecond=0)] += 1
            if instant <= day_end:
                minutes[instant.replace(second=0, microsecond=0)] += 1
        return dict(minutes), dict(hours)
    # Dense: count per bucket with the engine's arithmetic, within the job's window.
    into_minutes: dict[datetime, Counter[str]] = {}
    into_hours: dict[datetime, Counter[str]] = {}
    _count_into(job, now, week_end, timedelta(hours=1), into_hours)
    _count_into(job, now, day_end, timedelta(minutes=1), into_minutes)
    return (
        {k: v[job.id] for k, v in into_minutes.items()},
        {k: v[job.id] for k, v in into_hours.items()},
    )


def _count_into(
    job: Job,
    now: datetime,
    until: datetime,
    step: timedelta,
    into: dict[datetime, Counter[str]],
) -> None:
    seconds = int(step.total_seconds())
    start = datetime.fromtimestamp(now.timestamp() // seconds * seconds, UTC)
    while start < until:
        lo = max(start, now)
        hi = min(start + step, until)
        if job.start_at is not None:
            lo = max(lo, job.start_at - timedelta(microseconds=1))
        if job.end_at is not None:
            hi = min(hi, job.end_at)
        if hi > lo:
            # count_between counts (lo, hi]; a bucket is [start, start + step): shift by a tick.
            tick = timedelta(microseconds=1)
            n = job.cron.count_between(lo - tick if lo == start else lo, hi - tick)
            if n:
                into.setdefault(start, Counter())[job.id] += n
        start += step


# -- incidents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alarms:
    """What the banner on every page says: open incidents and uncertain fires."""

    incidents: list[Incident]
    uncertain: list[Fire]
    retrying: int

    @property
    def any(self) -> bool:
        return bool(self.incidents or self.uncertain)


def alarms(store: Store, limit: int = 20) -> Alarms:
    return Alarms(
        store.incidents(open_only=True, limit=limit),
        store.history(status="uncertain", limit=limit),
        len(store.history(status="retrying", limit=100)),
    )


def history_page(store: Store, job_id: str, page: int, size: int = PAGE_SIZE) -> Page:
    """One page of a job's history, newest first (the unique index on (job id, instant)
    serves both the count and the page)."""
    total = store.count_fires(job_id)
    pages = max(1, -(-total // size))
    number = min(max(1, page), pages)
    fires = store.history(job_id, limit=size, offset=(number - 1) * size)
    return Page(fires, number, pages, total)
