"""The alert evaluation: each pass reads the ledger (a few cheap queries), asks the rules
(`incidents.py`) and opens or clears incidents in the store, where each is exactly once.

Detection reads the ledger rather than listening to events from many threads: it survives a
restart, and works the same with several daemons on one store. What it reads:

- failures recorded since its last pass (with an overlap), and the last success of each job
  that has an open `failed` incident (by `updated_at`);
- skip rows above the `skips` mark (a fire id kept in `meta`, so a restart goes on where the
  last daemon stopped, and catch-up skips recorded at start-up are seen);
- open fires: late, uncertain, or waiting for a renewed token (one query each, bounded);
- the token's expiry (`tokenexpiry.py`), and every day, the jobs against their templates.

Events in memory only where the store cannot be: a job the loader quarantined (`note`), and
the store itself being unreachable, which is sent from memory past `store_down_after` and
recorded once the store answers again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scheduler.alerts import messages
from scheduler.alerts.incidents import (
    Verdict,
    by_job,
    daemon_wide,
    held_by_credentials,
    job_failure,
    late_fires,
    skip_groups,
    token_expiry,
)
from scheduler.alerts.targets import SendResult, Targets
from scheduler.alertstate import ONE_OFF, IncidentKind, NotifyType, OutboxStatus, opening_type
from scheduler.clock import Clock
from scheduler.config import DEFAULT_TARGET, Secret, Settings
from scheduler.cron import jitter_delay
from scheduler.definitions import job_from_document
from scheduler.durations import format_duration, parse_duration
from scheduler.errors import JobNotFound, SchedulerError, StoreError
from scheduler.lifecycle import FireStatus
from scheduler.store import Fire, Incident, Message, Store
from scheduler.tokenexpiry import token_expires_at

log = logging.getLogger(__name__)

# Failures are looked for from this long before the last pass: a row committed a little after
# its `updated_at` is not missed. Opening is idempotent, so seeing one twice costs nothing.
OVERLAP = timedelta(seconds=30)
# At start, failures recorded this long ago still open an incident (a crash between a
# failure and its incident, a restart during an outage).
LOOKBACK = timedelta(hours=1)
# Skip rows are read once this old: every piece of one catch-up is recorded by then.
SKIP_SETTLE = timedelta(seconds=2)
WAITING_LIMIT = 1000  # open fires read per kind and pass


def new_ref() -> str:
    """An incident's id as messages show it: short, unique, not guessable from the store."""
    return f"inc-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class JobInfo:
    """What alerts need of a stored job: its zone, jitter and alert targets."""

    zone: str
    jitter: timedelta
    targets: tuple[str, ...]


TemplateCheck = Callable[
    [Settings, Sequence[tuple[str, Mapping[str, Any]]], datetime], Mapping[str, list[str]] | None
]


class Monitor:
    """Evaluates the ledger for incidents (module docstring); one thread calls `pass_once`."""

    def __init__(
        self,
        store: Store,
        targets: Targets,
        *,
        clock: Clock,
        daemon_id: str,
        settings_of: Callable[[], Settings],
        wake_courier: Callable[[], None],
        template_check: TemplateCheck | None = None,
        on_sent: Callable[[NotifyType], None] | None = None,
    ) -> None:
        self.store = store
        self.on_sent = on_sent  # told of each message sent from memory (the `store` incident)
        self.targets = targets
        self.clock = clock
        self.daemon_id = daemon_id
        self.settings_of = settings_of
        self.wake_courier = wake_courier
        self.template_check = template_check
        self._failures_from = clock.now() - LOOKBACK
        self._jobs: dict[str, JobInfo | None] = {}
        self._revision = -1
        self._lock = threading.Lock()  # guards `_quarantined` (the loader adds to it)
        self._quarantined: dict[str, str] = {}
        self._down_since: datetime | None = None
        self._down_reason = ""
        self._down_sent: list[SendResult] | None = None
        self._down_ref = ""

    # -- from other threads ----------------------------------------------------------------
    def note_quarantined(self, job_id: str, reason: str) -> None:
        """The loader found a stored job that no longer validates (any thread)."""
        with self._lock:
            self._quarantined[job_id] = reason

    @property
    def store_incident_open(self) -> bool:
        """Whether this daemon's `store` incident is open (any thread): its message went out
        from memory and the store has not answered since, so the store cannot count it."""
        return self._down_sent is not None

    # -- a pass -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Start reading skips from the newest fire now, unless a daemon did before."""
        if self.store.read_mark("skips") is None:
            self.store.move_mark("skips", None, str(self.store.newest_fire_id()))

    def pass_once(self) -> None:
        """One evaluation; a store that fails is tracked, never raised."""
        now = self.clock.now()
        settings = self.settings_of()
        try:
            self._refresh_jobs()
            self._quarantine(now, settings)
            self._failed(now)
            self._skipped(now)
            self._daemon_wide(now, settings)
            self._token(now, settings)
            self._templates(now, settings)
        except StoreError as exc:
            self._store_down(now, settings, exc)
            return
        if self._down_since is not None:
            self._store_back(now, settings)

    # -- jobs -------------------------------------------------------------------------------
    def _refresh_jobs(self) -> None:
        revision = self.store.jobs_revision()
        if revision != self._revision:
            self._jobs.clear()
            self._revision = revision

    def job_info(self, job_id: str) -> JobInfo | None:
        if job_id not in self._jobs:
            try:
                doc = self.store.get_job(job_id).definition
            except JobNotFound:
                self._jobs[job_id] = None
            else:
                targets = doc.get("alert") or [DEFAULT_TARGET]
                self._jobs[job_id] = JobInfo(
                    zone=str(doc.get("timezone") or "UTC"),
                    jitter=_duration(doc.get("jitter")),
                    targets=tuple(str(t) for t in targets),
                )
        return self._jobs[job_id]

    def _zone(self, job_id: str) -> str:
        info = self.job_info(job_id)
        return info.zone if info else "UTC"

    def _targets_for(self, job_ids: Sequence[str], *, default: bool) -> list[str]:
        wanted: list[str] = [DEFAULT_TARGET] if default or not job_ids else []
        for job_id in job_ids:
            info = self.job_info(job_id)
            for target in info.targets if info else (DEFAULT_TARGET,):
                if target not in wanted:
                    wanted.append(target)
        missing = [t for t in wanted if not self.targets.count(t)]
        for target in missing:
            log.warning("alert target %r has no URLs; its messages are not sent", target)
        return [t for t in wanted if self.targets.count(t)]

    # -- opening and clearing ---------------------------------------------------------------
    def _open(
        self,
        kind: IncidentKind,
        subject: str,
        detail: dict[str, Any],
        now: datetime,
        *,
        jobs: Sequence[str],
        job_id: str | None = None,
    ) -> Incident | None:
        ref = new_ref()
        targets = self._targets_for(jobs, default=job_id is None)
        detail = {**detail, "targets": targets}
        title, body = messages.opening(kind, ref, detail)
        queued = self._messages("opened", opening_type(kind), targets, title, body)
        incident = self.store.open_incident(
            kind,
            subject,
            ref=ref,
            detail=detail,
            messages=queued,
            now=now,
            daemon_id=self.daemon_id,
            job_id=job_id,
            cleared=kind in ONE_OFF,
        )
        if incident is not None:
            log.warning(
                "incident opened %s kind=%s subject=%s messages=%d",
                ref,
                kind,
                subject,
                len(queued),
            )
            self.wake_courier()
        return incident

    def _clear(self, incident: Incident, now: datetime) -> None:
        targets = [t for t in incident.detail.get("targets", []) if self.targets.count(t)]
        title, body = messages.recovery(incident.kind, incident.ref, incident.detail, now)
        queued = self._messages("cleared", NotifyType.SUCCESS, targets, title, body)
        if self.store.clear_incident(incident.id, messages=queued, now=now) is not None:
            log.info(
                "incident cleared %s kind=%s subject=%s",
                incident.ref,
                incident.kind,
                incident.subject,
            )
            self.wake_courier()

    def _messages(
        self, event: str, notify_type: NotifyType, targets: Sequence[str], title: str, body: str
    ) -> list[Message]:
        return [
            Message(event, notify_type, target, index, title, body)
            for target in targets
            for index in range(self.targets.count(target))
        ]

    def _open_by_kind(self) -> dict[IncidentKind, list[Incident]]:
        found: dict[IncidentKind, list[Incident]] = {}
        for incident in self.store.incidents(open_only=True):
            found.setdefault(incident.kind, []).append(incident)
        return found

    # -- the checks -------------------------------------------------------------------------
    def _quarantine(self, now: datetime, settings: Settings) -> None:
        with self._lock:
            noted, self._quarantined = self._quarantined, {}
        for job_id, reason in noted.items():
            self._open(
                IncidentKind.QUARANTINED,
                f"quarantined:{job_id}",
                {"job": job_id, "reason": reason},
                now,
                jobs=[job_id],
                job_id=job_id,
            )
        for incident in self.store.incidents(kind=IncidentKind.QUARANTINED):
            job_id = incident.job_id or ""
            try:
                stored = self.store.get_job(job_id)
            except JobNotFound:
                self._clear(incident, now)
                continue
            if not stored.enabled:
                self._clear(incident, now)
                continue
            try:
                job_from_document(stored.definition, settings)
            except SchedulerError:
                continue
            self._clear(incident, now)

    def _failed(self, now: datetime) -> None:
        since = self._failures_from - OVERLAP
        self._failures_from = now
        latest: dict[str, Fire] = {}
        for fire in self.store.fires_changed_since(since, [FireStatus.FAILED]):
            latest[fire.job_id] = fire  # oldest change first: the last one wins
        open_failed = {i.job_id: i for i in self.store.incidents(kind=IncidentKind.FAILED)}
        jobs = sorted({*latest, *(j for j in open_failed if j)})
        if not jobs:
            return
        successes = self.store.last_outcome_at(jobs, FireStatus.SUCCEEDED)
        for job_id in jobs:
            incident = open_failed.get(job_id)
            since_open = datetime.fromisoformat(incident.detail["failed_at"]) if incident else None
            verdict = job_failure(since_open, latest.get(job_id), successes.get(job_id))
            if verdict is Verdict.CLEAR and incident is not None:
                self._clear(incident, now)
            elif verdict is Verdict.OPEN:
                fire = latest[job_id]
                self._open(
                    IncidentKind.FAILED,
                    f"failed:{job_id}",
                    {
                        "job": job_id,
                        "zone": self._zone(job_id),
                        "instant": fire.scheduled_for.isoformat(),
                        "reason": fire.error,
                        "field_errors": fire.field_errors or {},
                        "http_status": fire.http_status,
                        "fire_id": fire.id,
                        "failed_at": fire.updated_at.isoformat(),
                    },
                    now,
                    jobs=[job_id],
                    job_id=job_id,
                )

    def _skipped(self, now: datetime) -> None:
        mark = self.store.read_mark("skips")
        last = int(mark or 0)
        rows = self.store.skips_after(last, created_before=now - SKIP_SETTLE)
        if not rows:
            return
        for job_id, skips in skip_groups(rows).items():
            first = min(skips, key=lambda f: f.scheduled_for)
            until = max((f.skipped_until or f.scheduled_for) for f in skips)
            self._open(
                IncidentKind.SKIPPED,
                f"skipped:{job_id}:{min(f.id for f in skips)}",
                {
                    "job": job_id,
                    "zone": self._zone(job_id),
                    "instant": first.scheduled_for.isoformat(),
                    "until": until.isoformat(),
                    "count": sum(f.skipped_count or 1 for f in skips),
                    "reason": "; ".join(sorted({f.error or "" for f in skips})),
                },
                now,
                jobs=[job_id],
                job_id=job_id,
            )
        # Moved after the incidents are in (at least once); a daemon that lost the race
        # opened nothing new: the subjects above name the rows.
        self.store.move_mark("skips", mark, str(max(f.id for f in rows)))

    def _daemon_wide(self, now: datetime, settings: Settings) -> None:
        alerts = settings.alerts
        opened = self._open_by_kind()
        waiting = self.store.waiting_fires(
            [FireStatus.PENDING, FireStatus.RETRYING],
            scheduled_before=now - alerts.late_after,
            limit=WAITING_LIMIT,
        )
        late = late_fires(waiting, now=now, late_after=alerts.late_after, jitter_of=self._jitter)
        uncertain = self.store.waiting_fires(
            [FireStatus.UNCERTAIN], changed_before=now - alerts.uncertain_after, limit=WAITING_LIMIT
        )
        held = [
            f
            for f in self.store.waiting_fires([FireStatus.RETRYING], limit=WAITING_LIMIT)
            if held_by_credentials(f)
        ]
        for kind, fires, after in (
            (IncidentKind.LATE, late, alerts.late_after),
            (IncidentKind.UNCERTAIN, uncertain, alerts.uncertain_after),
            (IncidentKind.CREDENTIALS, held, None),
        ):
            current = next(iter(opened.get(kind, [])), None)
            summaries = by_job(fires, self._zone)
            affected = [s.job for s in summaries]
            listed = [j["job"] for j in current.detail.get("jobs", [])] if current else []
            verdict = daemon_wide(current is not None, affected, listed)
            if verdict is Verdict.KEEP:
                continue
            if verdict is Verdict.CLEAR and current is not None:
                self._clear(current, now)
                continue
            detail = {
                "jobs": [s.to_json() for s in summaries],
                "total": len(fires),
                "after": format_duration(after) if after else None,
                "reason": fires[0].error if fires and fires[0].error else "not sent yet",
            }
            if verdict is Verdict.OPEN:
                self._open(kind, str(kind), detail, now, jobs=affected)
            elif current is not None:
                self.store.update_incident(current.id, {**current.detail, **detail}, now=now)

    def _jitter(self, fire: Fire) -> timedelta:
        info = self.job_info(fire.job_id)
        if info is None or not info.jitter:
            return timedelta(0)
        return jitter_delay(fire.job_id, fire.scheduled_for, info.jitter)

    def _token(self, now: datetime, settings: Settings) -> None:
        token: Secret | None = settings.tallyfy.access_token
        expires = token_expires_at(token.reveal()) if token is not None else None
        near = token_expiry(expires, now=now, warning=settings.alerts.token_expiry_warning)
        current = self.store.incidents(kind=IncidentKind.TOKEN_EXPIRY)
        if near and not current and expires is not None:
            detail = {"expires_at": expires.isoformat()}
            self._open(IncidentKind.TOKEN_EXPIRY, "token_expiry", detail, now, jobs=[])
        elif not near:
            for incident in current:
                self._clear(incident, now)

    def _templates(self, now: datetime, settings: Settings) -> None:
        every = settings.alerts.template_check_every
        if self.template_check is None or not every:
            return
        mark = self.store.read_mark("templates")
        if mark is not None and now - datetime.fromisoformat(mark) < every:
            return
        if not self.store.move_mark("templates", mark, now.isoformat()):
            return  # another daemon checks them this time
        stored = [(job.id, job.definition) for job in self.store.iter_jobs() if job.enabled]
        problems = self.template_check(settings, stored, now)
        if problems is None:
            return  # the API could not be asked: nothing is known, nothing changes
        open_template = {i.job_id: i for i in self.store.incidents(kind=IncidentKind.TEMPLATE)}
        for job_id, _doc in stored:
            found = problems.get(job_id)
            incident = open_template.get(job_id)
            if found and incident is None:
                self._open(
                    IncidentKind.TEMPLATE,
                    f"template:{job_id}",
                    {"job": job_id, "zone": self._zone(job_id), "problems": found},
                    now,
                    jobs=[job_id],
                    job_id=job_id,
                )
            elif not found and incident is not None:
                self._clear(incident, now)

    # -- the store itself -------------------------------------------------------------------
    def _store_down(self, now: datetime, settings: Settings, exc: StoreError) -> None:
        if self._down_since is None:
            self._down_since, self._down_reason = now, str(exc)
            self._down_ref = new_ref()
        if self._down_sent is not None or now - self._down_since < settings.alerts.store_down_after:
            return
        # Sent from memory: the store cannot queue it. Recorded once the store is back.
        title, body = messages.opening(
            IncidentKind.STORE, self._down_ref, self._store_detail(settings)
        )
        self._down_sent = [
            self.targets.send(target, index, title=title, body=body, notify_type=NotifyType.FAILURE)
            for target in self._targets_for([], default=True)
            for index in range(self.targets.count(target))
        ]
        if self.on_sent is not None:
            for result in self._down_sent:
                if result.ok:
                    self.on_sent(NotifyType.FAILURE)
        log.error(
            "incident opened %s kind=store: the store is unreachable since %s; sent from memory "
            "to %s",
            self._down_ref,
            self._down_since.isoformat(),
            ", ".join(f"{r.label}: {'sent' if r.ok else r.reason}" for r in self._down_sent) or "-",
        )

    def _store_detail(self, settings: Settings) -> dict[str, Any]:
        return {
            "daemon": self.daemon_id,
            "since": self._down_since.isoformat() if self._down_since else None,
            "after": format_duration(settings.alerts.store_down_after),
            "reason": self._down_reason,
        }

    def _store_back(self, now: datetime, settings: Settings) -> None:
        sent, ref = self._down_sent, self._down_ref
        detail = {**self._store_detail(settings), "targets": self._targets_for([], default=True)}
        self._down_since, self._down_sent = None, None
        if sent is None:
            return  # back within `store_down_after`: nothing was said
        title, body = messages.opening(IncidentKind.STORE, ref, detail)
        recorded = [
            Message(
                "opened",
                NotifyType.FAILURE,
                r.target,
                r.url_index,
                title,
                body,
                OutboxStatus.SENT if r.ok else OutboxStatus.PENDING,
            )
            for r in sent
        ]
        back_title, back_body = messages.recovery(IncidentKind.STORE, ref, detail, now)
        recorded += self._messages(
            "cleared", NotifyType.SUCCESS, detail["targets"], back_title, back_body
        )
        self.store.open_incident(
            IncidentKind.STORE,
            f"store:{self.daemon_id}:{ref}",
            ref=ref,
            detail=detail,
            messages=recorded,
            now=now,
            daemon_id=self.daemon_id,
            cleared=True,
        )
        log.info("incident cleared %s kind=store: the store answers again", ref)
        self.wake_courier()


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        return timedelta(0)
    try:
        return parse_duration(value)
    except ValueError:
        return timedelta(0)
