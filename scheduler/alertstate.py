"""Incidents and the outbox of their messages: kinds, notify types, and the outbox lifecycle.

The pure vocabulary the store and `scheduler/alerts/` share (docs/design.md, "Alerts"), the
way `lifecycle.py` is the fire ledger's:

- `IncidentKind`: what an incident is about, and whether it is per job, daemon-wide, or a
  one-off (opened and closed at once, with no recovery message);
- `NotifyType`: Apprise's notify type of each message (`failure`, `warning`, `success`);
- `OutboxStatus` and `OUTBOX_TRANSITIONS`: the one table of which delivery operation may
  move an outbox row from which status to which. The store builds its conditional UPDATEs from
  it, so of two daemons claiming one message exactly one sends it.

| operation | from | to |
| --- | --- | --- |
| enqueue | (no row) | pending, sent (a message already sent from memory, recorded later) |
| claim | pending (due), sending (its lease ran out: its daemon died mid-send) | sending |
| finish | sending (still ours) | sent, pending (retried later), dropped (given up) |
| prune | sent, dropped (older than the outbox keeps) | (deleted) |
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType


class IncidentKind(StrEnum):
    """What an incident is about (docs/alerts: "Incidents, not messages")."""

    FAILED = "failed"  # a job's fire ended failed; cleared by its next success
    SKIPPED = "skipped"  # catch-up skipped a job's instants after downtime (a one-off)
    QUARANTINED = "quarantined"  # a stored job no longer validates
    TEMPLATE = "template"  # a job would fail against its template (the daily online check)
    LATE = "late"  # fires not sent `late_after` after their instant (daemon-wide)
    UNCERTAIN = "uncertain"  # fires still uncertain after `uncertain_after` (daemon-wide)
    CREDENTIALS = "credentials"  # the API refuses the token: fires wait (daemon-wide)
    TOKEN_EXPIRY = "token_expiry"  # the token expires soon (daemon-wide)
    STORE = "store"  # the store was unreachable past `store_down_after` (per daemon)


# Per job: one open incident of the kind per job; the others are one per store.
PER_JOB = frozenset(
    {IncidentKind.FAILED, IncidentKind.QUARANTINED, IncidentKind.TEMPLATE, IncidentKind.SKIPPED}
)
# Reported once, never "recovered": the skipped instants stay skipped.
ONE_OFF = frozenset({IncidentKind.SKIPPED})


class NotifyType(StrEnum):
    """Apprise's notify types, as the issue maps them."""

    FAILURE = "failure"  # failed, credentials
    WARNING = "warning"  # every other kind
    SUCCESS = "success"  # a recovery
    INFO = "info"  # `alerts test`


FAILURE_KINDS = frozenset({IncidentKind.FAILED, IncidentKind.CREDENTIALS, IncidentKind.STORE})


def opening_type(kind: IncidentKind) -> NotifyType:
    """The notify type of the message that opens an incident of `kind`."""
    return NotifyType.FAILURE if kind in FAILURE_KINDS else NotifyType.WARNING


class OutboxStatus(StrEnum):
    """Where one message to one URL of one target is."""

    PENDING = "pending"  # to send at `next_attempt_at`
    SENDING = "sending"  # claimed by a daemon (`claimed_by`) until `claimed_at` + lease
    SENT = "sent"  # the receiver took it
    DROPPED = "dropped"  # given up: a day of failures, or its target is no longer configured


class DeliveryOp(StrEnum):
    """The outbox's operations; each is one batch-shaped `Store` method."""

    ENQUEUE = "enqueue"  # Store.open_incident / clear_incident / record_incident
    CLAIM = "claim"  # Store.claim_notifications
    FINISH = "finish"  # Store.finish_notifications
    PRUNE = "prune"  # Store.prune_alerts


_O = OutboxStatus
OUTBOX_TRANSITIONS: Mapping[DeliveryOp, Mapping[OutboxStatus | None, frozenset[OutboxStatus]]] = (
    MappingProxyType(
        {
            DeliveryOp.ENQUEUE: {None: frozenset({_O.PENDING, _O.SENT})},
            DeliveryOp.CLAIM: {
                _O.PENDING: frozenset({_O.SENDING}),
                _O.SENDING: frozenset({_O.SENDING}),  # only once its lease ran out
            },
            DeliveryOp.FINISH: {_O.SENDING: frozenset({_O.SENT, _O.PENDING, _O.DROPPED})},
            DeliveryOp.PRUNE: {_O.SENT: frozenset(), _O.DROPPED: frozenset()},
        }
    )
)


@functools.cache
def outbox_sources(op: DeliveryOp, *, to: OutboxStatus | None = None) -> frozenset[OutboxStatus]:
    """The statuses an outbox row must have for `op` (to move it to `to`, when given)."""
    return frozenset(
        before
        for before, after in OUTBOX_TRANSITIONS[op].items()
        if before is not None and (to is None or to in after)
    )


def outbox_allows(op: DeliveryOp, before: OutboxStatus | None, after: OutboxStatus) -> bool:
    """Whether `op` may move an outbox row from `before` (None: no row) to `after`."""
    return after in OUTBOX_TRANSITIONS[op].get(before, frozenset())


# A message is retried with backoff for this long after it was first queued, then dropped.
DELIVERY_GIVE_UP = timedelta(days=1)
# Sent and dropped messages, and cleared incidents, are kept this long (`alerts list`).
OUTBOX_KEEPS = timedelta(days=30)
# A `sending` row whose daemon has not finished it after this long is claimed again (its
# daemon died between the claim and the record): longer than any one send takes.
CLAIM_LEASE = timedelta(minutes=5)
