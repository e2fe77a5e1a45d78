"""The fire state machine, `scheduler.lifecycle.TRANSITIONS`, against a real store.

For every operation of the ledger and every status a row can be in (or no row at all), the
operation is tried on a fresh row in that status: each transition the table allows must
succeed and leave the row in a status the table names; every other must be refused (None, the
row unchanged). The rows are put in their status directly in the database, so the setup does
not lean on the operations under test. Ownership is not what this checks (the rows are
unowned; test_store_fires.py pins who may take a fire).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from scheduler.lifecycle import (
    COUNTS_TOWARD_MAX_FIRES,
    MAY_HAVE_ARRIVED,
    OPEN,
    TRANSITIONS,
    FireStatus,
    Op,
    Trigger,
    allows,
    reopenable,
    sources,
    targets,
)
from scheduler.store import Fire, Outcome, Skip, Store
from scheduler.store.tables import FIRES

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BEFORE = [None, *FireStatus]  # None: no row for the instant yet
_instants = itertools.count()


def row_in(store: Store, status: FireStatus | None) -> tuple[Fire | None, datetime]:
    """A fresh instant of job "j" and its row in `status` (None: no row), set in the database."""
    at = T0 + timedelta(minutes=next(_instants))
    if status is None:
        return None, at
    (fire,) = store.claim([("j", at, Trigger.SCHEDULE)], now=T0)
    assert fire is not None
    values: dict[str, object] = {"status": str(status)}
    if status in (FireStatus.RETRYING, FireStatus.HELD):
        values["next_attempt_at"] = T0
    if status is FireStatus.SKIPPED:
        values["skipped_count"] = 1  # one instant: reopenable
    with store.engine.begin() as conn:
        conn.execute(update(FIRES).where(FIRES.c.id == fire.id).values(values))
    return store.get_fire(fire.id), at


def apply(store: Store, op: Op, fire: Fire | None, at: datetime, to: FireStatus) -> Fire | None:
    """`op` on the row (or, with no row, on the instant or a fire id that does not exist)."""
    now = T0 + timedelta(days=1)
    fire_id = fire.id if fire is not None else 10**9
    if op is Op.CLAIM:
        (done,) = store.claim([("j", at, Trigger.SCHEDULE)], now=now)
    elif op is Op.SKIP:
        (done,) = store.record_skips([Skip("j", at, reason="not fired")], now=now)
    elif op is Op.START:
        (done,) = store.start_attempts([fire_id], now=now)
    elif op is Op.FINISH:
        (done,) = store.finish([Outcome(fire_id, to, next_attempt_at=now)], now=now)
    elif op is Op.DEFER:
        (done,) = store.defer([Outcome(fire_id, to, next_attempt_at=now)], now=now)
    elif op is Op.ADOPT:
        seen = fire
        if seen is None:  # a snapshot of a fire that does not exist
            other, _at = row_in(store, FireStatus.PENDING)
            seen = dataclasses.replace(other, id=fire_id)
        (done,) = store.adopt([seen], new_owner="live", now=now)
    else:
        (done,) = store.reopen([fire_id], Trigger.BACKFILL, now=now)
    return done


CASES = [
    pytest.param(op, before, to, id=f"{op}:{before or 'no row'}->{to}")
    for op in Op
    for before in BEFORE
    # FINISH and DEFER are told their target; every other operation has one per status before.
    for to in (targets(op) if op in (Op.FINISH, Op.DEFER) else [None])
]


@pytest.mark.parametrize(("op", "before", "to"), CASES)
def test_each_transition_the_table_allows_succeeds_and_every_other_is_refused(
    store: Store, op: Op, before: FireStatus | None, to: FireStatus | None
) -> None:
    fire, at = row_in(store, before)
    allowed = TRANSITIONS[op].get(before, frozenset())
    if to is not None:
        allowed = allowed & {to}

    done = apply(store, op, fire, at, to or FireStatus.SUCCEEDED)

    if allowed:
        assert done is not None, f"{op} refused from {before}"
        assert done.status in allowed
        assert (done.job_id, done.scheduled_for) == ("j", at)
    else:
        assert done is None, f"{op} moved {before} to {done.status if done else None}"
        if fire is not None:
            assert store.get_fire(fire.id) == fire


@pytest.mark.parametrize("status", [FireStatus.PENDING, FireStatus.SENDING], ids=str)
def test_finish_refuses_a_target_the_table_does_not_name_before_writing(
    store: Store, status: FireStatus
) -> None:
    assert status not in targets(Op.FINISH)
    fire, _at = row_in(store, FireStatus.SENDING)
    assert fire is not None
    with pytest.raises(ValueError, match="cannot finish"):
        store.finish([Outcome(fire.id, status)], now=T0)
    assert store.get_fire(fire.id) == fire


def test_the_sets_the_daemon_uses_are_read_off_the_table() -> None:
    assert OPEN == sources(Op.START) | sources(Op.FINISH) == sources(Op.ADOPT)
    assert set(FireStatus) - OPEN == {FireStatus.SUCCEEDED, FireStatus.FAILED, FireStatus.SKIPPED}
    assert MAY_HAVE_ARRIVED < OPEN
    # Adopting what may have arrived leaves it to be read back, never to be sent blind.
    assert all(TRANSITIONS[Op.ADOPT][s] == {FireStatus.UNCERTAIN} for s in MAY_HAVE_ARRIVED)
    assert COUNTS_TOWARD_MAX_FIRES == OPEN | {FireStatus.SUCCEEDED}
    assert allows(Op.CLAIM, None, FireStatus.PENDING)
    assert not allows(Op.START, FireStatus.SENDING, FireStatus.SENDING)


@pytest.mark.parametrize(
    ("status", "count", "expected"),
    [
        (FireStatus.FAILED, None, True),
        (FireStatus.SKIPPED, 1, True),
        (FireStatus.SKIPPED, None, True),
        (FireStatus.SKIPPED, 5, False),  # a range keeps its count: never reopened whole
        (FireStatus.SUCCEEDED, None, False),
        (FireStatus.UNCERTAIN, None, False),
    ],
)
def test_reopenable_is_a_reopen_source_standing_for_one_instant(
    status: FireStatus, count: int | None, expected: bool
) -> None:
    assert reopenable(status, count) is expected


def test_the_table_in_the_design_document_is_this_table() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    section = text.split("### `scheduler.lifecycle`", 1)[1].split("\n### ", 1)[0]
    documented: dict[Op, dict[FireStatus | None, set[FireStatus]]] = {}
    for op, froms, tos in re.findall(r"^\| (\w+) \| ([^|]+) \| ([^|]+) \|$", section, re.M):
        if op == "operation":
            continue
        for name in froms.split(","):
            before = None if name.strip() == "(no row)" else FireStatus(name.strip())
            after = {before} if tos.strip() == "(the same)" else map(FireStatus, tos.split(", "))
            documented.setdefault(Op(op), {}).setdefault(before, set()).update(after)
    assert documented == {
        op: {b: set(a) for b, a in moves.items()} for op, moves in TRANSITIONS.items()
    }
