"""The lifecycle of a fire: its statuses, its triggers, and which operation may move it where.

`TRANSITIONS` is the one table of the fire state machine (guarantees.md, "Lifecycle of a
fire"): for each operation of the fire ledger, the status a row must have before it (None: no
row yet) and the statuses it may have after. Everything else reads it:

- the ledger (`scheduler/store/ledger.py`) builds its conditional UPDATEs from it
  (`... WHERE id IN (...) AND status IN <sources(op)>`), so two racers never both win;
- the runner and the planner take their sets from it (`OPEN`, `MAY_HAVE_ARRIVED`,
  `COUNTS_TOWARD_MAX_FIRES`), and `backfill` asks `reopenable`;
- `tests/store/test_lifecycle.py` walks it against a real store: every transition it allows
  succeeds, every other one is refused.

Conditions on other columns than the status stay with the ledger, which documents them: who
owns the fire (`claimed_by`) for start and adopt, and for reopen that a skip row stands for a
single instant (`reopenable`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class FireStatus(StrEnum):
    """Where one fire is in its lifecycle (guarantees.md, "Lifecycle of a fire")."""

    PENDING = "pending"  # claimed (row committed), no request sent yet
    SENDING = "sending"  # an attempt is under way; `attempts` already counts it
    SUCCEEDED = "succeeded"  # the API created it; `remote_id` holds the id it returned
    RETRYING = "retrying"  # certainly not applied; try again at `next_attempt_at`
    UNCERTAIN = "uncertain"  # may have been applied: reconcile (read back) before any resend
    FAILED = "failed"  # permanent error or attempts exhausted; `error` says why; never retried
    SKIPPED = "skipped"  # deliberately not fired; `error` holds the reason, maybe for a range
    # Not sent yet because what its job launched before is still open (`overlap =
    # "buffer_one"`), or because that could not be looked up: checked again at
    # `next_attempt_at`; `error` says what it waits for (docs/jobs.md, "overlap").
    HELD = "held"


class Trigger(StrEnum):
    """Why a fire exists."""

    SCHEDULE = "schedule"  # the schedule came due while the daemon ran
    CATCH_UP = "catch_up"  # a missed instant found at startup or after a stall
    MANUAL = "manual"  # `tallyfy-scheduler fire`: not a scheduled instant, never catch-up input
    BACKFILL = "backfill"  # `tallyfy-scheduler backfill` over a past range


class Op(StrEnum):
    """The fire ledger's operations; each is one batch-shaped `Store` method."""

    CLAIM = "claim"  # Store.claim: a `pending` row for an instant nobody holds yet
    SKIP = "skip"  # Store.record_skips: a `skipped` row (maybe for a range) instead
    START = "start"  # Store.start_attempts: an attempt begins; `attempts` + 1
    FINISH = "finish"  # Store.finish: an attempt's (or a read-back's) outcome
    ADOPT = "adopt"  # Store.adopt: a live daemon takes over a dead one's open fire
    REOPEN = "reopen"  # Store.reopen: `backfill` sends an instant that was never sent
    DEFER = "defer"  # Store.defer: a fire not started yet is put off by what its look-ups found


_S = FireStatus  # short, for the table
_OUTCOMES = frozenset({_S.SUCCEEDED, _S.RETRYING, _S.UNCERTAIN, _S.FAILED, _S.SKIPPED})
_PUT_OFF = frozenset({_S.HELD, _S.RETRYING, _S.SKIPPED, _S.FAILED})

Moves = Mapping[FireStatus | None, frozenset[FireStatus]]

# operation -> {status before (None: no row yet) -> statuses it may have after}
TRANSITIONS: Mapping[Op, Moves] = MappingProxyType(
    {
        Op.CLAIM: {None: frozenset({_S.PENDING})},
        Op.SKIP: {None: frozenset({_S.SKIPPED})},
        Op.START: {
            _S.PENDING: frozenset({_S.SENDING}),
            _S.RETRYING: frozenset({_S.SENDING}),
            _S.UNCERTAIN: frozenset({_S.SENDING}),  # read back, nothing found: sent again
            _S.HELD: frozenset({_S.SENDING}),  # what it waited for closed
        },
        Op.FINISH: {
            _S.PENDING: _OUTCOMES,  # e.g. its request cannot be built: failed unsent
            _S.SENDING: _OUTCOMES,
            _S.UNCERTAIN: _OUTCOMES,  # the read-back's verdict
        },
        Op.ADOPT: {
            _S.PENDING: frozenset({_S.PENDING}),
            _S.SENDING: frozenset({_S.UNCERTAIN}),  # its request may have left: read back first
            _S.RETRYING: frozenset({_S.RETRYING}),
            _S.UNCERTAIN: frozenset({_S.UNCERTAIN}),
            _S.HELD: frozenset({_S.HELD}),
        },
        Op.REOPEN: {
            _S.FAILED: frozenset({_S.PENDING}),
            _S.SKIPPED: frozenset({_S.PENDING}),  # a skip row standing for one instant only
        },
        # Before a fire is started (no slot taken, no attempt counted), what its look-ups
        # found: held by its job's `overlap` (or an overlap look-up that failed), skipped by
        # it, waiting for its launch or a look-up the API did not answer (retrying), or
        # refused for good (failed). Never from `sending`: its request may have arrived.
        Op.DEFER: {
            _S.PENDING: _PUT_OFF,
            _S.RETRYING: _PUT_OFF,
            _S.HELD: _PUT_OFF,
        },
    }
)


@functools.cache
def sources(op: Op, *, to: FireStatus | None = None) -> frozenset[FireStatus]:
    """The statuses a row must have for `op` to apply to it, or to move it to `to` when
    given (none: `op` inserts the row)."""
    return frozenset(
        before
        for before, after in TRANSITIONS[op].items()
        if before is not None and (to is None or to in after)
    )


@functools.cache
def targets(op: Op) -> frozenset[FireStatus]:
    """Every status `op` may leave a row in."""
    return frozenset().union(*TRANSITIONS[op].values())


def allows(op: Op, before: FireStatus | None, after: FireStatus) -> bool:
    """Whether `op` may move a row from `before` (None: no row) to `after`."""
    return after in TRANSITIONS[op].get(before, frozenset())


# A fire still to be sent or to be given its outcome: the daemon carries it forward (and may
# adopt it from a dead daemon); every other status is final for the daemon.
OPEN: frozenset[FireStatus] = sources(Op.START) | sources(Op.FINISH)
# Waiting for `next_attempt_at` with no daemon holding it: whichever daemon finds it due first
# takes it (its start is conditional, like every change), so a dead daemon strands none.
RELEASED: frozenset[FireStatus] = frozenset({_S.RETRYING, _S.HELD})
# Its request may have reached the API: read back (reconcile) before any resend.
MAY_HAVE_ARRIVED: frozenset[FireStatus] = frozenset({_S.SENDING, _S.UNCERTAIN})
# What `max_fires` counts: successful fires and those that may still succeed.
COUNTS_TOWARD_MAX_FIRES: frozenset[FireStatus] = OPEN | {_S.SUCCEEDED}


# Statuses of a 4xx response that do not say the request itself is wrong: the credentials
# (401, 403) and the rate limit (429). Every other 4xx is a rejection (the failure breaker).
NOT_REJECTIONS = frozenset({401, 403, 429})


def rejected_by_api(http_status: int | None) -> bool:
    """Whether a fire failed because the API rejected the request itself (a 4xx other than
    401, 403 and 429): what the failure breaker counts (docs/jobs.md)."""
    return (
        http_status is not None and 400 <= http_status < 500 and http_status not in NOT_REJECTIONS
    )


def reopenable(status: FireStatus, skipped_count: int | None) -> bool:
    """Whether `backfill` may reopen this row: a failed fire, or a skip row for one instant
    (never sent, so sending it now cannot duplicate anything; a range keeps its count)."""
    return status in sources(Op.REOPEN) and (skipped_count or 1) == 1
