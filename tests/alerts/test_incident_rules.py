"""The rules of when an incident opens and clears (scheduler/alerts/incidents.py), as tables;
and the outbox's lifecycle table against a real store (claimed once, recorded once)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.alerts.incidents import (
    Verdict,
    daemon_wide,
    job_failure,
    late_fires,
    skip_groups,
    token_expiry,
)
from scheduler.alerts.outbox import backoff
from scheduler.alertstate import (
    DeliveryOp,
    IncidentKind,
    NotifyType,
    OutboxStatus,
    outbox_allows,
)
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import Delivery, Fire, Message, Store

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def fire(status: FireStatus, *, at: int = 0, changed: int = 0, **kw: object) -> Fire:
    base = Fire(
        id=1,
        job_id="j",
        scheduled_for=T0 + timedelta(seconds=at),
        trigger=Trigger.SCHEDULE,
        status=status,
        attempts=1,
        next_attempt_at=None,
        first_attempt_at=None,
        remote_id=None,
        http_status=None,
        error=None,
        field_errors=None,
        skipped_count=None,
        skipped_until=None,
        claimed_by=None,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=changed),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def t(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


FAILED_AT_10 = fire(FireStatus.FAILED, changed=10)


@pytest.mark.parametrize(
    ("open_since", "last_failure", "last_success", "verdict"),
    [
        (None, None, None, Verdict.KEEP),  # nothing happened
        (None, FAILED_AT_10, None, Verdict.OPEN),  # a failure, never a success
        (None, FAILED_AT_10, t(5), Verdict.OPEN),  # succeeded, then failed
        (None, FAILED_AT_10, t(10), Verdict.KEEP),  # failed, then succeeded (same moment)
        (None, FAILED_AT_10, t(20), Verdict.KEEP),  # failed, then succeeded
        (t(10), FAILED_AT_10, None, Verdict.KEEP),  # open: later failures say nothing
        (t(10), FAILED_AT_10, t(5), Verdict.KEEP),  # an older success does not clear it
        (t(10), FAILED_AT_10, t(11), Verdict.CLEAR),  # the next success clears it
    ],
)
def test_a_job_failure_opens_once_and_clears_at_its_next_success(
    open_since: datetime | None,
    last_failure: Fire | None,
    last_success: datetime | None,
    verdict: Verdict,
) -> None:
    assert job_failure(open_since, last_failure, last_success) is verdict


@pytest.mark.parametrize(
    ("is_open", "affected", "listed", "verdict"),
    [
        (False, [], [], Verdict.KEEP),
        (False, ["a"], [], Verdict.OPEN),
        (True, ["a"], ["a"], Verdict.KEEP),
        (True, ["a", "b"], ["a"], Verdict.UPDATE),  # more jobs: listed, no message
        (True, ["b", "a"], ["a", "b"], Verdict.KEEP),
        (True, [], ["a"], Verdict.CLEAR),
    ],
)
def test_a_daemon_wide_incident_is_one_message_for_many_jobs(
    is_open: bool, affected: list[str], listed: list[str], verdict: Verdict
) -> None:
    assert daemon_wide(is_open, affected, listed) is verdict


def test_late_means_not_sent_late_after_past_its_jittered_instant_and_not_held_by_the_token() -> (
    None
):
    now = t(100)
    cases = {
        "pending long ago": fire(FireStatus.PENDING, at=0),
        "retrying long ago": fire(FireStatus.RETRYING, at=0),
        "pending, recent": fire(FireStatus.PENDING, at=95),
        "held by its jitter": fire(FireStatus.PENDING, at=0, job_id="jittered"),
        "waiting for a token": fire(FireStatus.RETRYING, at=0, http_status=401),
        "uncertain": fire(FireStatus.UNCERTAIN, at=0),
    }
    late = late_fires(
        list(cases.values()),
        now=now,
        late_after=timedelta(seconds=10),
        jitter_of=lambda f: timedelta(seconds=95) if f.job_id == "jittered" else timedelta(0),
    )
    assert [name for name, f in cases.items() if f in late] == [
        "pending long ago",
        "retrying long ago",
    ]


def test_token_expiry_warns_within_the_warning_only() -> None:
    week = timedelta(days=7)
    assert token_expiry(None, now=T0, warning=week) is False
    assert token_expiry(T0 + timedelta(days=8), now=T0, warning=week) is False
    assert token_expiry(T0 + timedelta(days=6), now=T0, warning=week) is True
    assert token_expiry(T0 - timedelta(days=1), now=T0, warning=week) is True


def test_skips_of_catch_up_are_grouped_by_job_and_tokens_outside_the_window_are_not() -> None:
    rows = [
        fire(FireStatus.SKIPPED, attempts=0, job_id="a"),
        fire(FireStatus.SKIPPED, attempts=0, job_id="a", id=2),
        fire(FireStatus.SKIPPED, attempts=0, job_id="b", id=3),
        fire(FireStatus.SKIPPED, attempts=3, job_id="c", id=4),  # sent, then given up
    ]
    assert {job: len(group) for job, group in skip_groups(rows).items()} == {"a": 2, "b": 1}


def test_delivery_backs_off_from_two_seconds_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 12, 40)] == [2, 4, 8, 3600, 3600]


# -- the outbox against a real store --------------------------------------------------------------
_REFS = itertools.count(1)


def _open(store: Store, subject: str = "failed:j") -> int:
    incident = store.open_incident(
        IncidentKind.FAILED,
        subject,
        ref=f"inc-{next(_REFS)}",
        detail={"job": "j"},
        messages=[Message("opened", NotifyType.FAILURE, "default", 0, "t", "b")],
        now=T0,
        daemon_id="d1",
        job_id="j",
    )
    assert incident is not None
    return incident.id


def test_an_incident_opens_once_and_clears_once_whoever_asks(store: Store) -> None:
    first = _open(store)
    assert (
        store.open_incident(
            IncidentKind.FAILED,
            "failed:j",
            ref="inc-other",
            detail={},
            messages=[Message("opened", NotifyType.FAILURE, "default", 0, "t", "b")],
            now=T0,
            daemon_id="d2",
        )
        is None
    )
    assert len(store.notifications()) == 1  # the loser queued nothing
    assert store.clear_incident(first, messages=[], now=t(1)) is not None
    assert store.clear_incident(first, messages=[], now=t(2)) is None
    assert _open(store) != first  # cleared: the subject may open again


def test_an_outbox_message_is_claimed_by_one_daemon_and_again_only_after_its_lease(
    store: Store,
) -> None:
    _open(store)
    (mine,) = store.claim_notifications(now=T0, daemon_id="d1")
    assert mine.status is OutboxStatus.SENDING
    assert store.claim_notifications(now=t(60), daemon_id="d2") == []  # held by d1
    # d1 died mid-send: after the lease another daemon sends it (at least once).
    (theirs,) = store.claim_notifications(now=t(6 * 60), daemon_id="d2")
    assert theirs.id == mine.id and theirs.attempts == 2
    # d1's late record is refused; d2's stands.
    (late,) = store.finish_notifications(
        [Delivery(mine.id, OutboxStatus.SENT)], now=t(361), daemon_id="d1"
    )
    assert late is None
    (done,) = store.finish_notifications(
        [Delivery(mine.id, OutboxStatus.SENT)], now=t(361), daemon_id="d2"
    )
    assert done is not None and done.status is OutboxStatus.SENT
    assert store.claim_notifications(now=t(10_000), daemon_id="d3") == []
    assert store.prune_alerts(before=t(10_000)) == 1


@pytest.mark.parametrize("op", list(DeliveryOp))
def test_every_outbox_transition_the_table_refuses_is_refused(op: DeliveryOp) -> None:
    assert not outbox_allows(op, OutboxStatus.SENT, OutboxStatus.SENDING)
    assert not outbox_allows(op, OutboxStatus.DROPPED, OutboxStatus.PENDING)
