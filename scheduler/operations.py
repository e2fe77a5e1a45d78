"""The manual operations: apply job files, fire a job, backfill a range, preview a request.

Shared by the CLI (`cli.py`: it parses, calls one of these, prints what comes back) and the
demo (`demo.py`). Each takes its collaborators as arguments (a store, a runner, the settings,
`now`); none prints, reads the environment or reads a clock. Failures are the package's errors
(errors.py): `InvalidInput` and its subclasses carry problems naming key and value, `FireFailed`
lists each fire that did not succeed, store and API errors pass through unchanged.

Where an operation has a step the caller must see before the next one can fail (the note that
`--to` was cut to now; each backfilled fire as it settles), it is split into steps, or returns
an iterator, rather than printing through a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice, takewhile
from pathlib import Path

from scheduler.catchup import BackfillStep, plan_backfill
from scheduler.client import ApiRequest
from scheduler.clock import utc_iso
from scheduler.config import Settings
from scheduler.definitions import check_run_from_job, job_from_document, load_job_files
from scheduler.errors import ConfigError, FireFailed, FireRejected, InvalidInput, NotReady, problem
from scheduler.job import Job
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.runner import Runner, request_for_instant
from scheduler.skipdays import skip_days_of
from scheduler.store import ApplyPlan, Fire, JobDocument, Store
from scheduler.timeexpr import BusinessCalendar

MAX_BACKFILL = 100_000  # instants in one backfill: beyond this, split the range on purpose
ONE_MICROSECOND = timedelta(microseconds=1)

# What the daemon does next with a fire that did not succeed (`raise_unless_succeeded`).
_CARRIED_ON = {
    FireStatus.RETRYING: "will be retried by the daemon",
    FireStatus.UNCERTAIN: "may have reached the API; the daemon reconciles it",
    FireStatus.HELD: "is held (overlap); a daemon asks again and sends it once it may",
}


# -- shared lookups -------------------------------------------------------------------------------


def load_job(store: Store, settings: Settings, job_id: str) -> Job:
    """A stored job as a validated Job (JobNotFound, DefinitionError)."""
    return job_from_document(store.get_job(job_id).definition, settings)


def require_organization_id(settings: Settings) -> str:
    """The organization id from `[tallyfy]`; ConfigError naming the setting when it is unset."""
    org = settings.tallyfy.organization_id
    if not org:
        raise ConfigError(
            problem(
                "not set: put organization_id under [tallyfy] in the config file or set "
                "TALLYFY_ORGANIZATION_ID",
                key="tallyfy.organization_id",
            )
        )
    return org


# -- apply ----------------------------------------------------------------------------------------


def apply_job_files(
    paths: Sequence[Path],
    settings: Settings,
    open_store: Callable[[], Store],
    *,
    now: datetime,
    prune: bool = False,
    dry_run: bool = False,
) -> ApplyPlan:
    """Validate job files (files, or folders of *.toml), then `apply_jobs` them.

    The files are checked before `open_store` is called, so their problems are reported even
    where the store is not ready (DefinitionError lists every problem of every file).
    """
    jobs = load_job_files(paths, settings, now)
    return apply_jobs(open_store(), jobs, now=now, prune=prune, dry_run=dry_run)


def apply_jobs(
    store: Store,
    jobs: Sequence[Job],
    *,
    now: datetime,
    prune: bool = False,
    dry_run: bool = False,
) -> ApplyPlan:
    """Store validated jobs in one transaction (all or none); with `prune`, remove the rest.

    Every `run_from_job` must name a launch_process job that exists after the apply
    (DefinitionError otherwise). With `dry_run`, nothing is written: the plan of what would
    change. Each job's `enabled` is the truth (a job paused through the CLI is resumed).
    """
    check_run_from_job(jobs, [stored.definition for stored in store.list_jobs()], prune=prune)
    docs = [
        JobDocument(job.id, job.to_document(), job.schedule_key, job.enabled, job.source)
        for job in jobs
    ]
    if dry_run:
        return store.plan_apply(docs, prune=prune)
    return store.apply(docs, prune=prune, now=now)


# -- fire -----------------------------------------------------------------------------------------


def below_watermark(job_id: str, instant: datetime, pruned_before: datetime) -> str:
    """Why an instant below a job's watermark is not fired (history retention)."""
    return (
        f"{job_id} {utc_iso(instant)} is before {utc_iso(pruned_before)}, where the job's "
        "history was pruned ([store] history_retention): history no longer says whether it "
        "was sent, so it is not fired (at most once)"
    )


def refuse_below_watermark(store: Store, job_id: str, instant: datetime, *, key: str) -> None:
    """InvalidInput when `instant` lies below the job's pruned-before watermark."""
    pruned_before = store.pruned_before(job_id)
    if pruned_before is not None and instant < pruned_before:
        raise InvalidInput(
            problem(
                below_watermark(job_id, instant, pruned_before), key=key, value=utc_iso(instant)
            )
        )


def fire_job(runner: Runner, job: Job, *, now: datetime, at: datetime | None = None) -> Fire:
    """Fire `job` once by hand (trigger `manual`) at `at`, or at `now` to the second.

    Goes through the runner, the daemon's own send path: claimed, sent, its outcome recorded.
    An instant the history already holds is not sent again (FireFailed). The fire is returned
    whatever its outcome: `raise_unless_succeeded` turns one that did not succeed into an error.
    """
    instant = at or now.replace(microsecond=0)
    refuse_below_watermark(runner.store, job.id, instant, key="--at")
    done = runner.fire(job, instant, Trigger.MANUAL)
    if done is None:
        raise FireFailed([f"{job.id} {utc_iso(instant)}: already in the history; not sent again"])
    return done


def raise_unless_succeeded(fires: Sequence[Fire]) -> None:
    """FireFailed naming each fire that did not succeed (and what the daemon does with it)."""
    bad = [f for f in fires if f.status is not FireStatus.SUCCEEDED]
    if bad:
        raise FireFailed(
            [
                f"{f.job_id} {utc_iso(f.scheduled_for)}: {f.status}"
                f"{': ' + f.error if f.error else ''}"
                f"{'; ' + _CARRIED_ON[f.status] if f.status in _CARRIED_ON else ''}"
                for f in bad
            ]
        )


# -- backfill -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillRange:
    """The instants a backfill covers: [start, end]; `note` says why `end` was cut, if it was."""

    start: datetime
    end: datetime
    note: str | None = None


def backfill_range(start: datetime, end: datetime, *, now: datetime) -> BackfillRange:
    """Check a backfill's range and cut its end to `now` (InvalidInput for a reversed range).

    Instants still to come are the daemon's: firing them now would also move the daemon's
    catch-up cursor past the ones in between. The cut is said in `note`.
    """
    if end < start:
        raise InvalidInput(problem("--to is before --from", key="--to", value=utc_iso(end)))
    if end > now:
        note = f"--to is in the future: backfilling up to now ({utc_iso(now)})"
        return BackfillRange(start, now, note)
    return BackfillRange(start, end)


@dataclass(frozen=True)
class BackfillPlan:
    """Every scheduled instant of `job` in a range, oldest first, with what history holds."""

    job: Job
    steps: tuple[BackfillStep, ...]

    @property
    def todo(self) -> tuple[BackfillStep, ...]:
        """The steps to fire: instants history does not hold as sent."""
        return tuple(step for step in self.steps if step.to_fire)


def backfill_plan(
    store: Store,
    settings: Settings,
    job_id: str,
    span: BackfillRange,
    *,
    limit: int = MAX_BACKFILL,
) -> BackfillPlan:
    """Plan a backfill of a stored job over `span`; sends and writes nothing (`--dry-run`).

    More than `limit` instants is refused (InvalidInput: split the range) without enumerating
    the range: a per-second job over years would not fit in memory.
    """
    job = load_job(store, settings, job_id)
    instants = list(
        islice(
            takewhile(lambda s: s <= span.end, job.fires_after(span.start - ONE_MICROSECOND)),
            limit + 1,  # enough to refuse a huge range without enumerating it
        )
    )
    if len(instants) > limit:
        raise InvalidInput(
            problem(
                f"more than {limit} instants in one backfill; split the range",
                key="--to",
                value=utc_iso(span.end),
            )
        )
    if instants:
        refuse_below_watermark(store, job.id, instants[0], key="--from")
    held = {f.scheduled_for: f for f in store.history(job.id, since=span.start, limit=None)}
    days = skip_days_of(job, BusinessCalendar.from_settings(settings.calendar))
    return BackfillPlan(job, tuple(plan_backfill(instants, held, days)))


def backfill(runner: Runner, plan: BackfillPlan) -> Iterator[Fire]:
    """Fire the plan's steps to fire, oldest first; yields each fire as it settles.

    Claims an instant with no row, reopens a failed fire or a single skipped instant (trigger
    `backfill`); an instant someone else claimed meanwhile is passed over. Lazy: nothing is
    sent until iterated. `raise_unless_succeeded` judges what it yielded.
    """
    for step in plan.todo:
        done = runner.backfill(plan.job, step.instant, step.existing)
        if done is not None:
            yield done


# -- preview --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """The exact request a fire of `job` scheduled for `scheduled_for` sends, and its URL; or,
    for an instant on one of the job's skip days, why it is skipped (`skipped`; no request)."""

    job: Job
    scheduled_for: datetime
    request: ApiRequest | None
    url: str | None
    skipped: str | None = None
    waiting: str | None = None  # when fired now, it would wait first (for its launch): why


def preview(
    store: Store, settings: Settings, job_id: str, *, now: datetime, at: datetime | None = None
) -> Preview:
    """The request for a stored job at `at` (default: its next fire after `now`); sends nothing.

    InvalidInput when the job has no next fire and no `at`; ConfigError without an organization
    id; FireRejected when the request cannot be built (run_from_job has no launch yet). A
    task whose launch is still on its way (not claimed yet, or open) would wait when fired:
    it is shown attached to the latest launch that succeeded so far, with `waiting` saying
    what it would wait for (NotReady when none succeeded yet). Member emails are shown as
    written (they become ids when the fire is sent). The next instant may be on a skip day:
    then it is returned as skipped, with the reason, and no request.
    """
    job = load_job(store, settings, job_id)
    if at is None:
        at = job.next_fire(now, fires_so_far=store.success_count(job.id))
        if at is None:
            raise InvalidInput(problem("the job has no next fire: pass --at", key=job.id))
    calendar = BusinessCalendar.from_settings(settings.calendar)
    days = skip_days_of(job, calendar)
    skipped = days.reason(at) if days is not None else None
    if skipped is not None:
        return Preview(job, at, None, None, skipped)
    organization_id = require_organization_id(settings)
    waiting = None
    try:
        request = request_for_instant(
            store, job, at, organization_id=organization_id, calendar=calendar
        )
    except NotReady as exc:
        waiting = str(exc)
        try:
            request = request_for_instant(
                store, job, at, organization_id=organization_id, calendar=calendar, wait=False
            )
        except FireRejected:
            raise exc from None  # nothing launched yet: what it waits for says most
    return Preview(job, at, request, request.url(settings.tallyfy.base_url), waiting=waiting)
