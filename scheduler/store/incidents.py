"""Incidents and the outbox of their messages (schema 2), and the ledger reads alerts start from.

Exactly once, the way the fire ledger does it (`ledger.py`):

- `open_incident` INSERTs on the unique `open_key` with ON CONFLICT DO NOTHING, and queues the
  incident's messages in the same transaction: of two daemons (or a daemon and its restart)
  opening the same incident, one inserts it and queues its messages, the other gets None;
- `clear_incident` is a conditional UPDATE (`... WHERE id = ? AND state = 'open'`) that queues
  the recovery messages in the same transaction: cleared once, recovered once;
- `claim_notifications` and `finish_notifications` are conditional UPDATEs built from
  `alertstate.OUTBOX_TRANSITIONS`: a message is claimed by one daemon at a time, and sent again
  only if its daemon died between the send and its record (the claim's lease ran out): at
  least once, never lost, and the incident's `ref` in every message lets a receiver drop a copy.

`move_mark` keeps small named positions in `meta` (how far the ledger was read for skips,
when templates were last checked) with a conditional UPDATE too: one daemon moves a mark.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from scheduler.alertstate import (
    CLAIM_LEASE,
    DeliveryOp,
    IncidentKind,
    NotifyType,
    OutboxStatus,
    outbox_allows,
    outbox_sources,
)
from scheduler.clock import to_utc
from scheduler.lifecycle import FireStatus
from scheduler.store.database import Database, chunks
from scheduler.store.ledger import Fire, read_fires
from scheduler.store.tables import FIRES, INCIDENTS, META, NOTIFICATIONS

__all__ = ["Delivery", "Incident", "IncidentStore", "Message", "Notification"]

OPEN = "open"
CLEARED = "cleared"
_MARK_PREFIX = "alerts."


@dataclass(frozen=True)
class Incident:
    """One incident as stored; `detail` is what its messages and `alerts list` show."""

    id: int
    ref: str
    kind: IncidentKind
    subject: str
    job_id: str | None
    state: str
    detail: Mapping[str, Any]
    opened_by: str | None
    opened_at: datetime
    cleared_at: datetime | None
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def to_json(self) -> dict[str, Any]:
        """The `alerts list --json` form."""
        return {
            "ref": self.ref,
            "kind": str(self.kind),
            "subject": self.subject,
            "job_id": self.job_id,
            "state": self.state,
            "opened_at": self.opened_at.isoformat(),
            "cleared_at": None if self.cleared_at is None else self.cleared_at.isoformat(),
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class Message:
    """A message to queue: to URL number `url_index` of `target`. `status` is `sent` only for
    a message already delivered from memory (the `store` incident) and recorded afterwards."""

    event: str  # "opened" | "cleared"
    notify_type: NotifyType
    target: str
    url_index: int
    title: str
    body: str
    status: OutboxStatus = OutboxStatus.PENDING


@dataclass(frozen=True)
class Notification:
    """One outbox row."""

    id: int
    incident_id: int
    event: str
    notify_type: NotifyType
    target: str
    url_index: int
    title: str
    body: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime | None
    claimed_by: str | None
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """What `finish_notifications` records for one claimed message: `sent`, `pending` again
    at `next_attempt_at` (with the error), or `dropped` (with why)."""

    notification_id: int
    status: OutboxStatus
    next_attempt_at: datetime | None = None
    error: str | None = field(default=None)


def _incident(row: RowMapping) -> Incident:
    return Incident(
        id=row["id"],
        ref=row["ref"],
        kind=IncidentKind(row["kind"]),
        subject=row["subject"],
        job_id=row["job_id"],
        state=row["state"],
        detail=json.loads(row["detail"]),
        opened_by=row["opened_by"],
        opened_at=row["opened_at"],
        cleared_at=row["cleared_at"],
        updated_at=row["updated_at"],
    )


def _notification(row: RowMapping) -> Notification:
    return Notification(
        id=row["id"],
        incident_id=row["incident_id"],
        event=row["event"],
        notify_type=NotifyType(row["notify_type"]),
        target=row["target"],
        url_index=row["url_index"],
        title=row["title"],
        body=row["body"],
        status=OutboxStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        claimed_by=row["claimed_by"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
        created_at=row["created_at"],
    )


def _status_in(statuses: frozenset[OutboxStatus]) -> Any:
    return or_(*(NOTIFICATIONS.c.status == str(s) for s in sorted(statuses)))


class IncidentStore:
    """The store's incidents, outbox and alert marks (a `Store` mixin); module docstring."""

    _db: Database

    # -- incidents --------------------------------------------------------------------------
    def open_incident(
        self,
        kind: IncidentKind,
        subject: str,
        *,
        ref: str,
        detail: Mapping[str, Any],
        messages: Sequence[Message],
        now: datetime,
        daemon_id: str | None,
        job_id: str | None = None,
        cleared: bool = False,
    ) -> Incident | None:
        """Open the incident `subject` and queue its messages, in one transaction; None (and
        nothing queued) when an incident with this subject is open already.

        `cleared`: record it closed at once (a one-off, whose `subject` names what it
        reported and so is never reopened; or the `store` incident recorded afterwards)."""
        now = to_utc(now)
        values = {
            "ref": ref,
            "kind": str(kind),
            "subject": subject,
            "open_key": subject,
            "job_id": job_id,
            "state": CLEARED if cleared else OPEN,
            "detail": json.dumps(dict(detail), sort_keys=True, default=str),
            "opened_by": daemon_id,
            "opened_at": now,
            "cleared_at": now if cleared else None,
            "updated_at": now,
        }
        stmt = (
            self._db.insert(INCIDENTS)
            .values(values)
            .on_conflict_do_nothing(index_elements=[INCIDENTS.c.open_key])
            .returning(*INCIDENTS.c)
        )
        with self._db.tx(write=True) as conn:
            row = conn.execute(stmt).mappings().first()
            if row is None:
                return None
            incident = _incident(row)
            _enqueue(conn, incident.id, messages, now)
            return incident

    def clear_incident(
        self, incident_id: int, *, messages: Sequence[Message], now: datetime
    ) -> Incident | None:
        """Close an open incident and queue its recovery messages, in one transaction; None
        when it was not open (another daemon cleared it)."""
        now = to_utc(now)
        stmt = (
            update(INCIDENTS)
            .where(INCIDENTS.c.id == incident_id, INCIDENTS.c.state == OPEN)
            .values(state=CLEARED, open_key=None, cleared_at=now, updated_at=now)
            .returning(*INCIDENTS.c)
        )
        with self._db.tx(write=True) as conn:
            row = conn.execute(stmt).mappings().first()
            if row is None:
                return None
            _enqueue(conn, incident_id, messages, now)
            return _incident(row)

    def update_incident(
        self, incident_id: int, detail: Mapping[str, Any], *, now: datetime
    ) -> Incident | None:
        """New detail for an open incident (the jobs a daemon-wide one affects now), sending
        nothing; None when it is no longer open."""
        stmt = (
            update(INCIDENTS)
            .where(INCIDENTS.c.id == incident_id, INCIDENTS.c.state == OPEN)
            .values(
                detail=json.dumps(dict(detail), sort_keys=True, default=str),
                updated_at=to_utc(now),
            )
            .returning(*INCIDENTS.c)
        )
        with self._db.tx(write=True) as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else _incident(row)

    def incidents(
        self, *, open_only: bool = True, kind: IncidentKind | None = None, limit: int | None = None
    ) -> list[Incident]:
        """Incidents newest first: the open ones, or all those kept."""
        query = select(INCIDENTS)
        if open_only:
            query = query.where(INCIDENTS.c.state == OPEN)
        if kind is not None:
            query = query.where(INCIDENTS.c.kind == str(kind))
        query = query.order_by(INCIDENTS.c.opened_at.desc(), INCIDENTS.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._db.tx() as conn:
            return [_incident(row) for row in conn.execute(query).mappings()]

    def open_incident_counts(self) -> dict[IncidentKind, int]:
        """The number of open incidents of each kind (every kind, zeros included): one
        grouped count over the (state, kind) index."""
        counts = dict.fromkeys(IncidentKind, 0)
        with self._db.tx() as conn:
            rows = conn.execute(
                select(INCIDENTS.c.kind, func.count())
                .where(INCIDENTS.c.state == OPEN)
                .group_by(INCIDENTS.c.kind)
            ).all()
        for kind, n in rows:
            counts[IncidentKind(kind)] = int(n)
        return counts

    def notifications(self, incident_id: int | None = None) -> list[Notification]:
        """Outbox rows, oldest first (of one incident, if given)."""
        query = select(NOTIFICATIONS)
        if incident_id is not None:
            query = query.where(NOTIFICATIONS.c.incident_id == incident_id)
        query = query.order_by(NOTIFICATIONS.c.id)
        with self._db.tx() as conn:
            return [_notification(row) for row in conn.execute(query).mappings()]

    # -- the outbox -------------------------------------------------------------------------
    def claim_notifications(
        self,
        *,
        now: datetime,
        daemon_id: str,
        limit: int = 20,
        lease: timedelta = CLAIM_LEASE,
    ) -> list[Notification]:
        """Claim up to `limit` messages due now (oldest first): pending ones whose time came,
        and `sending` ones whose lease ran out (their daemon died mid-send). Each is claimed
        by one daemon only (a conditional UPDATE per candidate)."""
        now = to_utc(now)
        pending, sending = OutboxStatus.PENDING, OutboxStatus.SENDING
        assert outbox_allows(DeliveryOp.CLAIM, pending, sending)
        due = or_(
            and_(NOTIFICATIONS.c.status == str(pending), NOTIFICATIONS.c.next_attempt_at <= now),
            and_(NOTIFICATIONS.c.status == str(sending), NOTIFICATIONS.c.claimed_at < now - lease),
        )
        claimed: list[Notification] = []
        with self._db.tx(write=True) as conn:
            candidates = conn.execute(
                select(NOTIFICATIONS.c.id, NOTIFICATIONS.c.status, NOTIFICATIONS.c.claimed_at)
                .where(due)
                .order_by(NOTIFICATIONS.c.next_attempt_at, NOTIFICATIONS.c.id)
                .limit(limit)
            ).all()
            for notification_id, status, claimed_at in candidates:
                # Still as seen: another daemon's claim since (PostgreSQL's read committed)
                # leaves this one without a row.
                seen = and_(
                    NOTIFICATIONS.c.status == status,
                    NOTIFICATIONS.c.claimed_at.is_(None)
                    if claimed_at is None
                    else NOTIFICATIONS.c.claimed_at == claimed_at,
                )
                row = (
                    conn.execute(
                        update(NOTIFICATIONS)
                        .where(
                            NOTIFICATIONS.c.id == notification_id,
                            _status_in(outbox_sources(DeliveryOp.CLAIM)),
                            seen,
                        )
                        .values(
                            status=str(sending),
                            claimed_by=daemon_id,
                            claimed_at=now,
                            attempts=NOTIFICATIONS.c.attempts + 1,
                            updated_at=now,
                        )
                        .returning(*NOTIFICATIONS.c)
                    )
                    .mappings()
                    .first()
                )
                if row is not None:
                    claimed.append(_notification(row))
        return claimed

    def finish_notifications(
        self, deliveries: Sequence[Delivery], *, now: datetime, daemon_id: str
    ) -> list[Notification | None]:
        """Record each delivery of a message this daemon claimed; None for one it no longer
        holds (its lease ran out and another daemon took it)."""
        now = to_utc(now)
        results: list[Notification | None] = []
        with self._db.tx(write=True) as conn:
            for delivery in deliveries:
                status = delivery.status
                if not outbox_allows(DeliveryOp.FINISH, OutboxStatus.SENDING, status):
                    raise ValueError(f"cannot finish a message as {status}")
                values: dict[str, Any] = {
                    "status": str(status),
                    "updated_at": now,
                    "claimed_by": None,
                    "claimed_at": None,
                    "last_error": delivery.error,
                }
                if status is OutboxStatus.SENT:
                    values["sent_at"] = now
                if status is OutboxStatus.PENDING:
                    if delivery.next_attempt_at is None:
                        raise ValueError("a message to send again needs next_attempt_at")
                    values["next_attempt_at"] = to_utc(delivery.next_attempt_at)
                row = (
                    conn.execute(
                        update(NOTIFICATIONS)
                        .where(
                            NOTIFICATIONS.c.id == delivery.notification_id,
                            _status_in(outbox_sources(DeliveryOp.FINISH, to=status)),
                            NOTIFICATIONS.c.claimed_by == daemon_id,
                        )
                        .values(values)
                        .returning(*NOTIFICATIONS.c)
                    )
                    .mappings()
                    .first()
                )
                results.append(None if row is None else _notification(row))
        return results

    def next_notification_at(self) -> datetime | None:
        """When the earliest pending message is due."""
        with self._db.tx() as conn:
            value: datetime | None = conn.scalar(
                select(func.min(NOTIFICATIONS.c.next_attempt_at)).where(
                    NOTIFICATIONS.c.status == str(OutboxStatus.PENDING)
                )
            )
        return value

    def prune_alerts(self, *, before: datetime) -> int:
        """Delete messages sent or dropped before `before`, and incidents cleared before it
        whose messages are all gone; the number of messages deleted."""
        before = to_utc(before)
        with self._db.tx(write=True) as conn:
            deleted = conn.execute(
                delete(NOTIFICATIONS).where(
                    _status_in(outbox_sources(DeliveryOp.PRUNE)),
                    NOTIFICATIONS.c.updated_at < before,
                )
            ).rowcount
            still_queued = select(NOTIFICATIONS.c.id).where(
                NOTIFICATIONS.c.incident_id == INCIDENTS.c.id
            )
            conn.execute(
                delete(INCIDENTS).where(
                    INCIDENTS.c.state == CLEARED,
                    INCIDENTS.c.cleared_at < before,
                    ~still_queued.exists(),
                )
            )
        return int(deleted or 0)

    # -- marks ------------------------------------------------------------------------------
    def read_mark(self, name: str) -> str | None:
        """A named mark of the alert evaluation (None: never set)."""
        with self._db.tx() as conn:
            value: str | None = conn.scalar(
                select(META.c.value).where(META.c.key == _MARK_PREFIX + name)
            )
        return value

    def move_mark(self, name: str, old: str | None, new: str) -> bool:
        """Set mark `name` to `new` if it is still `old`; False when another daemon moved it
        first (or set it, for `old` None)."""
        key = _MARK_PREFIX + name
        with self._db.tx(write=True) as conn:
            if old is None:
                stmt = (
                    self._db.insert(META)
                    .values(key=key, value=new)
                    .on_conflict_do_nothing(index_elements=[META.c.key])
                )
                return bool(conn.execute(stmt).rowcount)
            changed = conn.execute(
                update(META).where(META.c.key == key, META.c.value == old).values(value=new)
            ).rowcount
            return bool(changed)

    # -- the ledger, as alerts read it ------------------------------------------------------
    def fires_changed_since(
        self, since: datetime, statuses: Sequence[FireStatus], *, limit: int = 10_000
    ) -> list[Fire]:
        """Fires in `statuses` whose row changed at or after `since`, oldest change first."""
        return read_fires(
            self._db,
            select(FIRES)
            .where(
                or_(*(FIRES.c.status == str(s) for s in statuses)),
                FIRES.c.updated_at >= to_utc(since),
            )
            .order_by(FIRES.c.updated_at, FIRES.c.id)
            .limit(limit),
        )

    def last_outcome_at(self, job_ids: Sequence[str], status: FireStatus) -> dict[str, datetime]:
        """Per job, when its latest fire in `status` was recorded (jobs with none: absent)."""
        found: dict[str, datetime] = {}
        with self._db.tx() as conn:
            for chunk in chunks(list(job_ids)):
                rows = conn.execute(
                    select(FIRES.c.job_id, func.max(FIRES.c.updated_at))
                    .where(FIRES.c.job_id.in_(list(chunk)), FIRES.c.status == str(status))
                    .group_by(FIRES.c.job_id)
                ).all()
                found.update({job_id: at for job_id, at in rows if at is not None})
        return found

    def waiting_fires(
        self,
        statuses: Sequence[FireStatus],
        *,
        scheduled_before: datetime | None = None,
        changed_before: datetime | None = None,
        limit: int = 1000,
    ) -> list[Fire]:
        """Open fires in `statuses`, scheduled (or last changed) before the given instants,
        oldest instant first; at most `limit`."""
        query = select(FIRES).where(or_(*(FIRES.c.status == str(s) for s in statuses)))
        if scheduled_before is not None:
            query = query.where(FIRES.c.scheduled_for < to_utc(scheduled_before))
        if changed_before is not None:
            query = query.where(
                func.coalesce(FIRES.c.first_attempt_at, FIRES.c.created_at) < to_utc(changed_before)
            )
        return read_fires(self._db, query.order_by(FIRES.c.scheduled_for, FIRES.c.id).limit(limit))

    def skips_after(self, fire_id: int, *, created_before: datetime) -> list[Fire]:
        """Skip rows with an id above `fire_id` recorded before `created_before`, by id."""
        return read_fires(
            self._db,
            select(FIRES)
            .where(
                FIRES.c.id > fire_id,
                FIRES.c.status == str(FireStatus.SKIPPED),
                FIRES.c.created_at < to_utc(created_before),
            )
            .order_by(FIRES.c.id)
            .limit(10_000),
        )

    def newest_fire_id(self) -> int:
        """The highest fire id (0 with no fire yet)."""
        with self._db.tx() as conn:
            return int(conn.scalar(select(func.max(FIRES.c.id))) or 0)


def _enqueue(
    conn: Connection, incident_id: int, messages: Sequence[Message], now: datetime
) -> None:
    """INSERT the messages of one incident (part of the caller's transaction)."""
    rows = []
    for message in messages:
        if not outbox_allows(DeliveryOp.ENQUEUE, None, message.status):
            raise ValueError(f"cannot queue a message as {message.status}")
        sent = message.status is OutboxStatus.SENT
        rows.append(
            {
                "incident_id": incident_id,
                "event": message.event,
                "notify_type": str(message.notify_type),
                "target": message.target,
                "url_index": message.url_index,
                "title": message.title,
                "body": message.body,
                "status": str(message.status),
                "attempts": 1 if sent else 0,
                "next_attempt_at": None if sent else now,
                "sent_at": now if sent else None,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        conn.execute(insert(NOTIFICATIONS), rows)
