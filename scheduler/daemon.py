"""The daemon: fire every scheduled instant of every enabled job once, and survive.

Structure (rq/huey style): the main thread runs a loop of small steps, each returning the
number of seconds until it next has work; signal handlers only set events. APScheduler 3
(`BackgroundScheduler`, in-memory job store, rebuilt from our store) wakes us when an instant
comes due, through `EngineTrigger`, an adapter over the one schedule engine. Its executor is
replaced by `_DispatchExecutor`, which hands (job, instant) to our own thread pool of
`max_concurrent_fires` workers; what to fire or skip is decided by `catchup.plan_due` from the
job's cursor (every instant at or before it is accounted for in the history).

Startup (`prepare`, then `start`):
  1. check the store's schema; register a heartbeat;
  2. load the jobs (a stored job that no longer validates is quarantined: logged, never deleted);
  3. plan catch-up for every job from its cursor to now (policy, window, skip ranges), in this
     thread: skips are recorded and missed instants claimed before READY; sending is queued;
  4. adopt open fires left by daemons that died (`pending` is sent, `sending`/`uncertain` is
     reconciled first);
  5. let APScheduler dispatch; tell systemd READY=1.
Tests call `prepare()` (APScheduler is started paused, so its thread never dispatches) and then
drive the steps (`tick`, `sync_jobs`, `detect_stall`, `_advance`) with a FakeClock and an inline
executor.

Each pass of the loop: detect a stall (wall clock moved more than the monotonic clock, or the
loop itself was blocked) and plan catch-up; reload jobs when the store's jobs revision changed
or on SIGHUP; resume due retries and reconcile uncertain fires; heartbeat; feed the watchdog.
A failing store (locked, restarting, disk full) costs passes, never the daemon: the planning
and the fires it interrupted are taken up again by the first pass that reaches it.

Shutdown (SIGTERM/SIGINT): claim nothing new, let requests in flight finish (up to
`shutdown_grace`), record their outcomes, exit 0. Fires still waiting for a rate-limit slot are
not sent (they become `retrying`). Workers still busy after the grace are abandoned
(`unfinished` > 0: the caller exits at once rather than wait for them); a second signal exits at
once too. Every claim is already committed, so the next start settles whatever was interrupted.
"""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job as ApsJob
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import datetime_to_utc_timestamp

from scheduler.catchup import Plan, SkipRange, plan_due
from scheduler.clock import Clock, SystemClock, utc_iso
from scheduler.config import Settings
from scheduler.cron import CronSchedule
from scheduler.definitions import job_from_document
from scheduler.errors import JobNotFound, SchedulerError, StoreError
from scheduler.job import Job
from scheduler.models import FireStatus, Trigger
from scheduler.notify import Notifier
from scheduler.runner import OPEN_STATUSES, Runner
from scheduler.store import DaemonInfo, Fire, Store
from scheduler.triggers import EngineTrigger

log = logging.getLogger(__name__)

ONE_MICROSECOND = timedelta(microseconds=1)
# A pass of the loop that took this much longer than asked (or a wall-clock jump of this much)
# means the process stalled (suspend, SIGSTOP, a clock step): plan catch-up.
DEFAULT_STALL_THRESHOLD = timedelta(seconds=5)
# The loop never sleeps longer than this, so stalls and reloads are noticed promptly.
MAX_TICK = 1.0
# A pending/sending fire of our own, or an unowned one (claimed by a `fire` or `backfill`
# command), that has not moved for this long is resumed: longer than any request lasts (connect
# plus read timeout, 40 s by default), so nobody is still sending it.
OWN_ORPHAN_AFTER = timedelta(minutes=2)
# How often open fires of dead daemons (and uncertain fires) are looked for, at most.
ORPHAN_SCAN_EVERY = 5.0
# Jobs planned (and their instants claimed in one transaction) per pass of the dispatch planner:
# a burst of 10,000 jobs due at once is claimed in batches, and sending starts after the first.
PLAN_BATCH = 500
# Fires handed to one worker at a time, at most (`Runner.send_claimed` sends them in groups).
SEND_CHUNK = 128
# APScheduler logs every add/remove/start at INFO: noise in the journal (`run` sets WARNING).
ENGINE_LOGGER = "apscheduler"


def quiet_engine_logs() -> None:
    """Keep APScheduler's INFO chatter out of the daemon's log (its warnings still show)."""
    logging.getLogger(ENGINE_LOGGER).setLevel(logging.WARNING)


def exit_now(code: int) -> None:
    """Leave the process at once, logs flushed, without waiting for worker threads.

    For after `Daemon.run` when `unfinished` > 0: the interpreter would otherwise join the
    blocked workers at exit, past any stop timeout. Every claim is committed already.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


@dataclass(slots=True)
class _JobState:
    """One loaded job. A job keeps its state object for as long as it is loaded: a reload
    changes the fields under `lock`, so a planner holding the object never works from a
    cursor that a reload has already replaced. Slotted: one per stored job."""

    job: Job
    updated_at: datetime
    schedule_key: str
    cursor: datetime  # every instant at or before it is accounted for in the history
    lock: threading.Lock
    trigger: EngineTrigger
    removed: bool = False  # unloaded (paused, removed, quarantined): plan nothing more
    complete: bool = False  # max_fires reached


class _DispatchExecutor(BaseExecutor):  # type: ignore[misc]
    """Hands due jobs to the daemon; never runs anything itself and never refuses."""

    def __init__(self, dispatch: Callable[[str, list[datetime]], None]) -> None:
        super().__init__()
        self._dispatch = dispatch

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        self._dispatch(job.id, run_times)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:  # pragma: no cover
        self._dispatch(job.id, run_times)


def _job_order(pair: tuple[Any, float | None]) -> tuple[float, str]:
    """MemoryJobStore's order: by next run time (none last), then by id."""
    job, timestamp = pair
    return (float("inf") if timestamp is None else timestamp, job.id)


def _utc_timestamp(when: datetime | None) -> float | None:
    """APScheduler's `datetime_to_utc_timestamp`, the same float; for whole seconds (most run
    times) without building a time tuple (1.4 -> 0.2 us)."""
    if when is not None and not when.microsecond:
        return when.timestamp()
    return datetime_to_utc_timestamp(when)  # type: ignore[no-any-return]


class _BulkLoadingJobStore(MemoryJobStore):  # type: ignore[misc]
    """APScheduler's memory store, filled in bulk while the daemon starts.

    MemoryJobStore keeps its list sorted by inserting each job in place: O(n) per job,
    minutes of CPU for 100,000 jobs. While `loading`, added jobs are appended and the list is
    sorted once, before anything reads it; afterwards it behaves as MemoryJobStore.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loading = True
        self._unsorted = False

    def _ensure_sorted(self) -> None:
        if self._unsorted:
            self._jobs.sort(key=_job_order)
            self._unsorted = False

    def finish_loading(self) -> None:
        self._ensure_sorted()
        self.loading = False

    def add_like(self, template: Any, job_id: str, trigger: EngineTrigger) -> bool:
        """While loading, add a job like `template` but with its own id, name and trigger,
        without APScheduler's `add_job`; False (nothing done) when not loading or the id is
        taken: the caller then goes through `add_job`, which knows what to do.

        `add_job` costs ~30 us a job: it builds a `Job` through `Job._modify`, checking the
        callable's signature (`inspect`) and every option, takes the scheduler's lock, logs
        and dispatches an event. `template` went through all of that already and the loaded
        jobs differ from it only in id, name, trigger and next run time, so the attributes are
        copied as `_modify` would set them, and the next run time is computed exactly as
        `_real_add_job` does.
        """
        if not self.loading or job_id in self._jobs_index:
            return False
        scheduler = template._scheduler
        job = ApsJob.__new__(ApsJob)
        job._scheduler = scheduler
        job._jobstore_alias = template._jobstore_alias
        job.id = job_id
        job.name = job_id
        job.func = template.func
        job.func_ref = template.func_ref
        job.args = template.args
        job.kwargs = template.kwargs
        job.executor = template.executor
        job.coalesce = template.coalesce
        job.max_instances = template.max_instances
        job.misfire_grace_time = template.misfire_grace_time
        job.trigger = trigger
        job.next_run_time = trigger.get_next_fire_time(None, datetime.now(scheduler.timezone))
        with scheduler._jobstores_lock:
            self.add_job(job)
        return True

    def add_job(self, job: Any) -> None:
        if not self.loading:
            self._ensure_sorted()
            super().add_job(job)
            return
        if job.id in self._jobs_index:
            raise ConflictingIdError(job.id)
        entry = (job, _utc_timestamp(job.next_run_time))
        self._jobs.append(entry)
        self._jobs_index[job.id] = entry  # one tuple for both (MemoryJobStore makes two)
        self._unsorted = True

    def first_job(self) -> Any:
        """The job that runs next, without copying the list (None if none is scheduled)."""
        self._ensure_sorted()
        if self._jobs and self._jobs[0][1] is not None:
            return self._jobs[0][0]
        return None

    # Every other reader sees the sorted list.
    def update_job(self, job: Any) -> None:
        self._ensure_sorted()
        super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        self._ensure_sorted()
        super().remove_job(job_id)

    def get_due_jobs(self, now: datetime) -> Any:
        self._ensure_sorted()
        return super().get_due_jobs(now)

    def get_next_run_time(self) -> Any:
        self._ensure_sorted()
        return super().get_next_run_time()

    def get_all_jobs(self) -> Any:
        self._ensure_sorted()
        return super().get_all_jobs()


class Daemon:
    """The long-running scheduler process (`tallyfy-scheduler run`).

    `executor` runs the daemon's work (planning after a dispatch, sending, resuming); by
    default a thread pool of `max_concurrent_fires` workers made at `prepare()`. Tests pass an
    executor that runs each task inline, so every step is deterministic.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        runner: Runner,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        daemon_id: str | None = None,
        stall_threshold: timedelta = DEFAULT_STALL_THRESHOLD,
        reload_settings: Callable[[], None] | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.daemon_id = daemon_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.hostname = socket.gethostname()
        self.stall_threshold = stall_threshold
        self.reload_settings = reload_settings
        self.stop_event = threading.Event()  # set by SIGTERM/SIGINT
        self.reload_event = threading.Event()  # set by SIGHUP
        self.wake_event = threading.Event()  # wakes the main loop early
        self.stopping = False
        self.unfinished = 0  # workers still busy when shutdown gave up waiting
        runner.daemon_id = self.daemon_id
        # A fire waiting for a rate-limit slot when we stop is not sent (it becomes retrying).
        runner.stop = self.stop_event

        self._jobs: dict[str, _JobState] = {}
        self._jobs_lock = threading.Lock()
        # Jobs unloaded while running: their open fires (retries, reconciliation) still finish.
        self._retired: dict[str, Job] = {}
        self._inflight: set[int] = set()  # fire ids queued for or held by a worker
        self._inflight_lock = threading.Lock()  # also guards _stranded and _replan
        # Fires whose carrying failed on the store, and jobs whose planning did: picked up
        # again by the first pass that reaches the store.
        self._stranded: set[int] = set()
        self._replan: set[str] = set()
        # Jobs APScheduler found due, waiting for the dispatch planner: id -> (up to, when).
        self._due: dict[str, tuple[datetime, datetime]] = {}
        self._due_lock = threading.Lock()
        self._planner_queued = False  # a `_plan_dispatched` task is queued or running
        self._executor = executor
        self._pool: concurrent.futures.Executor | None = None
        self._futures: set[concurrent.futures.Future[None]] = set()
        self._aps: BackgroundScheduler | None = None
        self._aps_store: _BulkLoadingJobStore | None = None
        self._aps_template: Any = None  # the first job added while loading (`_schedule`)
        self._revision = -1
        self._started_at = self.clock.now()
        self.live_since = self._started_at
        self._last_wall = self._started_at
        self._last_mono = self.clock.monotonic()
        self._last_heartbeat = -1e18
        self._last_watchdog = -1e18
        self._last_reload_poll = -1e18
        self._last_orphan_scan = -1e18
        self._signals_seen = 0

    # -- public ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Start, loop until asked to stop, shut down; the process exit code."""
        self.install_signal_handlers()
        try:
            self.start()
            while not self.stop_event.is_set():
                timeout = self.tick()
                self.wake_event.clear()
                if self.stop_event.is_set():
                    break
                self.clock.wait(self.wake_event, timeout)
        finally:
            self.shutdown()
        return 0

    def prepare(self) -> None:
        """Steps 1-4 of the module docstring; APScheduler is started, but paused."""
        self.store.check_schema()
        now = self.clock.now()
        self._started_at = now
        self.live_since = now
        self._heartbeat(now, state="starting")
        self._pool = self._executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.scheduler.max_concurrent_fires,
            thread_name_prefix="fire",
        )
        self._aps_store = _BulkLoadingJobStore()
        self._aps = BackgroundScheduler(
            jobstores={"default": self._aps_store},
            executors={"default": _DispatchExecutor(self._dispatch)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        # Paused: jobs get their next run times, but nothing is dispatched before `start`.
        self._aps.start(paused=True)
        # Loading makes ~12 long-lived objects per job; full collections walking them again and
        # again cost seconds at 100,000 jobs. So no collection runs while loading, and what
        # loading made (the jobs) is frozen before collections resume: later ones skip it. No
        # collection first: loading leaves almost no cyclic garbage (35 objects for 100,000
        # jobs) and one would walk every object once more (0.9 s). Sorting the job store
        # before collections resume spares it a walk too (1.9 s -> 0.14 s).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self.sync_jobs(now, catch_up=True)
            self._aps_store.finish_loading()
            self._aps_template = None
            gc.freeze()
        finally:
            if gc_was_enabled:
                gc.enable()
        self.resume_open_fires(now, startup=True)
        # Planning may have taken a while; that is not a stall.
        self._last_wall, self._last_mono = self.clock.now(), self.clock.monotonic()

    def start(self) -> None:
        """`prepare`, then let APScheduler dispatch and tell systemd READY=1."""
        self.prepare()
        assert self._aps is not None
        self._aps.resume()
        self._heartbeat(self.clock.now(), state="running")
        self.notifier.ready(self.status_line())
        log.info("daemon started id=%s jobs=%d", self.daemon_id, len(self._jobs))

    def tick(self) -> float:
        """One pass of the loop; returns the seconds until the next pass is needed.

        A failing store (locked, restarting) costs this pass, never the daemon: each step
        logs and the next pass tries again.
        """
        now = self.clock.now()
        mono = self.clock.monotonic()
        self.detect_stall(now, mono)
        waits = [MAX_TICK]
        try:
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.notifier.reloading()
                if self.reload_settings is not None:
                    self.reload_settings()
                self.sync_jobs(now, catch_up=False, force=True)
                self.notifier.ready(self.status_line())
            elif (
                mono - self._last_reload_poll
                >= self.settings.scheduler.reload_interval.total_seconds()
            ):
                self._last_reload_poll = mono
                self.sync_jobs(now, catch_up=False)
        except StoreError as exc:
            log.error("store unavailable while reloading jobs: %s", exc)
        waits.append(self.resume_open_fires(now))
        if (
            mono - self._last_heartbeat
            >= self.settings.scheduler.heartbeat_interval.total_seconds()
        ):
            self._last_heartbeat = mono
            try:
                self._heartbeat(now, state="running")
            except StoreError as exc:
                log.error("store unavailable for the heartbeat: %s", exc)
            self.notifier.status(self.status_line())
        interval = self.notifier.watchdog_interval
        if interval is not None and mono - self._last_watchdog >= interval:
            # Fed only while APScheduler's own thread is alive: a hung scheduler gets restarted.
            if self._aps is not None and self._aps.running:
                self._last_watchdog = mono
                self.notifier.watchdog()
        return max(0.0, min(waits))

    def request_stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def request_reload(self) -> None:
        self.reload_event.set()
        self.wake_event.set()

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, lambda _s, _f: self.request_reload())

    def shutdown(self) -> None:
        """Claim nothing new; let in-flight requests finish (bounded); record; stop."""
        self.stopping = True
        self.stop_event.set()  # wakes fires waiting for a rate-limit slot: they are not sent
        self.notifier.stopping()
        log.info("daemon stopping id=%s", self.daemon_id)
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        pool = self._pool
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            with self._inflight_lock:
                pending = list(self._futures)
            _done, not_done = concurrent.futures.wait(
                pending, timeout=self.settings.scheduler.shutdown_grace.total_seconds()
            )
            self.unfinished = len(not_done)
            if not_done:
                log.warning(
                    "%d fires still in flight after %s; their claims settle at the next start",
                    len(not_done),
                    self.settings.scheduler.shutdown_grace,
                )
        try:
            self._heartbeat(self.clock.now(), state="stopped")
        except StoreError as exc:
            log.warning("could not record the stop: %s", exc)
        self.notifier.close()
        log.info("daemon stopped id=%s", self.daemon_id)

    # -- jobs -----------------------------------------------------------------------------------
    def sync_jobs(self, now: datetime, *, catch_up: bool, force: bool = False) -> None:
        """Make the in-memory jobs and APScheduler match the store (by job id).

        With `catch_up` (startup), every job's missed instants are planned here, in this
        thread: skips recorded and claims made before this returns; the sending is queued.
        """
        revision = self.store.jobs_revision()
        if revision == self._revision and not force:
            return
        accounted: dict[str, datetime] | None = None
        loaded: list[str] = []
        enabled: set[str] = set()
        with self._jobs_lock:
            # A batch of stored jobs at a time: 100,000 definitions are never all held at once.
            for row in self.store.iter_jobs():
                if not row.enabled:
                    continue
                job_id = row.id
                enabled.add(job_id)
                current = self._jobs.get(job_id)
                if current is not None and current.updated_at == row.updated_at:
                    continue
                try:
                    job = job_from_document(row.definition, self.settings)
                except SchedulerError as exc:
                    # Never delete a user's job on our own: leave it stored, say why it is idle.
                    log.error("job quarantined job=%s: stored definition invalid: %s", job_id, exc)
                    if current is not None:
                        self._unload(job_id)
                    continue
                if job.id == job_id:
                    job_id = job.id  # one string for the key and the job (the row's is dropped)
                floor = row.active_since
                if job.start_at is not None:
                    floor = max(floor, job.start_at - ONE_MICROSECOND)
                same_schedule = current is not None and current.schedule_key == row.schedule_key
                if not same_schedule:
                    # New, or its instants changed: start from what the history accounts for.
                    if accounted is None:
                        accounted = self.store.accounted_until()
                    fresh = max(accounted.get(job_id, floor), floor)
                if current is not None:
                    # The same object, changed under its lock: a planner waiting on the lock
                    # then sees the new job, trigger and cursor, and no cursor it advanced
                    # meanwhile is lost.
                    with current.lock:
                        cursor = max(current.cursor, floor) if same_schedule else fresh
                        current.job = job
                        current.updated_at = row.updated_at
                        current.schedule_key = row.schedule_key
                        current.cursor = cursor
                        current.trigger = self._trigger(job, cursor)
                        current.complete = False
                    state = current
                else:
                    state = _JobState(
                        job=job,
                        updated_at=row.updated_at,
                        schedule_key=row.schedule_key,
                        cursor=fresh,
                        lock=threading.Lock(),
                        trigger=self._trigger(job, fresh),
                    )
                    self._jobs[job_id] = state
                self._retired.pop(job_id, None)
                if not catch_up:
                    self._schedule(state)
                loaded.append(job_id)
            for job_id in [i for i in self._jobs if i not in enabled]:
                self._unload(job_id)
                log.info("job unloaded job=%s", job_id)
        # Set last, so a failure above (store unavailable) is retried at the next pass.
        self._revision = revision
        if catch_up:
            sends: list[tuple[Job, list[Fire]]] = []
            for job_id in loaded:
                if self.stop_event.is_set():
                    break  # not planned: the next start plans it
                self._advance(job_id, now, now, sends=sends)
                planned = self._jobs.get(job_id)
                if planned is not None:
                    # APScheduler takes over where the plan stopped: now, or just before a
                    # jittered instant whose time is still to come.
                    with planned.lock:
                        planned.trigger.not_before = planned.cursor
                    self._schedule(planned)
            # Sending starts once everything is planned: senders and the planner would
            # otherwise fight over the GIL and SQLite's write lock, delaying READY.
            self._submit_claimed([(job, fire) for job, fires in sends for fire in fires])
        else:
            log.info("jobs reloaded revision=%d jobs=%d", revision, len(self._jobs))

    def _trigger(self, job: Job, cursor: datetime) -> EngineTrigger:
        return EngineTrigger(
            job.cron,
            job_id=job.id,
            jitter=job.jitter,
            not_before=cursor,  # instants at or before the cursor are accounted for
            until=job.end_at,
            late_limit=self.stall_threshold,
        )

    def _unload(self, job_id: str) -> None:
        """Forget a job (caller holds `_jobs_lock`); a fire in flight keeps its own Job."""
        state = self._jobs.pop(job_id)
        with state.lock:
            state.removed = True
        self._retired[job_id] = state.job
        self._unschedule(job_id)

    def _schedule(self, state: _JobState) -> None:
        assert self._aps is not None and self._aps_store is not None
        job_id = state.job.id
        template = self._aps_template
        if template is not None and self._aps_store.add_like(template, job_id, state.trigger):
            return
        added = self._aps.add_job(
            _noop,
            trigger=state.trigger,
            id=job_id,
            name=job_id,
            replace_existing=True,
        )
        if self._aps_store.loading and template is None:
            # Loading: the jobs after this one are built like it (`add_like`).
            self._aps_template = added

    def _unschedule(self, job_id: str) -> None:
        if self._aps is not None and self._aps.get_job(job_id) is not None:
            self._aps.remove_job(job_id)

    # -- firing ---------------------------------------------------------------------------------
    def _dispatch(self, job_id: str, run_times: list[datetime]) -> None:
        """Called on APScheduler's thread when a job is due: queue it for the planner.

        One planner task drains the queue in batches (`_plan_dispatched`), so a burst of
        thousands of jobs due in the same second is claimed in a few transactions, not one each.
        """
        submitted_at = self.clock.now()
        state = self._jobs.get(job_id)
        if state is None or self.stopping:
            return
        up_to = state.trigger.scheduled_of(max(run_times))
        with self._due_lock:
            queued = self._due.get(job_id)
            if queued is not None:
                up_to, submitted_at = max(up_to, queued[0]), queued[1]
            self._due[job_id] = (up_to, submitted_at)
            if self._planner_queued:
                return
            self._planner_queued = True
        if not self._submit(self._plan_dispatched):
            with self._due_lock:
                self._planner_queued = False

    def _plan_dispatched(self) -> None:
        """Plan and claim what APScheduler dispatched, a batch at a time, until none is left."""
        while True:
            with self._due_lock:
                if self.stopping:
                    self._due.clear()  # claim nothing new
                if not self._due:
                    self._planner_queued = False
                    return
                batch = {}
                for job_id in list(self._due)[:PLAN_BATCH]:
                    batch[job_id] = self._due.pop(job_id)
            try:
                self._advance_many(batch)
            except BaseException:
                # Never leave the queue without a planner: the next dispatch queues a new one,
                # and the next pass of the loop plans this batch again.
                with self._due_lock:
                    self._planner_queued = False
                with self._inflight_lock:
                    self._replan.update(batch)
                raise

    def _advance_many(self, batch: dict[str, tuple[datetime, datetime]]) -> None:
        """`_advance` for many jobs, with every plain fire claimed in one transaction.

        A job whose plan skips instants or counts toward `max_fires` goes through `_advance`
        alone (both need queries per instant). The cursors move only once the claims are
        committed; if the store fails, the jobs are planned again when it answers.
        """
        wanted: list[tuple[str, datetime, Trigger]] = []
        cursors: dict[str, tuple[_JobState, datetime]] = {}
        alone: list[tuple[str, datetime, datetime]] = []
        for job_id, (up_to, now) in batch.items():
            state = self._jobs.get(job_id)
            if state is None:
                continue
            with state.lock:
                if state.removed or state.complete:
                    continue
                plan = self._plan(state, up_to, now)
                if plan.empty:
                    state.cursor = max(state.cursor, plan.cursor or state.cursor)
                    continue
                if plan.skips or state.job.max_fires is not None:
                    alone.append((job_id, up_to, now))
                    continue
                wanted += [(job_id, instant, trigger) for instant, trigger in plan.fire]
                last = max([plan.cursor or state.cursor] + [i for i, _t in plan.fire])
                cursors[job_id] = (state, last)
        if self.stopping:
            return  # claim nothing new; not accounted, so the next start plans it
        claimed: list[Fire] = []
        if wanted:
            # In key order: daemons claiming overlapping batches on PostgreSQL then wait for
            # each other's unique-index entries in the same order, never in a deadlock.
            wanted.sort(key=lambda item: (item[0], item[1]))
            try:
                claimed = self.store.claim_many(
                    wanted, now=self.clock.now(), daemon_id=self.daemon_id
                )
            except StoreError as exc:
                with self._inflight_lock:
                    self._replan.update(cursors.keys())
                first, *others = cursors
                log.error(
                    "store unavailable while planning job=%s%s: %s; planned again when the "
                    "store answers",
                    first,
                    f" and {len(others)} other jobs" if others else "",
                    exc,
                )
                cursors = {}
            for state, last in cursors.values():
                with state.lock:
                    state.cursor = max(state.cursor, last)
        self._submit_claimed([(cursors[fire.job_id][0].job, fire) for fire in claimed])
        for job_id, up_to, now in alone:
            self._advance(job_id, up_to, now)

    def _advance(
        self,
        job_id: str,
        up_to: datetime,
        now: datetime,
        *,
        sends: list[tuple[Job, list[Fire]]] | None = None,
    ) -> None:
        """Account for every instant of the job up to `up_to`: skip or claim, then send.

        The claimed fires are sent one after the other by this worker (oldest first), or, given
        `sends` (startup), appended to it for the caller to queue.
        """
        state = self._jobs.get(job_id)
        if state is None or self.stopping:
            return
        claimed: list[Fire] = []
        with state.lock:
            if state.removed or state.complete:
                return
            job = state.job
            try:
                self._plan_and_claim(state, up_to, now, claimed)
            except StoreError as exc:
                # The cursor stays at the last instant accounted for; the rest is planned again
                # once the store answers (a store outage is a stall: late instants follow the
                # catch-up policy). What was claimed already is sent below.
                with self._inflight_lock:
                    self._replan.add(job_id)
                log.error(
                    "store unavailable while planning job=%s up_to=%s: %s; planned again when "
                    "the store answers",
                    job_id,
                    utc_iso(up_to),
                    exc,
                )
        if not claimed:
            return
        if sends is None:
            self._send_claimed([(job, fire) for fire in claimed])
        else:
            sends.append((job, claimed))

    def _plan_and_claim(
        self, state: _JobState, up_to: datetime, now: datetime, claimed: list[Fire]
    ) -> None:
        """Record the plan's skips and claim its fires (caller holds `state.lock`)."""
        job = state.job
        plan = self._plan(state, up_to, now)
        if plan.empty:
            state.cursor = max(state.cursor, plan.cursor or state.cursor)
            return
        if job.max_fires is not None and self._fires_used(job.id) >= job.max_fires:
            # Done for good: nothing more is planned (no skip rows for a finished series).
            # Asked only when there is something to plan: it costs a query.
            self._complete(state)
            return
        for skip in plan.skips:
            self._record_skip(job, skip)
        for instant, trigger in plan.fire:
            if self.stopping:
                return  # not accounted: the next start plans it again
            if job.max_fires is not None and self._fires_used(job.id) >= job.max_fires:
                self._complete(state)
                return
            fire = self.store.claim(
                job.id, instant, trigger, now=self.clock.now(), daemon_id=self.daemon_id
            )
            if fire is not None:
                claimed.append(fire)
            state.cursor = max(state.cursor, instant)
        if plan.cursor is not None:
            state.cursor = max(state.cursor, plan.cursor)

    def _plan(self, state: _JobState, up_to: datetime, now: datetime) -> Plan:
        """The catch-up planner's answer for this job (caller holds `state.lock`)."""
        job = state.job
        return plan_due(
            job.cron,
            cursor=state.cursor,
            up_to=up_to,
            now=now,
            live_since=self.live_since,
            policy=job.catch_up,
            window=job.catch_up_window,
            stall_threshold=self.stall_threshold,
            jitter_of=state.trigger.jitter_of if job.jitter else None,
            max_jitter=job.jitter,
            until=job.end_at,
        )

    def _complete(self, state: _JobState) -> None:
        state.complete = True
        self._unschedule(state.job.id)
        log.info("job complete job=%s max_fires=%s", state.job.id, state.job.max_fires)

    def _record_skip(self, job: Job, skip: SkipRange) -> None:
        """Record a skipped range, leaving out instants the history already accounts for.

        A range is one row keyed by its first instant. Inserted whole over an instant that
        already has a row (a manual fire at a scheduled instant, another daemon's claim), it
        would either be refused, losing every instant in it, or count that instant twice. So
        the range is cut around the rows it touches; a row appearing meanwhile (a race) makes
        the rest be looked at again.
        """
        first = skip.first
        for _attempt in range(3):
            taken = self.store.fires_touching(job.id, first, skip.last)
            refused = None
            for lo, hi in _gaps(job.cron, first, skip.last, taken):
                count = job.cron.count_between(lo - ONE_MICROSECOND, hi)
                recorded = self.store.record_skip(
                    job.id,
                    lo,
                    reason=skip.reason,
                    trigger=Trigger.CATCH_UP,
                    now=self.clock.now(),
                    count=count,
                    until=hi if count > 1 else None,
                )
                if not recorded:
                    refused = lo
                    break
                log.warning(
                    "skipped job=%s scheduled_for=%s count=%d until=%s reason=%r",
                    job.id,
                    utc_iso(lo),
                    count,
                    utc_iso(hi),
                    skip.reason,
                )
            if refused is None:
                return
            first = refused

    def _submit_claimed(self, fires: list[tuple[Job, Fire]]) -> None:
        """Hand freshly claimed fires to the workers, a chunk each."""
        if not fires:
            return
        workers = self.settings.scheduler.max_concurrent_fires
        size = max(1, min(SEND_CHUNK, -(-len(fires) // workers)))
        for first in range(0, len(fires), size):
            self._submit(self._send_claimed, fires[first : first + size])

    def _send_claimed(self, fires: list[tuple[Job, Fire]]) -> None:
        """Send fires just claimed (`pending`), in groups; unless stopping (they stay pending:
        never sent, so the next start sends them)."""
        with self._inflight_lock:
            fires = [(job, fire) for job, fire in fires if fire.id not in self._inflight]
            self._inflight.update(fire.id for _job, fire in fires)
        try:
            if not self.stopping:
                self.runner.send_claimed(fires)
        except StoreError as exc:
            # Resumed by the first pass that reaches the store again (`resume_open_fires`).
            with self._inflight_lock:
                self._stranded.update(fire.id for _job, fire in fires)
            log.error(
                "store failed while sending %d fires: %s; they stay open and are resumed",
                len(fires),
                exc,
            )
        finally:
            with self._inflight_lock:
                self._inflight.difference_update(fire.id for _job, fire in fires)

    def _fires_used(self, job_id: str) -> int:
        """Successful fires plus those still open (max_fires counts successes)."""
        return self.store.count_fires(
            job_id,
            statuses=(
                FireStatus.SUCCEEDED,
                FireStatus.PENDING,
                FireStatus.SENDING,
                FireStatus.RETRYING,
                FireStatus.UNCERTAIN,
            ),
        )

    def _submit_carry(self, job: Job | None, fire: Fire) -> None:
        """Queue one fire for a worker, unless one already holds or has queued it."""
        with self._inflight_lock:
            if fire.id in self._inflight:
                return
            self._inflight.add(fire.id)
        if not self._submit(self._carry_held, job, fire):
            with self._inflight_lock:
                self._inflight.discard(fire.id)

    def _carry_held(self, job: Job | None, fire: Fire) -> None:
        # `resume` reads the fire again and acts on its current state: a queued snapshot may be
        # stale (a retry that has since become uncertain must be read back, not resent).
        try:
            if job is None:
                # Its job was removed before this daemon loaded it: nothing can rebuild the
                # request or read it back. Settle it as failed, saying why; never leave it open.
                self.runner.abandon(fire, "the job was removed; this fire can no longer be sent")
            else:
                self.runner.resume(job, fire)
        except StoreError as exc:
            # Resumed by the first pass that reaches the store again (`resume_open_fires`).
            with self._inflight_lock:
                self._stranded.add(fire.id)
            log.error(
                "store failed job=%s scheduled_for=%s: %s; the fire stays open and is resumed",
                fire.job_id,
                utc_iso(fire.scheduled_for),
                exc,
            )
        finally:
            with self._inflight_lock:
                self._inflight.discard(fire.id)

    def resume_open_fires(self, now: datetime, *, startup: bool = False) -> float:
        """Retries that are due, uncertain fires to reconcile, and orphans to adopt.

        Returns the seconds until the next retry is due (capped by the loop's tick).
        """
        wait = MAX_TICK
        try:
            for fire in self.store.due_retries(now):
                self._resume(fire)
            self._retry_after_store_failure(now)
            mono = self.clock.monotonic()
            scan_every = min(
                self.settings.scheduler.dead_after.total_seconds() / 2, ORPHAN_SCAN_EVERY
            )
            if startup or mono - self._last_orphan_scan >= scan_every:
                self._last_orphan_scan = mono
                self._adopt_orphans(now, startup=startup)
            next_retry = self.store.next_retry_at()
        except StoreError as exc:
            log.error("store unavailable while looking for retries: %s", exc)
            return MAX_TICK
        if next_retry is not None:
            wait = min(wait, max(0.0, (next_retry - now).total_seconds()))
        return wait

    def _retry_after_store_failure(self, now: datetime) -> None:
        """The store answers again: resume stranded fires, plan the jobs it failed to plan."""
        with self._inflight_lock:
            stranded, self._stranded = self._stranded, set()
            replan, self._replan = self._replan, set()
        for index, fire_id in enumerate(sorted(stranded)):
            try:
                fire = self.store.get_fire(fire_id)
            except StoreError:
                with self._inflight_lock:
                    self._stranded.update(sorted(stranded)[index:])
                raise
            if fire.status in OPEN_STATUSES and fire.claimed_by in (None, self.daemon_id):
                self._resume(fire)
        for job_id in replan:
            self._submit(self._advance, job_id, now, now)

    def _adopt_orphans(self, now: datetime, *, startup: bool) -> None:
        """Open fires nobody carries: ours that stopped moving, those of dead daemons, and
        unowned ones (claimed by a `fire` or `backfill` command) left for long."""
        dead = self._dead_daemons(now)
        # A dead daemon is one silent for `dead_after`, so its rows are at least that old.
        stale = min(self.settings.scheduler.dead_after, OWN_ORPHAN_AFTER)
        long_ago = now - OWN_ORPHAN_AFTER
        for fire in self.store.unsettled(older_than=now if startup else now - stale):
            owner = fire.claimed_by
            mine = owner == self.daemon_id
            if fire.status is FireStatus.UNCERTAIN:
                if fire.next_attempt_at is not None and fire.next_attempt_at > now:
                    continue
            elif (mine or owner is None) and fire.updated_at >= long_ago:
                # Ours and recent: a worker has it queued. Unowned and recent: a `fire` or
                # `backfill` command may be sending it right now, and a read-back before its
                # request lands would find nothing and send it twice. No request lasts this long.
                continue
            if not (mine or owner is None or owner in dead):
                continue
            if not mine:
                adopted = self.store.adopt(
                    fire.id, expected_owner=owner, new_owner=self.daemon_id, now=now
                )
                if adopted is None:
                    continue
                log.info(
                    "adopted fire job=%s scheduled_for=%s from=%s status=%s",
                    fire.job_id,
                    utc_iso(fire.scheduled_for),
                    owner,
                    adopted.status,
                )
                fire = adopted
            self._resume(fire)

    def _dead_daemons(self, now: datetime) -> set[str]:
        dead = set()
        limit = now - self.settings.scheduler.dead_after
        for info in self.store.daemons():
            if info.id == self.daemon_id:
                continue
            if info.state == "stopped" or info.last_seen < limit or self._gone(info):
                dead.add(info.id)
        return dead

    def _gone(self, info: DaemonInfo) -> bool:
        """A daemon on this host whose process no longer exists is dead now, not in 30 s."""
        if info.hostname != self.hostname or info.pid == os.getpid():
            return False
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _resume(self, fire: Fire) -> None:
        """Queue an open fire for a worker, with its job's definition."""
        with self._inflight_lock:
            if fire.id in self._inflight:
                return
        self._submit_carry(self._job_of(fire.job_id), fire)

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

    def detect_stall(self, now: datetime, mono: float) -> bool:
        """Plan catch-up when the wall clock jumped ahead or the process was frozen."""
        wall_delta = (now - self._last_wall).total_seconds()
        mono_delta = mono - self._last_mono
        self._last_wall, self._last_mono = now, mono
        threshold = self.stall_threshold.total_seconds()
        if wall_delta < -threshold:
            # Instants already in the history are never fired again (unique key + cursors).
            log.warning("wall clock stepped back by %.0fs; nothing is re-fired", -wall_delta)
            self._wake_engine()
            return False
        if wall_delta - mono_delta > threshold or mono_delta > MAX_TICK + threshold:
            log.warning(
                "stall detected: wall clock moved %.1fs, monotonic %.1fs; planning catch-up",
                wall_delta,
                mono_delta,
            )
            self.live_since = now
            for job_id in list(self._jobs):
                self._submit(self._advance, job_id, now, now)
            self._wake_engine()
            return True
        return False

    def _wake_engine(self) -> None:
        """Make APScheduler look at the clock again now. It sleeps for `next run - now`,
        measured before the clock moved: after a step back and forward again it would stay
        asleep for as long as the clock had gone back, firing nothing live."""
        if self._aps is not None and self._aps.running:
            self._aps.wakeup()

    def _submit(self, fn: Callable[..., None], *args: Any) -> bool:
        """Queue `fn(*args)` for a worker; False when stopping (nothing is queued then)."""
        pool = self._pool
        if pool is None or self.stopping:
            return False
        try:
            future = pool.submit(_logged, fn, *args)
        except RuntimeError:  # the pool is shutting down
            return False
        with self._inflight_lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return True

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._inflight_lock:
            self._futures.discard(future)

    # -- status ---------------------------------------------------------------------------------
    def next_fire_at(self) -> datetime | None:
        job = self._next_aps_job()
        return None if job is None else job.next_run_time

    def status_line(self) -> str:
        job = self._next_aps_job()
        if job is None:
            return f"{len(self._jobs)} jobs; nothing scheduled"
        return f"{len(self._jobs)} jobs; next fire {job.id} at {utc_iso(job.next_run_time)}"

    def _next_aps_job(self) -> Any:
        # The memory store keeps jobs sorted by next run time: the first one, without a copy.
        if self._aps_store is None:
            return None
        with self._aps._jobstores_lock:  # type: ignore[union-attr]
            return self._aps_store.first_job()

    def _heartbeat(self, now: datetime, *, state: str) -> None:
        self.store.heartbeat(
            self.daemon_id,
            hostname=self.hostname,
            pid=os.getpid(),
            started_at=self._started_at,
            now=now,
            next_fire_at=self.next_fire_at(),
            state=state,
        )

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1:
            # Second signal: leave now. Every claim is committed; the next start settles them.
            os._exit(1)
        self.request_stop()


def _gaps(
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


def _noop() -> None:
    """APScheduler needs a callable; ours never runs (the executor dispatches instead)."""


def _logged(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # a worker must never die silently
        log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
