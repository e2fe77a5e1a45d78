"""One fire's lifecycle: claim, send, record; and resuming or reconciling an open fire.

The steps (docs/guarantees.md, "Lifecycle of a fire"):

1. **Claim**: insert the history row (`pending`) in its own committed transaction. A unique-key
   conflict means another daemon (or an earlier run of this one) has the instant: do nothing.
2. **Send**: prepare the request (its look-ups, below), wait for a rate-limit slot, mark
   `sending` (attempt count + 1, committed), then make the request.
3. **Outcome**, classified once in `client.py`:
   success -> `succeeded` with the remote id; 429 -> `retrying` after Retry-After; not sent
   (connect failure) -> `retrying` with exponential backoff; uncertain (5xx, read timeout,
   dropped after sending) -> `uncertain`, reconciled before any resend; other 4xx -> `failed`.
4. **Reconcile** an `uncertain` fire (or a `sending` one left by a dead daemon): the rendered
   process name / task title is a pure function of (job, instant), so look it up among items
   created since the first attempt. Found: `succeeded`. Not found: send again. API unreachable:
   stay `uncertain` and try later.

A crash between any two steps leaves a row that the next pass settles: `pending` was never sent
(send it), `sending` may have arrived (reconcile it). That is what makes `kill -9` safe.

Before a fire takes its rate-limit slot and is started (`prepare`), what it needs from
elsewhere is looked up, so a fire is never `sending` while it waits for anything but its own
request, and a fire put off counts no attempt (`Store.defer`):

- a job with `overlap = "skip"` or `"buffer_one"` asks whether what it launched before is still
  open (`overlap.py`, `_overlap`): if so, the fire is skipped, naming the open item, or held
  (`held`, released like a retry) and asked about again every `overlap_check_every`; a newer
  instant replaces a held one. A look-up that fails leaves the fire `retrying` like any failed
  look-up: it is never sent on a guess;
- member emails become user ids (`members.py`), a `run_from_job` task finds the launch it
  attaches to and waits (`retrying`, with the reason, within its catch-up window) while that
  launch is still open (`attach.py`), and a task's run is asked whether it still takes one-off
  tasks. A look-up the API cannot answer now is asked again with backoff, until it answers; a
  definite "no" (an unknown email, a closed run) fails the fire with that reason.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from scheduler.actions import MemberIds, build_request, reconcile_key
from scheduler.attach import launched_run, run_refusal
from scheduler.client import ApiRequest, TallyfyClient
from scheduler.clock import Clock, utc_iso
from scheduler.config import RetrySettings
from scheduler.durations import format_duration
from scheduler.errors import (
    ApiError,
    FireRejected,
    InvalidInput,
    NotReady,
    NotSent,
    RateLimited,
    Uncertain,
    problem,
)
from scheduler.job import CreateTask, Job, Overlap
from scheduler.lifecycle import (
    MAY_HAVE_ARRIVED,
    OPEN,
    FireStatus,
    Op,
    Trigger,
    rejected_by_api,
    sources,
)
from scheduler.members import MemberDirectory
from scheduler.overlap import find_running
from scheduler.store import Fire, Outcome, Store
from scheduler.templates import Template
from scheduler.timeexpr import BusinessCalendar

log = logging.getLogger(__name__)

# Reconciliation looks for items created since the first attempt began, minus this margin,
# since the API's clock and ours can disagree. The only skew margin: the client filters by the
# cut-off it is given. The name match is exact, so a wide margin costs nothing.
RECONCILE_SKEW = timedelta(minutes=5)
# The first read-back after an uncertain outcome waits a moment: the API may be mid-outage.
FIRST_RECONCILE_DELAY = timedelta(seconds=1)
# The API refusing the token (401) or its user (403): nothing was applied, and nothing the
# request holds can fix it. The fire waits for a renewed token (`retrying`), within its
# job's catch-up window (docs/guarantees.md, "Outcome").
CREDENTIAL_STATUSES = frozenset({401, 403})
CREDENTIALS_WAIT = "credentials refused; waiting for a renewed token (systemctl reload)"

Observer = Callable[[Fire, ApiRequest | None], None]


class FireEvents(Protocol):
    """What a runner tells as it goes, beside the observer's settled fires: the daemon's
    metrics count from it (`scheduler/daemon/metrics.py`). Called on the sending thread; each
    call must be quick and must not raise."""

    def sending(self, job: Job, fire: Fire, now: datetime) -> None:
        """The request of `fire` (marked `sending`, its attempt counted) goes out now."""

    def recorded(self, fires: Sequence[Fire]) -> None:
        """Outcomes written, every status (`uncertain` included), as recorded."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """A fire marked `sending`, the request made for it (None if none could be built) and
    the outcome to record."""

    fire: Fire
    request: ApiRequest | None
    outcome: Outcome
    job: Job | None = None  # its job's failure breaker looks at a rejection


def request_for_instant(
    store: Store,
    job: Job,
    scheduled_for: datetime,
    *,
    organization_id: str,
    calendar: BusinessCalendar,
    members: MemberIds | None = None,
    now: datetime | None = None,
    wait: bool = True,
) -> ApiRequest:
    """The request a fire of `job` at `scheduled_for` sends (used by the runner and `preview`).

    `seq` is 1 + the successful fires scheduled before this instant, so a retry renders the same
    name; `run_from_job` attaches to the launch of the same or the latest earlier instant
    (`attach.launched_run`: NotReady while it is still open; given `now`, FireRejected once the
    catch-up window has passed; without `wait`, the latest launch that succeeded so far).
    `members` turns member emails into ids (none: as written).
    """
    run_id = None
    action = job.action
    if isinstance(action, CreateTask) and action.run_from_job:
        run_id = launched_run(store, job, scheduled_for, calendar=calendar, now=now, wait=wait)
    # `seq` costs a query per fire; most jobs never use it.
    seq = store.success_count(job.id, before=scheduled_for) + 1 if uses_seq(job) else 1
    return build_request(
        job,
        scheduled_for,
        organization_id=organization_id,
        calendar=calendar,
        seq=seq,
        run_id=run_id,
        members=members,
    )


def uses_seq(job: Job) -> bool:
    """Whether any template of the job's action renders `{seq}`."""
    action = job.action
    if isinstance(action, CreateTask):
        templates = [action.title, action.summary]
    else:
        templates = [action.name, action.summary]
        templates += [v for v in action.prerun.values() if isinstance(v, Template)]
    return any(t is not None and "seq" in t.names for t in templates)


class Runner:
    """Sends fires and records their outcomes; shared by the daemon, `fire` and `backfill`.

    Safe to call from several threads at once (the daemon's send workers). One fire or many
    go the same way: `start` marks fires `sending` (one transaction), `send` sends one,
    `record` writes outcomes (one transaction); `attempt` is the three for one fire. The
    daemon starts fires in groups and records outcomes in batches (`scheduler/daemon/sending.py`).

    `daemon_id` owns the fires this runner claims (None: a CLI command); once `stop` is set
    (the daemon stops), an attempt still waiting for a rate-limit slot gives up unsent.
    `respect_overlap`: manual and backfilled fires obey their job's `overlap` too (they
    ignore it by default; a held one obeys it whoever sends it).
    """

    def __init__(
        self,
        store: Store,
        client: TallyfyClient,
        *,
        organization_id: str,
        calendar: BusinessCalendar,
        retry: RetrySettings,
        clock: Clock,
        daemon_id: str | None = None,
        observer: Observer | None = None,
        stop: threading.Event | None = None,
        events: FireEvents | None = None,
        respect_overlap: bool = False,
    ) -> None:
        self.store = store
        self.client = client
        self.organization_id = organization_id
        self.calendar = calendar
        self.retry = retry
        self.clock = clock
        self.daemon_id = daemon_id
        self.observer = observer
        self.stop = stop
        # Member emails -> ids, read through this runner's client when a fire needs them.
        self.members = MemberDirectory(client.list_users, clock)
        self.events = events
        self.respect_overlap = respect_overlap

    def reconfigure(self, *, retry: RetrySettings, calendar: BusinessCalendar) -> None:
        """New retry settings and business days from now on (`systemctl reload`)."""
        self.retry = retry
        self.calendar = calendar

    # -- entry points ---------------------------------------------------------------------------
    def fire(self, job: Job, scheduled_for: datetime, trigger: Trigger) -> Fire | None:
        """Claim (job, instant) and send it; None when the instant was already claimed."""
        (fire,) = self.store.claim(
            [(job.id, scheduled_for, trigger)], now=self.clock.now(), daemon_id=self.daemon_id
        )
        if fire is None:
            log.info("fire already claimed job=%s scheduled_for=%s", job.id, utc_iso(scheduled_for))
            return None
        return self._attempt_above_watermark(job, fire)

    def backfill(self, job: Job, instant: datetime, existing: Fire | None) -> Fire | None:
        """Fire a past instant: claim it, or reopen its failed/skipped row; None if held."""
        if existing is None:
            return self.fire(job, instant, Trigger.BACKFILL)
        (reopened,) = self.store.reopen(
            [existing.id], Trigger.BACKFILL, now=self.clock.now(), daemon_id=self.daemon_id
        )
        return None if reopened is None else self._attempt_above_watermark(job, reopened)

    def _attempt_above_watermark(self, job: Job, fire: Fire) -> Fire:
        """Send a fire claimed by hand (`fire`, `backfill`) unless pruning raised the job's
        watermark above it meanwhile: the row that said it was sent may have been pruned just
        before the claim, so it is recorded skipped, never sent (history retention)."""
        pruned_before = self.store.pruned_before(job.id)
        if pruned_before is not None and fire.scheduled_for < pruned_before:
            reason = (
                f"not sent: its job's history before {utc_iso(pruned_before)} was pruned "
                "meanwhile; history no longer says whether it was sent"
            )
            return self._finish(fire, FireStatus.SKIPPED, None, error=reason)
        return self.attempt(job, fire)

    def resume(self, job: Job, fire: Fire) -> Fire:
        """Carry an open fire forward: send a pending/retrying one, reconcile anything that
        may have reached the API (`uncertain`, or `sending` left by a dead daemon).

        The fire is read again first and handled by its current state, never by the caller's
        snapshot: a queued retry may have become `uncertain` meanwhile, and sending it again
        without a read-back could launch twice. A fire another daemon holds is left alone.
        """
        fire = self.store.get_fire(fire.id)
        if fire.status not in OPEN or not self._ours(fire):
            return fire
        if fire.status not in MAY_HAVE_ARRIVED:  # pending or retrying: never sent, or not applied
            return self.attempt(job, fire)
        if fire.status is FireStatus.SENDING:
            # Left mid-request (our own worker failed while recording the outcome, or we
            # adopted it): the request may have arrived, so it is uncertain until read back.
            outcome = Outcome(fire.id, FireStatus.UNCERTAIN, error="interrupted while sending")
            marked = self._record(fire, outcome)
            if marked is None:
                return self.store.get_fire(fire.id)
            fire = marked
        return self.reconcile(job, fire)

    def abandon(self, fire: Fire, reason: str) -> Fire:
        """Settle an open fire that can no longer be carried (its job is gone) as `failed`."""
        fire = self.store.get_fire(fire.id)
        if fire.status not in OPEN or not self._ours(fire):
            return fire
        if fire.status in MAY_HAVE_ARRIVED:
            reason += "; it may have reached the API: look for it there"
        if fire.status not in sources(Op.FINISH, to=FireStatus.FAILED):
            # Between attempts (retrying): take it first (conditional, like every change).
            (started,) = self.start([fire])
            if started is None:
                return self.store.get_fire(fire.id)
            fire = started
        return self._finish(fire, FireStatus.FAILED, None, error=reason)

    def _ours(self, fire: Fire) -> bool:
        return fire.claimed_by is None or fire.claimed_by == self.daemon_id

    # -- steps ----------------------------------------------------------------------------------
    def attempt(self, job: Job, fire: Fire) -> Fire:
        """Steps 2 and 3 for one fire: `prepare`, a rate-limit slot, `start`, `send`, `record`.

        The slot comes after the look-ups and before `start`, so a fire is never `sending`
        while it waits for the limiter or for a look-up. If the daemon stops meanwhile, nothing
        is sent or written: the fire stays as it was (`pending`, `retrying` or `held`), and the
        next start sends it.
        """
        request = self.prepare(job, fire)
        if isinstance(request, Fire):
            return request
        if not self.client.take_slot(self.stop):
            log.info(
                "not sent: stopping job=%s scheduled_for=%s", job.id, utc_iso(fire.scheduled_for)
            )
            return fire
        (started,) = self.start([fire])
        if started is None:  # another daemon moved it on meanwhile
            return self.store.get_fire(fire.id)
        (done,) = self.record([self.send(job, started, request)])
        return done if done is not None else self.store.get_fire(fire.id)

    def prepare(self, job: Job, fire: Fire) -> ApiRequest | Fire:
        """Everything a fire needs before its slot and its start (module docstring): its
        job's overlap check, then the request with its look-ups. The request to send, or the
        fire as put off (held, waiting, skipped, refused) when it must not go now; the fire's
        row is left as it is when it may go, and no attempt is counted either way (the overlap
        check may remember items it found closed).
        """
        if self._overlap_applies(job, fire):
            kept = self._overlap(job, fire)
            if kept is not None:
                return kept
        try:
            return self.request_for(job, fire, sending=True)
        except NotReady as exc:
            return self._put_off([fire], self._waiting(fire, str(exc)))
        except InvalidInput as exc:
            return self._put_off([fire], Outcome(fire.id, FireStatus.FAILED, error=str(exc)))
        except ApiError as exc:
            return self._put_off([fire], self._lookup_failed(job, fire, exc))

    def start(self, fires: Sequence[Fire]) -> list[Fire | None]:
        """Mark fires `sending` (attempt + 1) in one transaction, their rate-limit slots
        taken; for each, the started fire, or None if someone else moved it on."""
        return self.store.start_attempts(
            [fire.id for fire in fires], now=self.clock.now(), daemon_id=self.daemon_id
        )

    def send(self, job: Job, started: Fire, request: ApiRequest) -> Attempt:
        """Send the request `prepare` built for a fire just started; the outcome, not yet
        recorded."""
        if self.events is not None:
            self.events.sending(job, started, self.clock.now())
        try:
            created = self.client.send(request, slot_taken=True)
        except ApiError as exc:
            return Attempt(started, request, self._failed_outcome(job, started, exc), job)
        return Attempt(
            started,
            request,
            Outcome(
                started.id,
                FireStatus.SUCCEEDED,
                remote_id=created.remote_id,
                http_status=created.http_status,
            ),
        )

    def record(self, attempts: Sequence[Attempt]) -> list[Fire | None]:
        """Write the outcomes of `attempts` in one transaction; log and report each. For each,
        the fire as recorded, or None if someone else moved it on meanwhile."""
        done = self.store.finish([a.outcome for a in attempts], now=self.clock.now())
        if self.events is not None:
            self.events.recorded([fire for fire in done if fire is not None])
        for attempt, fire in zip(attempts, done, strict=True):
            if fire is None:
                self._moved_on(attempt.fire, attempt.outcome)
            elif fire.status is not FireStatus.UNCERTAIN:  # reported once read back
                self._report(fire, attempt.request, attempt.outcome.error)
                if attempt.job is not None and fire.status is FireStatus.FAILED:
                    self._breaker(attempt.job, fire)
        return done

    def _breaker(self, job: Job, failed: Fire) -> None:
        """After a fire the API rejected: pause the job if its breaker trips (docs/jobs.md,
        "pause_after_failures"). Transport failures and exhausted retries end with no 4xx
        status and never count; a success costs nothing here."""
        if not job.pause_after_failures or not rejected_by_api(failed.http_status):
            return
        note = self.store.pause_by_breaker(
            job.id, threshold=job.pause_after_failures, now=self.clock.now()
        )
        if note is not None:
            log.error("job paused by the breaker job=%s: %s", job.id, note.error)
            if self.observer is not None:
                self.observer(note, None)

    def _record(self, fire: Fire, outcome: Outcome) -> Fire | None:
        """Write one outcome; None, logged, when another daemon moved the fire on meanwhile
        (its state is theirs: nothing is kept)."""
        (done,) = self.store.finish([outcome], now=self.clock.now())
        if done is None:
            self._moved_on(fire, outcome)
        elif self.events is not None:
            self.events.recorded([done])
        return done

    def _moved_on(self, fire: Fire, outcome: Outcome) -> None:
        log.warning(
            "fire moved on by another daemon job=%s scheduled_for=%s; outcome %s not kept",
            fire.job_id,
            utc_iso(fire.scheduled_for),
            outcome.status.value,
        )

    def reconcile(self, job: Job, fire: Fire) -> Fire:
        """Step 4: look the launch/task up by its rendered name/title before any resend."""
        try:
            request = self.request_for(job, fire)
        except InvalidInput as exc:
            return self._finish(fire, FireStatus.FAILED, None, error=str(exc))
        except NotReady as exc:  # its launch went back to open: read back later
            outcome = Outcome(
                fire.id,
                FireStatus.UNCERTAIN,
                error=f"reconcile postponed: {exc}",
                next_attempt_at=self.clock.now() + self._patient_backoff(fire, self.clock.now()),
            )
            return self._record(fire, outcome) or self.store.get_fire(fire.id)
        since = (fire.first_attempt_at or fire.created_at) - RECONCILE_SKEW
        key = reconcile_key(job, request)
        try:
            if len(key) == 3:
                found = self.client.find_runs(key[1], key[2], created_since=since)
            else:
                found = self.client.find_tasks(key[1], created_since=since)
        except ApiError as exc:
            # Unreachable or refused: stay uncertain, visible in `status`; try again later.
            now = self.clock.now()
            outcome = Outcome(
                fire.id,
                FireStatus.UNCERTAIN,
                error=f"reconcile failed: {exc}",
                http_status=exc.status,
                next_attempt_at=now + self._patient_backoff(fire, now),
            )
            return self._record(fire, outcome) or self.store.get_fire(fire.id)
        taken = self._remote_ids_of_other_fires(job.id, fire.id)
        candidates = sorted(
            (item for item in found if str(item.get("id")) not in taken),
            key=lambda item: str(item.get("created_at", "")),
        )
        if candidates:
            log.info(
                "reconciled job=%s scheduled_for=%s remote_id=%s",
                job.id,
                utc_iso(fire.scheduled_for),
                candidates[0]["id"],
            )
            return self._finish(
                fire, FireStatus.SUCCEEDED, request, remote_id=str(candidates[0]["id"])
            )
        if fire.attempts >= self.retry.max_attempts:
            return self._finish(
                fire,
                FireStatus.FAILED,
                request,
                error=f"not found after {fire.attempts} attempts; giving up",
            )
        return self.attempt(job, fire)

    def request_for(self, job: Job, fire: Fire, *, sending: bool = False) -> ApiRequest:
        """The exact request for this fire: a pure function of (job, instant, history).

        `sending`: for the request about to be sent, so member emails are looked up and the
        task's run is asked whether it still takes one-off tasks (FireRejected if not); a
        read-back needs only the name or title, and asks the API nothing more.
        """
        request = request_for_instant(
            self.store,
            job,
            fire.scheduled_for,
            organization_id=self.organization_id,
            calendar=self.calendar,
            members=self.members.user_id if sending else None,
            # A read-back never gives up on the launch: the fire may exist already.
            now=self.clock.now() if sending else None,
        )
        run_id = request.body.get("run_id") if isinstance(job.action, CreateTask) else None
        if sending and isinstance(run_id, str):
            refused = run_refusal(self.client, run_id)
            if refused is not None:
                raise FireRejected(problem(refused, key="action.run_id", value=run_id))
        return request

    # -- overlap --------------------------------------------------------------------------------
    def _overlap_applies(self, job: Job, fire: Fire) -> bool:
        """Whether `fire` must ask first whether its job's last launch is still open."""
        if job.overlap is Overlap.ALLOW or fire.status not in sources(Op.DEFER):
            return False
        by_hand = fire.trigger in (Trigger.MANUAL, Trigger.BACKFILL)
        return fire.status is FireStatus.HELD or self.respect_overlap or not by_hand

    def _overlap(self, job: Job, fire: Fire) -> Fire | None:
        """The overlap check (module docstring): None to send `fire` now, else the fire as
        held or skipped (or as someone else left it, if they moved it on meanwhile)."""
        now = self.clock.now()
        by_hand = fire.trigger in (Trigger.MANUAL, Trigger.BACKFILL)
        others = [held for held in self.store.held_fires(job.id) if held.id != fire.id]
        # Only the next scheduled instant replaces a held one; a fire by hand never does.
        replaced = [h for h in others if h.scheduled_for < fire.scheduled_for and not by_hand]
        if replaced:
            reason = f"replaced by the newer instant {utc_iso(fire.scheduled_for)} (overlap)"
            self._hold_verdict(replaced, FireStatus.SKIPPED, reason, None)
        newer = [held for held in others if held.scheduled_for > fire.scheduled_for]
        if newer:
            reason = f"replaced by the newer held instant {utc_iso(newer[-1].scheduled_for)}"
            return self._hold_verdict([fire], FireStatus.SKIPPED, reason, None)
        try:
            running = find_running(self.store, self.client, job, fire, now=now)
        except ApiError as exc:
            return self._put_off([fire], self._overlap_lookup_failed(job, fire, exc, by_hand))
        if running is None:
            return None
        if job.overlap is Overlap.SKIP or (fire.status is not FireStatus.HELD and by_hand):
            # A command cannot wait for the run to close: a fire by hand that is not held yet
            # is skipped rather than left for a daemon that may not run.
            reason = f"overlap: {running.description}"
            return self._hold_verdict([fire], FireStatus.SKIPPED, reason, None)
        reason = (
            f"held (overlap = buffer_one): {running.description}; asking again every "
            f"{format_duration(job.overlap_check_every)}"
        )
        return self._hold_verdict([fire], FireStatus.HELD, reason, now + job.overlap_check_every)

    def _overlap_lookup_failed(self, job: Job, fire: Fire, exc: ApiError, by_hand: bool) -> Outcome:
        """The overlap look-up failed: never sent on a guess. Asked again like any failed
        look-up (`retrying`: the late and credentials alerts see it); a fire by hand fails, so
        the person who ran the command knows at once (no daemon carries it further)."""
        if by_hand:
            reason = f"not sent: the overlap look-up failed ({exc}); run the command again"
            return Outcome(fire.id, FireStatus.FAILED, error=reason, http_status=exc.status)
        return self._lookup_failed(job, fire, exc, what="the overlap look-up")

    def _hold_verdict(
        self, fires: Sequence[Fire], status: FireStatus, reason: str, again: datetime | None
    ) -> Fire:
        """Put `fires` off with the overlap check's verdict (held or skipped); the first."""
        outcomes = [Outcome(f.id, status, error=reason, next_attempt_at=again) for f in fires]
        return self._put_off(fires, *outcomes)

    def _put_off(self, fires: Sequence[Fire], *outcomes: Outcome) -> Fire:
        """Record the outcomes of fires not started (`Store.defer`; a fire left `uncertain`
        whose read-back found nothing goes through `finish`, its only way out); report each
        settled one, log a held one. The first fire as it now is."""
        now = self.clock.now()
        if fires[0].status is FireStatus.UNCERTAIN:
            done = self.store.finish(outcomes, now=now)
        else:
            done = self.store.defer(outcomes, now=now)
        if self.events is not None:
            self.events.recorded([fire for fire in done if fire is not None])
        for fire, outcome, put_off in zip(fires, outcomes, done, strict=True):
            if put_off is None:
                self._moved_on(fire, outcome)  # started or replaced by someone else: theirs
            elif put_off.status is FireStatus.HELD:
                log.info(
                    "fire held job=%s scheduled_for=%s until=%s: %s",
                    fire.job_id,
                    utc_iso(fire.scheduled_for),
                    utc_iso(put_off.next_attempt_at) if put_off.next_attempt_at else "-",
                    outcome.error,
                )
            else:
                self._report(put_off, None, outcome.error)
        first = done[0]
        return first if first is not None else self.store.get_fire(fires[0].id)

    # -- helpers --------------------------------------------------------------------------------
    def _waiting(self, fire: Fire, reason: str) -> Outcome:
        """A fire whose launch is still on its way: `retrying`, the reason kept. Nothing was
        sent and no attempt counted: the catch-up window bounds the wait (attach.py), and the
        wait backs off with the time already waited (`_patient_backoff`)."""
        now = self.clock.now()
        return Outcome(
            fire.id,
            FireStatus.RETRYING,
            error=reason,
            next_attempt_at=now + self._patient_backoff(fire, now),
        )

    def _lookup_failed(
        self, job: Job, fire: Fire, exc: ApiError, *, what: str = "a look-up before sending"
    ) -> Outcome:
        """A look-up before sending failed: nothing was sent and no attempt counted. Refused
        credentials and a 429 wait as they do for the request itself; a transient failure is
        asked again; any other refusal fails it. Each wait grows with the time already waited
        (`_patient_backoff`): attempts, what `_backoff` grows with, do not move here."""
        now = self.clock.now()
        if exc.status in CREDENTIAL_STATUSES or isinstance(exc, RateLimited):
            outcome = self._failed_outcome(job, fire, exc)
            told = isinstance(exc, RateLimited) and exc.retry_after is not None
            if outcome.status is FireStatus.RETRYING and not told:
                outcome = replace(outcome, next_attempt_at=now + self._patient_backoff(fire, now))
            return outcome
        reason = f"not sent: {what} failed: {exc}"
        if exc.transient:
            return Outcome(
                fire.id,
                FireStatus.RETRYING,
                error=reason,
                http_status=exc.status,
                next_attempt_at=now + self._patient_backoff(fire, now),
            )
        return Outcome(fire.id, FireStatus.FAILED, error=reason, http_status=exc.status)

    def _failed_outcome(self, job: Job, fire: Fire, exc: ApiError) -> Outcome:
        """What a failed attempt leaves the fire as (guarantees.md, "Outcome")."""
        now = self.clock.now()
        if exc.status in CREDENTIAL_STATUSES:
            log.error(
                "credentials rejected (HTTP %s): fix the access token, then reload", exc.status
            )
            if now - fire.scheduled_for > job.catch_up_window:
                # Never applied (the API refused who we are), and now too old to send: the
                # job's catch-up window says so, as it does for an instant missed in downtime.
                return Outcome(
                    fire.id,
                    FireStatus.SKIPPED,
                    error=f"outside catch-up window: {exc} (the token was refused for longer "
                    f"than the job's catch_up_window)",
                    http_status=exc.status,
                )
            # Not a fault of the fire: it waits, whatever its attempts, like a 429.
            return Outcome(
                fire.id,
                FireStatus.RETRYING,
                error=f"{CREDENTIALS_WAIT}: {exc}",
                http_status=exc.status,
                next_attempt_at=now + self._backoff(fire),
            )
        if isinstance(exc, Uncertain):
            return Outcome(
                fire.id,
                FireStatus.UNCERTAIN,
                error=str(exc),
                http_status=exc.status,
                next_attempt_at=now + FIRST_RECONCILE_DELAY,
            )
        if isinstance(exc, RateLimited):
            # A 429 was not applied and does not use up an attempt: the server asked us to wait.
            wait = (
                timedelta(seconds=exc.retry_after)
                if exc.retry_after is not None
                else self._backoff(fire)
            )
            return Outcome(
                fire.id,
                FireStatus.RETRYING,
                error=str(exc),
                http_status=exc.status,
                next_attempt_at=now + wait,
            )
        if isinstance(exc, NotSent) and fire.attempts < self.retry.max_attempts:
            return Outcome(
                fire.id,
                FireStatus.RETRYING,
                error=str(exc),
                next_attempt_at=now + self._backoff(fire),
            )
        return Outcome(
            fire.id,
            FireStatus.FAILED,
            error=str(exc),
            http_status=exc.status,
            field_errors=exc.field_errors or None,
        )

    def _finish(
        self,
        fire: Fire,
        status: FireStatus,
        request: ApiRequest | None,
        *,
        remote_id: str | None = None,
        error: str | None = None,
    ) -> Fire:
        done = self._record(fire, Outcome(fire.id, status, remote_id=remote_id, error=error))
        if done is None:
            return self.store.get_fire(fire.id)
        self._report(done, request, error)
        return done

    def _report(self, done: Fire, request: ApiRequest | None, error: str | None) -> None:
        """One log line per settled outcome (journald indexes job and instant); the observer."""
        level = logging.INFO if done.status is FireStatus.SUCCEEDED else logging.WARNING
        log.log(
            level,
            "fire %s job=%s scheduled_for=%s trigger=%s attempts=%d remote_id=%s%s",
            done.status.value,
            done.job_id,
            utc_iso(done.scheduled_for),
            done.trigger,
            done.attempts,
            done.remote_id or "-",
            f" error={error!r}" if error else "",
        )
        if self.observer is not None:
            self.observer(done, request)

    def _backoff(self, fire: Fire) -> timedelta:
        """Exponential backoff with deterministic jitter in [50%, 100%] of the step."""
        step = self.retry.initial_backoff * (2 ** max(0, fire.attempts - 1))
        step = min(step, self.retry.max_backoff)
        digest = hashlib.sha256(f"{fire.id}|{fire.attempts}".encode()).digest()
        fraction = 0.5 + 0.5 * int.from_bytes(digest[:4], "big") / 2**32
        return timedelta(seconds=step.total_seconds() * fraction)

    def _patient_backoff(self, fire: Fire, now: datetime) -> timedelta:
        """The wait after a failed read-back or look-up, or while waiting for a launch: about
        twice the time since the fire last changed.

        None of those sends anything, so `attempts` (what `_backoff` grows with) stays put;
        the time the fire has spent waiting since its last change grows instead, and doubling
        it backs off exponentially through a long outage (capped at `max_backoff`), rather
        than reading back every fire every second or two until the API returns.
        """
        waited = max(timedelta(0), now - fire.updated_at)
        step = min(max(self.retry.initial_backoff, 2 * waited), self.retry.max_backoff)
        digest = hashlib.sha256(f"{fire.id}|{fire.updated_at.isoformat()}".encode()).digest()
        fraction = 0.75 + 0.25 * int.from_bytes(digest[:4], "big") / 2**32
        return timedelta(seconds=step.total_seconds() * fraction)

    def _remote_ids_of_other_fires(self, job_id: str, fire_id: int) -> set[str]:
        return self.store.remote_ids(job_id, exclude_fire_id=fire_id)
