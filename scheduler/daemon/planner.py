"""The planner: the one owner of every loaded job's in-memory state.

It holds, for each loaded job, its definition, its cursor (every instant at or before it is
accounted for in the history) and its next fire time, kept in a heap; it decides what to fire
and what to skip (`catchup.plan_due`), records skips, claims fires and hands the claimed ones
to the send pool. Nothing else reads or writes that state, so it needs no locks: other threads
talk to it by posting messages, which one thread handles, one at a time (`drain`):

- `Due`: the timer's wake-up came: plan every job whose next fire time has come;
- `Load`: jobs (re)loaded from the store, and jobs unloaded;
- `CatchUp`: the daemon stalled (suspend, clock step): plan every job up to now by the
  catch-up rules;
- `Resume`: open fires to carry forward (retries due, uncertain fires, orphans adopted);
- `Stranded`: fires whose carrying failed on the store; `Pulse`: the main loop's pass, the
  moment to try again what failed on the store (those fires, and jobs whose planning failed);
- `Snapshot`: another thread (the metrics) asks for every loaded job's times (`job_times`):
  the planner builds the answer on its own thread and hands it over whole.

Before the daemon starts its threads, the thread that builds the daemon drives the planner
(loading and the startup catch-up); from `Daemon.start` on, the planner thread does. In tests
the daemon runs without threads and each `post` is handled at once.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scheduler.catchup import Plan, SkipRange, plan_due
from scheduler.client import ApiRequest
from scheduler.clock import Clock, utc_iso
from scheduler.config import Settings
from scheduler.cron import CronSchedule, jitter_delay
from scheduler.definitions import job_from_document
from scheduler.errors import JobNotFound, SchedulerError, StoreError
from scheduler.job import Job
from scheduler.lifecycle import COUNTS_TOWARD_MAX_FIRES, OPEN, Trigger
from scheduler.skipdays import SkipDays, SkippingSchedule, skip_days_of
from scheduler.store import Fire, Skip, Store
from scheduler.timeexpr import BusinessCalendar

log = logging.getLogger(__name__)

ONE_MICROSECOND = timedelta(microseconds=1)
# Jobs planned, and their plain fires claimed in one transaction, at a time: a burst of 10,000
# jobs due at once is claimed in a few transactions, and sending starts after the first.
PLAN_BATCH = 500
# Stale heap entries (of jobs replanned or unloaded) tolerated before the heap is rebuilt.
HEAP_SLACK = 1000


# -- messages ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Due:
    """The timer's wake-up came: plan every job whose next fire time is now or past."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """A job as (re)loaded from the store.

    `floor`: instants at or before it are not the job's (its `active_since`, or just before
    its `start_at`). `accounted`: the newest instant the history accounts for, or None; the
    cursor of a new job, or of one whose schedule changed, starts at the later of the two.
    """

    job: Job
    floor: datetime
    accounted: datetime | None


@dataclass(frozen=True, slots=True)
class Load:
    """Jobs to (re)load, and ids of jobs to unload (paused, removed, quarantined).

    With `plan` (startup), the loaded jobs are planned up to now at once, by the catch-up
    rules; otherwise each waits for its next fire time, and whatever its cursor left behind
    is planned then.
    """

    jobs: Sequence[Loaded]
    removed: Sequence[str] = ()
    plan: bool = False


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Plan every job up to now: at startup, and after a stall detected at `since`."""

    since: datetime


@dataclass(frozen=True, slots=True)
class Resume:
    """Open fires to carry forward."""

    fires: Sequence[Fire]


@dataclass(frozen=True, slots=True)
class Stranded:
    """Fires whose carrying failed on the store: resumed once the store answers."""

    fire_ids: Sequence[int]


@dataclass(frozen=True, slots=True)
class Pulse:
    """A pass of the main loop: try again what failed on the store."""


# A loaded job's times: (job id, its next fire time as a UTC timestamp (jittered) or None,
# the newest of its instants the history holds as far as the planner knows, or None).
JobTimes = tuple[str, float | None, datetime | None]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Another thread asks for every loaded job's times; `reply` gets them (a tuple, built
    on the planner's thread and never changed after)."""

    reply: Callable[[tuple[JobTimes, ...]], None]


Message = Due | Load | CatchUp | Resume | Stranded | Pulse | Snapshot


@dataclass(frozen=True, slots=True)
class Carry:
    """One fire for the send pool: `fresh` (just claimed: send it), else resume it by its
    current state. `job` is None when its job is gone (the fire is settled as failed).
    `request`: set once the pool has prepared it and marked it `sending` (its slot taken), to
    be sent now."""

    job: Job | None
    fire: Fire
    fresh: bool
    request: ApiRequest | None = None


@dataclass(slots=True)
class _JobState:
    """One loaded job (slotted: one per stored job)."""

    job: Job
    cursor: datetime  # every instant at or before it is accounted for in the history
    next_at: float | None = None  # the next fire time (jittered, a UTC timestamp), in the heap
    complete: bool = False  # max_fires reached: nothing more is planned
    # The newest instant with a row in the history (claimed or skipped), for the metrics: the
    # cursor is no instant once planned up to now, this one is.
    latest: datetime | None = None


class Planner:
    """Plans and claims fires; the owner of the jobs' in-memory state (module docstring).

    `send(carries)` hands fires to the send pool; `wake_at(when)` asks the timer for the next
    wake-up. `stop` is the daemon's stop event: once set, nothing new is claimed. `skipped`
    is told of the skip rows recorded (the metrics count them).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        daemon_id: str,
        stall_threshold: timedelta,
        send: Callable[[Sequence[Carry]], None],
        wake_at: Callable[[datetime | None], None],
        stop: threading.Event,
        skipped: Callable[[Sequence[Fire]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        # The business calendar of `settings` (holidays for `skip_on`), built when first needed
        # and again when a reload brings other `[calendar]` settings.
        self._calendar: tuple[object, BusinessCalendar] | None = None
        self.daemon_id = daemon_id
        self.stall_threshold = stall_threshold
        self._send = send
        self._wake_at = wake_at
        self._stop = stop
        self._skipped = skipped
        self._mailbox: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._jobs: dict[str, _JobState] = {}
        # Jobs unloaded while running: their open fires (retries, read-backs) still finish.
        self._retired: dict[str, Job] = {}
        # (next fire time, job id); an entry is current while the job's `next_at` equals it.
        self._heap: list[tuple[float, str]] = []
        self._live_since = clock.now()
        # What failed on the store, tried again at the next `Pulse`.
        self._replan: set[str] = set()
        self._stranded: set[int] = set()
        self._draining = False
        self._inline = True  # until `run` takes over: `post` handles the message at once
        self._asked: datetime | None = None  # the wake-up last asked of the timer
        # Published for other threads (one reference each, replaced whole).
        self.next_fire: tuple[datetime, str] | None = None
        self.job_count = 0
        # Something failed on the store and waits for a `Pulse` (the main loop posts one only
        # then: an idle daemon's planner thread sleeps).
        self.wants_pulse = False

    # -- the mailbox ------------------------------------------------------------------------------
    def post(self, message: Message) -> None:
        """Give the planner a message (any thread). Without a planner thread, handled now."""
        self._mailbox.put(message)
        if self._inline:
            self.drain()

    def drain(self) -> None:
        """Handle every message waiting, on the caller's thread (the planner's owner)."""
        if self._draining:
            return  # a message posted while handling one: the loop below takes it
        self._draining = True
        try:
            while batch := self._take(block=False):
                self._handle(batch)
        finally:
            self._draining = False

    def start_thread(self) -> threading.Thread:
        """Hand the planner to a thread of its own, which handles messages until `close`.
        From here on, `post` only queues (the caller no longer owns the planner)."""
        self._inline = False
        thread = threading.Thread(target=self._run, name="planner", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while self._handle(self._take(block=True)):
            pass

    def close(self) -> None:
        """End `run` once the messages posted before this are handled (any thread)."""
        self._mailbox.put(None)

    def _take(self, *, block: bool) -> list[Message | None]:
        batch: list[Message | None] = []
        try:
            batch.append(self._mailbox.get(block=block))
            while True:
                batch.append(self._mailbox.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _handle(self, batch: list[Message | None]) -> bool:
        """Handle messages in order; False once `close` was among them.

        One `Due` (at the last one's place) stands for all of them: each plans everything due
        by the time it is handled."""
        last_due = max((i for i, m in enumerate(batch) if isinstance(m, Due)), default=-1)
        for index, message in enumerate(batch):
            if message is None or (isinstance(message, Due) and index != last_due):
                continue
            try:
                self._dispatch(message)
            except Exception:  # the planner must never die; the next pulse tries again
                log.exception("unexpected error in the planner handling %s", type(message).__name__)
        self._publish(woken=last_due >= 0)
        return None not in batch

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Due):
            self._plan_due()
        elif isinstance(message, Load):
            self._load(message)
        elif isinstance(message, CatchUp):
            self._live_since = message.since
            self._plan(list(self._jobs))
        elif isinstance(message, Resume):
            self._resume(message.fires)
        elif isinstance(message, Stranded):
            self._stranded.update(message.fire_ids)
        elif isinstance(message, Snapshot):
            message.reply(tuple((i, s.next_at, s.latest) for i, s in self._jobs.items()))
        else:
            self._retry_after_store_failure()

    def job_times(self, timeout: float) -> tuple[JobTimes, ...] | None:
        """Every loaded job's times, as the planner's thread answers a `Snapshot` (any other
        thread); None if no answer came within `timeout` seconds (the planner is busy, or
        stopped). Never handles the message on the caller's thread, even without a planner
        thread: the thread driving the planner then answers it at its next message."""
        answer: list[tuple[JobTimes, ...]] = []
        answered = threading.Event()

        def reply(times: tuple[JobTimes, ...]) -> None:
            answer.append(times)
            answered.set()

        self._mailbox.put(Snapshot(reply))
        return answer[0] if answered.wait(timeout) else None

    # -- reading the state: from the planner's thread, or without one (tests) -------------------
    def job_ids(self) -> list[str]:
        """The ids of the loaded jobs."""
        return list(self._jobs)

    def job(self, job_id: str) -> Job | None:
        """The loaded job `job_id`, or None."""
        state = self._jobs.get(job_id)
        return None if state is None else state.job

    def next_fire_of(self, job_id: str) -> datetime | None:
        """When the loaded job `job_id` next fires (its jittered time), or None."""
        state = self._jobs.get(job_id)
        if state is None or state.next_at is None:
            return None
        return datetime.fromtimestamp(state.next_at, UTC)

    def _publish(self, *, woken: bool) -> None:
        """Drop stale entries off the heap's top; ask the timer for the next wake-up when it
        changed, or after a wake-up (the timer forgets the one it served)."""
        if len(self._heap) > 2 * len(self._jobs) + HEAP_SLACK:
            # Stale entries pile up when every job is replanned (a stall): rebuild.
            self._heap = [(s.next_at, i) for i, s in self._jobs.items() if s.next_at is not None]
            heapq.heapify(self._heap)
        heap = self._heap
        while heap:
            at, job_id = heap[0]
            state = self._jobs.get(job_id)
            if state is not None and state.next_at == at:
                break
            heapq.heappop(heap)
        self.job_count = len(self._jobs)
        if heap:
            at, job_id = heap[0]
            when = datetime.fromtimestamp(at, UTC)
            self.next_fire = (when, job_id)
        else:
            when, self.next_fire = None, None
        self.wants_pulse = bool(self._replan or self._stranded)
        if woken or when != self._asked:
            self._asked = when
            self._wake_at(when)

    # -- loading --------------------------------------------------------------------------------
    def _load(self, message: Load) -> None:
        now = self.clock.now()
        for loaded in message.jobs:
            job = loaded.job
            current = self._jobs.get(job.id)
            fresh = max(loaded.accounted or loaded.floor, loaded.floor)
            if current is None:
                state = _JobState(job=job, cursor=fresh, latest=loaded.accounted)
                self._jobs[job.id] = state
            else:
                state = current
                if current.job.schedule_key == job.schedule_key:
                    state.cursor = max(state.cursor, loaded.floor)
                else:
                    state.cursor = fresh  # its instants changed: from what history holds
                state.job = job
                state.complete = False
            self._retired.pop(job.id, None)
            if not message.plan:
                self._schedule(state, now)
        if message.plan:
            self._plan([loaded.job.id for loaded in message.jobs])
        for job_id in message.removed:
            unloaded = self._jobs.pop(job_id, None)
            if unloaded is not None:
                self._retired[job_id] = unloaded.job
                self._replan.discard(job_id)
                log.info("job unloaded job=%s", job_id)

    # -- planning -------------------------------------------------------------------------------
    def _plan_due(self) -> None:
        """Plan every job whose next fire time has come (the heap's top)."""
        now_ts = self.clock.now().timestamp()
        due: dict[str, None] = {}
        heap = self._heap
        while heap and heap[0][0] <= now_ts:
            at, job_id = heapq.heappop(heap)
            state = self._jobs.get(job_id)
            if state is not None and state.next_at == at:
                state.next_at = None
                due[job_id] = None
        self._plan(list(due))

    def _plan(self, job_ids: list[str]) -> None:
        """Account for every instant of these jobs up to now: skip or claim; send the claims.

        A batch at a time: the plain fires of a batch are claimed in one transaction. A job
        whose plan skips instants or counts toward `max_fires` is planned alone (both need
        queries per instant). Cursors move only once the claims are committed; if the store
        fails, the jobs wait for the next pulse and are planned again then.
        """
        for first in range(0, len(job_ids), PLAN_BATCH):
            if self._stop.is_set():
                return  # claim nothing new; not accounted, so the next start plans it
            batch = job_ids[first : first + PLAN_BATCH]
            try:
                self._plan_batch(batch)
            except Exception:
                # A bug, not a fault: say so loudly, and never leave these jobs unplanned (the
                # next pulse plans them again); the batches after this one go on.
                log.exception("unexpected error planning %d jobs; planned again", len(batch))
                self._replan.update(j for j in batch if j in self._jobs)

    def _plan_batch(self, job_ids: Sequence[str]) -> None:
        now = self.clock.now()
        wanted: list[tuple[str, datetime, Trigger]] = []
        cursors: dict[str, datetime] = {}  # where each job's cursor goes once claimed
        newest: dict[str, datetime] = {}  # each job's newest instant claimed
        alone: list[_JobState] = []
        for job_id in job_ids:
            state = self._jobs.get(job_id)
            if state is None or state.complete:
                continue
            plan = self._plan_of(state, now)
            if plan.skips or (state.job.max_fires is not None and not plan.empty):
                alone.append(state)
            elif plan.fire:
                wanted += [(job_id, instant, trigger) for instant, trigger in plan.fire]
                cursors[job_id] = max([plan.cursor or state.cursor] + [i for i, _t in plan.fire])
                newest[job_id] = plan.fire[-1][0]  # oldest first
            else:
                state.cursor = max(state.cursor, plan.cursor or state.cursor)
                self._schedule(state, now)
        claimed: list[Fire | None] = []
        if wanted:
            # In key order: daemons claiming overlapping batches on PostgreSQL then wait for
            # each other's unique-index entries in the same order, never in a deadlock.
            wanted.sort(key=lambda item: (item[0], item[1]))
            try:
                claimed = self.store.claim(wanted, now=self.clock.now(), daemon_id=self.daemon_id)
            except StoreError as exc:
                self._store_failed(list(cursors), exc)
                cursors = {}
            for job_id, cursor in cursors.items():
                state = self._jobs[job_id]
                state.cursor = max(state.cursor, cursor)
                state.latest = newest[job_id]
                self._schedule(state, now)
        self._send([Carry(self._jobs[f.job_id].job, f, True) for f in claimed if f is not None])
        for state in alone:
            self._plan_alone(state, now)

    def _plan_alone(self, state: _JobState, now: datetime) -> None:
        """Plan one job with its own queries: record its skips, claim its fires one by one."""
        job = state.job
        claimed: list[Fire] = []
        try:
            plan = self._plan_of(state, now)
            if job.max_fires is not None and self._fires_used(job.id) >= job.max_fires:
                self._complete(state)  # asked only when there is something to plan: a query
                return
            for skip in plan.skips:
                self._record_skip(job, skip)
                state.latest = skip.last if state.latest is None else max(state.latest, skip.last)
            for instant, trigger in plan.fire:
                if self._stop.is_set():
                    return  # not accounted: the next start plans it again
                if job.max_fires is not None and self._fires_used(job.id) >= job.max_fires:
                    self._complete(state)
                    return
                (fire,) = self.store.claim(
                    [(job.id, instant, trigger)], now=self.clock.now(), daemon_id=self.daemon_id
                )
                if fire is not None:
                    claimed.append(fire)
                state.cursor = max(state.cursor, instant)
                state.latest = instant
            if plan.cursor is not None:
                state.cursor = max(state.cursor, plan.cursor)
            self._schedule(state, now)
        except StoreError as exc:
            # The cursor stays at the last instant accounted for; the rest is planned again
            # once the store answers (a store outage is a stall: late instants follow the
            # catch-up policy). What was claimed already is sent below.
            self._store_failed([job.id], exc)
        finally:
            self._send([Carry(job, fire, True) for fire in claimed])

    def _plan_of(self, state: _JobState, now: datetime) -> Plan:
        """The catch-up planner's answer for this job, up to now."""
        job = state.job
        return plan_due(
            job.cron,
            cursor=state.cursor,
            up_to=now,
            now=now,
            live_since=self._live_since,
            policy=job.catch_up,
            window=job.catch_up_window,
            stall_threshold=self.stall_threshold,
            jitter_of=_jitter_of(job) if job.jitter else None,
            max_jitter=job.jitter,
            until=job.end_at,
            skip_days=self._skip_days(job),
        )

    def _skip_days(self, job: Job) -> SkipDays | None:
        """The job's skip days; None, at once, for a job without `skip_on` (most jobs)."""
        if job.skip_on is None:
            return None
        settings = self.settings.calendar
        if self._calendar is None or self._calendar[0] is not settings:
            self._calendar = (settings, BusinessCalendar.from_settings(settings))
        return skip_days_of(job, self._calendar[1])

    def _schedule(self, state: _JobState, now: datetime) -> None:
        """Put the job's next fire time in the heap.

        Never older than the stall threshold: instants before that (after a store outage, or
        a job loaded with instants already past) are planned in bulk, by the catch-up rules,
        when this entry comes due.
        """
        job = state.job
        state.next_at = None
        if state.complete or job.id in self._replan:
            return
        after = max(state.cursor, now - self.stall_threshold - job.jitter)
        # Instants on skip days never wake the job: a skipped stretch is recorded in one row
        # when the first instant after it comes due (a per-second job's holiday is one wake-up).
        days = self._skip_days(job)
        instant = (job.cron if days is None else SkippingSchedule(job.cron, days)).next_after(after)
        if instant is None or (job.end_at is not None and instant > job.end_at):
            return
        if job.jitter:
            instant += jitter_delay(job.id, instant, job.jitter)
        state.next_at = instant.timestamp()
        heapq.heappush(self._heap, (state.next_at, job.id))

    def _store_failed(self, job_ids: list[str], exc: StoreError) -> None:
        self._replan.update(job_ids)
        for job_id in job_ids:
            state = self._jobs.get(job_id)
            if state is not None:
                state.next_at = None  # no wake-up until the store answers (the next pulse)
        first, *others = job_ids
        log.error(
            "store unavailable while planning job=%s%s: %s; planned again when the store answers",
            first,
            f" and {len(others)} other jobs" if others else "",
            exc,
        )

    def _fires_used(self, job_id: str) -> int:
        """Successful fires plus those still open (max_fires counts successes)."""
        return self.store.count_fires(job_id, statuses=COUNTS_TOWARD_MAX_FIRES)

    def _complete(self, state: _JobState) -> None:
        state.complete = True
        state.next_at = None
        log.info("job complete job=%s max_fires=%s", state.job.id, state.job.max_fires)

    def _record_skip(self, job: Job, skip: SkipRange) -> None:
        """Record a skipped range, leaving out instants the history already accounts for.

        A range is one row keyed by its first instant. Inserted whole over an instant that
        already has a row (a manual fire at a scheduled instant, another daemon's claim), it
        would either be refused, losing every instant in it, or count that instant twice. So
        the range is cut around the rows it touches, the pieces recorded together; a row
        appearing meanwhile (a race) refuses its piece, which is looked at again.
        """
        first = skip.first
        for _attempt in range(3):
            taken = self.store.fires_touching(job.id, first, skip.last)
            pieces = []
            for lo, hi in gaps(job.cron, first, skip.last, taken):
                count = job.cron.count_between(lo - ONE_MICROSECOND, hi)
                until = hi if count > 1 else None
                pieces.append(Skip(job.id, lo, reason=skip.reason, count=count, until=until))
            recorded = self.store.record_skips(pieces, now=self.clock.now())
            if self._skipped is not None:
                self._skipped([row for row in recorded if row is not None])
            refused = [piece for piece, row in zip(pieces, recorded, strict=True) if row is None]
            for row in recorded:
                if row is not None:
                    log.warning(
                        "skipped job=%s scheduled_for=%s count=%d until=%s reason=%r",
                        job.id,
                        utc_iso(row.scheduled_for),
                        row.skipped_count,
                        utc_iso(row.skipped_until or row.scheduled_for),
                        skip.reason,
                    )
            if not refused:
                return
            first = refused[0].scheduled_for

    # -- open fires -----------------------------------------------------------------------------
    def _resume(self, fires: Sequence[Fire]) -> None:
        carries = []
        for fire in fires:
            try:
                job = self._job_of(fire.job_id)
            except StoreError as exc:
                log.error("store unavailable while resuming job=%s: %s", fire.job_id, exc)
                self._stranded.add(fire.id)
                continue
            carries.append(Carry(job, fire, False))
        self._send(carries)

    def _job_of(self, job_id: str) -> Job | None:
        """A loaded job; else one unloaded while we ran; else a paused job's stored definition."""
        state = self._jobs.get(job_id)
        if state is not None:
            return state.job
        retired = self._retired.get(job_id)
        if retired is not None:
            return retired
        try:
            row = self.store.get_job(job_id)
        except JobNotFound:
            return None
        try:
            return job_from_document(row.definition, self.settings)
        except SchedulerError as exc:
            log.error("job quarantined job=%s: stored definition invalid: %s", job_id, exc)
            return None

    def _retry_after_store_failure(self) -> None:
        """The pulse: resume stranded fires, plan the jobs whose planning failed."""
        if self._stranded:
            try:
                for fire_id in sorted(self._stranded):
                    fire = self.store.get_fire(fire_id)
                    self._stranded.discard(fire_id)
                    if fire.status in OPEN and fire.claimed_by in (None, self.daemon_id):
                        self._resume([fire])
            except StoreError as exc:
                log.error("store unavailable while resuming stranded fires: %s", exc)
                return
        if self._replan and not self._stop.is_set():
            replan, self._replan = list(self._replan), set()
            self._plan(replan)


def _jitter_of(job: Job) -> Callable[[datetime], timedelta]:
    return lambda instant: jitter_delay(job.id, instant, job.jitter)


def gaps(
    schedule: CronSchedule, first: datetime, last: datetime, taken: list[Fire]
) -> Iterator[tuple[datetime, datetime]]:
    """The runs of scheduled instants in [first, last] that no row in `taken` accounts for,
    as (first, last) pairs; `taken` is sorted by instant (`Store.fires_touching`)."""
    current: datetime | None = first
    for row in taken:
        if current is None or current > last:
            return
        start, end = row.scheduled_for, row.skipped_until or row.scheduled_for
        if start > current:
            before = schedule.previous_at_or_before(start - ONE_MICROSECOND)
            if before is not None and before >= current:
                yield current, min(before, last)
        if end >= current:
            current = schedule.next_after(end)
    if current is not None and current <= last:
        yield current, last
