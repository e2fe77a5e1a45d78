"""A one-off task's run: which launch `run_from_job` attaches to, and whether a run takes it.

`launched_run` answers, for a fire of a create_task job with `run_from_job` scheduled at T,
the run of **the launch of the same or the latest earlier instant**: the launch job's newest
fire scheduled at or before T, not its newest fire (a backfill or a retry may have launched a
later instant already). Its history rows at or before T are read newest first:

- succeeded: that launch's run;
- still open (pending, sending, retrying, uncertain): the task waits for it (`NotReady`: the
  runner retries the fire with backoff, the reason in its history row), within the task job's
  catch-up window (after it, the fire fails saying what it waited for);
- failed or skipped: no launch for that instant; the one before it is looked at.

One more wait: when the launch job (enabled, loaded from the store) has an instant at or before
T that its history does not hold yet (it is claimed a moment later, or planned after the task
job), the task waits for it too, so it never attaches to the previous run by a race. Instants
the launch job never fires (before it was applied or resumed, outside its start/end window,
on its skip days, past its max_fires) are not waited for. With no launch at all, the fire fails
("no successful launch yet"), as before.

`run_refusal` asks the API whether a run still takes one-off tasks: not complete, archived or
deleted, and its template accepts them (`can_add_oot`). The runner asks it before each such
task is sent; `jobs validate --online` and `doctor` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.client import TallyfyClient
from scheduler.clock import utc_iso
from scheduler.config import Settings, StoreSettings
from scheduler.definitions import job_from_document
from scheduler.durations import format_duration
from scheduler.errors import (
    AuthenticationFailed,
    FireRejected,
    JobNotFound,
    NotReady,
    PermanentApiError,
    SchedulerError,
    problem,
)
from scheduler.job import CreateTask, Job, LaunchProcess
from scheduler.lifecycle import COUNTS_TOWARD_MAX_FIRES, OPEN, FireStatus
from scheduler.skipdays import firing_schedule
from scheduler.store import Fire, Store
from scheduler.timeexpr import BusinessCalendar

# How far back the launch is looked for, widening only while nothing is found: most tasks
# attach to a launch of the same day or week, and one query over a short span answers them.
SEARCH_BACK = (timedelta(days=1), timedelta(days=40), timedelta(days=400))
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# A run in one of these statuses takes no new task (tallyfy-api.md 6: run statuses).
CLOSED_RUN_STATUSES = frozenset({"complete", "completed", "archived", "deleted"})
# Stored documents carry every default resolved (`Job.to_document`), so reading one never
# consults these settings; the reader only takes them for job files that leave keys out.
_STORED = Settings(store=StoreSettings(url="sqlite://"))


def launched_run(
    store: Store,
    job: Job,
    scheduled_for: datetime,
    *,
    calendar: BusinessCalendar,
    now: datetime | None = None,
    wait: bool = True,
) -> str:
    """The run id a fire of `job` at `scheduled_for` attaches to (module docstring).

    NotReady while the launch it attaches to is still on its way; FireRejected when there is
    none, or (`now` given) when the task job's catch-up window has passed while waiting.
    Without `wait` (`preview` of a fire that would wait), launches still on their way are
    passed over: the run of the latest launch that succeeded so far.
    """
    action = job.action
    assert isinstance(action, CreateTask) and action.run_from_job is not None
    source = action.run_from_job
    expected = expected_launch(store, source, scheduled_for, calendar) if wait else None
    seen: set[int] = set()
    for depth, back in enumerate((*SEARCH_BACK, None)):
        low = EARLIEST if back is None else scheduled_for - back
        if depth == 0 and expected is not None:
            low = min(low, expected)
        rows = store.fires_touching(source, low, scheduled_for)
        if depth == 0 and expected is not None and not any(_covers(r, expected) for r in rows):
            _wait(
                job,
                scheduled_for,
                now,
                f"{source!r} has not claimed its launch scheduled for {utc_iso(expected)} yet",
            )
        for row in sorted(rows, key=lambda f: (f.scheduled_for, f.id), reverse=True):
            if row.id in seen:
                continue
            seen.add(row.id)
            if row.status is FireStatus.SUCCEEDED and row.remote_id:
                return row.remote_id
            if row.status in OPEN and wait:
                _wait(
                    job,
                    scheduled_for,
                    now,
                    f"the launch of {source!r} scheduled for {utc_iso(row.scheduled_for)} is "
                    f"still {row.status}",
                )
    raise FireRejected(
        problem(
            f"{source!r} has no successful launch yet: no run to attach the task to",
            key="action.run_from_job",
            value=source,
        )
    )


def expected_launch(
    store: Store, source_id: str, at: datetime, calendar: BusinessCalendar
) -> datetime | None:
    """The launch job's newest instant at or before `at` that it will fire (and so record),
    or None: no such job, paused, not a launch, or no such instant it fires."""
    try:
        stored = store.get_job(source_id)
    except JobNotFound:
        return None
    if not stored.enabled:
        return None
    try:
        source = job_from_document(stored.definition, _STORED)
    except SchedulerError:
        return None  # quarantined: it fires nothing
    if not isinstance(source.action, LaunchProcess):
        return None
    until = at if source.end_at is None else min(at, source.end_at)
    instant = firing_schedule(source, calendar).previous_at_or_before(until)
    if instant is None or instant <= stored.active_since or not source.in_window(instant):
        return None
    if source.max_fires is not None:
        used = store.count_fires(source.id, statuses=COUNTS_TOWARD_MAX_FIRES)
        if used >= source.max_fires:
            return None  # the series is over: later instants are never claimed
    return instant


def _covers(row: Fire, instant: datetime) -> bool:
    return row.scheduled_for <= instant <= (row.skipped_until or row.scheduled_for)


def _wait(job: Job, scheduled_for: datetime, now: datetime | None, reason: str) -> None:
    """Raise NotReady, or FireRejected once the job's catch-up window has passed."""
    if now is not None and now - scheduled_for > job.catch_up_window:
        raise FireRejected(
            problem(
                f"gave up waiting: {reason}, and the catch-up window "
                f"({format_duration(job.catch_up_window)}) has passed",
                key="action.run_from_job",
            )
        )
    raise NotReady(f"waiting: {reason}")


def run_refusal(client: TallyfyClient, run_id: str) -> str | None:
    """Why a one-off task cannot be added to this run, or None when it can (`refusal_of` the
    run as the API shows it now). API errors other than a 404 pass through (the caller
    retries or reports them)."""
    return refusal_of(run_id, read_run(client, run_id))


def read_run(client: TallyfyClient, run_id: str) -> Mapping[str, Any] | None:
    """The run with its template (`GET /runs/{id}?with=checklist`), or None if not found."""
    return unless_gone(lambda: client.get_run(run_id, with_checklist=True))


def unless_gone(read: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """What `read` (one GET of a run or task) returns, or None when the API answers 404 (gone,
    or not in this organization); any other error passes through."""
    try:
        return read()
    except PermanentApiError as exc:
        if exc.status == 404 and not isinstance(exc, AuthenticationFailed):
            return None
        raise


def refusal_of(run_id: str, run: Mapping[str, Any] | None) -> str | None:
    """Why a one-off task cannot be added to `run` (as `read_run` gave it): gone, complete,
    archived or deleted, or its template does not accept one-off tasks (`can_add_oot`)."""
    if run is None:
        return f"run {run_id} was not found (deleted, or not in this organization)"
    closed = closed_state(run)
    if closed is not None:
        return f"run {run_id} ({run.get('name')!r}) is {closed}: it takes no new tasks"
    template = run.get("checklist")
    if isinstance(template, Mapping) and isinstance(template.get("data"), Mapping):
        template = template["data"]
    if isinstance(template, Mapping) and template.get("can_add_oot") is False:
        return (
            f"the template of run {run_id} ({template.get('title')!r}) does not accept one-off "
            "tasks on its processes (can_add_oot is off in its settings)"
        )
    return None


def closed_state(run: Mapping[str, Any]) -> str | None:
    """`complete`, `archived` or `deleted` for a run that takes no new task, else None."""
    status = str(run.get("status") or "")
    if status in CLOSED_RUN_STATUSES:
        return "complete" if status == "completed" else status
    for key, state in (("deleted_at", "deleted"), ("archived_at", "archived")):
        if run.get(key):
            return state
    if run.get("completed_at"):
        return "complete"
    return None
