"""A warning for one-off tasks with guest owners that would pass Tallyfy's guest invite cap.

Tallyfy caps the actions that email people outside the organization per organization and hour:
30 guest invites an hour (tallyfy-api.md 5.2); past it, requests are refused with 429 until the
hour has passed. A one-off task with a guest owner invites that guest, so jobs whose tasks have
guest owners and, together, fire more than 30 times within some hour would have fires held
back by the API. `jobs validate` warns (it is not an error: the fires are retried after the
429, only late), naming the jobs and the busiest hour it found.

The count is of fires, one per fire whatever its guests, over each job's instants in the coming
year (at most `MAX_INSTANTS_PER_JOB` of a job: a job firing that often passes the cap alone);
instants on skip days and outside a job's start/end window do not count.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from itertools import islice

from scheduler.job import CreateTask, Job
from scheduler.skipdays import firing_schedule
from scheduler.timeexpr import BusinessCalendar

GUEST_INVITES_PER_HOUR = 30  # per organization (tallyfy-api.md 5.2, doc D-api)
HORIZON = timedelta(days=366)
MAX_INSTANTS_PER_JOB = 20_000
HOUR = timedelta(hours=1)
ONE_MICROSECOND = timedelta(microseconds=1)


def has_guest_owners(job: Job) -> bool:
    """A create_task job whose tasks have at least one guest owner."""
    return isinstance(job.action, CreateTask) and bool(job.action.owners.guests)


def guest_invite_warning(
    jobs: Iterable[Job], *, now: datetime, calendar: BusinessCalendar
) -> str | None:
    """The warning for `jobs` (enabled ones with guest owners count), or None under the cap."""
    fires: list[tuple[datetime, str]] = []
    for job in jobs:
        if job.enabled and has_guest_owners(job):
            fires += [(instant, job.id) for instant in _instants(job, now, calendar)]
    if len(fires) <= GUEST_INVITES_PER_HOUR:
        return None
    fires.sort()
    # The busiest hour: a window sliding over the fires in order, [fires[low], fires[high]].
    busiest, first, last = 0, 0, 0
    low = 0
    for high, (instant, _job) in enumerate(fires):
        while instant - fires[low][0] >= HOUR:
            low += 1
        if high - low + 1 > busiest:
            busiest, first, last = high - low + 1, low, high
    if busiest <= GUEST_INVITES_PER_HOUR:
        return None
    names = ", ".join(sorted({job_id for _instant, job_id in fires[first : last + 1]}))
    return (
        f"one-off tasks with guest owners fire {busiest} times in the hour from "
        f"{fires[first][0].isoformat()} (jobs {names}): Tallyfy invites at most "
        f"{GUEST_INVITES_PER_HOUR} guests an hour per organization and refuses more with 429 "
        "until the hour has passed, so some of these fires would be late; spread the "
        "schedules, or assign members or groups instead of guests"
    )


def _instants(job: Job, now: datetime, calendar: BusinessCalendar) -> list[datetime]:
    """The job's instants that fire in (now, now + HORIZON], within its window; capped."""
    after = now
    if job.start_at is not None and job.start_at - ONE_MICROSECOND > after:
        after = job.start_at - ONE_MICROSECOND
    end = now + HORIZON if job.end_at is None else min(now + HORIZON, job.end_at)
    found = []
    for instant in islice(firing_schedule(job, calendar).iter_after(after), MAX_INSTANTS_PER_JOB):
        if instant > end:
            break
        found.append(instant)
    return found
