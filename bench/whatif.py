"""Prototypes of the daemon changes suggested in .git/daemon-bugs.md ("perf:"), to measure them.

The daemon, runner, triggers and catch-up planner belong to another engineer; a benchmark must
not change them. These patches apply a suggestion to a daemon built *in this process* for one
measurement, so the report can say what the change would buy ("what if"). Each is a faithful,
behaviour-preserving version of the suggestion; none of it ships.

- `gc`: no cyclic garbage collection while `start()` loads and plans every job, then
  `gc.freeze()`, so the ~10 objects per job that live as long as the daemon are never
  traversed again by later collections.
- `plan`: `plan_due` returns at once when the schedule has no instant in (cursor, up_to]
  (one `next_after`, instead of the full window arithmetic): the common case at startup.
- `aps`: APScheduler's memory job store sorts its list once after the jobs are loaded, instead
  of a binary search plus a list insert (O(n)) per job, and the status line reads the first
  job of that sorted list instead of `get_jobs()` copying all of them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import datetime_to_utc_timestamp

import scheduler.daemon as daemon_module
from scheduler.catchup import Plan, plan_due

WHAT_IFS = ("gc", "plan", "aps")


def fast_plan_due(schedule: Any, *, cursor: datetime, up_to: datetime, **kwargs: Any) -> Plan:
    """`plan_due`, but with nothing due in (cursor, min(up_to, until)] answered directly."""
    until = kwargs.get("until")
    hi = up_to if until is None else min(up_to, until)
    first = schedule.next_after(cursor)
    if first is None or first > hi:
        # Exactly what plan_due returns then: no fires, no skips, cursor moved to up_to.
        return Plan(cursor=max(cursor, up_to))
    return plan_due(schedule, cursor=cursor, up_to=up_to, **kwargs)


def _order(pair: tuple[Any, float | None]) -> tuple[float, str]:
    job, timestamp = pair
    return (float("inf") if timestamp is None else timestamp, job.id)


class BulkLoadingJobStore(MemoryJobStore):  # type: ignore[misc]
    """MemoryJobStore that appends while loading and sorts once before it is next read."""

    def __init__(self) -> None:
        super().__init__()
        self.loading = True
        self._unsorted = False

    def _ensure_sorted(self) -> None:
        if self._unsorted:
            self._jobs.sort(key=_order)
            self._unsorted = False

    def add_job(self, job: Any) -> None:
        if not self.loading:
            self._ensure_sorted()
            super().add_job(job)
            return
        if job.id in self._jobs_index:
            from apscheduler.jobstores.base import ConflictingIdError

            raise ConflictingIdError(job.id)
        timestamp = datetime_to_utc_timestamp(job.next_run_time)
        self._jobs.append((job, timestamp))
        self._jobs_index[job.id] = (job, timestamp)
        self._unsorted = True

    def finish_loading(self) -> None:
        self._ensure_sorted()
        self.loading = False

    def first_job(self) -> Any:
        self._ensure_sorted()
        for job, timestamp in self._jobs:
            return job if timestamp is not None else None
        return None

    # Every reader sees the sorted list.
    def update_job(self, job: Any) -> None:
        self._ensure_sorted()
        super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        self._ensure_sorted()
        super().remove_job(job_id)

    def get_due_jobs(self, now: datetime) -> list[Any]:
        self._ensure_sorted()
        jobs: list[Any] = super().get_due_jobs(now)
        return jobs

    def get_next_run_time(self) -> datetime | None:
        self._ensure_sorted()
        value: datetime | None = super().get_next_run_time()
        return value

    def get_all_jobs(self) -> list[Any]:
        self._ensure_sorted()
        jobs: list[Any] = super().get_all_jobs()
        return jobs


class BulkLoadingScheduler(BackgroundScheduler):  # type: ignore[misc]
    """BackgroundScheduler on a BulkLoadingJobStore; loading ends when it is resumed."""

    def __init__(self, **options: Any) -> None:
        self.bulk_store = BulkLoadingJobStore()
        options.setdefault("jobstores", {"default": self.bulk_store})
        super().__init__(**options)

    def resume(self) -> None:
        self.bulk_store.finish_loading()
        super().resume()

    def start(self, *args: Any, **kwargs: Any) -> None:
        super().start(*args, **kwargs)
        if not kwargs.get("paused") and not (args and args[0]):
            self.bulk_store.finish_loading()


def apply(daemon: Any, what_ifs: set[str]) -> Callable[[], None]:
    """Patch `daemon` (and the daemon module) with the chosen prototypes; returns an undo."""
    undo: list[Callable[[], None]] = []
    if "plan" in what_ifs:
        original_plan = daemon_module.plan_due
        daemon_module.plan_due = fast_plan_due  # type: ignore[assignment]
        undo.append(lambda: setattr(daemon_module, "plan_due", original_plan))
    if "aps" in what_ifs:
        original_scheduler = daemon_module.BackgroundScheduler
        daemon_module.BackgroundScheduler = BulkLoadingScheduler  # type: ignore[misc]
        undo.append(lambda: setattr(daemon_module, "BackgroundScheduler", original_scheduler))

        def next_aps_job() -> Any:
            aps = daemon._aps
            return None if aps is None else aps.bulk_store.first_job()

        daemon._next_aps_job = next_aps_job
    if "gc" in what_ifs:
        original_start = daemon.start

        def start() -> None:
            gc.disable()
            try:
                original_start()
            finally:
                gc.enable()
                gc.freeze()

        daemon.start = start
    return lambda: [fn() for fn in reversed(undo)] and None
